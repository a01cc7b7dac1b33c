/**
 * One request's state machine: its view (what the panel shows) follows the
 * server's `token`, `turn` and `done` messages and the executor's runs, and
 * it remembers which cells it wrote so that each `execute` knows where its
 * code goes. No notebook, no socket: the dispatcher and the turn executor
 * call it.
 */
import { PromiseDelegate } from '@lumino/coreutils';

import type { NotebookPanel } from '@jupyterlab/notebook';

import type {
  DoneStatus,
  ExecuteTarget,
  IAskMessage,
  IDoneMessage,
  IEditCell,
  IExecuteMessage,
  IFixCell,
  INotebookContext,
  ITokenMessage,
  ITurnMessage,
  OutcomeStatus
} from './protocol';
import type {
  FixConfirm,
  IChatSettings,
  ILoopSettings,
  IRequestResult,
  IRequestView,
  IThread,
  ITurnView
} from './types';
import { loopSettings } from './types';
import { ChatText, englishText, serverText } from './texts';
import { isNotebookTrusted } from '../trust';

export interface IChatRequestOptions {
  id: string;
  thread: IThread;
  panel: NotebookPanel;
  /** What the panel shows as the user's message. */
  prompt: string;
  /** The label of the cell this request refines or fixes, if any. */
  refines: string | null;
  /** The cell the user was in when asking: step 1's new cell goes below it. */
  anchorCellId: string | null;
  /** The cell it refines or fixes (step 1 rewrites it), or null. */
  cellId: string | null;
  /** That cell's source when the request started (what a rewrite expects). */
  cellSource: string | null;
  /** A fix: the failing cell, sent with the ask in `fix` mode. */
  fix: IFixCell | null;
  /** An edit: the cell to change, sent with the ask in `edit` mode. */
  edit?: IEditCell | null;
  /** Asked before each rewrite of the cell; false cancels the request. */
  confirm: FixConfirm | null;
  /** Whether the ask rewrites the previous request's cell. */
  refine: boolean;
  /** What the user set; the loop's settings they did not set are not sent. */
  settings: IChatSettings;
  /** The server's loop settings (`GET /oci/status`), null until known. */
  serverLoop: ILoopSettings | null;
}

/**
 * The loop's settings an ask carries: only those the user set. The others
 * are left to the server, whose `c.OCI.*` are the defaults of every surface.
 */
function askedLoop(
  settings: Partial<ILoopSettings>
): Pick<
  IAskMessage,
  'max_attempts' | 'max_steps' | 'max_replies' | 'read_results'
> {
  const asked: ReturnType<typeof askedLoop> = {};
  if (settings.maxAttempts !== undefined) {
    asked.max_attempts = settings.maxAttempts;
  }
  if (settings.maxSteps !== undefined) {
    asked.max_steps = settings.maxSteps;
  }
  if (settings.maxReplies !== undefined) {
    asked.max_replies = settings.maxReplies;
  }
  if (settings.readResults !== undefined) {
    asked.read_results = settings.readResults;
  }
  return asked;
}

export class ChatRequest {
  constructor(options: IChatRequestOptions) {
    const { settings } = options;
    const loop = loopSettings(settings, options.serverLoop);
    this.thread = options.thread;
    this.panel = options.panel;
    this.anchorCellId = options.anchorCellId;
    this.cellId = options.cellId;
    this.targetCellId = options.cellId;
    this.fix = options.fix;
    this.edit = options.edit ?? null;
    this.confirm = options.confirm;
    this.refine = options.refine;
    // What the model reads is the notebook as it is now: one that JupyterLab
    // does not trust may carry someone else's instructions.
    this.review = !isNotebookTrusted(options.panel);
    this.askedForReview = this.review;
    if (options.cellId !== null && options.cellSource !== null) {
      this.written.set(
        options.cellId,
        options.fix?.source ?? options.cellSource
      );
    }
    // A fix or an edit works on its one cell: a single step.
    const oneCell = this.rewrites;
    this.view = {
      id: options.id,
      mode: this.fix ? 'fix' : this.edit ? 'edit' : 'chat',
      prompt: options.prompt,
      started: Date.now(),
      turns: [],
      status: 'running',
      message: '',
      messageText: null,
      answer: '',
      steps: 0,
      budget: null,
      // Until the server says its own (it may cap them); shown only then.
      budgets: {
        attempts: loop?.maxAttempts ?? 0,
        steps:
          oneCell || loop?.readResults === false ? 1 : (loop?.maxSteps ?? 0),
        replies: loop?.maxReplies ?? 0
      },
      step: 0,
      attempt: 0,
      refines: options.refines,
      autoExecute: settings.autoExecute,
      stopping: false,
      ...(this.review ? { review: true } : {})
    };
  }

  readonly view: IRequestView;
  readonly thread: IThread;
  readonly panel: NotebookPanel;
  readonly anchorCellId: string | null;
  /** The cell it refines or fixes: step 1's own cell before it is written. */
  readonly targetCellId: string | null;
  readonly fix: IFixCell | null;
  readonly edit: IEditCell | null;
  readonly confirm: FixConfirm | null;
  readonly refine: boolean;
  /**
   * Each step's code waits for the user's Run: the notebook was not trusted
   * when the request was asked, and has not been trusted since.
   */
  review: boolean;
  /** The request was asked for review (the server was told not to expect runs). */
  readonly askedForReview: boolean;
  /**
   * The cell this request last wrote; before it wrote any, the cell it
   * refines or fixes (which step 1 rewrites), or null.
   */
  cellId: string | null;
  /** The cell of each step, as written: the next step goes below the last. */
  readonly stepCells = new Map<number, string>();
  /**
   * What each cell this request may rewrite must still hold for a rewrite:
   * what the loop last wrote there, or the source a fix or a refinement
   * started from. A cell that holds anything else was edited by the user.
   */
  readonly written = new Map<string, string>();
  /** Aborts the run (or the wait for the user's run) of the current turn. */
  abort: AbortController | null = null;
  /** Set when the browser itself had to give up (no kernel, notebook closed). */
  failure: ChatText | null = null;
  /** Resolved with how the request ended. */
  readonly finished = new PromiseDelegate<IRequestResult>();

  get id(): string {
    return this.view.id;
  }

  /**
   * Whether the request rewrites a cell of the user's (a fix or an edit):
   * the source it had before is kept, and the context sent is wider (the
   * server ranks the cells that define what the cell reads).
   */
  get rewrites(): boolean {
    return this.fix !== null || this.edit !== null;
  }

  /** Whether the request has ended (a `done`, a stop, a lost connection). */
  get isFinished(): boolean {
    return this.view.status !== 'running';
  }

  /** The `ask` that starts this request, with the notebook's context. */
  askMessage(context: INotebookContext, settings: IChatSettings): IAskMessage {
    return {
      type: 'ask',
      id: this.id,
      // A fix's words are the server's: it knows the cell and its error.
      prompt: this.fix ? '' : this.view.prompt,
      notebook: this.thread.path,
      mode: this.view.mode,
      context,
      ...askedLoop(settings),
      time_limit: settings.executionTimeLimit,
      // Under review the user runs each cell: the server waits for them.
      auto_execute: settings.autoExecute && !this.review,
      refine_cell: this.refine,
      ...(this.rewrites
        ? { cell: (this.fix ?? this.edit)!, review: this.confirm !== null }
        : {})
    };
  }

  /** Whether this request works on the cell (writes, runs or fixes it). */
  ownsCell(cellId: string): boolean {
    if (this.cellId === cellId || this.targetCellId === cellId) {
      return true;
    }
    for (const id of this.stepCells.values()) {
      if (id === cellId) {
        return true;
      }
    }
    return false;
  }

  /** The view of a turn, created on its first message. */
  turn(number: number): ITurnView {
    const view = this.view;
    let turn = view.turns.find(t => t.turn === number);
    if (!turn) {
      // A turn that never got code run (a reply that called input()).
      for (const earlier of view.turns) {
        if (earlier.state === 'generating') {
          earlier.state = 'skipped';
          earlier.complete = true;
        }
      }
      turn = {
        turn: number,
        reply: '',
        complete: false,
        state: 'generating',
        ename: '',
        evalue: '',
        seconds: null,
        step: 0,
        attempt: 0
      };
      view.turns.push(turn);
    }
    return turn;
  }

  /** A piece of the model's reply. */
  onToken(message: ITokenMessage): void {
    const turn = this.turn(message.turn);
    if (!turn.reply) {
      performance.mark('oci:token-received', {
        detail: { id: this.id, turn: turn.turn }
      });
    }
    turn.reply += message.text;
    if (turn.state !== 'generating') {
      turn.state = 'generating';
    }
  }

  /** Where a turn stands, as the server says. */
  onTurn(message: ITurnMessage): void {
    const view = this.view;
    const turn = this.turn(message.turn);
    if (message.budgets) {
      view.budgets = { ...message.budgets };
    }
    if (message.state === 'queued') {
      // The browser knows what the cell waits for; the echo adds nothing.
      if (turn.state !== 'queued') {
        turn.state = 'queued';
      }
    } else if (message.state === 'generating') {
      turn.state = 'generating';
      if (typeof message.waiting === 'number') {
        turn.modelAhead = message.waiting;
      }
      // Where the request stands: the step so far, before this reply.
      if (typeof message.step === 'number') {
        view.step = message.step;
      }
      if (typeof message.attempt === 'number') {
        view.attempt = message.attempt;
      }
    } else {
      if (typeof message.step === 'number' && message.step > 0) {
        turn.step = message.step;
        turn.attempt = message.attempt ?? turn.attempt;
      }
      turn.complete = true;
      if (message.state !== 'executing') {
        turn.state = message.state;
        turn.ename = message.ename ?? '';
        turn.evalue = message.evalue ?? '';
        // Why the code was not run, in the server's words: translated when known.
        turn.evalueText =
          message.state === 'skipped'
            ? (serverText({
                message: turn.evalue,
                code: message.code,
                params: message.params
              }) ?? undefined)
            : undefined;
      }
    }
  }

  /**
   * Whether the user's auto-execute setting runs an `execute`'s code at
   * once (what applies unless the request is under review).
   */
  autoExecutes(message: IExecuteMessage): boolean {
    // Asked for review, the server was told the user runs the cells.
    return (
      message.auto_execute || (this.askedForReview && this.view.autoExecute)
    );
  }

  /**
   * Whether the request is under review now. A notebook trusted meanwhile
   * (*Trust notebook*) ends the review: the setting applies again. A
   * notebook that stops being trusted does not start one: what the model
   * read of it was read when the request was asked. `except`: a cell left
   * out (the one waiting: the user's own run of it trusts it).
   */
  underReview(except?: string): boolean {
    if (this.review && isNotebookTrusted(this.panel, except)) {
      this.review = false;
      delete this.view.review;
    }
    return this.review;
  }

  /**
   * An `execute` arrived: its turn runs (or waits for the user), for this
   * step and attempt. Returns the turn and the step.
   */
  beginExecute(
    message: IExecuteMessage,
    runsAtOnce = message.auto_execute
  ): { turn: ITurnView; step: number } {
    const view = this.view;
    const turn = this.turn(message.turn);
    turn.complete = true;
    turn.state = runsAtOnce ? 'executing' : 'waiting';
    // An older server sends no steps: one cell, its attempts counted here.
    const step = message.step ?? 1;
    turn.step = step;
    turn.attempt =
      message.attempt ??
      view.turns.filter(t => t.step === step && t.turn <= turn.turn).length;
    view.step = step;
    view.attempt = turn.attempt;
    return { turn, step };
  }

  /**
   * Where an `execute`'s code goes: the cell it rewrites (`replace`: the
   * step's own cell, or for step 1 the cell refined or fixed), else the
   * cell a new one goes below (`next`: the previous step's cell; `new`: the
   * cell the user was in).
   */
  placement(
    target: ExecuteTarget,
    step: number
  ): { replaceCellId: string | null; anchorCellId: string | null } {
    const previous = (): string | null => {
      let best = -Infinity;
      let found: string | null = null;
      for (const [s, id] of this.stepCells) {
        if (s < step && s > best) {
          best = s;
          found = id;
        }
      }
      return found ?? this.targetCellId ?? this.cellId;
    };
    switch (target) {
      case 'replace': {
        const own =
          this.stepCells.get(step) ?? (step <= 1 ? this.targetCellId : null);
        return {
          replaceCellId: own,
          // The step's cell is gone: a new one where the step would go.
          anchorCellId:
            step > 1 ? (previous() ?? this.anchorCellId) : this.anchorCellId
        };
      }
      case 'next':
        return {
          replaceCellId: null,
          anchorCellId: previous() ?? this.anchorCellId
        };
      default:
        return { replaceCellId: null, anchorCellId: this.anchorCellId };
    }
  }

  /** The code of a step went into this cell. */
  placed(step: number, cellId: string, code: string): void {
    this.cellId = cellId;
    this.stepCells.set(step, cellId);
    this.written.set(cellId, code);
  }

  /** How a turn's run ended (as reported to the server). */
  ran(
    turn: ITurnView,
    status: OutcomeStatus,
    seconds: number,
    error?: { ename: string; evalue: string }
  ): void {
    turn.state = status;
    turn.seconds = seconds;
    turn.ename = error?.ename ?? '';
    turn.evalue = error?.evalue ?? '';
  }

  /**
   * End the request: its final status and words, and every turn still in
   * progress closed as the ending means. `failed`: the browser itself gave
   * up (the request shows as an error even if it had to be cancelled).
   * False when it had already ended.
   */
  finish(
    status: DoneStatus,
    message: string | ChatText,
    failed = false,
    done?: IDoneMessage
  ): boolean {
    const view = this.view;
    if (this.isFinished) {
      return false;
    }
    view.answer = done?.answer ?? '';
    view.budget = done?.budget ?? null;
    view.steps =
      done?.steps ??
      new Set(view.turns.filter(t => t.seconds !== null).map(t => t.step)).size;
    // Stop waiting for a run the user never made. A cell already running is
    // left alone: its output is the user's now (Stop interrupts it instead).
    // A cell still queued behind the user's is abandoned too (never run).
    if (
      view.turns.some(
        t =>
          t.state === 'waiting' ||
          t.state === 'reviewing' ||
          t.state === 'queued'
      )
    ) {
      this.abort?.abort();
    }
    // A kernel the browser could not use ends the request as an error, even
    // though the browser had to cancel it to end it.
    view.status = failed ? 'error' : status;
    // The English text goes to the history; the code is for the view.
    view.message = typeof message === 'string' ? message : englishText(message);
    view.messageText = typeof message === 'string' ? null : message;
    view.stopping = false;
    for (const turn of view.turns) {
      turn.complete = true;
      if (
        turn.state === 'generating' ||
        turn.state === 'executing' ||
        turn.state === 'queued' ||
        turn.state === 'waiting' ||
        turn.state === 'reviewing'
      ) {
        if (status === 'cancelled' || status === 'error') {
          turn.state = 'cancelled';
        } else if (turn.state === 'generating' && !hasCode(turn.reply)) {
          turn.state = 'reply';
        } else {
          // Code a budget kept from running (the step budget, say).
          turn.state = 'skipped';
          if (!turn.evalue) {
            turn.evalueText = { code: 'not-run', budget: view.budget };
            turn.evalue = englishText(turn.evalueText);
          }
        }
      }
    }
    this.finished.resolve({
      status: view.status,
      answer: view.answer,
      message: view.message,
      budget: view.budget
    });
    return true;
  }
}

/** Whether a reply holds a code block (its code was meant to run). */
function hasCode(reply: string): boolean {
  return /```/.test(reply);
}
