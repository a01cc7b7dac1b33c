/**
 * The one websocket to `/oci/chat`, kept open: it reconnects with backoff
 * when the server goes away (a restart, a network blip) and says what it is
 * doing, so the panel can show it.
 */
import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { chatSocketUrl } from '../api';
import { ClientMessage, parseServerMessage, ServerMessage } from './protocol';

export type ConnectionState = 'connecting' | 'open' | 'closed';

/** First retry after this long; each failure doubles it up to the max. */
const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 30 * 1000;

/**
 * What the chat needs of its connection: the messages, the state, a way to
 * send. `ChatConnection` is the websocket; tests hand in a fake.
 */
export interface IChatConnection extends IDisposable {
  readonly messageReceived: ISignal<IChatConnection, ServerMessage>;
  readonly stateChanged: ISignal<IChatConnection, ConnectionState>;
  readonly state: ConnectionState;
  /** When closed: the time (ms since epoch) of the next attempt. */
  readonly retryAt: number | null;
  /** False when the socket is not open (nothing is queued). */
  send(message: ClientMessage): boolean;
  /** Retry now instead of waiting for the backoff. */
  reconnect(): void;
}

export class ChatConnection implements IChatConnection {
  constructor(options: ChatConnection.IOptions = {}) {
    this._settings = options.serverSettings ?? ServerConnection.makeSettings();
    this._connect();
  }

  /** Every message the server sends, parsed; unknown types are dropped. */
  get messageReceived(): ISignal<this, ServerMessage> {
    return this._messageReceived;
  }

  /** The socket opened, closed or started connecting. */
  get stateChanged(): ISignal<this, ConnectionState> {
    return this._stateChanged;
  }

  get state(): ConnectionState {
    return this._state;
  }

  /** When closed: the time (ms since epoch) of the next attempt. */
  get retryAt(): number | null {
    return this._retryAt;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /**
   * Send a message; false when the socket is not open (the caller decides
   * what that means for its request: nothing is queued, since a request
   * queued across a reconnect would reach a server session that knows
   * nothing of it).
   */
  send(message: ClientMessage): boolean {
    if (this._socket?.readyState !== WebSocket.OPEN) {
      return false;
    }
    this._socket.send(JSON.stringify(message));
    return true;
  }

  /** Retry now instead of waiting for the backoff. */
  reconnect(): void {
    if (this._isDisposed || this._state !== 'closed') {
      return;
    }
    this._clearTimer();
    this._connect();
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._clearTimer();
    const socket = this._socket;
    this._socket = null;
    if (socket) {
      socket.onopen = socket.onclose = socket.onmessage = null;
      socket.close();
    }
    Signal.clearData(this);
  }

  private _connect(): void {
    this._setState('connecting');
    const socket = new this._settings.WebSocket(chatSocketUrl(this._settings));
    this._socket = socket;
    socket.onopen = () => {
      this._delay = FIRST_RETRY_MS;
      this._setState('open');
    };
    socket.onmessage = event => {
      const message = parseServerMessage(event.data);
      if (message) {
        this._messageReceived.emit(message);
      }
    };
    // An error is always followed by a close: retry from there only.
    socket.onclose = () => {
      if (this._socket !== socket || this._isDisposed) {
        return;
      }
      this._socket = null;
      this._scheduleRetry();
    };
  }

  private _scheduleRetry(): void {
    // Jitter spreads the reconnects of many tabs after a server restart.
    const delay = this._delay * (0.8 + 0.4 * Math.random());
    this._delay = Math.min(MAX_RETRY_MS, this._delay * 2);
    this._retryAt = Date.now() + delay;
    this._timer = window.setTimeout(() => {
      this._timer = null;
      this._connect();
    }, delay);
    this._setState('closed');
  }

  private _clearTimer(): void {
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
      this._timer = null;
    }
  }

  private _setState(state: ConnectionState): void {
    if (state !== 'closed') {
      this._retryAt = null;
    }
    this._state = state;
    this._stateChanged.emit(state);
  }

  private _delay = FIRST_RETRY_MS;
  private _isDisposed = false;
  private _messageReceived = new Signal<this, ServerMessage>(this);
  private _retryAt: number | null = null;
  private _settings: ServerConnection.ISettings;
  private _socket: WebSocket | null = null;
  private _state: ConnectionState = 'connecting';
  private _stateChanged = new Signal<this, ConnectionState>(this);
  private _timer: number | null = null;
}

export namespace ChatConnection {
  export interface IOptions {
    serverSettings?: ServerConnection.ISettings;
  }
}
