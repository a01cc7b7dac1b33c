/**
 * The auto-fix plugin: a failing cell offers "Fix with OpenCodeInterpreter"
 * (or is fixed at once, per the `autoFix` setting); in suggest mode each
 * rewrite is a diff the user accepts. Fixes are requests of the chat.
 *
 * The Fix command is also an item of JupyterLab's cell toolbar (the schema's
 * `jupyter.lab.toolbars` → `Cell`), shown on the active cell when it failed;
 * the button under every failing cell is the `fixButtonInCell` setting.
 */
import { Notification } from '@jupyterlab/apputils';
import { Cell, CodeCell } from '@jupyterlab/cells';
import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { TranslationBundle } from '@jupyterlab/translation';

import {
  AutoFixMode,
  cellError,
  confirmFix,
  hasError,
  hideFixButton,
  hideFixResult,
  IFixResultView,
  originalSource,
  showFixButton,
  showFixing,
  showFixResult
} from '../autofix';
import { IRequestResult } from '../chat/types';
import { cellTarget, CommandIDs, followChatState } from '../commands';
import { fixIcon } from '../icon';
import { METADATA_KEY } from '../notebook';
import { isNotebookTrusted } from '../trust';
import { cellPlugin } from './cell-plugin';
import { followSettings } from './settings';

/**
 * What the cell shows once its fix (or edit: `titles`) ended; null: nothing
 * (a stop, a rejected diff).
 */
export function fixResultView(
  result: IRequestResult,
  trans: TranslationBundle,
  titles?: { done: string; notDone: string }
): IFixResultView | null {
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
        title: withBudget(
          titles?.done ?? trans.__('Fixed by OpenCodeInterpreter')
        )
      };
    case 'failed':
    case 'no_code':
    case 'error':
      return {
        ...common,
        kind: 'failed',
        title: withBudget(titles?.notDone ?? trans.__('Not fixed'))
      };
    default:
      return null;
  }
}

export const autoFixPlugin = cellPlugin(
  'oci-jupyter:auto-fix',
  'Fix failing notebook cells with OpenCodeInterpreter: a button under the error, or at once.',
  ({ app, chat, tracker, rendermime, palette, settingRegistry, trans }) => {
    const { commands } = app;
    let autoFix: AutoFixMode = 'suggest';
    let fixButtonInCell = true;
    /** Whether failing cells get the button under their error. */
    const buttonsShown = () => autoFix !== 'off' && fixButtonInCell;
    followSettings(settingRegistry, settings => {
      const shown = buttonsShown();
      autoFix =
        (settings.get('autoFix').composite as AutoFixMode | undefined) ??
        'suggest';
      fixButtonInCell =
        (settings.get('fixButtonInCell').composite as boolean | undefined) ??
        true;
      // Live: the cells already failing get or lose their button now, not
      // at their next run.
      if (buttonsShown() !== shown) {
        tracker.forEach(refreshButtons);
      }
    });

    const panelOf = (cell: Cell): NotebookPanel | null =>
      tracker.find(p => p.content.widgets.includes(cell)) ?? null;

    /** The fix button under a failing cell, unless the settings hide it. */
    const offerFix = (cell: CodeCell): void => {
      if (!buttonsShown()) {
        return;
      }
      showFixButton(cell, trans.__('Fix with OpenCodeInterpreter'), () => {
        const current = panelOf(cell);
        if (current) {
          startFix(current, cell);
        }
      });
    };
    /** Start a fix of a failing cell; false when it cannot start now. */
    const startFix = (notebook: NotebookPanel, cell: Cell): boolean => {
      const error = cellError(cell.model);
      if (!error || notebook.isDisposed || cell.isDisposed) {
        return false;
      }
      // In a notebook JupyterLab does not trust, even `auto` shows the
      // rewrite first: its content reached the model.
      const trusted = isNotebookTrusted(notebook);
      const note = trusted
        ? undefined
        : trans.__(
            'This notebook is not trusted: review the fix before it replaces the cell and runs.'
          );
      const finished = chat.fix({
        panel: notebook,
        cellId: cell.model.id,
        error,
        confirm:
          autoFix === 'auto' && trusted
            ? null
            : (oldSource, newSource, signal) =>
                confirmFix(trans, oldSource, newSource, signal, note)
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
      // The chat shows the fix's progress, without taking the focus.
      void commands.execute(CommandIDs.openPanel, { quiet: true });
      void finished.then(result => {
        unmark();
        // Where the progress was: how it ended, in the model's words.
        const view = fixResultView(result, trans);
        if (view && cell instanceof CodeCell && !cell.isDisposed) {
          showFixResult(cell, view, rendermime);
        }
        // Still failing (the attempts ran out, or the diff was rejected):
        // another try stays one click away.
        if (
          cell instanceof CodeCell &&
          !cell.isDisposed &&
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
    /**
     * Give a notebook's failing cells their button, or take them all away,
     * per the settings. Offers a fix, never starts one: nobody has just run
     * those cells. Cells drawn lazily, when scrolled to, get their button
     * when they are drawn.
     */
    function refreshButtons(notebook: NotebookPanel): void {
      for (const cell of notebook.content.widgets) {
        if (!buttonsShown()) {
          hideFixButton(cell);
          continue;
        }
        if (!(cell instanceof CodeCell) || !hasError(cell.model)) {
          continue;
        }
        void cell.ready.then(() => {
          if (
            !cell.isDisposed &&
            hasError(cell.model) &&
            !chat.isBusy(cell.model.id)
          ) {
            offerFix(cell);
          }
        });
      }
    }
    // A notebook opened with errors in its saved outputs offers their fix
    // again.
    tracker.widgetAdded.connect((_, notebook) => {
      void notebook.context.ready.then(() => {
        if (!notebook.isDisposed) {
          refreshButtons(notebook);
        }
      });
      followActiveCell(notebook);
    });

    /**
     * The cell toolbar's Fix button is on the notebook's active cell and
     * shows only while that cell has an error: its state is asked again
     * when the active cell's outputs gain or lose one (run, cleared), which
     * the chat's own state changes do not tell.
     */
    function followActiveCell(notebook: NotebookPanel): void {
      let outputs: CodeCell['model']['outputs'] | null = null;
      let failed = false;
      const onOutputs = () => {
        const cell = notebook.content.activeCell;
        const now = !!cell && hasError(cell.model);
        if (now !== failed) {
          failed = now;
          commands.notifyCommandChanged(CommandIDs.fixCell);
        }
      };
      const onActiveCell = () => {
        outputs?.changed.disconnect(onOutputs);
        const cell = notebook.content.activeCell;
        outputs = cell instanceof CodeCell ? cell.model.outputs : null;
        outputs?.changed.connect(onOutputs);
        failed = !!cell && hasError(cell.model);
      };
      onActiveCell();
      notebook.content.activeCellChanged.connect(onActiveCell);
      notebook.disposed.connect(() => {
        notebook.content.activeCellChanged.disconnect(onActiveCell);
        outputs?.changed.disconnect(onOutputs);
        outputs = null;
      });
    }

    const fixTarget = (args: ReadonlyPartialJSONObject) =>
      cellTarget(tracker, args);
    /** A code cell with an error that no request is working on. */
    const fixable = (args: ReadonlyPartialJSONObject): boolean => {
      const cell = fixTarget(args)?.cell;
      return !!cell && hasError(cell.model) && !chat.isBusy(cell.model.id);
    };

    commands.addCommand(CommandIDs.fixCell, {
      label: trans.__('Fix the Cell with OpenCodeInterpreter'),
      caption: trans.__(
        'Ask the model to fix the active cell’s error; only that cell is rewritten and run'
      ),
      icon: fixIcon,
      // In the cell toolbar (`toolbar: true`) the button is there only on a
      // failing cell; the context menu and the palette keep the item,
      // disabled, so the command stays findable.
      isVisible: args => (args.toolbar === true ? fixable(args) : true),
      isEnabled: args => chat.running === null && fixable(args),
      execute: args => {
        const target = fixTarget(args);
        if (target) {
          startFix(target.notebook, target.cell);
        }
      }
    });
    commands.addCommand(CommandIDs.restoreOriginal, {
      // A fix and an edit keep the same source (`original_source`): one
      // command brings back either.
      label: trans.__('Restore the Cell’s Source Before the Change'),
      caption: trans.__(
        'Bring back the source the cell had before OpenCodeInterpreter fixed or changed it'
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
    // The cell context menu's items are in the schema
    // (`jupyter.lab.menus` → `context`): users move or hide them in the
    // settings.
    const ids = [CommandIDs.fixCell, CommandIDs.restoreOriginal];
    followChatState(chat, commands, ids);
    if (palette) {
      const category = trans.__('OpenCodeInterpreter');
      for (const command of ids) {
        palette.addItem({ command, category });
      }
    }
  }
);
