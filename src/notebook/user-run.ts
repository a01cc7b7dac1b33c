/**
 * With auto-execute off, the loop's cell waits for the user's own run
 * (Shift+Enter, Run All, ...): that run is what the model reads.
 */
import { ICellModel, ICodeCellModel } from '@jupyterlab/cells';
import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel } from '@jupyterlab/services';
import { PromiseDelegate } from '@lumino/coreutils';

import { findCell } from './metadata';
import {
  CellDeleted,
  failedRun,
  IKernelError,
  IRunResult,
  KernelUnavailable,
  runOutput
} from './outcome';

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
      error?: IKernelError | null;
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
      done.resolve(failedRun(error, { output, seconds, runMs: 0, source }));
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
