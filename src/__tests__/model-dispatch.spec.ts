/**
 * The chat model's dispatch of the server's messages, driven through a fake
 * connection: what each message does to the request the panel shows.
 */
import { fakePanel } from './fakes';
import { fakeChat, startedRequest } from './setups';

describe('ChatModel: the messages of one request', () => {
  it('sends an ask with the notebook, its context and the settings', async () => {
    const { model, ask } = await startedRequest();
    expect(ask).toMatchObject({
      type: 'ask',
      prompt: 'sum the column',
      notebook: 'analysis.ipynb',
      mode: 'chat',
      auto_execute: true,
      time_limit: 60,
      refine_cell: false
    });
    // The user set none of the loop's settings: the server's apply.
    for (const key of [
      'max_attempts',
      'max_turns',
      'max_steps',
      'max_replies',
      'read_results'
    ]) {
      expect(ask).not.toHaveProperty(key);
    }
    expect(ask.context.cells.map(c => c.source)).toEqual(['x = 41']);
    expect(model.running?.id).toBe(ask.id);
    expect(model.running?.status).toBe('running');
  });

  it('refuses a second ask while one runs, and an empty one', async () => {
    const { model, connection } = await startedRequest();
    expect(model.ask('again')).toBe(false);
    expect(connection.sentOf('ask')).toHaveLength(1);
  });

  it('streams tokens into the turn', async () => {
    const { connection, model, id } = await startedRequest();
    connection.receive({ type: 'token', id, turn: 1, text: 'The sum ' });
    connection.receive({ type: 'token', id, turn: 1, text: 'is 42.' });
    const turn = model.running!.turns[0];
    expect(turn.reply).toBe('The sum is 42.');
    expect(turn.state).toBe('generating');
    expect(turn.complete).toBe(false);
  });

  it('takes budgets, step and the model queue from a generating turn', async () => {
    const { connection, model, id } = await startedRequest();
    connection.receive({
      type: 'turn',
      id,
      turn: 1,
      state: 'generating',
      step: 2,
      attempt: 1,
      budgets: { attempts: 2, steps: 5, replies: 9 },
      waiting: 1
    });
    const view = model.running!;
    expect(view.budgets).toEqual({ attempts: 2, steps: 5, replies: 9 });
    expect(view.step).toBe(2);
    expect(view.attempt).toBe(1);
    expect(view.turns[0].modelAhead).toBe(1);
  });

  it('shows how a turn ended', async () => {
    const { connection, model, id } = await startedRequest();
    connection.receive({
      type: 'turn',
      id,
      turn: 1,
      state: 'skipped',
      step: 1,
      attempt: 2,
      evalue: 'not run: same as before'
    });
    const turn = model.running!.turns[0];
    expect(turn).toMatchObject({
      state: 'skipped',
      complete: true,
      step: 1,
      attempt: 2,
      evalue: 'not run: same as before'
    });
  });

  it('ends the request with done: answer, steps, budget', async () => {
    const { connection, model, id } = await startedRequest();
    connection.receive({ type: 'token', id, turn: 1, text: 'It is 42.' });
    connection.receive({
      type: 'done',
      id,
      status: 'success',
      turns: 1,
      message: 'Answered.',
      final_code: null,
      answer: 'It is 42.',
      steps: 1,
      budget: null
    });
    expect(model.running).toBeNull();
    const view = model.thread!.requests[0];
    expect(view).toMatchObject({
      status: 'success',
      message: 'Answered.',
      answer: 'It is 42.',
      steps: 1
    });
    // A reply without code is the answer.
    expect(view.turns[0].state).toBe('reply');
  });

  it('marks code a budget kept from running as not run, naming the budget', async () => {
    const { connection, model, id } = await startedRequest();
    connection.receive({
      type: 'token',
      id,
      turn: 3,
      text: '```python\nprint(2)\n```'
    });
    connection.receive({
      type: 'done',
      id,
      status: 'failed',
      turns: 3,
      message: 'Out of steps.',
      final_code: null,
      budget: 'steps'
    });
    const view = model.thread!.requests[0];
    expect(view.budget).toBe('steps');
    expect(view.turns[0].state).toBe('skipped');
    expect(view.turns[0].evalue).toBe('not run: over the step budget');
  });

  it('ends a request the server could not accept (an error before any turn)', async () => {
    const { connection, model, id } = await startedRequest();
    connection.receive({ type: 'error', id, message: 'prompt too long' });
    const view = model.thread!.requests[0];
    expect(view.status).toBe('error');
    expect(view.message).toBe('prompt too long');
    expect(model.notice).toBeNull();
  });

  it('keeps a request going after an error of one of its later messages', async () => {
    const { connection, model, id } = await startedRequest();
    connection.receive({ type: 'token', id, turn: 1, text: 'x' });
    connection.receive({ type: 'error', id, message: 'bad outcome' });
    expect(model.running?.id).toBe(id);
    expect(model.notice).toEqual({
      code: 'server-reported',
      detail: 'bad outcome'
    });
  });

  it('ignores messages of requests it does not know', async () => {
    const { connection, model } = await startedRequest();
    connection.receive({ type: 'token', id: 'other', turn: 1, text: 'x' });
    connection.receive({
      type: 'done',
      id: 'other',
      status: 'success',
      turns: 1,
      message: '',
      final_code: null
    });
    expect(model.running?.turns).toEqual([]);
  });
});

describe('ChatModel: messages about the server', () => {
  it('shows an error without id as a notice, but not a refused prefill', async () => {
    const { connection, model } = await startedRequest();
    connection.receive({ type: 'error', message: 'prefill refused: busy' });
    expect(model.notice).toBeNull();
    connection.receive({ type: 'error', message: 'message too large' });
    expect(model.notice).toEqual({
      code: 'server-reported',
      detail: 'message too large'
    });
  });

  it('says which notebook runs a request elsewhere', async () => {
    const { connection, model } = fakeChat();
    model.notebook = fakePanel('a.ipynb').panel;
    const running = { id: 'r9', mode: 'chat', prompt: 'plot it' };
    connection.receive({ type: 'notebook', notebook: 'b.ipynb', running });
    expect(model.runningElsewhere).toBeNull();
    connection.receive({ type: 'notebook', notebook: 'a.ipynb', running });
    expect(model.runningElsewhere).toEqual(running);
    connection.receive({
      type: 'notebook',
      notebook: 'a.ipynb',
      running: null
    });
    expect(model.runningElsewhere).toBeNull();
  });

  it('ends the running request when the connection is lost', async () => {
    const { connection, model } = await startedRequest();
    connection.receive({
      type: 'notebook',
      notebook: 'analysis.ipynb',
      running: { id: 'r9', mode: 'chat', prompt: 'p' }
    });
    connection.setState('closed');
    const view = model.thread!.requests[0];
    expect(view.status).toBe('error');
    expect(view.message).toBe(
      'The connection to the server was lost; the request ended.'
    );
    // The view translates the code; the history keeps the English.
    expect(view.messageText).toEqual({ code: 'connection-lost' });
    // The server tells a new connection what runs elsewhere.
    expect(model.runningElsewhere).toBeNull();
    expect(model.ask('again')).toBe(false);
    connection.setState('open');
    expect(model.ask('again')).toBe(true);
  });
});
