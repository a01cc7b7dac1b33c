/**
 * Where the model's code goes: a rewrite of the request's cell (the old
 * source kept, one undo step) or a new cell below the anchor.
 */
import { ICodeCellModel } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';

import {
  findCell,
  IOciCellMetadata,
  METADATA_KEY,
  ociMetadata
} from './metadata';
import { KernelUnavailable } from './outcome';

/** Sources kept in `previous_sources` (the notebook's undo keeps them too). */
const PREVIOUS_SOURCES_KEPT = 20;
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
  /** A fix or an edit: remember the cell's source before its first rewrite. */
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
