/**
 * The chat's threads: one per notebook path, holding the requests the panel
 * shows. A thread's past comes from the server (`GET /oci/chat/history`),
 * which keeps one chat per notebook and moves it when the notebook is
 * renamed; requests in flight are newer than any history and win.
 */
import type { IChatHistory, IHistoryRequest } from './protocol';
import { serverText } from './texts';
import type { IRequestView, ITurnView, IThread } from './types';

/** Where a notebook's past requests are kept (the server's REST API). */
export interface IHistoryStore {
  fetch(path: string): Promise<IChatHistory>;
  clear(path: string): Promise<void>;
}

export class ChatThreads {
  /**
   * @param store - the server's histories.
   * @param changed - called whenever a thread changes (the panel redraws).
   */
  constructor(
    private readonly _store: IHistoryStore,
    private readonly _changed: () => void
  ) {}

  /** A notebook's thread, created empty on first use. */
  get(path: string): IThread {
    let thread = this._threads.get(path);
    if (!thread) {
      thread = {
        path,
        requests: [],
        history: 'idle',
        historyError: '',
        newThread: false
      };
      this._threads.set(path, thread);
    }
    return thread;
  }

  /** Whether a request of this thread is in flight. */
  static isRunning(thread: IThread): boolean {
    return thread.requests.some(r => r.status === 'running');
  }

  /**
   * A notebook was renamed: its thread goes with it (the server moves its
   * copy too), requests in flight included. When the new path already has
   * a thread, that one is looked up anew instead.
   */
  rename(oldPath: string, newPath: string): void {
    const thread = this._threads.get(oldPath);
    if (thread && !this._threads.has(newPath)) {
      this._threads.delete(oldPath);
      thread.path = newPath;
      this._threads.set(newPath, thread);
    } else {
      void this.load(newPath);
    }
    this._changed();
  }

  /** Fetch a notebook's past requests (on switching notebooks and on load). */
  async load(path: string): Promise<void> {
    const thread = this.get(path);
    // Requests in flight are the newest truth; a reload would race them.
    if (thread.history === 'loading' || ChatThreads.isRunning(thread)) {
      return;
    }
    thread.history = 'loading';
    this._changed();
    try {
      const history = await this._store.fetch(path);
      if (!ChatThreads.isRunning(thread)) {
        thread.requests = history.requests.map(fromHistory);
      }
      thread.history = 'loaded';
      thread.historyError = '';
    } catch (reason) {
      thread.history = 'failed';
      thread.historyError = (reason as Error).message ?? String(reason);
    }
    this._changed();
  }

  /** Forget a notebook's chat, on the server and here. */
  async clear(path: string): Promise<void> {
    const thread = this.get(path);
    await this._store.clear(path);
    thread.requests = [];
    thread.newThread = false;
    this._changed();
  }

  private _threads = new Map<string, IThread>();
}

/** A past request as the server kept it. */
export function fromHistory(request: IHistoryRequest): IRequestView {
  const stopped = request.status === 'cancelled' || request.status === 'error';
  // Older records have no steps: their code was all for one cell.
  const attempts = new Map<number, number>();
  const turns: ITurnView[] = request.turns.map(turn => {
    const ran = turn.code !== null;
    const step = turn.step ?? (ran ? 1 : 0);
    const attempt = turn.attempt ?? (ran ? (attempts.get(step) ?? 0) + 1 : 0);
    if (ran) {
      attempts.set(step, attempt);
    }
    return {
      turn: turn.turn,
      reply: turn.reply,
      complete: true,
      state: turn.outcome
        ? turn.outcome.status
        : turn.code === null
          ? 'reply'
          : stopped
            ? 'cancelled'
            : 'skipped',
      ename: turn.outcome?.ename ?? '',
      evalue: turn.outcome?.evalue ?? turn.skipped ?? '',
      // Why it was not run, by the code the record kept; older records: the English.
      evalueText:
        !turn.outcome && turn.skipped
          ? (serverText({
              message: turn.skipped,
              code: turn.skipped_code,
              params: turn.skipped_params
            }) ?? undefined)
          : undefined,
      seconds: turn.outcome ? turn.outcome.seconds : null,
      step,
      attempt
    };
  });
  const steps = new Set(turns.filter(t => t.seconds !== null).map(t => t.step))
    .size;
  const last = turns[turns.length - 1];
  return {
    id: request.id,
    mode:
      request.mode === 'fix' || request.mode === 'edit' ? request.mode : 'chat',
    prompt: request.prompt,
    started: request.started * 1000,
    status: request.status === 'running' ? 'cancelled' : request.status,
    message: request.message,
    // The server's code, kept with the record; older records: the English.
    messageText: serverText(request),
    answer:
      request.answer ??
      (last && last.state === 'reply' && !stopped ? last.reply : ''),
    steps: request.steps ?? steps,
    budget: request.budget ?? null,
    budgets: { attempts: 0, steps: 0, replies: 0 },
    step: 0,
    attempt: 0,
    refines: null,
    autoExecute: true,
    stopping: false,
    turns
  };
}
