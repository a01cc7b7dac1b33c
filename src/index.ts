/**
 * oci_jupyter's JupyterLab plugin: the OpenCodeInterpreter sidebar (model
 * status and chat) and its commands.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  ISessionContextDialogs,
  Notification,
  showDialog
} from '@jupyterlab/apputils';
import { Cell, CodeCell } from '@jupyterlab/cells';
import {
  INotebookCellExecutor,
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';

import {
  AutoFixMode,
  cellError,
  confirmFix,
  hideFixButton,
  hideFixResult,
  IFixResultView,
  originalSource,
  showFixButton,
  showFixing,
  showFixResult
} from './autofix';
import {
  ChatModel,
  DEFAULT_CHAT_SETTINGS,
  IChatSettings,
  IRequestResult
} from './chat/model';
import { splitMagicSteps } from './magicsteps';
import { METADATA_KEY } from './notebook';
import { ociIcon } from './icon';
import { SETTLED_POLL_INTERVAL } from './model';
import { OciPanel, PANEL_ID } from './panel';

const PLUGIN_ID = 'oci-jupyter:plugin';

export namespace CommandIDs {
  export const openPanel = 'oci:open-panel';
  export const focusInput = 'oci:focus-chat-input';
  export const stop = 'oci:stop';
  export const newCell = 'oci:toggle-new-cell';
  export const clearHistory = 'oci:clear-chat-history';
  export const fixCell = 'oci:fix-cell';
  export const restoreOriginal = 'oci:restore-original';
}

function chatSettings(settings: ISettingRegistry.ISettings): IChatSettings {
  const get = <K extends keyof IChatSettings>(key: K): IChatSettings[K] =>
    (settings.get(key).composite as IChatSettings[K] | undefined) ??
    DEFAULT_CHAT_SETTINGS[key];
  return {
    maxTurns: get('maxTurns'),
    maxSteps: get('maxSteps'),
    maxReplies: get('maxReplies'),
    readResults: get('readResults'),
    autoExecute: get('autoExecute'),
    executionTimeLimit: get('executionTimeLimit'),
    sendVariables: get('sendVariables'),
    sendOutputs: get('sendOutputs'),
    contextCells: get('contextCells')
  };
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'OpenCodeInterpreter: a chat with the code model hosted by the Jupyter server, which writes, runs and fixes notebook cells.',
  autoStart: true,
  requires: [INotebookTracker, IRenderMimeRegistry],
  optional: [
    ICommandPalette,
    ILayoutRestorer,
    ISettingRegistry,
    ITranslator,
    INotebookCellExecutor,
    ISessionContextDialogs
  ],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    rendermime: IRenderMimeRegistry,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null,
    executor: INotebookCellExecutor | null,
    sessionDialogs: ISessionContextDialogs | null
  ) => {
    const trans = (translator ?? nullTranslator).load('oci_jupyter');
    const { commands } = app;
    const serverSettings = app.serviceManager.serverSettings;
    // The loop's cells run through JupyterLab's own cell executor (and its
    // session dialogs), as Shift+Enter does.
    const chat = new ChatModel({
      serverSettings,
      executor: executor ?? undefined,
      sessionDialogs: sessionDialogs ?? undefined,
      translator: translator ?? undefined
    });
    const panel = new OciPanel({
      chatModel: chat,
      rendermime,
      serverSettings,
      settledInterval: SETTLED_POLL_INTERVAL,
      translator: translator ?? undefined,
      onClearHistory: () => void commands.execute(CommandIDs.clearHistory)
    });
    app.shell.add(panel, 'right', { rank: 1000 });
    if (restorer) {
      restorer.add(panel, PANEL_ID);
    }

    // The chat is about the notebook the user was last in.
    chat.notebook = tracker.currentWidget;
    tracker.currentChanged.connect((_, current) => {
      chat.notebook = current;
    });

    commands.addCommand(CommandIDs.openPanel, {
      label: trans.__('Open OpenCodeInterpreter'),
      caption: trans.__('Show the OpenCodeInterpreter sidebar'),
      icon: args => (args['isPalette'] ? undefined : ociIcon),
      execute: () => {
        app.shell.activateById(panel.id);
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
    // ---- auto-fix

    let autoFix: AutoFixMode = 'suggest';
    const panelOf = (cell: Cell): NotebookPanel | null =>
      tracker.find(p => p.content.widgets.includes(cell)) ?? null;

    /** The fix button under a failing cell. */
    const offerFix = (cell: CodeCell): void => {
      showFixButton(cell, trans.__('Fix with OpenCodeInterpreter'), () => {
        const current = panelOf(cell);
        if (current) {
          startFix(current, cell);
        }
      });
    };
    /** What the cell shows once its fix ended; null: nothing (a stop). */
    const fixResultView = (result: IRequestResult): IFixResultView | null => {
      const budget =
        result.budget === 'attempts'
          ? trans.__('stopped at the attempt budget')
          : result.budget === 'replies'
            ? trans.__('stopped at the reply budget')
            : '';
      const withBudget = (title: string) =>
        budget ? `${title} · ${budget}` : title;
      const common = {
        explanation: result.answer.trim(),
        message: result.message,
        dismiss: trans.__('Dismiss')
      };
      switch (result.status) {
        case 'success':
          return {
            ...common,
            kind: 'fixed',
            title: withBudget(trans.__('Fixed by OpenCodeInterpreter'))
          };
        case 'failed':
        case 'no_code':
        case 'error':
          return {
            ...common,
            kind: 'failed',
            title: withBudget(trans.__('Not fixed'))
          };
        default:
          return null;
      }
    };
    /** Start a fix of a failing cell; false when it cannot start now. */
    const startFix = (notebook: NotebookPanel, cell: Cell): boolean => {
      const error = cellError(cell.model);
      if (!error || notebook.isDisposed || cell.isDisposed) {
        return false;
      }
      const finished = chat.fix({
        panel: notebook,
        cellId: cell.model.id,
        error,
        confirm:
          autoFix === 'auto'
            ? null
            : (oldSource, newSource, signal) =>
                confirmFix(trans, oldSource, newSource, signal)
      });
      if (!finished) {
        // Say why nothing happens rather than ignore the click.
        Notification.warning(
          chat.connection.state !== 'open'
            ? trans.__(
                'OpenCodeInterpreter is not connected to the server; the fix can start once it reconnects.'
              )
            : trans.__(
                'OpenCodeInterpreter is still working on a request in this notebook: wait for it or stop it, then fix the cell.'
              ),
          { autoClose: 6000 }
        );
        return false;
      }
      hideFixButton(cell);
      const unmark = showFixing(
        cell,
        {
          fixing: trans.__('OpenCodeInterpreter is fixing this cell…'),
          stop: trans.__('Stop')
        },
        () => chat.stopCell(cell.model.id)
      );
      panel.reveal(app.shell);
      void finished.then(result => {
        unmark();
        // Where the progress was: how it ended, in the model's words.
        const view = fixResultView(result);
        if (view && cell instanceof CodeCell && !cell.isDisposed) {
          showFixResult(cell, view, rendermime);
        }
        // Still failing (the attempts ran out, or the diff was rejected):
        // another try stays one click away.
        if (
          cell instanceof CodeCell &&
          !cell.isDisposed &&
          autoFix !== 'off' &&
          cellError(cell.model) !== null
        ) {
          offerFix(cell);
        }
      });
      return true;
    };

    NotebookActions.executionScheduled.connect((_, { cell }) => {
      hideFixButton(cell);
      hideFixResult(cell);
    });
    // `%%oci --insert`: one cell per step (see magicsteps.ts).
    NotebookActions.executed.connect((_, { notebook, cell, success }) => {
      if (success && cell.model.type === 'code') {
        splitMagicSteps(notebook, cell.model.id);
      }
    });
    NotebookActions.executed.connect(
      (_, { notebook, cell, success, error }) => {
        if (success || !(cell instanceof CodeCell) || autoFix === 'off') {
          return;
        }
        // Not a user's stop, not a cell the chat itself is writing or fixing.
        if (
          !error ||
          error.errorName === 'KeyboardInterrupt' ||
          chat.isBusy(cell.model.id) ||
          !cellError(cell.model)
        ) {
          return;
        }
        const owner = tracker.find(p => p.content === notebook);
        if (!owner) {
          return;
        }
        if (autoFix === 'auto' && startFix(owner, cell)) {
          return;
        }
        offerFix(cell);
      }
    );
    // A notebook opened with errors in its saved outputs offers their fix
    // again (never starts one: nobody has just run those cells). Cells drawn
    // lazily, when scrolled to, get their button when they are drawn.
    tracker.widgetAdded.connect((_, notebook) => {
      void notebook.context.ready.then(() => {
        for (const cell of notebook.content.widgets) {
          if (!(cell instanceof CodeCell) || cellError(cell.model) === null) {
            continue;
          }
          void cell.ready.then(() => {
            if (
              autoFix !== 'off' &&
              !cell.isDisposed &&
              cellError(cell.model) !== null &&
              !chat.isBusy(cell.model.id)
            ) {
              offerFix(cell);
            }
          });
        }
      });
    });

    commands.addCommand(CommandIDs.fixCell, {
      label: trans.__('Fix the Cell with OpenCodeInterpreter'),
      caption: trans.__(
        'Ask the model to fix the active cell’s error; only that cell is rewritten and run'
      ),
      isEnabled: () => {
        const cell = tracker.activeCell;
        return (
          !!cell &&
          chat.running === null &&
          cellError(cell.model) !== null &&
          !chat.isBusy(cell.model.id)
        );
      },
      execute: () => {
        const notebook = tracker.currentWidget;
        const cell = tracker.activeCell;
        if (notebook && cell) {
          startFix(notebook, cell);
        }
      }
    });
    commands.addCommand(CommandIDs.restoreOriginal, {
      label: trans.__('Restore the Cell’s Source Before the Fix'),
      caption: trans.__(
        'Bring back the source the cell had before OpenCodeInterpreter fixed it'
      ),
      isEnabled: () => {
        const cell = tracker.activeCell;
        return (
          !!cell &&
          originalSource(cell.model) !== null &&
          !chat.isBusy(cell.model.id)
        );
      },
      execute: () => {
        const cell = tracker.activeCell;
        const original = cell ? originalSource(cell.model) : null;
        if (!cell || original === null) {
          return;
        }
        const model = cell.model;
        const shared = model.sharedModel;
        // One undo step of its own, like the fix's rewrite.
        (
          shared as { undoManager?: { stopCapturing(): void } | null }
        ).undoManager?.stopCapturing();
        shared.setSource(original);
        const meta = {
          ...(model.getMetadata(METADATA_KEY) as Record<string, unknown>)
        };
        delete meta.original_source;
        model.setMetadata(METADATA_KEY, meta);
        if (cell instanceof CodeCell) {
          // The fixed code's outputs would read as the original's.
          shared.transact(() => cell.model.clearExecution(), false);
        }
      }
    });
    app.contextMenu.addItem({
      command: CommandIDs.fixCell,
      selector: '.jp-Notebook .jp-CodeCell',
      rank: 30
    });
    app.contextMenu.addItem({
      command: CommandIDs.restoreOriginal,
      selector: '.jp-Notebook .jp-CodeCell',
      rank: 31
    });

    // Toggled and enabled states follow the chat; only real changes are
    // announced (the chat changes every frame while tokens stream).
    let commandState = '';
    chat.stateChanged.connect(() => {
      const thread = chat.thread;
      const state = [
        thread?.path,
        thread?.newThread,
        thread?.requests.length,
        chat.running?.id
      ].join('|');
      if (state !== commandState) {
        commandState = state;
        commands.notifyCommandChanged(CommandIDs.stop);
        commands.notifyCommandChanged(CommandIDs.newCell);
        commands.notifyCommandChanged(CommandIDs.clearHistory);
        commands.notifyCommandChanged(CommandIDs.fixCell);
        commands.notifyCommandChanged(CommandIDs.restoreOriginal);
      }
    });
    if (palette) {
      const category = trans.__('OpenCodeInterpreter');
      for (const command of [
        CommandIDs.openPanel,
        CommandIDs.focusInput,
        CommandIDs.stop,
        CommandIDs.newCell,
        CommandIDs.clearHistory,
        CommandIDs.fixCell,
        CommandIDs.restoreOriginal
      ]) {
        palette.addItem({ command, category });
      }
    }

    if (settingRegistry) {
      const applySettings = (settings: ISettingRegistry.ISettings) => {
        panel.statusModel.settledInterval = settings.get('statusPollInterval')
          .composite as number;
        chat.settings = chatSettings(settings);
        autoFix =
          (settings.get('autoFix').composite as AutoFixMode | undefined) ??
          'suggest';
      };
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          applySettings(settings);
          settings.changed.connect(applySettings);
        })
        .catch(reason => {
          console.error('oci-jupyter: failed to load settings.', reason);
        });
    }
  }
};

export default plugin;
