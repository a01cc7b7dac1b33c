/**
 * The chat's state in the browser, as the panel and the commands use it: a
 * facade over the modules that do the work.
 *
 * - ./threads.ts: one thread per notebook, and its history on the server;
 * - ./request.ts: one request's state machine (its view, its cells);
 * - ./ask.ts: a request's ask, with the notebook's context, sent;
 * - ./dispatcher.ts: the server's messages, routed to the requests;
 * - ./executor.ts: one turn's execution (confirm, place, run, report);
 * - ./cells.ts: the cells requests wrote, refine targets, cell names;
 * - ./renames.ts: the notebooks' renames, which move their threads;
 * - ./prefill.ts: the notebook sent ahead while the user types.
 *
 * The server drives the refinement loop; this model only mirrors what it
 * reports (`token`, `turn`, `done`) and runs what it asks (`execute`).
 */
import { ISessionContextDialogs } from '@jupyterlab/apputils';
import type { ICodeCellModel } from '@jupyterlab/cells';
import { INotebookCellExecutor, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { ITranslator } from '@jupyterlab/translation';
import { UUID } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';

import { clearChatHistory, fetchChatHistory } from '../api';
import { createCellExecutor } from '../cellexecutor';
import { findCell } from '../notebook';
import { IOciCellExecutor, IOciChatModel } from '../tokens';
import { cellName, markWorking, RequestCells } from './cells';
import { ChatConnection, IChatConnection } from './connection';
import { MessageDispatcher, RunningElsewhere } from './dispatcher';
import { TurnExecutor } from './executor';
import { Prefiller } from './prefill';
import { editCell, sendAsk } from './ask';
import { DoneStatus, IDoneMessage } from './protocol';
import { NotebookRenames } from './renames';
import { ChatRequest, IChatRequestOptions } from './request';
import { ChatThreads, IHistoryStore } from './threads';
import * as chat from './types';
import { ChatText } from './texts';

export * from './types';
export { fromHistory } from './threads';

export class ChatModel implements IOciChatModel {
  constructor(options: ChatModel.IOptions) {
    const serverSettings =
      options.serverSettings ?? ServerConnection.makeSettings();
    this._connection =
      options.connection ?? new ChatConnection({ serverSettings });
    this._threads = new ChatThreads(
      options.history ?? {
        fetch: path => fetchChatHistory(path, serverSettings),
        clear: path => clearChatHistory(path, serverSettings)
      },
      () => this._changed()
    );
    this._dispatcher = new MessageDispatcher(this._connection, {
      execute: (request, message) =>
        void this._executor.execute(request, message),
      finish: (request, status, message, failed, done) =>
        this._finish(request, status, message, failed, done),
      changed: soon => (soon ? this._changedSoon() : this._changed())
    });
    this._executor = new TurnExecutor({
      send: message => this._connection.send(message),
      stop: request => this._stop(request),
      placed: (request, step, cellId) =>
        this._cells.record(request.id, step, cellId),
      changed: () => this._changed(),
      notebook:
        options.cellExecutor ??
        createCellExecutor({
          executor: options.executor,
          sessionDialogs: options.sessionDialogs,
          translator: options.translator
        })
    });
    this._prefiller = new Prefiller({
      connection: this._connection,
      notebook: () => this._notebook,
      thread: () => this.thread,
      settings: () => this._settings,
      busyWith: thread => this._dispatcher.busyWith(thread)
    });
  }

  /**
   * The request another tab or window runs in the current notebook, if any:
   * the server runs one request per notebook at a time.
   */
  get runningElsewhere(): RunningElsewhere | null {
    const path = this._notebook?.context.path;
    return path === undefined ? null : this._dispatcher.runningElsewhere(path);
  }

  /** This page's requests in flight in notebooks other than the current one. */
  get background(): chat.IBackgroundRequest[] {
    return this._dispatcher.background(this.thread);
  }

  /** Anything the view shows changed. Token bursts are coalesced per frame. */
  get stateChanged(): ISignal<this, void> {
    return this._stateChanged;
  }

  get connection(): IChatConnection {
    return this._connection;
  }

  /** The settings that shape each request, as the user set them. */
  get settings(): chat.IChatSettings {
    return this._settings;
  }
  set settings(settings: chat.IChatSettings) {
    this._settings = { ...settings };
    this._changed();
  }

  /**
   * The server's loop settings (`c.OCI.*`, from `GET /oci/status`): what
   * applies where the user set nothing. Null until known.
   */
  get serverLoop(): chat.ILoopSettings | null {
    return this._serverLoop;
  }
  set serverLoop(loop: chat.ILoopSettings | null) {
    // Set on every status poll: only a change is news.
    if (JSON.stringify(loop) !== JSON.stringify(this._serverLoop)) {
      this._serverLoop = loop ? { ...loop } : null;
      this._changed();
    }
  }

  /** The loop's settings that apply: the user's, else the server's. */
  get loop(): chat.ILoopSettings | null {
    return chat.loopSettings(this._settings, this._serverLoop);
  }

  /**
   * The chat is on screen (set by the panel): showing it prefills the
   * current notebook, so the server reads it before the user asks.
   */
  get visible(): boolean {
    return this._prefiller.visible;
  }
  set visible(value: boolean) {
    this._prefiller.visible = value;
  }

  /**
   * The user is typing in the composer: prefill once they pause, so the
   * server has read the notebook by the time they press Enter.
   */
  draftChanged(): void {
    this._prefiller.draftChanged();
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
    this._notebook = panel;
    this._cells.invalidate();
    if (panel) {
      // Labels and the refine target follow the cells (runs, deletions).
      panel.model?.cells.changed.connect(this._onCellsChanged, this);
      this._renames.follow(panel);
      void this.loadHistory(panel.context.path);
    }
    this._prefiller.notebookChanged(panel);
    this._changed();
  }

  /** The current notebook's thread, or null without a notebook. */
  get thread(): chat.IThread | null {
    const path = this._notebook?.context.path;
    return path === undefined ? null : this._threads.get(path);
  }

  /** The current notebook's request in flight. */
  get running(): chat.IRequestView | null {
    const requests = this.thread?.requests ?? [];
    const last = requests[requests.length - 1];
    return last?.status === 'running' ? last : null;
  }

  /** A message about the server or the connection, not about one request. */
  get notice(): ChatText | null {
    return this._dispatcher.notice;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /**
   * The cell the next request will rewrite (the human-feedback turn): the
   * most recent request's cell that still exists, unless the user asked for
   * a new cell.
   */
  refineTarget(): chat.IRefineTarget | null {
    return this.thread?.newThread ? null : this.refineCandidate();
  }

  /** The cell a refinement would rewrite, whether or not one is wanted. */
  refineCandidate(): chat.IRefineTarget | null {
    const thread = this.thread;
    const panel = this._notebook;
    return thread && panel ? this._cells.refineCandidate(panel, thread) : null;
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
    if (!panel || !thread || !text || !this._canStart()) {
      return false;
    }
    const refine = this.refineTarget();
    thread.newThread = false;
    // The ask reads the notebook itself now.
    this._prefiller.cancel();
    this._start({
      thread,
      panel,
      prompt: text,
      refines: refine?.label ?? null,
      anchorCellId: panel.content.activeCell?.model.id ?? null,
      cellId: refine?.cellId ?? null,
      fix: null,
      confirm: null,
      refine: refine !== null
    });
    return true;
  }

  /**
   * Ask the model to fix a failing cell: a request in `fix` mode that
   * rewrites that cell (and runs only it). Resolves with the request's final
   * status, or null when it cannot start now (a request is running, not
   * connected, the cell is gone).
   */
  fix(options: chat.IFixOptions): Promise<chat.IRequestResult> | null {
    const { ename, evalue } = options.error;
    return this._rewrite(options, (cell, where) => ({
      prompt: `Fix the error in ${where}: ${ename}${evalue ? `: ${evalue}` : ''}`,
      fix: { source: cell.sharedModel.getSource(), error: options.error }
    }));
  }

  /**
   * Ask the model to change a cell as the user says: a request in `edit`
   * mode that rewrites that cell (and runs only it), shown and kept as a
   * fix is. Null when it cannot start now, or the instruction is empty.
   */
  edit(options: chat.IEditOptions): Promise<chat.IRequestResult> | null {
    const prompt = options.prompt.trim();
    if (!prompt) {
      return null;
    }
    return this._rewrite(options, cell => ({
      prompt,
      edit: editCell(cell, options.selection, this._settings)
    }));
  }

  /** Whether a request in flight is writing, running or fixing this cell. */
  isBusy(cellId: string): boolean {
    return this._dispatcher.owning(cellId).length > 0;
  }

  /** Stop the current notebook's request: generation, run or wait. */
  stop(): void {
    const view = this.running;
    if (view) {
      this.stopRequest(view.id);
    }
  }

  /** Stop one request by its id, in whichever notebook it runs. */
  stopRequest(id: string): void {
    const request = this._dispatcher.inFlight.get(id);
    if (request) {
      this._stop(request);
    }
  }

  /** Stop the request working on this cell (a fix), wherever it runs. */
  stopCell(cellId: string): void {
    for (const request of this._dispatcher.owning(cellId)) {
      this._stop(request);
    }
  }

  /** Forget the current notebook's chat, here and on the server. */
  async clearHistory(): Promise<void> {
    const thread = this.thread;
    if (!thread || this.running) {
      return;
    }
    await this._threads.clear(thread.path);
  }

  /** Fetch a notebook's past requests (on switching notebooks and on load). */
  loadHistory(path: string): Promise<void> {
    return this._threads.load(path);
  }

  /**
   * Show a cell the chat talks about: a step's cell, or the request's last
   * cell without a step.
   */
  async revealCell(requestId: string, step?: number): Promise<void> {
    const panel = this._notebook;
    if (panel) {
      await this._cells.reveal(panel, requestId, step);
    }
  }

  /** Whether a request's cell is still in the current notebook. */
  hasCell(requestId: string): boolean {
    const panel = this._notebook;
    return panel ? this._cells.lastCell(panel, requestId) !== null : false;
  }

  /** A request's cell for one step, if it is still in the current notebook. */
  stepCell(requestId: string, step: number): chat.IStepCell | null {
    const panel = this._notebook;
    return panel ? this._cells.stepCell(panel, requestId, step) : null;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    for (const request of this._dispatcher.inFlight.values()) {
      request.abort?.abort();
    }
    this._dispatcher.dispose();
    this._prefiller.dispose();
    this._connection.dispose();
    this._renames.dispose();
    window.cancelAnimationFrame(this._frame);
    Signal.clearData(this);
  }

  // ---- requests ------------------------------------------------------------

  /**
   * Start a request that rewrites one code cell of the user's (a fix, an
   * edit): `what` says its words and the cell it sends.
   */
  private _rewrite(
    options: {
      panel: NotebookPanel;
      cellId: string;
      confirm: chat.FixConfirm | null;
    },
    what: (
      cell: ICodeCellModel,
      where: string
    ) => Pick<IChatRequestOptions, 'prompt'> &
      Partial<Pick<IChatRequestOptions, 'fix' | 'edit'>>
  ): Promise<chat.IRequestResult> | null {
    const { panel, cellId } = options;
    if (panel !== this._notebook) {
      this.notebook = panel;
    }
    const thread = this.thread;
    const found = findCell(panel, cellId);
    if (!thread || found?.cell.type !== 'code' || !this._canStart()) {
      return null;
    }
    const where = cellName(found);
    const request = this._start({
      thread,
      panel,
      refines: where,
      anchorCellId: cellId,
      cellId,
      fix: null,
      edit: null,
      ...what(found.cell as ICodeCellModel, where),
      confirm: options.confirm,
      refine: false
    });
    return request.finished.promise;
  }

  /** A request can start: none runs in this notebook, and the server is there. */
  private _canStart(): boolean {
    return !this.running && this._connection.state === 'open';
  }

  /** Show a new request in its thread and send it. */
  private _start(
    options: Omit<
      IChatRequestOptions,
      'id' | 'settings' | 'serverLoop' | 'cellSource'
    >
  ): ChatRequest {
    const id = UUID.uuid4();
    performance.mark('oci:ask', { detail: { id } });
    const target = options.cellId
      ? findCell(options.panel, options.cellId)
      : null;
    const request = new ChatRequest({
      ...options,
      id,
      // What a rewrite of the target expects it to hold (a cell already
      // gone has nothing to protect).
      cellSource: target ? target.cell.sharedModel.getSource() : null,
      settings: this._settings,
      serverLoop: this._serverLoop
    });
    options.thread.requests.push(request.view);
    this._dispatcher.notice = null;
    this._dispatcher.inFlight.set(id, request);
    this._changed();
    void this._send(request);
    return request;
  }

  /** Gather the notebook's context and send the ask. */
  private async _send(request: ChatRequest): Promise<void> {
    const failed = await sendAsk(request, this._settings, this._connection);
    if (failed) {
      this._finish(request, failed.status, failed.text);
    }
  }

  private _stop(request: ChatRequest): void {
    const view = request.view;
    if (view.stopping) {
      return;
    }
    view.stopping = true;
    // Interrupts a running cell; the server then ends the request.
    request.abort?.abort();
    if (!this._connection.send({ type: 'cancel', id: view.id })) {
      this._finish(request, 'cancelled', { code: 'stopped' });
    }
    this._changed();
  }

  private _finish(
    request: ChatRequest,
    status: DoneStatus,
    message: string | ChatText,
    failed = false,
    done?: IDoneMessage
  ): void {
    if (!this._dispatcher.inFlight.delete(request.id)) {
      return;
    }
    for (const cellId of request.written.keys()) {
      markWorking(request.panel, cellId, false);
    }
    request.finish(status, message, failed, done);
    this._changed();
  }

  // ---- notebooks -----------------------------------------------------------

  private _onCellsChanged(): void {
    this._cells.invalidate();
    this._changed();
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

  private _cells = new RequestCells();
  private _connection: IChatConnection;
  private _dispatcher: MessageDispatcher;
  private _executor: TurnExecutor;
  private _frame = 0;
  private _isDisposed = false;
  private _notebook: NotebookPanel | null = null;
  private _prefiller: Prefiller;
  private _renames = new NotebookRenames((oldPath, newPath) =>
    this._threads.rename(oldPath, newPath)
  );
  private _serverLoop: chat.ILoopSettings | null = null;
  private _settings: chat.IChatSettings = { ...chat.DEFAULT_CHAT_SETTINGS };
  private _stateChanged = new Signal<this, void>(this);
  private _threads: ChatThreads;
}

export namespace ChatModel {
  export interface IOptions {
    serverSettings?: ServerConnection.ISettings;
    /** The server's chat; a websocket to /oci/chat when absent. */
    connection?: IChatConnection;
    /** The notebooks' histories; the server's REST API when absent. */
    history?: IHistoryStore;
    /** Places and runs the loop's cells; built from the next three when absent. */
    cellExecutor?: IOciCellExecutor;
    /** JupyterLab's cell executor: the loop's cells run the way Shift+Enter does. */
    executor?: INotebookCellExecutor;
    sessionDialogs?: ISessionContextDialogs;
    translator?: ITranslator;
  }
}
