/**
 * The command ids of oci_jupyter's plugins, and keeping their enabled and
 * toggled states in step with the chat.
 */
import type { CommandRegistry } from '@lumino/commands';

import type { IOciChatModel } from './tokens';

export namespace CommandIDs {
  export const openPanel = 'oci:open-panel';
  export const focusInput = 'oci:focus-chat-input';
  export const stop = 'oci:stop';
  export const newCell = 'oci:toggle-new-cell';
  export const clearHistory = 'oci:clear-chat-history';
  export const fixCell = 'oci:fix-cell';
  export const restoreOriginal = 'oci:restore-original';
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
