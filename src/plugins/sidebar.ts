/**
 * The sidebar plugin: the model's status and the chat, in the right
 * sidebar, with the commands that open it.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';

import { CommandIDs } from '../commands';
import { ociIcon } from '../icon';
import { SETTLED_POLL_INTERVAL } from '../model';
import { OciPanel, PANEL_ID } from '../panel';
import { IOciChatModel } from '../tokens';
import { followSettings } from './settings';

export const sidebarPlugin: JupyterFrontEndPlugin<void> = {
  id: 'oci-jupyter:sidebar',
  description:
    "The OpenCodeInterpreter sidebar: the server's model status and the chat.",
  autoStart: true,
  requires: [IOciChatModel, IRenderMimeRegistry],
  optional: [ICommandPalette, ILayoutRestorer, ISettingRegistry, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    chat: IOciChatModel,
    rendermime: IRenderMimeRegistry,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null
  ) => {
    const trans = (translator ?? nullTranslator).load('oci_jupyter');
    const { commands } = app;
    const panel = new OciPanel({
      chatModel: chat,
      rendermime,
      serverSettings: app.serviceManager.serverSettings,
      settledInterval: SETTLED_POLL_INTERVAL,
      translator: translator ?? undefined,
      commands
    });
    app.shell.add(panel, 'right', { rank: 1000 });
    if (restorer) {
      restorer.add(panel, PANEL_ID);
    }

    commands.addCommand(CommandIDs.openPanel, {
      label: trans.__('Open OpenCodeInterpreter'),
      caption: trans.__('Show the OpenCodeInterpreter sidebar'),
      icon: args => (args['isPalette'] ? undefined : ociIcon),
      execute: args => {
        if (args['quiet']) {
          // Shown for something the user did not ask for right now (an
          // automatic fix): the keyboard focus stays where it is.
          panel.reveal(app.shell);
        } else {
          app.shell.activateById(panel.id);
        }
      }
    });
    commands.addCommand(CommandIDs.focusInput, {
      label: trans.__('Ask OpenCodeInterpreter'),
      caption: trans.__('Open the sidebar and put the cursor in the chat'),
      execute: () => {
        app.shell.activateById(panel.id);
        panel.focusInput();
      }
    });
    if (palette) {
      const category = trans.__('OpenCodeInterpreter');
      for (const command of [CommandIDs.openPanel, CommandIDs.focusInput]) {
        palette.addItem({ command, category });
      }
    }

    followSettings(settingRegistry, settings => {
      panel.statusModel.settledInterval = settings.get('statusPollInterval')
        .composite as number;
    });
  }
};
