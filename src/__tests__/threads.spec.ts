/**
 * Per-notebook threads and their history on the server.
 */
import { IChatHistory, IHistoryRequest } from '../chat/protocol';
import { ChatThreads, fromHistory, IHistoryStore } from '../chat/threads';
import { IRequestView } from '../chat/types';

function past(id: string, extra: Partial<IHistoryRequest> = {}) {
  return {
    id,
    mode: 'chat',
    prompt: `prompt ${id}`,
    started: 1700000000,
    status: 'success',
    message: '',
    turns: [],
    ...extra
  } as IHistoryRequest;
}

class FakeStore implements IHistoryStore {
  histories = new Map<string, IHistoryRequest[]>();
  fetched: string[] = [];
  cleared: string[] = [];
  fail: Error | null = null;
  fetch(path: string): Promise<IChatHistory> {
    this.fetched.push(path);
    if (this.fail) {
      return Promise.reject(this.fail);
    }
    return Promise.resolve({
      notebook: path,
      requests: this.histories.get(path) ?? []
    });
  }
  clear(path: string): Promise<void> {
    this.cleared.push(path);
    this.histories.delete(path);
    return Promise.resolve();
  }
}

function running(id: string): IRequestView {
  return { ...fromHistory(past(id)), status: 'running' };
}

describe('ChatThreads', () => {
  let store: FakeStore;
  let changes: number;
  let threads: ChatThreads;
  beforeEach(() => {
    store = new FakeStore();
    changes = 0;
    threads = new ChatThreads(store, () => changes++);
  });

  it('keeps one thread per notebook', () => {
    const a = threads.get('a.ipynb');
    expect(threads.get('a.ipynb')).toBe(a);
    expect(threads.get('b.ipynb')).not.toBe(a);
    expect(a).toMatchObject({ path: 'a.ipynb', requests: [], history: 'idle' });
  });

  it('loads a notebook history', async () => {
    store.histories.set('a.ipynb', [past('r1'), past('r2')]);
    const loading = threads.load('a.ipynb');
    expect(threads.get('a.ipynb').history).toBe('loading');
    await loading;
    const thread = threads.get('a.ipynb');
    expect(thread.history).toBe('loaded');
    expect(thread.requests.map(r => r.id)).toEqual(['r1', 'r2']);
    expect(changes).toBeGreaterThanOrEqual(2);
  });

  it('says why a history could not be loaded', async () => {
    store.fail = new Error('HTTP 500');
    await threads.load('a.ipynb');
    expect(threads.get('a.ipynb')).toMatchObject({
      history: 'failed',
      historyError: 'HTTP 500'
    });
  });

  it('never replaces a thread with a request in flight', async () => {
    store.histories.set('a.ipynb', [past('old')]);
    threads.get('a.ipynb').requests.push(running('now'));
    await threads.load('a.ipynb');
    expect(store.fetched).toEqual([]);
    expect(threads.get('a.ipynb').requests.map(r => r.id)).toEqual(['now']);
  });

  it('keeps a request that started while the history loaded', async () => {
    store.histories.set('a.ipynb', [past('old')]);
    const loading = threads.load('a.ipynb');
    threads.get('a.ipynb').requests.push(running('now'));
    await loading;
    expect(threads.get('a.ipynb').requests.map(r => r.id)).toEqual(['now']);
  });

  it('moves a thread with its notebook on rename, requests in flight too', () => {
    const thread = threads.get('a.ipynb');
    thread.requests.push(running('now'));
    threads.rename('a.ipynb', 'b.ipynb');
    expect(threads.get('b.ipynb')).toBe(thread);
    expect(thread.path).toBe('b.ipynb');
    expect(threads.get('a.ipynb')).not.toBe(thread);
    expect(store.fetched).toEqual([]);
  });

  it('loads the new path anew when it already has a thread', async () => {
    threads.get('a.ipynb');
    const other = threads.get('b.ipynb');
    store.histories.set('b.ipynb', [past('r9')]);
    threads.rename('a.ipynb', 'b.ipynb');
    await Promise.resolve();
    expect(store.fetched).toEqual(['b.ipynb']);
    await threads.load('b.ipynb');
    expect(other.requests.map(r => r.id)).toEqual(['r9']);
  });

  it('clears a thread here and on the server', async () => {
    const thread = threads.get('a.ipynb');
    thread.requests.push(fromHistory(past('r1')));
    thread.newThread = true;
    await threads.clear('a.ipynb');
    expect(store.cleared).toEqual(['a.ipynb']);
    expect(thread.requests).toEqual([]);
    expect(thread.newThread).toBe(false);
  });
});

describe('fromHistory', () => {
  it('shows a past request as the panel does', () => {
    const view = fromHistory(
      past('r1', {
        turns: [
          {
            turn: 1,
            reply: 'try',
            code: '1/0',
            outcome: {
              status: 'error',
              output: '',
              ename: 'ZeroDivisionError',
              evalue: 'division by zero',
              seconds: 0.1
            },
            feedback: null
          },
          {
            turn: 2,
            reply: 'fixed',
            code: '1/1',
            outcome: {
              status: 'ok',
              output: '1.0',
              ename: '',
              evalue: '',
              seconds: 0.2
            },
            feedback: null
          },
          {
            turn: 3,
            reply: 'It is 1.',
            code: null,
            outcome: null,
            feedback: null
          }
        ]
      })
    );
    expect(view.started).toBe(1700000000 * 1000);
    // Older records have no steps: all code was for one cell.
    expect(view.turns.map(t => [t.state, t.step, t.attempt])).toEqual([
      ['error', 1, 1],
      ['ok', 1, 2],
      ['reply', 0, 0]
    ]);
    expect(view.steps).toBe(1);
    expect(view.answer).toBe('It is 1.');
  });

  it('shows a request the server still ran as cancelled, its code not run', () => {
    const view = fromHistory(
      past('r1', {
        status: 'running',
        turns: [
          { turn: 1, reply: 'x', code: 'x', outcome: null, feedback: null }
        ]
      })
    );
    expect(view.status).toBe('cancelled');
    const stopped = fromHistory(
      past('r2', {
        status: 'cancelled',
        turns: [
          { turn: 1, reply: 'x', code: 'x', outcome: null, feedback: null }
        ]
      })
    );
    expect(stopped.turns[0].state).toBe('cancelled');
    const skipped = fromHistory(
      past('r3', {
        turns: [
          {
            turn: 1,
            reply: 'x',
            code: 'input()',
            outcome: null,
            feedback: null,
            skipped: 'not run: calls input()'
          }
        ]
      })
    );
    expect(skipped.turns[0]).toMatchObject({
      state: 'skipped',
      evalue: 'not run: calls input()'
    });
  });
});
