/**
 * The dispatcher of the server's websocket messages: each goes to the
 * request in flight it names (or says something about the server or about
 * the notebooks other connections work in), and a lost connection ends the
 * requests in flight. The server's words go on as codes the view translates
 * (`serverText`), or as its English when it sent no code this client knows.
 */
import type { IChatConnection } from './connection';
import type {
  DoneStatus,
  IDoneMessage,
  IErrorMessage,
  IExecuteMessage,
  INotebookMessage,
  ServerMessage
} from './protocol';
import type { ChatRequest } from './request';
import { ChatText, serverText } from './texts';
import type { IBackgroundRequest, IThread } from './types';

/** A request another connection runs in a notebook. */
export type RunningElsewhere = NonNullable<INotebookMessage['running']>;

/** What the dispatcher hands on: the side effects live in the chat model. */
export interface IDispatchHandlers {
  /** Run an `execute` of a request in flight. */
  execute(request: ChatRequest, message: IExecuteMessage): void;
  /** End a request in flight. */
  finish(
    request: ChatRequest,
    status: DoneStatus,
    message: string | ChatText,
    failed?: boolean,
    done?: IDoneMessage
  ): void;
  /** The view changed; `soon`: coalesce (tokens stream in bursts). */
  changed(soon?: boolean): void;
}

export class MessageDispatcher {
  constructor(connection: IChatConnection, handlers: IDispatchHandlers) {
    this._connection = connection;
    this._handlers = handlers;
    connection.messageReceived.connect(this._onMessage, this);
    connection.stateChanged.connect(this._onConnection, this);
  }

  /** The requests of this connection in flight, by id. */
  readonly inFlight = new Map<string, ChatRequest>();

  /** A message about the server or the connection, not about one request. */
  notice: ChatText | null = null;

  /** The request another connection runs in this notebook, if any. */
  runningElsewhere(path: string): RunningElsewhere | null {
    return this._elsewhere.get(path) ?? null;
  }

  /** The requests in flight in notebooks other than `current`'s, oldest first. */
  background(current: IThread | null): IBackgroundRequest[] {
    const requests: IBackgroundRequest[] = [];
    for (const request of this.inFlight.values()) {
      if (request.thread === current || request.isFinished) {
        continue;
      }
      const { id, prompt, mode, stopping } = request.view;
      requests.push({
        id,
        path: request.thread.path,
        prompt,
        mode,
        stopping: !!stopping
      });
    }
    return requests;
  }

  /** The requests in flight that write, run or fix this cell. */
  owning(cellId: string): ChatRequest[] {
    return [...this.inFlight.values()].filter(request =>
      request.ownsCell(cellId)
    );
  }

  /** Whether a request of this notebook's thread is in flight. */
  busyWith(thread: IThread): boolean {
    for (const request of this.inFlight.values()) {
      if (request.thread === thread) {
        return true;
      }
    }
    return false;
  }

  dispose(): void {
    this._connection.messageReceived.disconnect(this._onMessage, this);
    this._connection.stateChanged.disconnect(this._onConnection, this);
    this.inFlight.clear();
  }

  /** Route one server message. */
  dispatch(message: ServerMessage): void {
    const handlers = this._handlers;
    if (message.type === 'notebook') {
      if (message.running) {
        this._elsewhere.set(message.notebook, message.running);
      } else {
        this._elsewhere.delete(message.notebook);
      }
      handlers.changed();
      return;
    }
    if (message.type === 'error' && !message.id) {
      if (/\bprefill\b/.test(message.message)) {
        // A prefill is a hint the server may refuse: not the user's concern.
        console.debug('oci: prefill refused:', message.message);
        return;
      }
      this.notice = reported(message);
      handlers.changed();
      return;
    }
    const request = this.inFlight.get(message.id ?? '');
    if (!request) {
      return; // a request that already ended here (stopped, connection lost)
    }
    switch (message.type) {
      case 'token':
        request.onToken(message);
        handlers.changed(true);
        break;
      case 'turn':
        request.onTurn(message);
        handlers.changed();
        break;
      case 'execute':
        handlers.execute(request, message);
        break;
      case 'done':
        handlers.finish(
          request,
          message.status,
          request.failure ?? serverText(message) ?? message.message,
          request.failure !== null,
          message
        );
        break;
      case 'error':
        // The server rejected a message of this request. An `ask` it could
        // not accept gets no `done`: end the request here.
        if (request.view.turns.length === 0) {
          handlers.finish(
            request,
            'error',
            serverText(message) ?? message.message
          );
        } else {
          this.notice = reported(message);
          handlers.changed();
        }
        break;
    }
  }

  private _onMessage(_: IChatConnection, message: ServerMessage): void {
    this.dispatch(message);
  }

  private _onConnection(connection: IChatConnection): void {
    if (connection.state === 'closed') {
      // The server tells a new connection what runs elsewhere.
      this._elsewhere.clear();
      // The server cancels a closed socket's requests: end them here too,
      // with the reason, rather than leave them spinning.
      for (const request of [...this.inFlight.values()]) {
        this._handlers.finish(request, 'error', { code: 'connection-lost' });
      }
    }
    if (connection.state === 'open') {
      this.notice = null;
    }
    this._handlers.changed();
  }

  private _connection: IChatConnection;
  private _handlers: IDispatchHandlers;
  private _elsewhere = new Map<string, RunningElsewhere>();
}

/** A server error as a notice: its code when known, its English anyway. */
function reported(message: IErrorMessage): ChatText {
  const said = serverText(message);
  return said
    ? { code: 'server-reported', detail: message.message, said }
    : { code: 'server-reported', detail: message.message };
}
