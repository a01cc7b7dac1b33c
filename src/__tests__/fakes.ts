/**
 * Test doubles for the chat's unit tests: a connection the test speaks for
 * the server through, and a notebook panel around a real NotebookModel (the
 * chat reads cells, ids, metadata and execution counts from the model; it
 * never needs the widgets in these tests).
 */
import { NotebookModel, NotebookPanel } from '@jupyterlab/notebook';
import { TranslationBundle } from '@jupyterlab/translation';
import { ReactWidget } from '@jupyterlab/ui-components';
import { MessageLoop } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import * as React from 'react';
import { ISignal, Signal } from '@lumino/signaling';

import { ConnectionState, IChatConnection } from '../chat/connection';
import { ClientMessage, ServerMessage } from '../chat/protocol';

export class FakeConnection implements IChatConnection {
  get messageReceived(): ISignal<IChatConnection, ServerMessage> {
    return this._messageReceived;
  }
  get stateChanged(): ISignal<IChatConnection, ConnectionState> {
    return this._stateChanged;
  }
  state: ConnectionState = 'open';
  retryAt: number | null = null;
  isDisposed = false;
  /** Every message the chat sent, in order. */
  sent: ClientMessage[] = [];
  reconnects = 0;

  send(message: ClientMessage): boolean {
    if (this.state !== 'open') {
      return false;
    }
    // A copy, as the wire would make: later changes of the chat's objects
    // must not show up in what was sent.
    this.sent.push(JSON.parse(JSON.stringify(message)));
    return true;
  }

  reconnect(): void {
    this.reconnects++;
  }

  dispose(): void {
    this.isDisposed = true;
  }

  /** The server sends a message. */
  receive(message: ServerMessage): void {
    this._messageReceived.emit(message);
  }

  /** The socket opens, closes or starts connecting. */
  setState(state: ConnectionState): void {
    this.state = state;
    this._stateChanged.emit(state);
  }

  /** The messages of one type the chat sent. */
  sentOf<T extends ClientMessage['type']>(
    type: T
  ): Extract<ClientMessage, { type: T }>[] {
    return this.sent.filter(m => m.type === type) as Extract<
      ClientMessage,
      { type: T }
    >[];
  }

  private _messageReceived = new Signal<IChatConnection, ServerMessage>(this);
  private _stateChanged = new Signal<IChatConnection, ConnectionState>(this);
}

/** A notebook panel as the chat sees it, with a real notebook model. */
export interface IFakePanel {
  panel: NotebookPanel;
  model: NotebookModel;
  /** Rename the notebook (its context's path changes). */
  rename(path: string): void;
  /** Make the cell at this index the active one. */
  activate(index: number): void;
}

/**
 * A notebook panel around these code cells. Trusted, as JupyterLab marks a
 * notebook the user made or ran (`trusted: false`: as the server marks one
 * it did not sign, from elsewhere).
 */
export function fakePanel(
  path: string,
  sources: string[] = [],
  options: { trusted?: boolean } = {}
): IFakePanel {
  const trusted = options.trusted ?? true;
  const model = new NotebookModel();
  model.fromJSON({
    cells: sources.map(source => ({
      cell_type: 'code',
      source,
      metadata: trusted ? { trusted: true } : {},
      outputs: [],
      execution_count: null
    })),
    metadata: {},
    nbformat: 4,
    nbformat_minor: 5
  });
  const pathChanged = new Signal<unknown, string>({});
  const context = {
    path,
    pathChanged,
    disposed: new Signal<unknown, void>({})
  };
  const content = {
    model,
    activeCellIndex: sources.length - 1,
    get activeCell() {
      const cell =
        this.activeCellIndex >= 0
          ? model.cells.get(this.activeCellIndex)
          : null;
      return cell ? { model: cell } : null;
    },
    widgets: [],
    deselectAll: () => undefined,
    scrollToCell: () => Promise.resolve()
  };
  const sessionContext = {
    session: null,
    isReady: true,
    ready: Promise.resolve(),
    statusChanged: new Signal<unknown, string>({})
  };
  const panel = {
    model,
    content,
    context,
    sessionContext,
    isDisposed: false,
    disposed: new Signal<unknown, void>({})
  } as unknown as NotebookPanel;
  return {
    panel,
    model,
    rename: (newPath: string) => {
      context.path = newPath;
      pathChanged.emit(newPath);
    },
    activate: (index: number) => {
      content.activeCellIndex = index;
    }
  };
}

/** Let promises and queued callbacks settle. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await new Promise(resolve => setTimeout(resolve, 0));
  }
}

/** A "translation" that marks each sentence and records what was asked. */
export function markingBundle(): TranslationBundle & { asked: string[] } {
  const asked: string[] = [];
  const format = (msgid: string, args: unknown[]) =>
    msgid.replace(/%(\d+)/g, (_, n) => String(args[Number(n) - 1]));
  return {
    asked,
    __: (msgid: string, ...args: unknown[]) => {
      asked.push(msgid);
      return `«${format(msgid, args)}»`;
    },
    _n: (one: string, other: string, n: number, ...args: unknown[]) => {
      asked.push(`${one} | ${other}`);
      return `«${format(n === 1 ? one : other, [n, ...args])}»`;
    }
  } as unknown as TranslationBundle & { asked: string[] };
}

/**
 * An element rendered into the page by JupyterLab's own ReactWidget, once
 * React has drawn it.
 */
export async function rendered(
  element: React.ReactElement
): Promise<HTMLElement> {
  const widget = ReactWidget.create(element);
  Widget.attach(widget, document.body);
  MessageLoop.sendMessage(widget, Widget.Msg.UpdateRequest);
  for (let tries = 0; !widget.node.firstChild && tries < 100; tries++) {
    await new Promise(resolve => setTimeout(resolve, 10));
  }
  return widget.node;
}
