/**
 * REST client for the oci_jupyter server extension, and the address of its
 * chat websocket.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { IChatHistory, IServerText } from './chat/protocol';
import type { ILoopSettings } from './chat/types';

/**
 * Lifecycle of the model hosted by the server (see `GET /oci/status`).
 */
export type EngineState = 'idle' | 'loading' | 'ready' | 'error' | 'stopped';

/**
 * The JSON body of `GET /oci/status`.
 */
export interface IEngineStatus {
  /** Engine name, e.g. `llamacpp`, `vllm` or `openai`. */
  engine: string;
  model: string;
  device: string;
  state: EngineState;
  /** Human-readable detail, e.g. what the loader is doing right now. */
  detail: string;
  /**
   * `detail` as a sentence of the server's, for the view to translate (null:
   * words without a code; older servers lack it).
   */
  detail_text?: IServerText | null;
  /** Load progress in 0..1, or null when the engine cannot tell. */
  progress: number | null;
  /** Why the engine failed, when `state` is `error`. */
  error: string | null;
  /** `error` likewise (null: an exception's own words). */
  error_text?: IServerText | null;
  context_length: number | null;
  /** Unix time (s) when the engine entered `state`. */
  since: number;
  /**
   * The loop's settings on the server (`c.OCI.*`): the defaults of every
   * surface, the sidebar's included. Older servers lack it.
   */
  loop?: {
    read_results: boolean;
    max_attempts: number;
    max_steps: number;
    max_replies: number;
  };
}

/** The server's loop settings in the sidebar's terms; null when not reported. */
export function serverLoop(status: IEngineStatus | null): ILoopSettings | null {
  const loop = status?.loop;
  if (
    !loop ||
    typeof loop.read_results !== 'boolean' ||
    typeof loop.max_attempts !== 'number' ||
    typeof loop.max_steps !== 'number' ||
    typeof loop.max_replies !== 'number'
  ) {
    return null;
  }
  return {
    maxAttempts: loop.max_attempts,
    maxSteps: loop.max_steps,
    maxReplies: loop.max_replies,
    readResults: loop.read_results
  };
}

/**
 * The server extension could not be asked: network failure, an HTTP error
 * (404 when the extension is not enabled) or a body that is not a status.
 */
export class ServerExtensionError extends Error {
  constructor(
    message: string,
    readonly httpStatus: number | null = null,
    /** `message` as a sentence of the server's, when it sent one. */
    readonly said: IServerText | null = null
  ) {
    super(message);
    this.name = 'ServerExtensionError';
  }
}

async function request(
  url: string,
  init: RequestInit,
  settings: ServerConnection.ISettings
): Promise<Response> {
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (reason) {
    throw new ServerExtensionError(
      `network error: ${(reason as Error).message ?? reason}`
    );
  }
  if (!response.ok) {
    throw new ServerExtensionError(
      `HTTP ${response.status} ${response.statusText}`.trim(),
      response.status
    );
  }
  return response;
}

/**
 * Ask the server extension for the state of its model.
 */
export async function fetchEngineStatus(
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IEngineStatus> {
  const url = URLExt.join(settings.baseUrl, 'oci', 'status');
  const response = await request(url, {}, settings);
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    throw new ServerExtensionError('the response is not JSON');
  }
  if (!isEngineStatus(body)) {
    throw new ServerExtensionError('the response is not an engine status');
  }
  return body;
}

/**
 * Ask the server extension to load its model again (after it died or failed
 * to load). The server answers at once with the status (`loading`); the load
 * runs in the background. Throws a ServerExtensionError with the server's
 * reason when it refuses (409 while the model loads, 403 without permission).
 */
export async function restartEngine(
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IEngineStatus> {
  const url = URLExt.join(settings.baseUrl, 'oci', 'restart');
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(
      url,
      { method: 'POST' },
      settings
    );
  } catch (reason) {
    throw new ServerExtensionError(
      `network error: ${(reason as Error).message ?? reason}`
    );
  }
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's error page, or a 403 from Jupyter): the HTTP status says it.
  }
  if (!response.ok) {
    const refusal = body as {
      error?: { message?: unknown };
      text?: IServerText;
    } | null;
    const message = refusal?.error?.message;
    if (typeof message === 'string') {
      throw new ServerExtensionError(
        message,
        response.status,
        typeof refusal?.text === 'object' ? refusal.text : null
      );
    }
    throw new ServerExtensionError(
      `HTTP ${response.status} ${response.statusText}`.trim(),
      response.status
    );
  }
  if (!isEngineStatus(body)) {
    throw new ServerExtensionError('the response is not an engine status');
  }
  engineRestartSignal.emit(body);
  return body;
}

const engineRestartSignal = new Signal<object, IEngineStatus>({});

/**
 * Emitted with the server's answer whenever `restartEngine` succeeded, so that
 * every status model shows the restart at once and follows the new load.
 */
export const engineRestarted: ISignal<object, IEngineStatus> =
  engineRestartSignal;

function isEngineStatus(value: unknown): value is IEngineStatus {
  const candidate = value as Partial<IEngineStatus> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.state === 'string' &&
    typeof candidate.engine === 'string'
  );
}

function historyUrl(
  notebook: string,
  settings: ServerConnection.ISettings
): string {
  return (
    URLExt.join(settings.baseUrl, 'oci', 'chat', 'history') +
    URLExt.objectToQueryString({ notebook })
  );
}

/**
 * The chat of one notebook as the server keeps it (survives page reloads).
 */
export async function fetchChatHistory(
  notebook: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IChatHistory> {
  const response = await request(historyUrl(notebook, settings), {}, settings);
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    throw new ServerExtensionError('the response is not JSON');
  }
  const history = body as Partial<IChatHistory> | null;
  if (
    typeof history !== 'object' ||
    history === null ||
    !Array.isArray(history.requests)
  ) {
    throw new ServerExtensionError('the response is not a chat history');
  }
  return { notebook, requests: history.requests };
}

/**
 * Forget a notebook's chat: what the panel shows and what the model remembers.
 */
export async function clearChatHistory(
  notebook: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<void> {
  await request(historyUrl(notebook, settings), { method: 'DELETE' }, settings);
}

/**
 * The chat websocket's URL, authenticated the way @jupyterlab/services
 * authenticates kernel websockets: browsers cannot set headers on a
 * websocket, so the token goes in the query when the page has one and
 * `appendToken` allows it; otherwise the cookie (sent by the browser with
 * the upgrade request) does.
 */
export function chatSocketUrl(settings: ServerConnection.ISettings): string {
  const url = URLExt.join(settings.wsUrl, 'oci', 'chat');
  if (settings.appendToken && settings.token) {
    return `${url}?token=${encodeURIComponent(settings.token)}`;
  }
  return url;
}
