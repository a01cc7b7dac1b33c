/**
 * The edit plugin: change any code cell by instruction ("make this a
 * function"). *Change This Cell…* (cell toolbar, context menu, palette,
 * Shift+E in command mode) opens a prompt under the cell; what the user
 * types becomes a request of the chat in `edit` mode, about that cell (the
 * selected lines, if any). Its code is a diff to accept, as a fix's is
 * (unless `applyEditsAtOnce`), and only that cell is rewritten and run.
 * The chat shows the request; the user goes on there ("also label the
 * axes"), as after a fix.
 */
import { Notification } from '@jupyterlab/apputils';
import { Cell, CodeCell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import { confirmFix, showFixing, showFixResult } from '../autofix';
import { FixConfirm } from '../chat/types';
import { cellTarget, CommandIDs, followChatState } from '../commands';
import { showEditPrompt } from '../edit/prompt';
import { selectedLines } from '../edit/selection';
import { editIcon } from '../icon';
import { isNotebookTrusted } from '../trust';
import { fixResultView } from './autofix';
import { cellPlugin } from './cell-plugin';
import { followSettings } from './settings';

export const editCellPlugin = cellPlugin(
  'oci-jupyter:edit-cell',
  'Change any code cell by instruction with OpenCodeInterpreter: a prompt at the cell, the change shown as a diff to accept.',
  ({ app, chat, tracker, rendermime, palette, settingRegistry, trans }) => {
    const { commands } = app;
    let applyAtOnce = false;
    followSettings(settingRegistry, settings => {
      applyAtOnce =
        (settings.get('applyEditsAtOnce').composite as boolean | undefined) ??
        false;
    });

    /** How each rewrite is confirmed: the diff, unless the user skips it. */
    const confirmOf = (notebook: NotebookPanel): FixConfirm | null => {
      // In a notebook JupyterLab does not trust, the change is always shown
      // first (as a fix's is): its content reached the model.
      const trusted = isNotebookTrusted(notebook);
      if (applyAtOnce && trusted) {
        return null;
      }
      const note = trusted
        ? undefined
        : trans.__(
            'This notebook is not trusted: review the change before it replaces the cell and runs.'
          );
      return (oldSource, newSource, signal) =>
        confirmFix(
          trans,
          oldSource,
          newSource,
          signal,
          note,
          trans.__('Apply the change?')
        );
    };

    /** Send the instruction; false (the prompt stays) when it cannot start. */
    const startEdit = (
      notebook: NotebookPanel,
      cell: Cell,
      instruction: string,
      selection: string
    ): boolean => {
      if (notebook.isDisposed || cell.isDisposed) {
        return false;
      }
      const finished = chat.edit({
        panel: notebook,
        cellId: cell.model.id,
        prompt: instruction,
        selection,
        confirm: confirmOf(notebook)
      });
      if (!finished) {
        // Say why nothing happens; the prompt keeps the words.
        Notification.warning(
          chat.connection.state !== 'open'
            ? trans.__(
                'OpenCodeInterpreter is not connected to the server; the cell can be changed once it reconnects.'
              )
            : trans.__(
                'OpenCodeInterpreter is still working on a request in this notebook: wait for it or stop it, then change the cell.'
              ),
          { autoClose: 6000 }
        );
        return false;
      }
      const unmark = showFixing(
        cell,
        {
          fixing: trans.__('OpenCodeInterpreter is changing this cell…'),
          stop: trans.__('Stop')
        },
        () => chat.stopCell(cell.model.id)
      );
      // The chat shows the request, without taking the focus.
      void commands.execute(CommandIDs.openPanel, { quiet: true });
      void finished.then(result => {
        unmark();
        // Where the progress was: how it ended, in the model's words (its
        // one-line summary of the change).
        const view = fixResultView(result, trans, {
          done: trans.__('Changed by OpenCodeInterpreter'),
          notDone: trans.__('Not changed')
        });
        if (view && cell instanceof CodeCell && !cell.isDisposed) {
          showFixResult(cell, view, rendermime);
        }
      });
      return true;
    };

    /** Open the prompt under a cell, about its selected lines if any. */
    const openPrompt = (notebook: NotebookPanel, cell: Cell): void => {
      const content = notebook.content;
      // Read now: the prompt takes the focus (the editor keeps its
      // selection, but the user may click elsewhere before sending).
      const lines = selectedLines(cell.editor);
      const editing = content.mode === 'edit' && content.activeCell === cell;
      showEditPrompt(cell, {
        labels: {
          placeholder: trans.__('Change this cell…'),
          label: trans.__('How to change this cell'),
          send: trans.__('Send'),
          close: trans.__('Close'),
          keys: trans.__(
            'Enter to send · Shift+Enter for a new line · Escape to close'
          ),
          about: !lines
            ? ''
            : lines.first === lines.last
              ? trans.__('About line %1', lines.first)
              : trans.__('About lines %1–%2', lines.first, lines.last)
        },
        send: instruction =>
          startEdit(notebook, cell, instruction, lines?.text ?? ''),
        closed: () => {
          if (cell.isDisposed || notebook.isDisposed) {
            return;
          }
          // Back where the user was: in the editor, or on the cell in
          // command mode (the notebook's keys work again).
          const index = content.widgets.indexOf(cell);
          if (index >= 0) {
            content.activeCellIndex = index;
          }
          if (editing && cell.editor) {
            cell.editor.focus();
          } else {
            content.mode = 'command';
            cell.node.focus({ preventScroll: true });
          }
        }
      });
    };

    /** A code cell that no request is working on. */
    const editable = (args: ReadonlyPartialJSONObject): boolean => {
      const cell = cellTarget(tracker, args)?.cell;
      return (
        !!cell && cell.model.type === 'code' && !chat.isBusy(cell.model.id)
      );
    };

    commands.addCommand(CommandIDs.editCell, {
      label: trans.__('Change This Cell…'),
      caption: trans.__(
        'Tell OpenCodeInterpreter how to change the active cell (the selected lines, if any); the change is shown as a diff to accept, then run'
      ),
      icon: editIcon,
      // In the cell toolbar the button is on code cells only; the context
      // menu and the palette keep the item, disabled, so it stays findable.
      isVisible: args =>
        args.toolbar === true
          ? cellTarget(tracker, args)?.cell.model.type === 'code'
          : true,
      isEnabled: args => chat.running === null && editable(args),
      execute: args => {
        const target = cellTarget(tracker, args);
        if (target && editable(args)) {
          openPrompt(target.notebook, target.cell);
        }
      }
    });
    // The context menu's item, the toolbar's button and the shortcut are in
    // the schema: users move or hide them in the settings.
    followChatState(chat, commands, [CommandIDs.editCell]);
    palette?.addItem({
      command: CommandIDs.editCell,
      category: trans.__('OpenCodeInterpreter')
    });
  }
);
