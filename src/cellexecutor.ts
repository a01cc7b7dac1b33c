/**
 * The executor of the loop's cells, as a service (`IOciCellExecutor`): the
 * functions of ./notebook.ts, with JupyterLab's own cell executor and
 * session dialogs bound in, so every run goes the way of Shift+Enter.
 */
import { IRunOptions, placeCode, runCell, waitForUserRun } from './notebook';
import type { IOciCellExecutor } from './tokens';

export function createCellExecutor(
  options: Pick<IRunOptions, 'executor' | 'sessionDialogs' | 'translator'>
): IOciCellExecutor {
  return {
    placeCode,
    runCell: (panel, cellId, runOptions) =>
      runCell(panel, cellId, {
        ...runOptions,
        executor: runOptions.executor ?? options.executor,
        sessionDialogs: runOptions.sessionDialogs ?? options.sessionDialogs,
        translator: runOptions.translator ?? options.translator
      }),
    waitForUserRun
  };
}
