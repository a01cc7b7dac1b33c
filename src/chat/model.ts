/**
 * The chat's state in the browser: one thread per notebook, the requests in
 * it as the panel shows them, and the wiring between the server's protocol
 * messages and the notebook executor.
 *
 * The server drives the refinement loop; this model only mirrors what it
 * reports (`token`, `turn`, `done`) and runs what it asks (`execute`).
 */
import { ISessionContextDialogs } from '@jupyterlab/apputils';
import { INotebookCellExecutor, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, ServerConnection } from '@jupyterlab/services';
import { ITranslator } from '@jupyterlab/translation';
import { PromiseDelegate, UUID } from '@lumino/coreutils';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { clearChatHistory, fetchChatHistory } from '../api';
import { FIXING_CLASS } from '../autofix';
import { cellLabel, notebookContext, notebookLanguage } from '../context';
import {
  CellDeleted,
  findCell,
  IRunResult,
  KernelUnavailable,
  placeCode,
  requestStepCells,
  runCell,
  waitForUserRun
} from '../notebook';
import { ChatConnection, IChatConnection } from './connection';
import {
  BudgetName,
  DoneStatus,
  IBudgets,
  IDoneMessage,
  IExecuteMessage,
  IFixCell,
  IHistoryRequest,
  INotebookContext,
  INotebookMessage,
  IOutcomeMessage,
  ServerMessage,
  TurnState
} from './protocol';

/** The user's settings that shape a request (schema/plugin.json). */
export interface IChatSettings {
  /** Attempts per cell: the first try and its refinements. */
  maxTurns: number;
  /** Cells one request may add. */
  maxSteps: number;
  /** Model replies one request may take. */
  maxReplies: number;
  /**
   * The model reads each successful result, then answers or takes another
   * step; off, the request stops at the first run without errors.
   */
  readResults: boolean;
  autoExecute: boolean;
  /** Seconds. */
  executionTimeLimit: number;
  sendVariables: boolean;
  sendOutputs: boolean;
  contextCells: number;
}

/**
 * Cells a fix sends at least: the server ranks those that define the names
 * the failing cell reads first, and fits what it can into the model's window.
 */
const FIX_CONTEXT_CELLS = 100;

/** A prefill waits this long after the last keystroke in the composer. */
const PREFILL_DEBOUNCE_MS = 800;
/** At most one prefill per this interval. */
const PREFILL_INTERVAL_MS = 2000;
/** How long a new notebook's kernel is waited for before its first prefill. */
const PREFILL_KERNEL_WAIT_MS = 15000;

export const DEFAULT_CHAT_SETTINGS: IChatSettings = {
  maxTurns: 3,
  maxSteps: 4,
  maxReplies: 8,
  readResults: true,
  autoExecute: true,
  executionTimeLimit: 60,
  sendVariables: true,
  sendOutputs: true,
  contextCells: 20
};

/**
 * What a turn shows: the server's states, plus `waiting` (the cell is in,
 * waiting for the user to run it), `reply` (an answer without code) and
 * `skipped` (code that was not run).
 */
export type TurnViewState =
  TurnState | 'waiting' | 'reviewing' | 'reply' | 'skipped';

export interface ITurnView {
  turn: number;
  /** The model's reply, growing while it streams. */
  reply: string;
  /** The reply is complete: render it as markdown. */
  complete: boolean;
  state: TurnViewState;
  ename: string;
  evalue: string;
  /** Seconds the code ran, once known. */
  seconds: number | null;
  /** The request's cell this turn's code was for (0: no code, or not yet known). */
  step: number;
  /** The try in that cell (0: no code). */
  attempt: number;
  /**
   * What the user did to the loop's cell: `moved` (they had edited the cell
   * the code was for: their edit is kept, the code went into a new cell
   * below it), `edited` (they edited the code before running it: the model
   * was told what ran).
   */
  note?: { kind: 'moved'; cell: string } | { kind: 'edited' };
  /**
   * While the cell waits for the kernel (state `queued`): the cell it waits
   * for (`In [7]`, `cell 5`), or null for other work of the kernel.
   */
  waitingFor?: string | null;
  /** Before its first token: requests the model serves before this reply. */
  modelAhead?: number;
}

export type RequestStatus = 'running' | DoneStatus;

export interface IRequestView {
  id: string;
  mode: 'chat' | 'fix';
  prompt: string;
  /** ms since epoch. */
  started: number;
  turns: ITurnView[];
  status: RequestStatus;
  /** The server's closing words (or why the browser ended it). */
  message: string;
  /**
   * The model's final words (markdown): its answer after a success, its
   * explanation after a failure or a fix; "" if none.
   */
  answer: string;
  /** Cells the request ran code in, once it ended. */
  steps: number;
  /** The budget that ended the request, if one did. */
  budget: BudgetName | null;
  /** The request's budgets (the server's, else what was asked for). */
  budgets: IBudgets;
  /** While it runs: the current step (0 before any code) and its attempt. */
  step: number;
  attempt: number;
  /** The label of the cell this request refines, when it does. */
  refines: string | null;
  autoExecute: boolean;
  /** A Stop is on its way to the server. */
  stopping: boolean;
}

export type HistoryState = 'idle' | 'loading' | 'loaded' | 'failed';

export interface IThread {
  /**
   * The notebook's path: the server keeps one chat per notebook, and moves
   * it when the notebook is renamed.
   */
  path: string;
  requests: IRequestView[];
  history: HistoryState;
  historyError: string;
  /** The user chose a new cell for the next request instead of a refinement. */
  newThread: boolean;
}

export interface IRefineTarget {
  cellId: string;
  /** `In [4]` or `cell 5`. */
  label: string;
  requestId: string;
}

/** A request's cell for one step, as the chat names it. */
export interface IStepCell {
  cellId: string;
  /** `In [4]` or `cell 5`. */
  label: string;
}

/** How a request ended (what a fix's caller shows under the cell). */
export interface IRequestResult {
  status: RequestStatus;
  /** The model's final words: an answer, or the fix's explanation. */
  answer: string;
  message: string;
  budget: BudgetName | null;
}

/** A request in flight: what the executor needs beyond the view. */
interface IRunning {
  view: IRequestView;
  thread: IThread;
  panel: NotebookPanel;
  /** The cell the user was in when asking: step 1's new cell goes below it. */
  anchorCellId: string | null;
  /**
   * The cell this request last wrote; before it wrote any, the cell it
   * refines or fixes (which step 1 rewrites), or null.
   */
  cellId: string | null;
  /** The cell it refines or fixes: step 1's own cell before it is written. */
  targetCellId: string | null;
  /** The cell of each step, as written: the next step goes below the last. */
  stepCells: Map<number, string>;
  /**
   * What each cell this request may rewrite must still hold for a rewrite:
   * what the loop last wrote there, or the source a fix or a refinement
   * started from. A cell that holds anything else was edited by the user.
   */
  written: Map<string, string>;
  /** Aborts the run (or the wait for the user's run) of the current turn. */
  abort: AbortController | null;
  /** Set when the browser itself had to give up (no kernel, notebook closed). */
  failure: string | null;
  /** A fix: the failing cell, sent with the ask in `fix` mode. */
  fix: IFixCell | null;
  /** Asked before each rewrite of the cell; false cancels the request. */
  confirm: FixConfirm | null;
  /** Resolved with how the request ended. */
  finished: PromiseDelegate<IRequestResult>;
}

/**
 * Shown the cell's current and proposed sources before a fix rewrites it;
 * resolves true to accept. The signal aborts when the request stops.
 */
export type FixConfirm = (
  oldSource: string,
  newSource: string,
  signal: AbortSignal
) => Promise<boolean>;

export interface IFixOptions {
  /** The notebook of the failing cell. */
  panel: NotebookPanel;
  cellId: string;
  error: IFixCell['error'];
  /** Suggest mode: confirm each rewrite; null rewrites at once. */
  confirm: FixConfirm | null;
}

/** The timings the executor records for each turn (read by the UI tests). */
export interface ITurnTiming {
  id: string;
  turn: number;
  /** From the `execute` message to the `outcome` sent, in ms. */
  totalMs: number;
  /** Of which the kernel's run, request to reply, in ms. */
  runMs: number;
  /** The browser's own share: placing the cell, collecting the outcome. */
  overheadMs: number;
}

export class ChatModel implements IDisposable {
  constructor(options: ChatModel.IOptions) {
    this._serverSettings =
      options.serverSettings ?? ServerConnection.makeSettings();
    this._connection =
      options.connection ??
      new ChatConnection({ serverSettings: this._serverSettings });
    this._connection.messageReceived.connect(this._onMessage, this);
    this._connection.stateChanged.connect(this._onConnection, this);
    this._executor = options.executor;
    this._sessionDialogs = options.sessionDialogs;
    this._translator = options.translator;
  }

  /**
   * The request another tab or window runs in the current notebook, if any:
   * the server runs one request per notebook at a time.
   */
  get runningElsewhere(): INotebookMessage['running'] {
    const path = this._notebook?.context.path;
    return path === undefined ? null : (this._elsewhere.get(path) ?? null);
  }

  /** Anything the view shows changed. Token bursts are coalesced per frame. */
  get stateChanged(): ISignal<this, void> {
    return this._stateChanged;
  }

  get connection(): IChatConnection {
    return this._connection;
  }

  get settings(): IChatSettings {
    return this._settings;
  }
  set settings(settings: IChatSettings) {
    this._settings = { ...settings };
    this._changed();
  }

  /**
   * The chat is on screen (set by the panel): showing it prefills the
   * current notebook, so the server reads it before the user asks.
   */
  get visible(): boolean {
    return this._visible;
  }
  set visible(value: boolean) {
    if (value === this._visible) {
      return;
    }
    this._visible = value;
    if (value) {
      this._prefillWhenReady(this._notebook);
    } else {
      window.clearTimeout(this._prefillTimer);
    }
  }

  /**
   * The user is typing in the composer: prefill once they pause, so the
   * server has read the notebook by the time they press Enter.
   */
  draftChanged(): void {
    this._schedulePrefill(PREFILL_DEBOUNCE_MS);
  }

  /** The notebook the chat is about: the last one the user was in. */
  get notebook(): NotebookPanel | null {
    return this._notebook;
  }
  set notebook(panel: NotebookPanel | null) {
    if (panel === this._notebook) {
      return;
    }
    this._notebook?.model?.cells.changed.disconnect(this._onCellsChanged, this);
    this._notebook?.context.pathChanged.disconnect(this._onPathChanged, this);
    this._notebook = panel;
    this._notebookPath = panel?.context.path ?? null;
    this._requestCells = null;
    // Labels and the refine target follow the cells (runs, deletions).
    panel?.model?.cells.changed.connect(this._onCellsChanged, this);
    // The server keeps a chat per path: a renamed notebook is looked up anew.
    panel?.context.pathChanged.connect(this._onPathChanged, this);
    if (panel) {
      void this.loadHistory(panel.context.path);
    }
    if (this._visible) {
      this._prefillWhenReady(panel);
    }
    this._changed();
  }

  /** The current notebook's thread, or null without a notebook. */
  get thread(): IThread | null {
    const path = this._notebook?.context.path;
    return path === undefined ? null : this._thread(path);
  }

  /** The current notebook's request in flight. */
  get running(): IRequestView | null {
    const requests = this.thread?.requests ?? [];
    const last = requests[requests.length - 1];
    return last?.status === 'running' ? last : null;
  }

  /** A message about the server or the connection, not about one request. */
  get notice(): string {
    return this._notice;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /**
   * The cell the next request will rewrite (the human-feedback turn): the
   * most recent request's cell that still exists, unless the user asked for
   * a new cell.
   */
  refineTarget(): IRefineTarget | null {
    return this.thread?.newThread ? null : this.refineCandidate();
  }

  /** The cell a refinement would rewrite, whether or not one is wanted. */
  refineCandidate(): IRefineTarget | null {
    const thread = this.thread;
    const panel = this._notebook;
    if (!thread || !panel) {
      return null;
    }
    for (let i = thread.requests.length - 1; i >= 0; i--) {
      const request = thread.requests[i];
      if (request.status === 'running') {
        continue;
      }
      const cellId = this._cellOf(request.id);
      const found = cellId ? findCell(panel, cellId) : null;
      if (found && found.cell.type === 'code') {
        const label = cellLabel(found.cell);
        return {
          cellId: found.cell.id,
          requestId: request.id,
          label: label === 'In [ ]' ? `cell ${found.index + 1}` : label
        };
      }
    }
    return null;
  }

  /** Whether the next request writes a new cell rather than refining. */
  setNewThread(value: boolean): void {
    const thread = this.thread;
    if (thread && thread.newThread !== value) {
      thread.newThread = value;
      this._changed();
    }
  }

  /**
   * Send a request about the current notebook. False when it cannot be sent
   * now (no notebook, one already running, not connected, empty prompt);
   * decided at once, so a double Enter cannot send twice.
   */
  ask(prompt: string): boolean {
    const panel = this._notebook;
    const thread = this.thread;
    const text = prompt.trim();
    if (
      !panel ||
      !thread ||
      !text ||
      this.running ||
      this._connection.state !== 'open'
    ) {
      return false;
    }
    const refine = this.refineTarget();
    thread.newThread = false;
    // The ask reads the notebook itself now.
    window.clearTimeout(this._prefillTimer);
    this._start(
      {
        thread,
        panel,
        prompt: text,
        refines: refine?.label ?? null,
        anchorCellId: panel.content.activeCell?.model.id ?? null,
        cellId: refine?.cellId ?? null,
        fix: null,
        confirm: null
      },
      refine !== null
    );
    return true;
  }

  /**
   * Ask the model to fix a failing cell: a request in `fix` mode that
   * rewrites that cell (and runs only it). Resolves with the request's final
   * status, or null when it cannot start now (a request is running, not
   * connected, the cell is gone).
   */
  fix(options: IFixOptions): Promise<IRequestResult> | null {
    const { panel, cellId } = options;
    if (panel !== this._notebook) {
      this.notebook = panel;
    }
    const thread = this.thread;
    const found = findCell(panel, cellId);
    if (
      !thread ||
      !found ||
      found.cell.type !== 'code' ||
      this.running ||
      this._connection.state !== 'open'
    ) {
      return null;
    }
    const label = cellLabel(found.cell);
    const where = label === 'In [ ]' ? `cell ${found.index + 1}` : label;
    const { ename, evalue } = options.error;
    const running = this._start(
      {
        thread,
        panel,
        prompt: `Fix the error in ${where}: ${ename}${evalue ? `: ${evalue}` : ''}`,
        refines: where,
        anchorCellId: cellId,
        cellId,
        fix: {
          source: found.cell.sharedModel.getSource(),
          error: options.error
        },
        confirm: options.confirm
      },
      false
    );
    return running.finished.promise;
  }

  /** Show a new request in its thread and send it. */
  private _start(
    request: Pick<
      IRunning,
      'thread' | 'panel' | 'anchorCellId' | 'cellId' | 'fix' | 'confirm'
    > & { prompt: string; refines: string | null },
    refine: boolean
  ): IRunning {
    const id = UUID.uuid4();
    performance.mark('oci:ask', { detail: { id } });
    const { prompt, refines, ...rest } = request;
    const settings = this._settings;
    const fix = request.fix !== null;
    const view: IRequestView = {
      id,
      mode: fix ? 'fix' : 'chat',
      prompt,
      started: Date.now(),
      turns: [],
      status: 'running',
      message: '',
      answer: '',
      steps: 0,
      budget: null,
      // Until the server says its own (it may cap them).
      budgets: {
        attempts: settings.maxTurns,
        steps: fix || !settings.readResults ? 1 : settings.maxSteps,
        replies: settings.maxReplies
      },
      step: 0,
      attempt: 0,
      refines,
      autoExecute: settings.autoExecute,
      stopping: false
    };
    const written = new Map<string, string>();
    const target = request.cellId
      ? findCell(request.panel, request.cellId)
      : null;
    if (target) {
      written.set(
        target.cell.id,
        request.fix?.source ?? target.cell.sharedModel.getSource()
      );
    }
    const running: IRunning = {
      ...rest,
      targetCellId: request.cellId,
      stepCells: new Map(),
      written,
      view,
      abort: null,
      failure: null,
      finished: new PromiseDelegate<IRequestResult>()
    };
    request.thread.requests.push(view);
    this._notice = '';
    this._running.set(id, running);
    this._changed();
    void this._send(running, refine);
    return running;
  }

  /** Whether a request in flight is writing, running or fixing this cell. */
  isBusy(cellId: string): boolean {
    for (const running of this._running.values()) {
      if (ownsCell(running, cellId)) {
        return true;
      }
    }
    return false;
  }

  private async _send(running: IRunning, refine: boolean): Promise<void> {
    const { view, panel } = running;
    const settings = this._settings;
    let context: INotebookContext;
    try {
      context = await notebookContext(panel, {
        anchorCellId: running.anchorCellId,
        // A fix sends more of the cells above: the server picks those that
        // define what the failing cell reads, wherever they are.
        contextCells: running.fix
          ? Math.max(settings.contextCells, FIX_CONTEXT_CELLS)
          : settings.contextCells,
        sendOutputs: settings.sendOutputs,
        sendVariables: settings.sendVariables
      });
    } catch (reason) {
      this._finish(
        running,
        'error',
        `Could not read the notebook: ${(reason as Error).message ?? reason}`
      );
      return;
    }
    if (view.stopping || !this._running.has(view.id)) {
      // Stopped while the context was gathered: nothing reached the server.
      this._finish(running, 'cancelled', 'Stopped.');
      return;
    }
    const sent = this._connection.send({
      type: 'ask',
      id: view.id,
      prompt: running.fix ? '' : view.prompt,
      notebook: running.thread.path,
      mode: running.fix ? 'fix' : 'chat',
      context,
      max_turns: settings.maxTurns,
      max_steps: settings.maxSteps,
      max_replies: settings.maxReplies,
      read_results: settings.readResults,
      time_limit: settings.executionTimeLimit,
      auto_execute: settings.autoExecute,
      refine_cell: refine,
      ...(running.fix
        ? { cell: running.fix, review: running.confirm !== null }
        : {})
    });
    if (!sent) {
      this._finish(running, 'error', 'Not connected to the server.');
      return;
    }
    performance.mark('oci:ask-sent', { detail: { id: view.id } });
  }

  // ---- prefill -------------------------------------------------------------

  /** Prefill a notebook once its kernel is up (idle), if it is still current. */
  private _prefillWhenReady(panel: NotebookPanel | null): void {
    if (!panel) {
      return;
    }
    const stillCurrent = () =>
      this._notebook === panel && this._visible && !this._isDisposed;
    void panel.sessionContext.ready
      .then(async () => {
        const kernel = panel.sessionContext.session?.kernel;
        if (kernel && kernel.status !== 'idle' && stillCurrent()) {
          await untilIdle(kernel, PREFILL_KERNEL_WAIT_MS);
        }
        if (stillCurrent()) {
          this._schedulePrefill(0);
        }
      })
      .catch(reason => console.debug('oci: no prefill:', reason));
  }

  /** Prefill after `delay` ms, replacing a prefill already scheduled. */
  private _schedulePrefill(delay: number): void {
    if (this._isDisposed) {
      return;
    }
    window.clearTimeout(this._prefillTimer);
    this._prefillTimer = window.setTimeout(() => {
      this._prefillTimer = 0;
      void this._prefill();
    }, delay);
  }

  /** Whether a request of this notebook is in flight. */
  private _busyWith(thread: IThread): boolean {
    for (const running of this._running.values()) {
      if (running.thread === thread) {
        return true;
      }
    }
    return false;
  }

  /**
   * Send the current notebook's context as the next ask would gather it, so
   * the server reads the prompt's start ahead of the ask. Best effort and
   * silent: nothing while a request of this notebook runs or the kernel is
   * busy, at most once per interval, nothing if the context is unchanged.
   */
  private async _prefill(): Promise<void> {
    const panel = this._notebook;
    const thread = this.thread;
    if (
      !panel ||
      !thread ||
      this._isDisposed ||
      this._busyWith(thread) ||
      this._connection.state !== 'open'
    ) {
      return;
    }
    if (this._prefilling) {
      this._prefillAgain = true;
      return;
    }
    const wait = this._lastPrefillAt + PREFILL_INTERVAL_MS - Date.now();
    if (wait > 0) {
      this._schedulePrefill(wait);
      return;
    }
    const settings = this._settings;
    const kernel = panel.sessionContext.session?.kernel;
    if (
      settings.sendVariables &&
      kernel &&
      notebookLanguage(panel) === 'python' &&
      kernel.status !== 'idle'
    ) {
      // Asking it for the variables would queue behind the user's work.
      console.debug('oci: no prefill: the kernel is busy');
      return;
    }
    this._prefilling = true;
    this._lastPrefillAt = Date.now();
    try {
      // Exactly as an ask gathers it (see _send), so the prompts match.
      const context = await notebookContext(panel, {
        anchorCellId: panel.content.activeCell?.model.id ?? null,
        contextCells: settings.contextCells,
        sendOutputs: settings.sendOutputs,
        sendVariables: settings.sendVariables
      });
      if (
        panel !== this._notebook ||
        this._isDisposed ||
        this._busyWith(thread)
      ) {
        return;
      }
      // What the server would read: the context, and the chat before it.
      const last = thread.requests[thread.requests.length - 1];
      const key = JSON.stringify([
        thread.path,
        thread.requests.length,
        last?.id ?? '',
        last?.status ?? '',
        context
      ]);
      if (key === this._lastPrefillKey) {
        return;
      }
      const sent = this._connection.send({
        type: 'prefill',
        notebook: thread.path,
        context
      });
      if (sent) {
        this._lastPrefillKey = key;
        performance.mark('oci:prefill', { detail: { notebook: thread.path } });
      } else {
        console.debug('oci: no prefill: not connected');
      }
    } catch (reason) {
      console.debug('oci: no prefill:', reason);
    } finally {
      this._prefilling = false;
      if (this._prefillAgain) {
        this._prefillAgain = false;
        this._schedulePrefill(PREFILL_DEBOUNCE_MS);
      }
    }
  }

  /** Stop the current notebook's request: generation, run or wait. */
  stop(): void {
    const view = this.running;
    const running = view ? this._running.get(view.id) : undefined;
    if (running) {
      this._stop(running);
    }
  }

  /** Stop the request working on this cell (a fix), wherever it runs. */
  stopCell(cellId: string): void {
    for (const running of this._running.values()) {
      if (ownsCell(running, cellId)) {
        this._stop(running);
      }
    }
  }

  private _stop(running: IRunning): void {
    const view = running.view;
    if (view.stopping) {
      return;
    }
    view.stopping = true;
    // Interrupts a running cell; the server then ends the request.
    running.abort?.abort();
    if (!this._connection.send({ type: 'cancel', id: view.id })) {
      this._finish(running, 'cancelled', 'Stopped.');
    }
    this._changed();
  }

  /** Forget the current notebook's chat, here and on the server. */
  async clearHistory(): Promise<void> {
    const thread = this.thread;
    if (!thread || this.running) {
      return;
    }
    await clearChatHistory(thread.path, this._serverSettings);
    thread.requests = [];
    thread.newThread = false;
    this._changed();
  }

  /**
   * Show a cell the chat talks about: a step's cell, or the request's last
   * cell without a step.
   */
  async revealCell(requestId: string, step?: number): Promise<void> {
    const panel = this._notebook;
    if (!panel) {
      return;
    }
    const cellId =
      step === undefined
        ? this._cellOf(requestId)
        : (this._stepCellsOf(requestId).get(step) ?? null);
    const found = cellId ? findCell(panel, cellId) : null;
    if (!found) {
      return;
    }
    const notebook = panel.content;
    notebook.activeCellIndex = found.index;
    notebook.deselectAll();
    const widget = notebook.widgets[found.index];
    if (widget) {
      await notebook.scrollToCell(widget, 'center');
    }
  }

  /** Whether a request's cell is still in the current notebook. */
  hasCell(requestId: string): boolean {
    return this._cellOf(requestId) !== null;
  }

  /** A request's cell for one step, if it is still in the current notebook. */
  stepCell(requestId: string, step: number): IStepCell | null {
    const panel = this._notebook;
    const cellId = this._stepCellsOf(requestId).get(step);
    const found = panel && cellId ? findCell(panel, cellId) : null;
    if (!found) {
      return null;
    }
    const label = cellLabel(found.cell);
    return {
      cellId: found.cell.id,
      label: label === 'In [ ]' ? `cell ${found.index + 1}` : label
    };
  }

  /**
   * The id of the cell a request wrote last (its last step's), if it is
   * still in the current notebook.
   */
  private _cellOf(requestId: string): string | null {
    const steps = this._stepCellsOf(requestId);
    let last: string | null = null;
    let lastStep = -Infinity;
    for (const [step, cellId] of steps) {
      if (step > lastStep) {
        lastStep = step;
        last = cellId;
      }
    }
    return last;
  }

  /**
   * The cells of a request still in the current notebook, by step: what
   * this session placed, else what the cells' metadata says (after a
   * reload). Called on every render, so the metadata is read once per
   * change of the cells, not once per call.
   */
  private _stepCellsOf(requestId: string): Map<number, string> {
    const result = new Map<number, string>();
    const panel = this._notebook;
    if (!panel) {
      return result;
    }
    if (!this._requestCells) {
      const ids = new Set<string>();
      for (const cell of panel.model?.cells ?? []) {
        ids.add(cell.id);
      }
      const byMetadata = new Map<string, Map<number, string>>();
      for (const [request, steps] of requestStepCells(panel)) {
        const cells = new Map<number, string>();
        for (const [step, cell] of steps) {
          cells.set(step, cell.id);
        }
        byMetadata.set(request, cells);
      }
      this._requestCells = { ids, byMetadata };
    }
    const { ids, byMetadata } = this._requestCells;
    for (const [step, cellId] of byMetadata.get(requestId) ?? []) {
      result.set(step, cellId);
    }
    for (const [step, cellId] of this._cells.get(requestId) ?? []) {
      if (ids.has(cellId)) {
        result.set(step, cellId);
      }
    }
    return result;
  }

  private _onPathChanged(_: unknown, path: string): void {
    const old = this._notebookPath;
    this._notebookPath = path;
    const thread = old === null ? undefined : this._threads.get(old);
    if (old !== null && thread && !this._threads.has(path)) {
      // Renamed: the chat goes with it (the server moves its copy too).
      this._threads.delete(old);
      thread.path = path;
      this._threads.set(path, thread);
    } else {
      void this.loadHistory(path);
    }
    this._changed();
  }

  private _onCellsChanged(): void {
    this._requestCells = null;
    this._changed();
  }

  /** Fetch a notebook's past requests (on switching notebooks and on load). */
  async loadHistory(path: string): Promise<void> {
    const thread = this._thread(path);
    // Requests in flight are the newest truth; a reload would race them.
    if (
      thread.history === 'loading' ||
      thread.requests.some(r => r.status === 'running')
    ) {
      return;
    }
    thread.history = 'loading';
    this._changed();
    try {
      const history = await fetchChatHistory(path, this._serverSettings);
      if (!thread.requests.some(r => r.status === 'running')) {
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

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    for (const running of this._running.values()) {
      running.abort?.abort();
    }
    this._running.clear();
    window.clearTimeout(this._prefillTimer);
    this._connection.dispose();
    window.cancelAnimationFrame(this._frame);
    Signal.clearData(this);
  }

  // ---- protocol ------------------------------------------------------------

  private _onMessage(_: IChatConnection, message: ServerMessage): void {
    if (message.type === 'notebook') {
      if (message.running) {
        this._elsewhere.set(message.notebook, message.running);
      } else {
        this._elsewhere.delete(message.notebook);
      }
      this._changed();
      return;
    }
    if (message.type === 'error' && !message.id) {
      if (/\bprefill\b/.test(message.message)) {
        // A prefill is a hint the server may refuse: not the user's concern.
        console.debug('oci: prefill refused:', message.message);
        return;
      }
      this._notice = `The server reported: ${message.message}`;
      this._changed();
      return;
    }
    const running = this._running.get(message.id ?? '');
    if (!running) {
      return; // a request that already ended here (stopped, connection lost)
    }
    const view = running.view;
    switch (message.type) {
      case 'token': {
        const turn = this._turn(view, message.turn);
        if (!turn.reply) {
          performance.mark('oci:token-received', {
            detail: { id: view.id, turn: turn.turn }
          });
        }
        turn.reply += message.text;
        if (turn.state !== 'generating') {
          turn.state = 'generating';
        }
        this._changedSoon();
        break;
      }
      case 'turn': {
        const turn = this._turn(view, message.turn);
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
          }
        }
        this._changed();
        break;
      }
      case 'execute':
        void this._execute(running, message);
        break;
      case 'done':
        this._finish(
          running,
          message.status,
          running.failure ?? message.message,
          running.failure !== null,
          message
        );
        break;
      case 'error':
        // The server rejected a message of this request. An `ask` it could
        // not accept gets no `done`: end the request here.
        if (view.turns.length === 0) {
          this._finish(running, 'error', message.message);
        } else {
          this._notice = `The server reported: ${message.message}`;
          this._changed();
        }
        break;
    }
  }

  private _onConnection(connection: IChatConnection): void {
    if (connection.state === 'closed') {
      // The server tells a new connection what runs elsewhere.
      this._elsewhere.clear();
      // The server cancels a closed socket's requests: end them here too,
      // with the reason, rather than leave them spinning.
      for (const running of [...this._running.values()]) {
        this._finish(
          running,
          'error',
          'The connection to the server was lost; the request ended.'
        );
      }
    }
    if (connection.state === 'open') {
      this._notice = '';
    }
    this._changed();
  }

  /** Place the code, run it (or wait for the user to), report the outcome. */
  private async _execute(
    running: IRunning,
    message: IExecuteMessage
  ): Promise<void> {
    const received = performance.now();
    const view = running.view;
    const turn = this._turn(view, message.turn);
    turn.complete = true;
    turn.state = message.auto_execute ? 'executing' : 'waiting';
    // An older server sends no steps: one cell, its attempts counted here.
    const step = message.step ?? 1;
    turn.step = step;
    turn.attempt =
      message.attempt ??
      view.turns.filter(t => t.step === step && t.turn <= turn.turn).length;
    view.step = step;
    view.attempt = turn.attempt;
    let { replaceCellId, anchorCellId } = placement(running, message, step);
    const edited = replaceCellId
      ? this._editedCell(running, replaceCellId)
      : null;
    if (edited) {
      // The user changed the cell since the loop wrote it (or since the fix
      // or refinement started): their edit stays, the code goes below it.
      turn.note = { kind: 'moved', cell: edited };
      anchorCellId = replaceCellId;
      replaceCellId = null;
    }
    const abort = new AbortController();
    running.abort = abort;

    let result: IRunResult;
    try {
      if (running.confirm && replaceCellId) {
        // Suggest mode: the user sees the rewrite before it happens.
        const found = findCell(running.panel, replaceCellId);
        const current = found?.cell.sharedModel.getSource();
        if (current !== undefined && current !== message.code) {
          turn.state = 'reviewing';
          this._changed();
          const accepted = await running.confirm(
            current,
            message.code,
            abort.signal
          );
          if (!this._running.has(view.id) || abort.signal.aborted) {
            return; // stopped meanwhile: the server ends the request
          }
          if (!accepted) {
            this._stop(running);
            return;
          }
          turn.state = message.auto_execute ? 'executing' : 'waiting';
        }
      }
      const cell = placeCode(running.panel, {
        requestId: view.id,
        turn: message.turn,
        step,
        code: message.code,
        // When the cell to rewrite is gone, placeCode inserts a new one
        // below the anchor instead.
        replaceCellId,
        anchorCellId,
        keepOriginal: running.fix !== null
      });
      running.cellId = cell.id;
      running.stepCells.set(step, cell.id);
      running.written.set(cell.id, message.code);
      markWorking(running.panel, cell.id, true);
      let placed = this._cells.get(view.id);
      if (!placed) {
        placed = new Map();
        this._cells.set(view.id, placed);
      }
      placed.set(step, cell.id);
      this._requestCells = null;
      this._changed();
      const progress = (state: 'queued' | 'running') =>
        this._connection.send({
          type: 'progress',
          id: view.id,
          turn: message.turn,
          state
        });
      result = message.auto_execute
        ? await runCell(running.panel, cell.id, {
            timeLimit: message.time_limit,
            signal: abort.signal,
            executor: this._executor,
            sessionDialogs: this._sessionDialogs,
            translator: this._translator,
            onQueued: waitingFor => {
              turn.state = 'queued';
              turn.waitingFor = waitingFor;
              progress('queued');
              this._changed();
            },
            onStarted: () => {
              if (turn.state === 'queued') {
                turn.state = 'executing';
                turn.waitingFor = undefined;
                this._changed();
              }
              progress('running');
            }
          })
        : await waitForUserRun(running.panel, cell.id, abort.signal);
    } catch (reason) {
      if (!this._running.has(view.id) || abort.signal.aborted) {
        return; // stopped: the server ends the request
      }
      if (reason instanceof CellDeleted) {
        // The user removed the cell instead of running it: that is a stop.
        this._stop(running);
        return;
      }
      const error = reason as Error;
      if (error instanceof KernelUnavailable) {
        running.failure = error.message;
      }
      result = {
        status: 'error',
        output: '',
        error: {
          ename: error.name || 'Error',
          evalue: error.message ?? String(error),
          traceback: []
        },
        seconds: 0,
        runMs: 0
      };
    } finally {
      if (running.abort === abort) {
        running.abort = null;
      }
    }
    if (!this._running.has(view.id)) {
      return; // ended meanwhile
    }
    const outcome: IOutcomeMessage = {
      type: 'outcome',
      id: view.id,
      turn: message.turn,
      status: result.status,
      output: result.output,
      seconds: Math.round(result.seconds * 1000) / 1000
    };
    if (result.error) {
      outcome.error = result.error;
    }
    if (result.source !== undefined && result.source !== message.code) {
      // The user edited the code before it ran: the model hears what ran.
      outcome.source = result.source;
      turn.note = { kind: 'edited' };
    }
    this._connection.send(outcome);
    if (running.failure) {
      // Nothing can run in this notebook now: further turns would only ask
      // the model for more code to fail the same way. Cancelling ends the
      // request at once; the failure stays the message shown.
      this._connection.send({ type: 'cancel', id: view.id });
    }
    const totalMs = performance.now() - received;
    const timing: ITurnTiming = {
      id: view.id,
      turn: message.turn,
      totalMs,
      runMs: result.runMs,
      overheadMs: message.auto_execute ? totalMs - result.runMs : NaN
    };
    performance.mark('oci:turn', { detail: timing });
    turn.state = result.status;
    turn.seconds = result.seconds;
    turn.ename = result.error?.ename ?? '';
    turn.evalue = result.error?.evalue ?? '';
    this._changed();
  }

  /**
   * The name of the cell to rewrite if the user edited it since the loop
   * last wrote it (or since the fix or refinement began), else null.
   */
  private _editedCell(running: IRunning, cellId: string): string | null {
    const expected = running.written.get(cellId);
    const found = findCell(running.panel, cellId);
    if (
      !found ||
      expected === undefined ||
      found.cell.sharedModel.getSource() === expected
    ) {
      return null;
    }
    const label = cellLabel(found.cell);
    return label === 'In [ ]' ? `cell ${found.index + 1}` : label;
  }

  private _finish(
    running: IRunning,
    status: DoneStatus,
    message: string,
    failed = false,
    done?: IDoneMessage
  ): void {
    const view = running.view;
    if (!this._running.delete(view.id)) {
      return;
    }
    for (const cellId of running.written.keys()) {
      markWorking(running.panel, cellId, false);
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
      running.abort?.abort();
    }
    // A kernel the browser could not use ends the request as an error, even
    // though the browser had to cancel it to end it.
    view.status = failed ? 'error' : status;
    view.message = message;
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
          turn.evalue = turn.evalue || budgetNote(view.budget);
        }
      }
    }
    running.finished.resolve({
      status: view.status,
      answer: view.answer,
      message: view.message,
      budget: view.budget
    });
    this._changed();
  }

  /** The view of a turn, created on its first message. */
  private _turn(view: IRequestView, number: number): ITurnView {
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

  private _thread(path: string): IThread {
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

  private _changed(): void {
    window.cancelAnimationFrame(this._frame);
    this._frame = 0;
    this._stateChanged.emit();
  }

  /** At most one update per frame while tokens stream in. */
  private _changedSoon(): void {
    if (!this._frame) {
      this._frame = window.requestAnimationFrame(() => this._changed());
    }
  }

  /** The cells each request of this session wrote, by step. */
  private _cells = new Map<string, Map<number, string>>();
  private _requestCells: {
    ids: Set<string>;
    byMetadata: Map<string, Map<number, string>>;
  } | null = null;
  private _connection: IChatConnection;
  private _frame = 0;
  private _isDisposed = false;
  private _notebook: NotebookPanel | null = null;
  private _notice = '';
  private _running = new Map<string, IRunning>();
  private _serverSettings: ServerConnection.ISettings;
  private _settings: IChatSettings = { ...DEFAULT_CHAT_SETTINGS };
  private _stateChanged = new Signal<this, void>(this);
  private _threads = new Map<string, IThread>();
  /** The current notebook's path, as of its last rename. */
  private _notebookPath: string | null = null;
  /** Notebooks with a request of another connection in flight. */
  private _elsewhere = new Map<
    string,
    NonNullable<INotebookMessage['running']>
  >();
  private _executor: INotebookCellExecutor | undefined;
  private _sessionDialogs: ISessionContextDialogs | undefined;
  private _translator: ITranslator | undefined;
  private _visible = false;
  private _prefillTimer = 0;
  private _prefilling = false;
  private _prefillAgain = false;
  private _lastPrefillAt = -Infinity;
  /** What the last prefill sent (its notebook, chat and context). */
  private _lastPrefillKey = '';
}

export namespace ChatModel {
  export interface IOptions {
    serverSettings?: ServerConnection.ISettings;
    /** The server's chat; a websocket to /oci/chat when absent. */
    connection?: IChatConnection;
    /** JupyterLab's cell executor: the loop's cells run the way Shift+Enter does. */
    executor?: INotebookCellExecutor;
    sessionDialogs?: ISessionContextDialogs;
    translator?: ITranslator;
  }
}

/** Resolves when the kernel is idle, or after `ms` (whichever is first). */
function untilIdle(
  kernel: Kernel.IKernelConnection,
  ms: number
): Promise<void> {
  return new Promise(resolve => {
    const done = () => {
      window.clearTimeout(timer);
      kernel.statusChanged.disconnect(onStatus);
      resolve();
    };
    const onStatus = (_: unknown, status: Kernel.Status) => {
      if (status === 'idle') {
        done();
      }
    };
    const timer = window.setTimeout(done, ms);
    kernel.statusChanged.connect(onStatus);
  });
}

/** Whether a reply holds a code block (its code was meant to run). */
function hasCode(reply: string): boolean {
  return /```/.test(reply);
}

/** Why code was not run when a budget ended the request first. */
function budgetNote(budget: BudgetName | null): string {
  switch (budget) {
    case 'steps':
      return 'not run: over the step budget';
    case 'attempts':
      return 'not run: over the attempt budget';
    case 'replies':
      return 'not run: over the reply budget';
    default:
      return 'not run';
  }
}

/** Whether a request in flight works on this cell (writes, runs or fixes it). */
function ownsCell(running: IRunning, cellId: string): boolean {
  if (running.cellId === cellId || running.targetCellId === cellId) {
    return true;
  }
  for (const id of running.stepCells.values()) {
    if (id === cellId) {
      return true;
    }
  }
  return false;
}

/**
 * Where an `execute`'s code goes: the cell it rewrites (`replace`: the
 * step's own cell, or for step 1 the cell refined or fixed), else the cell
 * a new one goes below (`next`: the previous step's cell; `new`: the cell
 * the user was in).
 */
function placement(
  running: IRunning,
  message: IExecuteMessage,
  step: number
): { replaceCellId: string | null; anchorCellId: string | null } {
  const previous = (): string | null => {
    let best = -Infinity;
    let found: string | null = null;
    for (const [s, id] of running.stepCells) {
      if (s < step && s > best) {
        best = s;
        found = id;
      }
    }
    return found ?? running.targetCellId ?? running.cellId;
  };
  switch (message.target) {
    case 'replace': {
      const own =
        running.stepCells.get(step) ??
        (step <= 1 ? running.targetCellId : null);
      return {
        replaceCellId: own,
        // The step's cell is gone: a new one where the step would go.
        anchorCellId:
          step > 1 ? (previous() ?? running.anchorCellId) : running.anchorCellId
      };
    }
    case 'next':
      return {
        replaceCellId: null,
        anchorCellId: previous() ?? running.anchorCellId
      };
    default:
      return { replaceCellId: null, anchorCellId: running.anchorCellId };
  }
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
    mode: request.mode === 'fix' ? 'fix' : 'chat',
    prompt: request.prompt,
    started: request.started * 1000,
    status: request.status === 'running' ? 'cancelled' : request.status,
    message: request.message,
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

/**
 * Mark a cell the loop writes and runs (until its request ends), so the
 * user sees which cell is the chat's before typing in it.
 */
function markWorking(panel: NotebookPanel, cellId: string, on: boolean): void {
  const widget = panel.content.widgets.find(w => w.model.id === cellId);
  widget?.toggleClass(FIXING_CLASS, on);
}
