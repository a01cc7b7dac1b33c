/**
 * One request's state machine, without a notebook or a socket.
 */
import { IExecuteMessage } from '../chat/protocol';
import { ChatRequest, IChatRequestOptions } from '../chat/request';
import { DEFAULT_CHAT_SETTINGS } from '../chat/types';
import { chatRequest } from './setups';

/** Request r1, asked below the cell 'anchor'. */
function request(options: Partial<IChatRequestOptions> = {}): ChatRequest {
  return chatRequest({ prompt: 'sum it', anchorCellId: 'anchor', ...options });
}

function execute(
  turn: number,
  target: IExecuteMessage['target'],
  step?: number,
  attempt?: number
): IExecuteMessage {
  return {
    type: 'execute',
    id: 'r1',
    turn,
    code: `print(${turn})`,
    target,
    step,
    attempt,
    auto_execute: true,
    time_limit: 60
  };
}

describe('ChatRequest', () => {
  it('starts with the budgets asked for; a fix has one step', () => {
    expect(request().view.budgets).toEqual({
      attempts: 3,
      steps: 4,
      replies: 8
    });
    const fix = request({
      fix: { source: 'x', error: { ename: 'E', evalue: '', traceback: [] } }
    });
    expect(fix.view.mode).toBe('fix');
    expect(fix.view.budgets.steps).toBe(1);
    const noRead = request({
      settings: { ...DEFAULT_CHAT_SETTINGS, readResults: false }
    });
    expect(noRead.view.budgets.steps).toBe(1);
  });

  it('builds the ask: a fix sends the cell and no words of its own', () => {
    const context = { language: 'python', cells: [], variables: [] };
    const chat = request({ refine: true }).askMessage(
      context,
      DEFAULT_CHAT_SETTINGS
    );
    expect(chat).toMatchObject({ prompt: 'sum it', refine_cell: true });
    expect(chat).not.toHaveProperty('cell');
    const cell = {
      source: '1/0',
      error: { ename: 'ZeroDivisionError', evalue: '', traceback: [] }
    };
    const fix = request({
      fix: cell,
      confirm: () => Promise.resolve(true)
    }).askMessage(context, DEFAULT_CHAT_SETTINGS);
    expect(fix).toMatchObject({ prompt: '', mode: 'fix', cell, review: true });
  });

  it('protects the cell it refines: a rewrite expects its source', () => {
    const r = request({ cellId: 'c1', cellSource: 'x = 1' });
    expect(r.written.get('c1')).toBe('x = 1');
    expect(r.ownsCell('c1')).toBe(true);
    expect(r.ownsCell('c2')).toBe(false);
  });

  it('closes a reply that got no code run when the next turn starts', () => {
    const r = request();
    r.onToken({ type: 'token', id: 'r1', turn: 1, text: 'x = input()' });
    r.onToken({ type: 'token', id: 'r1', turn: 2, text: 'x = 3' });
    expect(r.view.turns.map(t => [t.turn, t.state, t.complete])).toEqual([
      [1, 'skipped', true],
      [2, 'generating', false]
    ]);
  });

  it('counts attempts itself for a server that sends no steps', () => {
    const r = request();
    expect(r.beginExecute(execute(1, 'new')).step).toBe(1);
    r.beginExecute(execute(2, 'replace'));
    expect(r.view.turns.map(t => [t.step, t.attempt])).toEqual([
      [1, 1],
      [1, 2]
    ]);
    expect(r.view.attempt).toBe(2);
  });

  it('waits for the user when auto-execute is off', () => {
    const r = request();
    const { turn } = r.beginExecute({
      ...execute(1, 'new', 1, 1),
      auto_execute: false
    });
    expect(turn.state).toBe('waiting');
  });

  describe('placement: where the code goes', () => {
    it('new: below the cell the user was in', () => {
      expect(request().placement('new', 1)).toEqual({
        replaceCellId: null,
        anchorCellId: 'anchor'
      });
    });

    it('replace in step 1: the cell refined, else below the anchor', () => {
      expect(request({ cellId: 'target' }).placement('replace', 1)).toEqual({
        replaceCellId: 'target',
        anchorCellId: 'anchor'
      });
      expect(request().placement('replace', 1)).toEqual({
        replaceCellId: null,
        anchorCellId: 'anchor'
      });
    });

    it('next: below the previous step cell; replace: the step own cell', () => {
      const r = request();
      r.placed(1, 'step1', 'a = 1');
      expect(r.placement('next', 2)).toEqual({
        replaceCellId: null,
        anchorCellId: 'step1'
      });
      r.placed(2, 'step2', 'b = 2');
      expect(r.placement('replace', 2)).toEqual({
        replaceCellId: 'step2',
        anchorCellId: 'step1'
      });
      // A step whose cell is not known yet goes below the latest before it.
      expect(r.placement('replace', 3)).toEqual({
        replaceCellId: null,
        anchorCellId: 'step2'
      });
      expect(r.cellId).toBe('step2');
      expect(r.written.get('step2')).toBe('b = 2');
      expect(r.ownsCell('step1')).toBe(true);
    });
  });

  describe('finish', () => {
    it('ends once: the first ending wins', async () => {
      const r = request();
      expect(r.finish('cancelled', 'Stopped.')).toBe(true);
      expect(r.finish('success', 'late')).toBe(false);
      expect(r.view.status).toBe('cancelled');
      await expect(r.finished.promise).resolves.toEqual({
        status: 'cancelled',
        answer: '',
        message: 'Stopped.',
        budget: null
      });
    });

    it('shows a failure of the browser as an error', () => {
      const r = request();
      r.finish('cancelled', 'The kernel is dead.', true);
      expect(r.view.status).toBe('error');
      expect(r.view.message).toBe('The kernel is dead.');
      expect(r.view.messageText).toBeNull();
    });

    it('keeps the browser’s own reason as a code, and its English', () => {
      const r = request();
      r.finish('cancelled', { code: 'kernel', problem: 'kernel-dead' }, true);
      expect(r.view.messageText).toEqual({
        code: 'kernel',
        problem: 'kernel-dead'
      });
      expect(r.view.message).toBe(
        'The kernel is dead. Restart it (Kernel › Restart Kernel…) and ask again.'
      );
    });

    it('cancels the turns still in progress when stopped', () => {
      const r = request();
      r.beginExecute(execute(1, 'new', 1, 1));
      r.finish('cancelled', 'Stopped.');
      expect(r.view.turns[0].state).toBe('cancelled');
    });

    it('abandons a wait for the user, but not a run', () => {
      const waiting = request();
      waiting.beginExecute({ ...execute(1, 'new', 1, 1), auto_execute: false });
      waiting.abort = new AbortController();
      const waitSignal = waiting.abort.signal;
      waiting.finish('success', 'done');
      expect(waitSignal.aborted).toBe(true);

      const running = request();
      running.beginExecute(execute(1, 'new', 1, 1));
      running.abort = new AbortController();
      running.finish('success', 'done');
      expect(running.abort.signal.aborted).toBe(false);
    });

    it('counts the steps that ran when the server does not say', () => {
      const r = request();
      const { turn } = r.beginExecute(execute(1, 'new', 1, 1));
      r.ran(turn, 'error', 0.5, { ename: 'NameError', evalue: 'x' });
      const second = r.beginExecute(execute(2, 'replace', 1, 2)).turn;
      r.ran(second, 'ok', 0.2);
      const third = r.beginExecute(execute(3, 'next', 2, 1)).turn;
      r.ran(third, 'ok', 0.1);
      r.finish('success', '');
      expect(r.view.steps).toBe(2);
      expect(r.view.turns[0]).toMatchObject({
        state: 'error',
        ename: 'NameError',
        seconds: 0.5
      });
    });
  });
});
