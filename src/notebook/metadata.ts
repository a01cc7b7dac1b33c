/**
 * What oci_jupyter writes into a notebook's cells, and how it finds them:
 * the `oci` cell metadata (which request and step wrote a cell, the sources
 * it replaced) and cells by id.
 */
import { ICellModel } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';

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
   * The source the user wrote before a fix or an edit first rewrote the cell
   * (`oci:restore-original` brings it back).
   */
  original_source?: string;
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
