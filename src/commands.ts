/**
 * The command ids of oci_jupyter's plugins, and keeping their enabled and
 * toggled states in step with the chat.
 */
import type { Cell } from '@jupyterlab/cells';
import type { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import type { CommandRegistry } from '@lumino/commands';
import type { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import type { IOciChatModel } from './tokens';

export namespace CommandIDs {
  export const openPanel = 'oci:open-panel';
  export const focusInput = 'oci:focus-chat-input';
  export const stop = 'oci:stop';
  export const newCell = 'oci:toggle-new-cell';
  export const clearHistory = 'oci:clear-chat-history';
  export const fixCell = 'oci:fix-cell';
  export const restoreOriginal = 'oci:restore-original';
  export const editCell = 'oci:edit-cell';
}

/**
 * The notebook and cell a cell command (fix, edit) is about: the cell
 * toolbar passes its notebook (`widgetId`, maybe not the current one in a
 * split view), menus and keys mean the current notebook's active cell.
 */
export function cellTarget(
  tracker: INotebookTracker,
  args: ReadonlyPartialJSONObject
): { notebook: NotebookPanel; cell: Cell } | null {
  const id = args.widgetId;
  const notebook =
    typeof id === 'string'
      ? (tracker.find(p => p.id === id) ?? null)
      : tracker.currentWidget;
  const cell = notebook?.content.activeCell ?? null;
  return notebook && cell ? { notebook, cell } : null;
}

/**
 * Announce these commands' state when the chat's notebook, thread or
 * running request changes; only real changes are announced (the chat
 * changes every frame while tokens stream).
 */
export function followChatState(
  chat: IOciChatModel,
  commands: CommandRegistry,
  ids: string[]
): void {
  let state = '';
  chat.stateChanged.connect(() => {
    const thread = chat.thread;
    const next = [
      thread?.path,
      thread?.newThread,
      thread?.requests.length,
      chat.running?.id
    ].join('|');
    if (next !== state) {
      state = next;
      for (const id of ids) {
        commands.notifyCommandChanged(id);
      }
    }
  });
}
