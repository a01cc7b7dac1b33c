/**
 * JupyterLab's notebook trust, as the chat reads it: whether the chat may
 * run the model's code at once in a notebook.
 *
 * A notebook's content (its cells, their outputs) reaches the model, and a
 * notebook from someone else can carry instructions. JupyterLab already
 * tells a notebook the user made or ran from one that came from elsewhere:
 * the server marks every code cell of a notebook it did not sign as not
 * trusted; a new cell the user makes, a cell they run, and every cell after
 * *Trust Notebook* are trusted. The chat runs code at once only where every
 * code cell is trusted (the status bar's "Notebook trusted"); elsewhere
 * each cell waits for the user's Run.
 */
import type { ICellModel } from '@jupyterlab/cells';
import type { NotebookPanel } from '@jupyterlab/notebook';
import { DisposableDelegate, IDisposable } from '@lumino/disposable';

/**
 * Whether the chat may run code at once in this notebook: every code cell
 * is trusted. A notebook without code cells (only markdown, whose trust the
 * server never records) counts only when each of its cells is trusted, in
 * this session: its text may be someone else's too. No notebook model: not
 * trusted.
 */
export function isNotebookTrusted(
  panel: Pick<NotebookPanel, 'model'> | null | undefined,
  /** A cell left out (the chat's own cell waiting for the user's run). */
  except?: string
): boolean {
  const cells = panel?.model?.cells;
  if (!cells) {
    return false;
  }
  let code = 0;
  let all = true;
  for (let index = 0; index < cells.length; index++) {
    const cell = cells.get(index);
    if (cell.id === except) {
      continue;
    }
    if (cell.type === 'code') {
      code++;
      if (!cell.trusted) {
        return false;
      }
    } else if (!cell.trusted) {
      all = false;
    }
  }
  return code > 0 || all;
}

/**
 * Call back when the notebook's trust may have changed: a cell's trust
 * (a run, *Trust Notebook*), a cell added or removed. Disposing stops it.
 */
export function followTrust(
  panel: Pick<NotebookPanel, 'model'>,
  callback: () => void
): IDisposable {
  const model = panel.model;
  if (!model) {
    return new DisposableDelegate(() => undefined);
  }
  const followed = new Set<ICellModel>();
  const onState = (_: ICellModel, change: { name: string }) => {
    if (change.name === 'trusted') {
      callback();
    }
  };
  const follow = () => {
    const now = new Set<ICellModel>();
    for (let index = 0; index < model.cells.length; index++) {
      now.add(model.cells.get(index));
    }
    for (const cell of followed) {
      if (!now.has(cell)) {
        followed.delete(cell);
        if (!cell.isDisposed) {
          cell.stateChanged.disconnect(onState);
        }
      }
    }
    for (const cell of now) {
      if (!followed.has(cell)) {
        followed.add(cell);
        cell.stateChanged.connect(onState);
      }
    }
  };
  const onCells = () => {
    follow();
    callback();
  };
  follow();
  model.cells.changed.connect(onCells);
  return new DisposableDelegate(() => {
    if (!model.isDisposed) {
      model.cells.changed.disconnect(onCells);
    }
    for (const cell of followed) {
      if (!cell.isDisposed) {
        cell.stateChanged.disconnect(onState);
      }
    }
    followed.clear();
  });
}
