/**
 * The plugins' wiring: what each provides and registers, activated with a
 * fake application (a command registry, server settings whose socket never
 * opens) and a fake notebook tracker.
 */
import * as fs from 'fs';
import * as path from 'path';

import { JupyterFrontEnd } from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { CommandRegistry } from '@lumino/commands';
import { Signal } from '@lumino/signaling';

import { createCellExecutor } from '../cellexecutor';
import { CommandIDs } from '../commands';
import plugins from '../index';
import { autoFixPlugin } from '../plugins/autofix';
import { chatPlugin } from '../plugins/chat';
import { IOciCellExecutor, IOciChatModel } from '../tokens';
import { fakePanel, settle } from './fakes';

const schema = JSON.parse(
  fs.readFileSync(path.resolve(__dirname, '../../schema/plugin.json'), 'utf-8')
) as Record<string, any>;

/** A socket that stays connecting: the chat never reaches a server. */
class SilentWebSocket {
  static readonly OPEN = 1;
  readyState = 0;
  onopen: (() => void) | null = null;
  onclose: (() => void) | null = null;
  onmessage: (() => void) | null = null;
  constructor(readonly url: string) {}
  send(): void {}
  close(): void {}
}

function fakeApp() {
  const commands = new CommandRegistry();
  const contextMenu = {
    items: [] as string[],
    addItem(item: { command: string }) {
      this.items.push(item.command);
    }
  };
  const serverSettings = ServerConnection.makeSettings({
    baseUrl: 'http://127.0.0.1:8888/',
    WebSocket: SilentWebSocket as unknown as typeof WebSocket,
    fetch: (() =>
      Promise.resolve(
        new Response(JSON.stringify({ notebook: '', requests: [] }), {
          status: 200
        })
      )) as typeof fetch
  });
  const app = {
    commands,
    contextMenu,
    serviceManager: { serverSettings }
  } as unknown as JupyterFrontEnd;
  return { app, commands, contextMenu };
}

function fakeTracker() {
  const currentChanged = new Signal<unknown, unknown>({});
  const tracker = {
    currentWidget: null,
    activeCell: null,
    currentChanged,
    widgetAdded: new Signal<unknown, unknown>({}),
    find: () => undefined
  };
  return tracker;
}

describe('the plugins', () => {
  it('are one per capability, with the tokens they provide', () => {
    const provided = new Map(
      plugins.map(plugin => [plugin.id, plugin.provides?.name ?? null])
    );
    expect(provided).toEqual(
      new Map([
        ['oci-jupyter:cell-executor', IOciCellExecutor.name],
        ['oci-jupyter:plugin', IOciChatModel.name],
        ['oci-jupyter:sidebar', null],
        ['oci-jupyter:auto-fix', null],
        ['oci-jupyter:edit-cell', null],
        ['oci-jupyter:magic-steps', null],
        ['oci-jupyter:inline-completion', null]
      ])
    );
    // The sidebar, auto-fix and edit use the chat through its token only.
    for (const id of [
      'oci-jupyter:sidebar',
      'oci-jupyter:auto-fix',
      'oci-jupyter:edit-cell'
    ]) {
      const plugin = plugins.find(p => p.id === id)!;
      expect(plugin.requires).toContain(IOciChatModel);
    }
  });

  it('chat: provides the chat model, about the current notebook', async () => {
    const { app, commands } = fakeApp();
    const tracker = fakeTracker();
    const chat = chatPlugin.activate(
      app,
      tracker as unknown as INotebookTracker,
      createCellExecutor({}),
      null,
      null,
      null
    ) as IOciChatModel;
    try {
      expect(chat.notebook).toBeNull();
      const notebook = fakePanel('a.ipynb', ['x = 1']);
      tracker.currentChanged.emit(notebook.panel);
      await settle();
      expect(chat.notebook).toBe(notebook.panel);
      expect(chat.thread?.path).toBe('a.ipynb');
      for (const id of [
        CommandIDs.stop,
        CommandIDs.newCell,
        CommandIDs.clearHistory
      ]) {
        expect(commands.hasCommand(id)).toBe(true);
        // Nothing runs, nothing to refine, nothing to clear.
        expect(commands.isEnabled(id)).toBe(false);
      }
    } finally {
      chat.dispose();
    }
  });

  it('auto-fix: the fix and restore commands, in the cell context menu of the schema', () => {
    const { app, commands, contextMenu } = fakeApp();
    const chat = {
      isBusy: () => false,
      running: null,
      stateChanged: new Signal({})
    };
    autoFixPlugin.activate(
      app,
      chat as unknown as IOciChatModel,
      fakeTracker() as unknown as INotebookTracker,
      {},
      null,
      null,
      null
    );
    // Not added in code: the schema's `jupyter.lab.menus` holds them, so
    // users can move or hide them in the settings.
    expect(contextMenu.items).toEqual([]);
    const menus = schema['jupyter.lab.menus'];
    const context = menus.context as {
      command: string;
      selector: string;
    }[];
    expect(context.map(item => item.command)).toEqual([
      CommandIDs.fixCell,
      CommandIDs.restoreOriginal,
      CommandIDs.editCell
    ]);
    for (const item of context) {
      expect(item.selector).toBe('.jp-Notebook .jp-CodeCell');
    }
    expect(commands.hasCommand(CommandIDs.fixCell)).toBe(true);
    expect(commands.hasCommand(CommandIDs.restoreOriginal)).toBe(true);
    // No active cell: nothing to fix or restore.
    expect(commands.isEnabled(CommandIDs.fixCell)).toBe(false);
    expect(commands.isEnabled(CommandIDs.restoreOriginal)).toBe(false);
  });
});
