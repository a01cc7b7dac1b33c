/**
 * The executor: the model's code becomes a real cell of the user's notebook
 * and runs in the notebook's own kernel, through the same APIs a user's
 * Shift+Enter goes through.
 */
import { ISessionContextDialogs } from '@jupyterlab/apputils';
import { CodeCell, ICellModel, ICodeCellModel } from '@jupyterlab/cells';
import {
  INotebookCellExecutor,
  KernelError,
  NotebookActions,
  NotebookPanel,
  runCell as executeCell
} from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { ITranslator } from '@jupyterlab/translation';
import { PromiseDelegate } from '@lumino/coreutils';

import { cut, kernelValues } from './context';
import { IExecutionError, OutcomeStatus } from './chat/protocol';
import { ChatText, englishText, KernelProblem } from './chat/texts';
import { outputText } from './outputs';

/** The cell metadata key for what oci_jupyter knows about a cell. */
export const METADATA_KEY = 'oci';

export interface IOciCellMetadata {
  /** The request that last wrote the cell. */
  request: string;
  turn: number;
  /** The request's step this cell is (1, 2, ...); older cells lack it: 1. */
  step?: number;
  generated: true;
  /** Every source this cell had before oci_jupyter replaced it, oldest first. */
  previous_sources?: string[];
  /**
   * The source the user wrote before a fix first rewrote the cell
   * (`oci:restore-original` brings it back).
   */
  original_source?: string;
}

/** Sources kept in `previous_sources` (the notebook's undo keeps them too). */
const PREVIOUS_SOURCES_KEPT = 20;
/** The output sent back to the model: its head and tail. */
const OUTPUT_LIMIT = 4000;

/**
 * What the model reads of a run: the cell's outputs as text (figures named
 * with their size, HTML as text, never base64), the error apart.
 */
export function runOutput(cell: ICodeCellModel): string {
  return cut(
    outputText(cell.outputs.toJSON(), { errors: false }),
    OUTPUT_LIMIT
  );
}
/** After an interrupt, wait this long for the kernel's reply. */
const INTERRUPT_GRACE_MS = 5000;
/** A kernel still starting gets this long before the run is given up. */
const KERNEL_START_MS = 30 * 1000;

/**
 * The code cannot run: no kernel, a dead kernel, a closed notebook. Reported
 * to the server as an error outcome with this exception name and the English
 * message; `text` is what the chat shows, translated.
 */
export class KernelUnavailable extends Error {
  constructor(problem: KernelProblem | ChatText) {
    const text: ChatText =
      typeof problem === 'string' ? { code: 'kernel', problem } : problem;
    super(englishText(text));
    this.name = 'KernelUnavailable';
    this.text = text;
  }

  readonly text: ChatText;
}

/** The user deleted the request's cell while it was waiting to be run. */
export class CellDeleted extends Error {
  constructor() {
    super('The generated cell was deleted.');
    this.name = 'CellDeleted';
  }
}

export interface IRunResult {
  status: OutcomeStatus;
  output: string;
  error?: IExecutionError;
  /** Seconds the kernel spent on the code. */
  seconds: number;
  /** Milliseconds from the execute request to its reply, as the browser saw it. */
  runMs: number;
  /** The source that ran (the user may have edited it before running). */
  source?: string;
  /** After a run that printed nothing: the values of `IRunOptions.inspect`. */
  values?: Record<string, string>;
}

export function ociMetadata(cell: ICellModel): IOciCellMetadata | null {
  const value = cell.getMetadata(METADATA_KEY) as IOciCellMetadata | undefined;
  return value && typeof value.request === 'string' ? value : null;
}

export function findCell(
  panel: NotebookPanel,
  cellId: string
): { index: number; cell: ICellModel } | null {
  const cells = panel.model?.cells;
  if (!cells) {
    return null;
  }
  for (let index = 0; index < cells.length; index++) {
    const cell = cells.get(index);
    if (cell.id === cellId) {
      return { index, cell };
    }
  }
  return null;
}

/**
 * The cells of each request, by step, read from cell metadata: the notebook
 * itself remembers, so this survives page reloads and reopening (cells
 * without a step are step 1, as before steps existed).
 */
export function requestStepCells(
  panel: NotebookPanel
): Map<string, Map<number, ICellModel>> {
  const found = new Map<string, Map<number, ICellModel>>();
  for (const cell of panel.model?.cells ?? []) {
    const meta = ociMetadata(cell);
    if (!meta) {
      continue;
    }
    const step = typeof meta.step === 'number' && meta.step > 0 ? meta.step : 1;
    let steps = found.get(meta.request);
    if (!steps) {
      steps = new Map();
      found.set(meta.request, steps);
    }
    steps.set(step, cell);
  }
  return found;
}

export interface IPlaceOptions {
  requestId: string;
  turn: number;
  /** The request's step the code is for. */
  step: number;
  code: string;
  /** The cell to rewrite; when null or gone, a new cell is inserted. */
  replaceCellId: string | null;
  /**
   * Insert below this cell: the one active when the user asked (step 1), or
   * the previous step's cell (the next step). When gone: below the active
   * cell.
   */
  anchorCellId: string | null;
  /** A fix: remember the cell's source before its first rewrite. */
  keepOriginal?: boolean;
}

/**
 * Write the code into the notebook: rewrite the request's cell, or insert a
 * new one below the anchor. A rewrite keeps the old source in the metadata
 * and is one step of the cell's undo history, so Undo brings it back.
 */
export function placeCode(
  panel: NotebookPanel,
  options: IPlaceOptions
): ICodeCellModel {
  const model = panel.model;
  if (!model || panel.isDisposed) {
    throw new KernelUnavailable('notebook-closed');
  }
  const stamp = {
    request: options.requestId,
    turn: options.turn,
    step: options.step,
    generated: true as const
  };
  const target = options.replaceCellId
    ? findCell(panel, options.replaceCellId)
    : null;
  if (target && target.cell.type === 'code') {
    const cell = target.cell as ICodeCellModel;
    const shared = cell.sharedModel;
    const previous = shared.getSource();
    const kept = ociMetadata(cell)?.previous_sources ?? [];
    // Read raw: a user's cell has no request stamp, yet may have been fixed.
    const raw = cell.getMetadata(METADATA_KEY) as
      Partial<IOciCellMetadata> | undefined;
    const original =
      typeof raw?.original_source === 'string'
        ? raw.original_source
        : options.keepOriginal
          ? previous
          : undefined;
    // The replacement must not merge with the user's last edit (or with the
    // previous replacement) into one undo step.
    (
      shared as { undoManager?: { stopCapturing(): void } | null }
    ).undoManager?.stopCapturing();
    if (previous !== options.code) {
      shared.setSource(options.code);
    }
    const previousSources =
      previous === options.code ? kept : [...kept, previous];
    cell.setMetadata(METADATA_KEY, {
      ...stamp,
      previous_sources: previousSources.slice(-PREVIOUS_SOURCES_KEPT),
      ...(original !== undefined ? { original_source: original } : {})
    });
    // Outputs of the old code would read as the new code's.
    shared.transact(() => cell.clearExecution(), false);
    return cell;
  }

  const notebook = panel.content;
  const anchor = options.anchorCellId
    ? findCell(panel, options.anchorCellId)
    : null;
  const anchorIndex = anchor?.index ?? notebook.activeCellIndex;
  const index = anchorIndex < 0 ? model.cells.length : anchorIndex + 1;
  model.sharedModel.insertCell(index, {
    cell_type: 'code',
    source: options.code,
    metadata: { [METADATA_KEY]: stamp }
  });
  // Follow the new cell only when the user is still where they asked from;
  // this moves the selection, never the keyboard focus (the chat input keeps
  // it: Notebook only refocuses when focus is inside it).
  if (notebook.activeCellIndex === anchorIndex) {
    notebook.activeCellIndex = index;
    notebook.deselectAll();
  }
  const widget = notebook.widgets[index];
  if (widget) {
    void notebook.scrollToCell(widget, 'auto').catch(() => undefined);
  }
  return model.cells.get(index) as ICodeCellModel;
}

function codeCellWidget(panel: NotebookPanel, cellId: string): CodeCell {
  const widget = panel.content.widgets.find(w => w.model.id === cellId);
  if (!widget || !(widget instanceof CodeCell)) {
    throw new CellDeleted();
  }
  return widget;
}

function delay(ms: number): Promise<void> {
  return new Promise(resolve => window.setTimeout(resolve, ms));
}

/**
 * The notebook's kernel, once it is there: a kernel that is starting gets a
 * little time; a missing or dead one is an error the user can act on.
 */
async function usableKernel(
  panel: NotebookPanel
): Promise<Kernel.IKernelConnection> {
  if (panel.isDisposed) {
    throw new KernelUnavailable('notebook-closed');
  }
  const session = panel.sessionContext;
  if (!session.isReady) {
    await Promise.race([session.ready, delay(KERNEL_START_MS)]);
  }
  const kernel = session.session?.kernel;
  if (panel.isDisposed) {
    throw new KernelUnavailable('notebook-closed');
  }
  if (!kernel) {
    throw new KernelUnavailable('no-kernel');
  }
  if (kernel.status === 'dead') {
    throw new KernelUnavailable('kernel-dead');
  }
  return kernel;
}

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

/** How often a busy kernel is looked at again while the cell waits. */
const BUSY_POLL_MS = 250;

/**
 * The first cell of this notebook, other than `cellId`, that is running or
 * queued, as the chat names it; undefined when none is.
 */
function runningCell(panel: NotebookPanel, cellId: string): string | undefined {
  const cells = panel.model?.cells;
  for (let index = 0; cells && index < cells.length; index++) {
    const cell = cells.get(index);
    if (
      cell.id !== cellId &&
      cell.type === 'code' &&
      (cell as ICodeCellModel).executionState === 'running'
    ) {
      const count = (cell as ICodeCellModel).executionCount;
      return count ? `In [${count}]` : `cell ${index + 1}`;
    }
  }
  return undefined;
}

/**
 * Wait until the kernel has nothing else to do: no other cell of the
 * notebook running or queued, the kernel idle. Resolves false when aborted
 * first (nothing was sent, nothing is interrupted).
 */
async function untilKernelFree(
  panel: NotebookPanel,
  kernel: Kernel.IKernelConnection,
  cellId: string,
  options: IRunOptions,
  gone: Promise<never>
): Promise<boolean> {
  let told: string | null | undefined = undefined;
  for (;;) {
    if (options.signal.aborted) {
      return false;
    }
    const other = runningCell(panel, cellId);
    const busy = other !== undefined || kernel.status === 'busy';
    if (!busy) {
      return true;
    }
    const waitingFor = other ?? null;
    if (told !== waitingFor) {
      told = waitingFor;
      options.onQueued?.(waitingFor);
    }
    await Promise.race([
      delay(BUSY_POLL_MS),
      gone,
      new Promise(resolve =>
        options.signal.addEventListener('abort', resolve, { once: true })
      )
    ]);
  }
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
  const cell = widget.model;
  const session = panel.sessionContext;

  let started = performance.now();
  let running = false;
  let interruptedFor: 'timeout' | 'cancelled' | null = null;
  const kernelGone = new PromiseDelegate<never>();
  // Rejected at most once, possibly after the race is over: never unhandled.
  kernelGone.promise.catch(() => undefined);
  const replyGrace = new PromiseDelegate<null>();
  let limitTimer = 0;
  let graceTimer = 0;

  const interrupt = (reason: 'timeout' | 'cancelled') => {
    if (interruptedFor) {
      return;
    }
    interruptedFor = reason;
    void kernel.interrupt().catch(() => undefined);
    // A kernel that ignores the interrupt must not hold the request.
    graceTimer = window.setTimeout(
      () => replyGrace.resolve(null),
      INTERRUPT_GRACE_MS
    );
  };
  const onStatus = (_: unknown, status: Kernel.Status) => {
    if (
      status === 'dead' ||
      status === 'restarting' ||
      status === 'autorestarting'
    ) {
      kernelGone.reject(
        new KernelUnavailable(
          status === 'dead' ? 'died-while-running' : 'restarted-while-running'
        )
      );
    }
  };
  // Stop before the cell started (it queued behind a cell that slipped in
  // ahead of it) interrupts nothing now: the cell is interrupted the moment
  // it starts, so the other cell finishes untouched.
  const onAbort = () => {
    if (running) {
      interrupt('cancelled');
    }
  };
  const onClosed = () =>
    kernelGone.reject(new KernelUnavailable('notebook-closed'));
  const onIopub = (_: unknown, message: KernelMessage.IIOPubMessage) => {
    const future = widget.outputArea.future;
    if (
      running ||
      message.header.msg_type !== 'execute_input' ||
      !future ||
      message.parent_header.msg_id !== future.msg.header.msg_id
    ) {
      return;
    }
    running = true;
    started = performance.now();
    options.onStarted?.();
    if (options.signal.aborted) {
      interrupt('cancelled');
      return;
    }
    limitTimer = window.setTimeout(
      () => interrupt('timeout'),
      options.timeLimit * 1000
    );
  };

  session.statusChanged.connect(onStatus);
  panel.disposed.connect(onClosed);
  options.signal.addEventListener('abort', onAbort);
  kernel.iopubMessage.connect(onIopub);
  try {
    const free = await untilKernelFree(
      panel,
      kernel,
      cellId,
      options,
      kernelGone.promise
    );
    if (!free) {
      return { status: 'cancelled', output: '', seconds: 0, runMs: 0 };
    }
    if (widget.isDisposed) {
      throw new CellDeleted();
    }
    const source = cell.sharedModel.getSource();
    const requested = performance.now();
    started = requested;
    let executed: { success: boolean; error?: KernelError | null } | null =
      null;
    const notebook = panel.content;
    const execution = (options.executor ?? defaultExecutor)
      .runCell({
        cell: widget,
        notebook: panel.model!,
        notebookConfig: notebook.notebookConfig,
        sessionContext: session,
        sessionDialogs: options.sessionDialogs,
        translator: options.translator,
        onCellExecutionScheduled: () => undefined,
        onCellExecuted: args => {
          executed = { success: args.success, error: args.error };
        }
      })
      // The executor rethrows a failed run after reporting it.
      .catch(reason => {
        if (executed) {
          return false;
        }
        throw reason;
      });
    let reply: boolean | null;
    try {
      reply = await Promise.race([
        execution,
        kernelGone.promise,
        replyGrace.promise
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
    const seconds = (performance.now() - started) / 1000;
    const output = runOutput(cell);
    const result = executed as {
      success: boolean;
      error?: KernelError | null;
    } | null;
    if (reply === null) {
      // The kernel never answered the interrupt.
      return {
        status: interruptedFor ?? 'timeout',
        output,
        seconds,
        runMs,
        source
      };
    }
    if (!result) {
      if (widget.isDisposed) {
        throw new CellDeleted();
      }
      // Nothing ran: no kernel, or the run was cancelled under us (a
      // restart, a lost connection).
      throw new KernelUnavailable(
        session.session?.kernel ? 'kernel-cancelled' : 'no-kernel-to-ask'
      );
    }
    if (result.success) {
      // Nothing printed: what the code computed is the result to read.
      const values =
        !output.trim() && options.inspect?.length
          ? await kernelValues(kernel, options.inspect)
          : {};
      return Object.keys(values).length
        ? { status: 'ok', output, seconds, runMs, source, values }
        : { status: 'ok', output, seconds, runMs, source };
    }
    if (interruptedFor) {
      // Our own interrupt: the KeyboardInterrupt is the symptom, not the news.
      return { status: interruptedFor, output, seconds, runMs, source };
    }
    const failure = result.error;
    const error = {
      ename: failure?.errorName ?? 'Error',
      evalue: failure?.errorValue ?? failure?.message ?? '',
      traceback: failure?.traceback ?? []
    };
    // Someone pressed the notebook's interrupt button.
    const status = error.ename === 'KeyboardInterrupt' ? 'cancelled' : 'error';
    return { status, output, error, seconds, runMs, source };
  } finally {
    window.clearTimeout(limitTimer);
    window.clearTimeout(graceTimer);
    session.statusChanged.disconnect(onStatus);
    panel.disposed.disconnect(onClosed);
    options.signal.removeEventListener('abort', onAbort);
    kernel.iopubMessage.disconnect(onIopub);
  }
}

/** JupyterLab's default cell executor, when the application provides none. */
const defaultExecutor: INotebookCellExecutor = { runCell: executeCell };

/**
 * With auto-execute off: wait until the user runs the cell themselves
 * (Shift+Enter, Run All, …) and report that run.
 */
export function waitForUserRun(
  panel: NotebookPanel,
  cellId: string,
  signal: AbortSignal
): Promise<IRunResult> {
  const done = new PromiseDelegate<IRunResult>();
  let scheduled = performance.now();
  // What the user ran: they may edit the cell before running it.
  let source: string | undefined;
  const onScheduled = (_: unknown, args: { cell: { model: ICellModel } }) => {
    if (args.cell.model.id === cellId) {
      scheduled = performance.now();
      source = args.cell.model.sharedModel.getSource();
    }
  };
  const onExecuted = (
    _: unknown,
    args: {
      cell: { model: ICellModel };
      success: boolean;
      error?: {
        errorName: string;
        errorValue: string;
        traceback: string[];
      } | null;
    }
  ) => {
    if (args.cell.model.id !== cellId) {
      return;
    }
    const cell = args.cell.model as ICodeCellModel;
    const seconds = (performance.now() - scheduled) / 1000;
    const output = runOutput(cell);
    source ??= cell.sharedModel.getSource();
    if (args.success) {
      done.resolve({ status: 'ok', output, seconds, runMs: 0, source });
    } else if (args.error) {
      const error = {
        ename: args.error.errorName,
        evalue: args.error.errorValue,
        traceback: args.error.traceback
      };
      const status =
        error.ename === 'KeyboardInterrupt' ? 'cancelled' : 'error';
      done.resolve({ status, output, error, seconds, runMs: 0, source });
    } else {
      done.reject(new KernelUnavailable('no-kernel-to-run'));
    }
  };
  const onCellsChanged = () => {
    if (!findCell(panel, cellId)) {
      done.reject(new CellDeleted());
    }
  };
  const onClosed = () => done.reject(new KernelUnavailable('notebook-closed'));
  // A restart or a dead kernel while the cell waits: nothing will report.
  const onStatus = (_: unknown, status: Kernel.Status) => {
    if (
      status === 'dead' ||
      status === 'restarting' ||
      status === 'autorestarting'
    ) {
      done.reject(
        new KernelUnavailable(
          status === 'dead' ? 'died-before-run' : 'restarted-before-run'
        )
      );
    }
  };
  const session = panel.sessionContext;
  const onAbort = () => done.reject(new DOMException('Stopped', 'AbortError'));

  NotebookActions.executionScheduled.connect(onScheduled);
  NotebookActions.executed.connect(onExecuted);
  panel.model?.cells.changed.connect(onCellsChanged);
  panel.disposed.connect(onClosed);
  session.statusChanged.connect(onStatus);
  signal.addEventListener('abort', onAbort);
  if (signal.aborted) {
    onAbort();
  }
  return done.promise.finally(() => {
    NotebookActions.executionScheduled.disconnect(onScheduled);
    NotebookActions.executed.disconnect(onExecuted);
    panel.model?.cells.changed.disconnect(onCellsChanged);
    panel.disposed.disconnect(onClosed);
    session.statusChanged.disconnect(onStatus);
    signal.removeEventListener('abort', onAbort);
  });
}
