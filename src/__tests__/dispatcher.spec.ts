/**
 * The dispatcher of the server's messages, with a fake connection: which
 * request each message reaches and what it hands on.
 */
import { IDispatchHandlers, MessageDispatcher } from '../chat/dispatcher';
import { DoneStatus, IExecuteMessage } from '../chat/protocol';
import { ChatRequest } from '../chat/request';
import type { ChatText } from '../chat/texts';
import { FakeConnection } from './fakes';
import { chatRequest } from './setups';

class RecordingHandlers implements IDispatchHandlers {
  executed: [string, IExecuteMessage][] = [];
  finished: [string, DoneStatus, string | ChatText, boolean | undefined][] = [];
  changes = 0;
  soon = 0;
  constructor(private _dispatcher: () => MessageDispatcher) {}
  execute(request: ChatRequest, message: IExecuteMessage): void {
    this.executed.push([request.id, message]);
  }
  finish(
    request: ChatRequest,
    status: DoneStatus,
    message: string | ChatText,
    failed?: boolean
  ): void {
    this.finished.push([request.id, status, message, failed]);
    this._dispatcher().inFlight.delete(request.id);
  }
  changed(soon?: boolean): void {
    if (soon) {
      this.soon++;
    } else {
      this.changes++;
    }
  }
}

function setUp() {
  const connection = new FakeConnection();
  // eslint-disable-next-line prefer-const
  let dispatcher: MessageDispatcher;
  const handlers = new RecordingHandlers(() => dispatcher);
  dispatcher = new MessageDispatcher(connection, handlers);
  const request = chatRequest();
  dispatcher.inFlight.set('r1', request);
  return { connection, dispatcher, handlers, request };
}

describe('MessageDispatcher', () => {
  it('streams tokens to their request, redrawing at most once a frame', () => {
    const { connection, handlers, request } = setUp();
    connection.receive({ type: 'token', id: 'r1', turn: 1, text: 'a' });
    connection.receive({ type: 'token', id: 'r1', turn: 1, text: 'b' });
    expect(request.view.turns[0].reply).toBe('ab');
    expect(handlers.soon).toBe(2);
    expect(handlers.changes).toBe(0);
  });

  it('applies turn states to their request', () => {
    const { connection, handlers, request } = setUp();
    connection.receive({
      type: 'turn',
      id: 'r1',
      turn: 1,
      state: 'error',
      ename: 'NameError',
      evalue: "name 'x' is not defined",
      step: 1,
      attempt: 1
    });
    expect(request.view.turns[0]).toMatchObject({
      state: 'error',
      ename: 'NameError',
      step: 1,
      attempt: 1
    });
    expect(handlers.changes).toBe(1);
  });

  it('hands an execute to the executor', () => {
    const { connection, handlers } = setUp();
    const execute: IExecuteMessage = {
      type: 'execute',
      id: 'r1',
      turn: 1,
      code: 'print(1)',
      target: 'new',
      step: 1,
      attempt: 1,
      auto_execute: true,
      time_limit: 60
    };
    connection.receive(execute);
    expect(handlers.executed).toEqual([['r1', execute]]);
  });

  it('ends a request with done, or with the browser failure if it had one', () => {
    const { connection, handlers, dispatcher, request } = setUp();
    request.failure = { code: 'kernel', problem: 'no-kernel-to-ask' };
    connection.receive({
      type: 'done',
      id: 'r1',
      status: 'cancelled',
      turns: 1,
      message: 'Cancelled.',
      final_code: null
    });
    expect(handlers.finished).toEqual([
      ['r1', 'cancelled', { code: 'kernel', problem: 'no-kernel-to-ask' }, true]
    ]);
    expect(dispatcher.inFlight.size).toBe(0);
  });

  it("hands on the server's code for the view to translate", () => {
    const { connection, handlers } = setUp();
    connection.receive({
      type: 'done',
      id: 'r1',
      status: 'success',
      turns: 2,
      message:
        'Stopped at the step budget (2 steps); the last step ran without errors.',
      code: 'step_budget',
      params: { steps: 2 },
      final_code: null
    });
    expect(handlers.finished).toEqual([
      [
        'r1',
        'success',
        { code: 'server', server: 'step_budget', params: { steps: 2 } },
        false
      ]
    ]);
  });

  it('hands on the English of a done without a code it knows', () => {
    for (const code of [undefined, 'newer_code']) {
      const { connection, handlers } = setUp();
      connection.receive({
        type: 'done',
        id: 'r1',
        status: 'failed',
        turns: 1,
        message: 'Gave up.',
        code,
        final_code: null
      });
      expect(handlers.finished).toEqual([['r1', 'failed', 'Gave up.', false]]);
    }
  });

  it('ends a refused ask with the code of its error', () => {
    const { connection, handlers } = setUp();
    connection.receive({
      type: 'error',
      id: 'r1',
      message: "request 'r1' is already running",
      code: 'already_running',
      params: { id: "'r1'" }
    });
    expect(handlers.finished).toEqual([
      [
        'r1',
        'error',
        { code: 'server', server: 'already_running', params: { id: "'r1'" } },
        undefined
      ]
    ]);
  });

  it('ends a request whose ask was refused; later errors are notices', () => {
    const first = setUp();
    first.connection.receive({ type: 'error', id: 'r1', message: 'too big' });
    expect(first.handlers.finished).toEqual([
      ['r1', 'error', 'too big', undefined]
    ]);

    const later = setUp();
    later.connection.receive({ type: 'token', id: 'r1', turn: 1, text: 'a' });
    later.connection.receive({ type: 'error', id: 'r1', message: 'bad' });
    expect(later.handlers.finished).toEqual([]);
    expect(later.dispatcher.notice).toEqual({
      code: 'server-reported',
      detail: 'bad'
    });
  });

  it('drops messages of requests not in flight', () => {
    const { connection, handlers, request } = setUp();
    connection.receive({ type: 'token', id: 'r2', turn: 1, text: 'a' });
    connection.receive({
      type: 'done',
      id: 'r2',
      status: 'success',
      turns: 1,
      message: '',
      final_code: null
    });
    expect(request.view.turns).toEqual([]);
    expect(handlers.finished).toEqual([]);
    expect(handlers.soon + handlers.changes).toBe(0);
  });

  it('tracks the notebooks other connections work in', () => {
    const { connection, dispatcher } = setUp();
    const running = { id: 'x', mode: 'fix', prompt: '' };
    connection.receive({ type: 'notebook', notebook: 'b.ipynb', running });
    expect(dispatcher.runningElsewhere('b.ipynb')).toEqual(running);
    expect(dispatcher.runningElsewhere('a.ipynb')).toBeNull();
    connection.receive({
      type: 'notebook',
      notebook: 'b.ipynb',
      running: null
    });
    expect(dispatcher.runningElsewhere('b.ipynb')).toBeNull();
  });

  it('keeps refused prefills quiet and shows other server errors', () => {
    const { connection, dispatcher } = setUp();
    const debug = jest.spyOn(console, 'debug').mockImplementation(() => {});
    connection.receive({ type: 'error', message: 'invalid prefill: x' });
    expect(dispatcher.notice).toBeNull();
    expect(debug).toHaveBeenCalled();
    debug.mockRestore();
    connection.receive({ type: 'error', message: 'too many requests' });
    expect(dispatcher.notice).toEqual({
      code: 'server-reported',
      detail: 'too many requests'
    });
    connection.receive({
      type: 'error',
      message: 'messages must be JSON objects',
      code: 'not_json',
      params: {}
    });
    expect(dispatcher.notice).toEqual({
      code: 'server-reported',
      detail: 'messages must be JSON objects',
      said: { code: 'server', server: 'not_json', params: {} }
    });
  });

  it('on a lost connection ends every request and forgets the others', () => {
    const { connection, dispatcher, handlers } = setUp();
    connection.receive({
      type: 'notebook',
      notebook: 'b.ipynb',
      running: { id: 'x', mode: 'chat', prompt: '' }
    });
    connection.setState('closed');
    expect(handlers.finished).toEqual([
      ['r1', 'error', { code: 'connection-lost' }, undefined]
    ]);
    expect(dispatcher.runningElsewhere('b.ipynb')).toBeNull();
  });

  it('clears the notice when the connection opens again', () => {
    const { connection, dispatcher } = setUp();
    connection.receive({ type: 'error', message: 'restarting' });
    connection.setState('connecting');
    expect(dispatcher.notice).not.toBeNull();
    connection.setState('open');
    expect(dispatcher.notice).toBeNull();
  });

  it('stops listening once disposed', () => {
    const { connection, dispatcher, request } = setUp();
    dispatcher.dispose();
    connection.receive({ type: 'token', id: 'r1', turn: 1, text: 'a' });
    expect(request.view.turns).toEqual([]);
  });
});
