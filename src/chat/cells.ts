/**
 * The notebook as the chat talks about it: which cells each request wrote
 * (by step), the cell the next message refines, and the names the chat
 * gives cells (`In [4]`, or `cell 5` for a cell that never ran).
 */
import type { ICellModel } from '@jupyterlab/cells';
import type { NotebookPanel } from '@jupyterlab/notebook';

import { FIXING_CLASS } from '../autofix';
import { cellLabel } from '../context';
import { findCell, requestStepCells } from '../notebook';
import type { IRefineTarget, IStepCell, IThread } from './types';

/** How the chat names a cell: its prompt, or its position if it never ran. */
export function cellName(found: { index: number; cell: ICellModel }): string {
  const label = cellLabel(found.cell);
  return label === 'In [ ]' ? `cell ${found.index + 1}` : label;
}

/**
 * The name of a cell the loop is about to rewrite if the user edited it
 * since (it no longer holds `expected`), else null.
 */
export function editedCell(
  panel: NotebookPanel,
  cellId: string,
  expected: string | undefined
): string | null {
  const found = findCell(panel, cellId);
  if (
    !found ||
    expected === undefined ||
    found.cell.sharedModel.getSource() === expected
  ) {
    return null;
  }
  return cellName(found);
}

/**
 * Mark a cell the loop writes and runs (until its request ends), so the
 * user sees which cell is the chat's before typing in it.
 */
export function markWorking(
  panel: NotebookPanel,
  cellId: string,
  on: boolean
): void {
  const widget = panel.content.widgets.find(w => w.model.id === cellId);
  widget?.toggleClass(FIXING_CLASS, on);
}

/**
 * The cells of each request, by step: those this session placed, and those
 * the cells' metadata names (after a reload). Read on every render, so the
 * metadata is read once per change of the cells (`invalidate`), not once
 * per call.
 */
export class RequestCells {
  /** A request's code for a step went into this cell. */
  record(requestId: string, step: number, cellId: string): void {
    let placed = this._placed.get(requestId);
    if (!placed) {
      placed = new Map();
      this._placed.set(requestId, placed);
    }
    placed.set(step, cellId);
    this.invalidate();
  }

  /** The cells changed (or the notebook did): read them again when asked. */
  invalidate(): void {
    this._index = null;
  }

  /** The cells of a request still in this notebook, by step. */
  stepCells(panel: NotebookPanel, requestId: string): Map<number, string> {
    const { ids, byMetadata } = this._indexOf(panel);
    const result = new Map<number, string>();
    for (const [step, cellId] of byMetadata.get(requestId) ?? []) {
      result.set(step, cellId);
    }
    for (const [step, cellId] of this._placed.get(requestId) ?? []) {
      if (ids.has(cellId)) {
        result.set(step, cellId);
      }
    }
    return result;
  }

  /**
   * Show a cell the chat talks about: a step's cell, or the request's last
   * cell without a step.
   */
  async reveal(
    panel: NotebookPanel,
    requestId: string,
    step?: number
  ): Promise<void> {
    const cellId =
      step === undefined
        ? this.lastCell(panel, requestId)
        : (this.stepCells(panel, requestId).get(step) ?? null);
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

  /** The id of the cell a request wrote last (its last step's), if any. */
  lastCell(panel: NotebookPanel, requestId: string): string | null {
    let last: string | null = null;
    let lastStep = -Infinity;
    for (const [step, cellId] of this.stepCells(panel, requestId)) {
      if (step > lastStep) {
        lastStep = step;
        last = cellId;
      }
    }
    return last;
  }

  /** A request's cell for one step, named, if it is still there. */
  stepCell(
    panel: NotebookPanel,
    requestId: string,
    step: number
  ): IStepCell | null {
    const cellId = this.stepCells(panel, requestId).get(step);
    const found = cellId ? findCell(panel, cellId) : null;
    return found ? { cellId: found.cell.id, label: cellName(found) } : null;
  }

  /**
   * The cell a refinement would rewrite: the cell of the most recent ended
   * request that still exists and is code.
   */
  refineCandidate(panel: NotebookPanel, thread: IThread): IRefineTarget | null {
    for (let i = thread.requests.length - 1; i >= 0; i--) {
      const request = thread.requests[i];
      if (request.status === 'running') {
        continue;
      }
      const cellId = this.lastCell(panel, request.id);
      const found = cellId ? findCell(panel, cellId) : null;
      if (found && found.cell.type === 'code') {
        return {
          cellId: found.cell.id,
          requestId: request.id,
          label: cellName(found)
        };
      }
    }
    return null;
  }

  private _indexOf(panel: NotebookPanel): {
    ids: Set<string>;
    byMetadata: Map<string, Map<number, string>>;
  } {
    if (!this._index || this._index.panel !== panel) {
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
      this._index = { panel, ids, byMetadata };
    }
    return this._index;
  }

  /** The cells each request of this session wrote, by step. */
  private _placed = new Map<string, Map<number, string>>();
  private _index: {
    panel: NotebookPanel;
    ids: Set<string>;
    byMetadata: Map<string, Map<number, string>>;
  } | null = null;
}
