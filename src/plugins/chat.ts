/**
 * The chat plugin: the chat model (the `IOciChatModel` service) about the
 * notebook the user was last in, and its commands.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Dialog, ICommandPalette, showDialog } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';

import { ChatModel } from '../chat/model';
import { CommandIDs, followChatState } from '../commands';
import { IOciCellExecutor, IOciChatModel } from '../tokens';
import { chatSettings, followSettings, SETTINGS_ID } from './settings';

export const chatPlugin: JupyterFrontEndPlugin<IOciChatModel> = {
  // The settings schema (schema/plugin.json) is this plugin's.
  id: SETTINGS_ID,
  description:
    'OpenCodeInterpreter: a chat with the code model hosted by the Jupyter server, which writes, runs and fixes notebook cells.',
  autoStart: true,
  provides: IOciChatModel,
  requires: [INotebookTracker, IOciCellExecutor],
  optional: [ICommandPalette, ISettingRegistry, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    cellExecutor: IOciCellExecutor,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null
  ): IOciChatModel => {
    const trans = (translator ?? nullTranslator).load('oci_jupyter');
    const { commands } = app;
    const chat = new ChatModel({
      serverSettings: app.serviceManager.serverSettings,
      cellExecutor
    });

    // The chat is about the notebook the user was last in.
    chat.notebook = tracker.currentWidget;
    tracker.currentChanged.connect((_, current) => {
      chat.notebook = current;
    });

    commands.addCommand(CommandIDs.stop, {
      label: trans.__('Stop the Chat Request'),
      caption: trans.__(
        'Stop generating, or interrupt the generated code that is running'
      ),
      isEnabled: () => chat.running !== null,
      execute: () => chat.stop()
    });
    commands.addCommand(CommandIDs.newCell, {
      label: trans.__('Next Chat Message Writes a New Cell'),
      caption: trans.__('Instead of refining the cell of the previous request'),
      isToggled: () => chat.thread?.newThread ?? false,
      isEnabled: () => chat.refineCandidate() !== null,
      execute: () => chat.setNewThread(!(chat.thread?.newThread ?? false))
    });
    commands.addCommand(CommandIDs.clearHistory, {
      label: trans.__('Clear the Notebook’s Chat'),
      caption: trans.__(
        'Forget the chat of the current notebook, shown and remembered'
      ),
      isEnabled: () =>
        chat.thread !== null &&
        chat.thread.requests.length > 0 &&
        chat.running === null,
      execute: async () => {
        const thread = chat.thread;
        if (!thread) {
          return;
        }
        const result = await showDialog({
          title: trans.__('Clear the chat?'),
          body: trans.__(
            'The chat of %1 is forgotten, here and in what the model remembers. The cells in the notebook stay as they are.',
            thread.path
          ),
          buttons: [
            Dialog.cancelButton(),
            Dialog.warnButton({ label: trans.__('Clear') })
          ]
        });
        if (result.button.accept) {
          try {
            await chat.clearHistory();
          } catch (reason) {
            void showDialog({
              title: trans.__('The chat could not be cleared'),
              body: (reason as Error).message ?? String(reason),
              buttons: [Dialog.okButton()]
            });
          }
        }
      }
    });
    const ids = [CommandIDs.stop, CommandIDs.newCell, CommandIDs.clearHistory];
    followChatState(chat, commands, ids);
    if (palette) {
      const category = trans.__('OpenCodeInterpreter');
      for (const command of ids) {
        palette.addItem({ command, category });
      }
    }

    followSettings(settingRegistry, settings => {
      chat.settings = chatSettings(settings);
    });
    return chat;
  }
};
