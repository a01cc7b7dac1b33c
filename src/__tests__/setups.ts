/**
 * The set-ups the chat's specs share, built on the doubles of ./fakes: a
 * loaded thread, a request, the execute of a turn, and a chat model whose
 * history the test holds (no server, no module mock), with or without a
 * request asked. Kept in one place so that a new option of ChatRequest or
 * ChatModel gets its test value once, not in every spec.
 */
import type { NotebookPanel } from '@jupyterlab/notebook';

import { ChatModel } from '../chat/model';
import {
  IAskMessage,
  IExecuteMessage,
  IHistoryRequest
} from '../chat/protocol';
import { ChatRequest, IChatRequestOptions } from '../chat/request';
import { DEFAULT_CHAT_SETTINGS, ILoopSettings, IThread } from '../chat/types';
import { IOciCellExecutor } from '../tokens';
import { FakeConnection, fakePanel, IFakePanel, settle } from './fakes';

/** A thread whose history has loaded, with nothing in it. */
export function loadedThread(path = 'a.ipynb'): IThread {
  return {
    path,
    requests: [],
    history: 'loaded',
    historyError: '',
    newThread: false
  };
}

/** The loop's settings as a server with the default `c.OCI.*` reports them. */
export const SERVER_LOOP: ILoopSettings = {
  maxAttempts: 3,
  maxSteps: 4,
  maxReplies: 8,
  readResults: true
};

/**
 * Request r1 of a plain chat in a.ipynb, on a panel it never looks at;
 * `options` override (a real panel, a cell to refine, a confirm).
 */
export function chatRequest(
  options: Partial<IChatRequestOptions> = {}
): ChatRequest {
  return new ChatRequest({
    id: 'r1',
    thread: loadedThread(),
    panel: {} as NotebookPanel,
    prompt: 'p',
    refines: null,
    anchorCellId: null,
    cellId: null,
    cellSource: null,
    fix: null,
    confirm: null,
    refine: false,
    settings: DEFAULT_CHAT_SETTINGS,
    serverLoop: SERVER_LOOP,
    ...options
  });
}

/** The execute of r1's turn 1 (step 1, a new cell, run at once). */
export function executeMessage(
  extra: Partial<IExecuteMessage> = {}
): IExecuteMessage {
  return {
    type: 'execute',
    id: 'r1',
    turn: 1,
    code: 'print(x + 1)',
    target: 'new',
    step: 1,
    attempt: 1,
    auto_execute: true,
    time_limit: 60,
    ...extra
  };
}

/** A chat model and the fake connection it speaks to the server through. */
export interface IFakeChat {
  connection: FakeConnection;
  model: ChatModel;
  /** The notebooks whose history the model loaded, in order. */
  fetched: string[];
}

/**
 * A chat model on a fake connection. Each notebook's history is the one in
 * `histories` (else empty), answered at once, so no test reaches the
 * server's history API.
 */
export function fakeChat(
  options: {
    histories?: Record<string, IHistoryRequest[]>;
    cellExecutor?: IOciCellExecutor;
  } = {}
): IFakeChat {
  const connection = new FakeConnection();
  const fetched: string[] = [];
  const histories = options.histories ?? {};
  const model = new ChatModel({
    connection,
    history: {
      fetch: path => {
        fetched.push(path);
        return Promise.resolve({
          notebook: path,
          requests: histories[path] ?? []
        });
      },
      clear: () => Promise.resolve()
    },
    cellExecutor: options.cellExecutor
  });
  return { connection, model, fetched };
}

/** The ask the chat sent last. */
export function lastAsk(connection: FakeConnection): IAskMessage {
  const asks = connection.sentOf('ask');
  return asks[asks.length - 1];
}

/**
 * Show this notebook in the chat and ask there, each step settled; the ask
 * must go out. Returns the ask message the server got.
 */
export async function askIn(
  chat: IFakeChat,
  panel: NotebookPanel,
  prompt: string
): Promise<IAskMessage> {
  chat.model.notebook = panel;
  await settle();
  expect(chat.model.ask(prompt)).toBe(true);
  await settle();
  return lastAsk(chat.connection);
}

/** A chat with one request asked in analysis.ipynb (one cell: x = 41). */
export async function startedRequest(
  prompt = 'sum the column'
): Promise<IFakeChat & { notebook: IFakePanel; ask: IAskMessage; id: string }> {
  const chat = fakeChat();
  const notebook = fakePanel('analysis.ipynb', ['x = 41']);
  const ask = await askIn(chat, notebook.panel, prompt);
  return { ...chat, notebook, ask, id: ask.id };
}
