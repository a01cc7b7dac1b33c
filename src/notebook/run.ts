/**
 * Run one of the loop's cells in the notebook's kernel, through JupyterLab's
 * cell executor (the path of Shift+Enter), and report what happened.
 */
import { ISessionContextDialogs } from '@jupyterlab/apputils';
import { CodeCell } from '@jupyterlab/cells';
import {
  INotebookCellExecutor,
  NotebookPanel,
  runCell as executeCell
} from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { ITranslator } from '@jupyterlab/translation';
import { PromiseDelegate } from '@lumino/coreutils';

import { kernelValues } from '../context';
import { untilKernelFree, usableKernel } from './kernel';
import {
  CellDeleted,
  failedRun,
  IRunResult,
  KernelUnavailable,
  runOutput
} from './outcome';

/** After an interrupt, wait this long for the kernel's reply. */
const INTERRUPT_GRACE_MS = 5000;

export interface IRunOptions {
  /** Seconds the code may run, counted from when it starts. */
  timeLimit: number;
  /**
   * Aborting stops the run: a cell still waiting is abandoned without
   * touching the kernel; a cell of ours that runs is interrupted.
   */
  signal: AbortSignal;
  /** JupyterLab's cell executor (the notebook's own path for Shift+Enter). */
  executor?: INotebookCellExecutor;
  sessionDialogs?: ISessionContextDialogs;
  translator?: ITranslator;
  /**
   * The kernel is busy with someone else's work: the cell waits. Called
   * with what it waits for (`In [7]`, `cell 5`, or null for the kernel).
   */
  onQueued?: (waitingFor: string | null) => void;
  /** The cell started executing (its `execute_input`): the clock starts. */
  onStarted?: () => void;
  /**
   * Names the code assigned: if the run succeeds and prints nothing, their
   * values are looked up silently and reported with the outcome.
   */
  inspect?: string[];
}

/**
 * Run one of the loop's cells in the notebook's kernel, through JupyterLab's
 * cell executor, and report what happened. Never touches anyone else's run:
 * while the kernel is busy with another cell the loop's cell waits (Stop
 * then abandons it), the time limit counts from the moment the cell starts,
 * and only the loop's own running cell is ever interrupted. Never hangs: a
 * kernel that dies or restarts, or a closed notebook, ends the wait.
 */
export async function runCell(
  panel: NotebookPanel,
  cellId: string,
  options: IRunOptions
): Promise<IRunResult> {
  const kernel = await usableKernel(panel);
  const widget = codeCellWidget(panel, cellId);
  const watch = new RunWatch(panel, kernel, widget, options);
  try {
    const free = await untilKernelFree(
      panel,
      kernel,
      cellId,
      options,
      watch.kernelGone.promise
    );
    if (!free) {
      return { status: 'cancelled', output: '', seconds: 0, runMs: 0 };
    }
    if (widget.isDisposed) {
      throw new CellDeleted();
    }
    return await runNow(panel, kernel, widget, watch, options);
  } finally {
    watch.dispose();
  }
}

function codeCellWidget(panel: NotebookPanel, cellId: string): CodeCell {
  const widget = panel.content.widgets.find(w => w.model.id === cellId);
  if (!widget || !(widget instanceof CodeCell)) {
    throw new CellDeleted();
  }
  return widget;
}

/**
 * What follows one run of the loop's cell: its start (the cell's own
 * `execute_input`, when the time limit starts), Stop, the kernel's death or
 * restart and the notebook's closing; and the interrupt, which only ever
 * hits the loop's own running cell.
 */
class RunWatch {
  constructor(
    private readonly _panel: NotebookPanel,
    private readonly _kernel: Kernel.IKernelConnection,
    private readonly _widget: CodeCell,
    private readonly _options: IRunOptions
  ) {
    // Rejected at most once, possibly after the race is over: never unhandled.
    this.kernelGone.promise.catch(() => undefined);
    _panel.sessionContext.statusChanged.connect(this._onStatus, this);
    _panel.disposed.connect(this._onClosed, this);
    _options.signal.addEventListener('abort', this._onAbort);
    _kernel.iopubMessage.connect(this._onIopub, this);
  }

  /** Rejected with why the kernel cannot answer any more. */
  readonly kernelGone = new PromiseDelegate<never>();
  /** Resolved when the kernel has not answered an interrupt in time. */
  readonly graceOver = new PromiseDelegate<null>();
  /** When the cell started (from the execute request until it does). */
  started = performance.now();
  /** Why the loop interrupted its cell, if it did. */
  interruptedFor: 'timeout' | 'cancelled' | null = null;

  dispose(): void {
    window.clearTimeout(this._limitTimer);
    window.clearTimeout(this._graceTimer);
    this._panel.sessionContext.statusChanged.disconnect(this._onStatus, this);
    this._panel.disposed.disconnect(this._onClosed, this);
    this._options.signal.removeEventListener('abort', this._onAbort);
    this._kernel.iopubMessage.disconnect(this._onIopub, this);
  }

  private _interrupt(reason: 'timeout' | 'cancelled'): void {
    if (this.interruptedFor) {
      return;
    }
    this.interruptedFor = reason;
    void this._kernel.interrupt().catch(() => undefined);
    // A kernel that ignores the interrupt must not hold the request.
    this._graceTimer = window.setTimeout(
      () => this.graceOver.resolve(null),
      INTERRUPT_GRACE_MS
    );
  }

  private _onStatus(_: unknown, status: Kernel.Status): void {
    if (
      status === 'dead' ||
      status === 'restarting' ||
      status === 'autorestarting'
    ) {
      this.kernelGone.reject(
        new KernelUnavailable(
          status === 'dead' ? 'died-while-running' : 'restarted-while-running'
        )
      );
    }
  }

  // Stop before the cell started (it queued behind a cell that slipped in
  // ahead of it) interrupts nothing now: the cell is interrupted the moment
  // it starts, so the other cell finishes untouched.
  private _onAbort = (): void => {
    if (this._running) {
      this._interrupt('cancelled');
    }
  };

  private _onClosed(): void {
    this.kernelGone.reject(new KernelUnavailable('notebook-closed'));
  }

  private _onIopub(_: unknown, message: KernelMessage.IIOPubMessage): void {
    const future = this._widget.outputArea.future;
    if (
      this._running ||
      message.header.msg_type !== 'execute_input' ||
      !future ||
      message.parent_header.msg_id !== future.msg.header.msg_id
    ) {
      return;
    }
    this._running = true;
    this.started = performance.now();
    this._options.onStarted?.();
    if (this._options.signal.aborted) {
      this._interrupt('cancelled');
      return;
    }
    this._limitTimer = window.setTimeout(
      () => this._interrupt('timeout'),
      this._options.timeLimit * 1000
    );
  }

  private _running = false;
  private _limitTimer = 0;
  private _graceTimer = 0;
}

/** What the cell executor reported of the cell's run. */
interface IExecuted {
  success: boolean;
  error?: {
    errorName?: string;
    errorValue?: string;
    message?: string;
    traceback?: string[];
  } | null;
}

/**
 * Send the cell through the executor. `reply`: the executor's answer (false
 * for a run it reported as failed); `executed()`: what it reported, null
 * when the cell never ran.
 */
function execute(
  panel: NotebookPanel,
  widget: CodeCell,
  options: IRunOptions
): { reply: Promise<boolean>; executed: () => IExecuted | null } {
  // A holder, not a variable: it is set in a callback, read after awaits.
  const report: { executed: IExecuted | null } = { executed: null };
  const reply = (options.executor ?? defaultExecutor)
    .runCell({
      cell: widget,
      notebook: panel.model!,
      notebookConfig: panel.content.notebookConfig,
      sessionContext: panel.sessionContext,
      sessionDialogs: options.sessionDialogs,
      translator: options.translator,
      onCellExecutionScheduled: () => undefined,
      onCellExecuted: args => {
        report.executed = { success: args.success, error: args.error };
      }
    })
    // The executor rethrows a failed run after reporting it.
    .catch(reason => {
      if (report.executed) {
        return false;
      }
      throw reason;
    });
  return { reply, executed: () => report.executed };
}

/** JupyterLab's default cell executor, when the application provides none. */
const defaultExecutor: INotebookCellExecutor = { runCell: executeCell };

/** Run the cell now that the kernel is free, and read its outcome. */
async function runNow(
  panel: NotebookPanel,
  kernel: Kernel.IKernelConnection,
  widget: CodeCell,
  watch: RunWatch,
  options: IRunOptions
): Promise<IRunResult> {
  const cell = widget.model;
  const source = cell.sharedModel.getSource();
  const requested = performance.now();
  watch.started = requested;
  const run = execute(panel, widget, options);
  let reply: boolean | null;
  try {
    reply = await Promise.race([
      run.reply,
      watch.kernelGone.promise,
      watch.graceOver.promise
    ]);
  } catch (reason) {
    if (reason instanceof KernelUnavailable) {
      throw reason;
    }
    throw new KernelUnavailable({
      code: 'no-run-reply',
      detail: String((reason as Error).message ?? reason)
    });
  }
  const runMs = performance.now() - requested;
  const seconds = (performance.now() - watch.started) / 1000;
  const ran = { output: runOutput(cell), seconds, runMs, source };
  if (reply === null) {
    // The kernel never answered the interrupt.
    return { status: watch.interruptedFor ?? 'timeout', ...ran };
  }
  const executed = run.executed();
  if (!executed) {
    if (widget.isDisposed) {
      throw new CellDeleted();
    }
    // Nothing ran: no kernel, or the run was cancelled under us (a
    // restart, a lost connection).
    throw new KernelUnavailable(
      panel.sessionContext.session?.kernel
        ? 'kernel-cancelled'
        : 'no-kernel-to-ask'
    );
  }
  if (executed.success) {
    // Nothing printed: what the code computed is the result to read.
    const values =
      !ran.output.trim() && options.inspect?.length
        ? await kernelValues(kernel, options.inspect)
        : {};
    return Object.keys(values).length
      ? { status: 'ok', ...ran, values }
      : { status: 'ok', ...ran };
  }
  if (watch.interruptedFor) {
    // Our own interrupt: the KeyboardInterrupt is the symptom, not the news.
    return { status: watch.interruptedFor, ...ran };
  }
  const failure = executed.error;
  const error = {
    ename: failure?.errorName ?? 'Error',
    evalue: failure?.errorValue ?? failure?.message ?? '',
    traceback: failure?.traceback ?? []
  };
  return failedRun(error, ran);
}
