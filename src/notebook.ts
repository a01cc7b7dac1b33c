/**
 * The executor: the model's code becomes a real cell of the user's notebook
 * and runs in the notebook's own kernel, through the same APIs a user's
 * Shift+Enter goes through.
 */
import { CodeCell, ICellModel, ICodeCellModel } from '@jupyterlab/cells';
import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { PromiseDelegate } from '@lumino/coreutils';

import { cut } from './context';
import { IExecutionError, OutcomeStatus } from './chat/protocol';
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
 * A run queued behind a busy kernel is interrupted after its time limit plus
 * this, which stays under the server's own grace (30 s), so the browser's
 * report, not the server's guess, ends the turn.
 */
const QUEUE_SLACK_MS = 20 * 1000;

/**
 * The code cannot run: no kernel, a dead kernel, a closed notebook. Reported
 * to the server as an error outcome with this exception name.
 */
export class KernelUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KernelUnavailable';
  }
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
    throw new KernelUnavailable('The notebook was closed.');
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
    throw new KernelUnavailable('The notebook was closed.');
  }
  const session = panel.sessionContext;
  if (!session.isReady) {
    await Promise.race([session.ready, delay(KERNEL_START_MS)]);
  }
  const kernel = session.session?.kernel;
  if (panel.isDisposed) {
    throw new KernelUnavailable('The notebook was closed.');
  }
  if (!kernel) {
    throw new KernelUnavailable(
      'The notebook has no kernel. Select one (Kernel › Change Kernel…) and ask again.'
    );
  }
  if (kernel.status === 'dead') {
    throw new KernelUnavailable(
      'The kernel is dead. Restart it (Kernel › Restart Kernel…) and ask again.'
    );
  }
  return kernel;
}

function outcomeOf(
  reply: KernelMessage.IExecuteReplyMsg['content'],
  cell: ICodeCellModel
): Omit<IRunResult, 'seconds' | 'runMs'> {
  // The error travels in its own field: the server shows the model the
  // output before the error, then the traceback.
  const output = runOutput(cell);
  if (reply.status === 'ok') {
    return { status: 'ok', output };
  }
  if (reply.status === 'error') {
    const error = {
      ename: reply.ename,
      evalue: reply.evalue,
      traceback: reply.traceback
    };
    // Someone pressed the notebook's interrupt button.
    const status = reply.ename === 'KeyboardInterrupt' ? 'cancelled' : 'error';
    return { status, output, error };
  }
  return { status: 'cancelled', output };
}

export interface IRunOptions {
  /** Seconds the code may run before the kernel is interrupted. */
  timeLimit: number;
  /** Aborting interrupts the kernel: the user pressed Stop. */
  signal: AbortSignal;
}

/**
 * Run one cell in the notebook's kernel and report what happened. Never
 * hangs: a run over the time limit is interrupted, a kernel that dies or
 * restarts ends the wait, and Stop interrupts.
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
  const startLimit = () => {
    window.clearTimeout(limitTimer);
    started = performance.now();
    limitTimer = window.setTimeout(
      () => interrupt('timeout'),
      options.timeLimit * 1000
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
          status === 'dead'
            ? 'The kernel died while the code ran.'
            : 'The kernel restarted while the code ran.'
        )
      );
    }
  };
  const onAbort = () => interrupt('cancelled');
  const onClosed = () =>
    kernelGone.reject(new KernelUnavailable('The notebook was closed.'));

  session.statusChanged.connect(onStatus);
  panel.disposed.connect(onClosed);
  options.signal.addEventListener('abort', onAbort);
  const requested = performance.now();
  try {
    const execution = CodeCell.execute(widget, session);
    // Set synchronously by CodeCell.execute. The clock starts when the kernel
    // starts the code (execute_input), not while it waits behind another
    // cell; until then a generous limit still bounds the wait.
    const future = widget.outputArea.future;
    limitTimer = window.setTimeout(
      () => interrupt('timeout'),
      options.timeLimit * 1000 + QUEUE_SLACK_MS
    );
    future?.registerMessageHook(message => {
      if (message.header.msg_type === 'execute_input') {
        startLimit();
      }
      return true;
    });
    if (options.signal.aborted) {
      onAbort();
    }
    let reply: KernelMessage.IExecuteReplyMsg | void | null;
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
      // The future was disposed under us: a restart or a lost connection.
      throw new KernelUnavailable(
        `The run ended without a reply (${(reason as Error).message ?? reason}).`
      );
    }
    const runMs = performance.now() - requested;
    const seconds = (performance.now() - started) / 1000;
    if (reply === undefined) {
      // CodeCell.execute skips empty code and kernel-less sessions.
      if (!session.session?.kernel) {
        throw new KernelUnavailable('The notebook has no kernel.');
      }
      return { status: 'ok', output: '', seconds, runMs };
    }
    if (reply === null) {
      // The kernel never answered the interrupt.
      return {
        status: interruptedFor ?? 'timeout',
        output: runOutput(cell),
        seconds,
        runMs
      };
    }
    const result = outcomeOf(reply.content, cell);
    if (interruptedFor && result.status !== 'ok') {
      // Our own interrupt: the KeyboardInterrupt is the symptom, not the news.
      return {
        status: interruptedFor,
        output: result.output,
        seconds,
        runMs
      };
    }
    return { ...result, seconds, runMs };
  } finally {
    window.clearTimeout(limitTimer);
    window.clearTimeout(graceTimer);
    session.statusChanged.disconnect(onStatus);
    panel.disposed.disconnect(onClosed);
    options.signal.removeEventListener('abort', onAbort);
  }
}

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
  const onScheduled = (_: unknown, args: { cell: { model: ICellModel } }) => {
    if (args.cell.model.id === cellId) {
      scheduled = performance.now();
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
    if (args.success) {
      done.resolve({ status: 'ok', output, seconds, runMs: 0 });
    } else if (args.error) {
      const error = {
        ename: args.error.errorName,
        evalue: args.error.errorValue,
        traceback: args.error.traceback
      };
      const status =
        error.ename === 'KeyboardInterrupt' ? 'cancelled' : 'error';
      done.resolve({ status, output, error, seconds, runMs: 0 });
    } else {
      done.reject(
        new KernelUnavailable(
          'The cell could not run: the notebook has no kernel.'
        )
      );
    }
  };
  const onCellsChanged = () => {
    if (!findCell(panel, cellId)) {
      done.reject(new CellDeleted());
    }
  };
  const onClosed = () =>
    done.reject(new KernelUnavailable('The notebook was closed.'));
  const onAbort = () => done.reject(new DOMException('Stopped', 'AbortError'));

  NotebookActions.executionScheduled.connect(onScheduled);
  NotebookActions.executed.connect(onExecuted);
  panel.model?.cells.changed.connect(onCellsChanged);
  panel.disposed.connect(onClosed);
  signal.addEventListener('abort', onAbort);
  if (signal.aborted) {
    onAbort();
  }
  return done.promise.finally(() => {
    NotebookActions.executionScheduled.disconnect(onScheduled);
    NotebookActions.executed.disconnect(onExecuted);
    panel.model?.cells.changed.disconnect(onCellsChanged);
    panel.disposed.disconnect(onClosed);
    signal.removeEventListener('abort', onAbort);
  });
}
