/**
 * The notebook's kernel as the loop's cell sees it: there at all, and free
 * of anyone else's work before the cell is sent.
 */
import { ICodeCellModel } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Kernel } from '@jupyterlab/services';

import { KernelUnavailable } from './outcome';
import type { IRunOptions } from './run';

/** A kernel still starting gets this long before the run is given up. */
const KERNEL_START_MS = 30 * 1000;
/** How often a busy kernel is looked at again while the cell waits. */
const BUSY_POLL_MS = 250;

function delay(ms: number): Promise<void> {
  return new Promise(resolve => window.setTimeout(resolve, ms));
}

/**
 * The notebook's kernel, once it is there: a kernel that is starting gets a
 * little time; a missing or dead one is an error the user can act on.
 */
export async function usableKernel(
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
export async function untilKernelFree(
  panel: NotebookPanel,
  kernel: Kernel.IKernelConnection,
  cellId: string,
  options: Pick<IRunOptions, 'signal' | 'onQueued'>,
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
