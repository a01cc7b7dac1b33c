/**
 * The sidebar widget: its `jp-mod-running` class follows the chat's running
 * request (the Escape shortcut's selector needs it, so that Escape is the
 * page's whenever nothing can be stopped).
 */
import { ServerConnection } from '@jupyterlab/services';
import { nullTranslator } from '@jupyterlab/translation';
import { CommandRegistry } from '@lumino/commands';
import { Signal } from '@lumino/signaling';
import * as React from 'react';

import { NotebookLabel } from '../chat/view';
import { OciPanel } from '../panel';
import { rendered } from './fakes';
import { IOciChatModel } from '../tokens';

class FakeChat {
  readonly stateChanged = new Signal<FakeChat, void>(this);
  running: object | null = null;
  disposed = false;
  dispose(): void {
    this.disposed = true;
  }
}

function makePanel(chat: FakeChat): OciPanel {
  return new OciPanel({
    chatModel: chat as unknown as IOciChatModel,
    rendermime: {} as any,
    commands: new CommandRegistry(),
    serverSettings: ServerConnection.makeSettings({
      baseUrl: 'http://127.0.0.1:8888/',
      fetch: (() =>
        Promise.resolve(new Response('{}', { status: 503 }))) as typeof fetch
    })
  });
}

describe('OciPanel', () => {
  it('is marked running while the chat runs a request, and only then', () => {
    const chat = new FakeChat();
    const panel = makePanel(chat);
    expect(panel.hasClass('jp-mod-running')).toBe(false);

    chat.running = { id: 'r1' };
    chat.stateChanged.emit();
    expect(panel.hasClass('jp-mod-running')).toBe(true);

    chat.running = null;
    chat.stateChanged.emit();
    expect(panel.hasClass('jp-mod-running')).toBe(false);
    panel.dispose();
  });

  it('starts marked when a request already runs', () => {
    const chat = new FakeChat();
    chat.running = { id: 'r1' };
    const panel = makePanel(chat);
    expect(panel.hasClass('jp-mod-running')).toBe(true);
    panel.dispose();
    expect(chat.disposed).toBe(true);
  });
});

describe('NotebookLabel', () => {
  const trans = nullTranslator.load('oci_jupyter');

  it('names the notebook the chat is about, or says there is none', async () => {
    const chat = {
      stateChanged: new Signal<object, void>({}),
      notebook: null as object | null,
      thread: { path: 'work/analysis.ipynb' }
    };
    const node = await rendered(
      <NotebookLabel model={chat as unknown as IOciChatModel} trans={trans} />
    );
    expect(node.textContent).toBe('No notebook');

    chat.notebook = {};
    chat.stateChanged.emit();
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(node.querySelector('.jp-OciChat-notebookName')?.textContent).toBe(
      'analysis.ipynb'
    );
    expect(node.textContent).not.toContain('No notebook');
  });
});
