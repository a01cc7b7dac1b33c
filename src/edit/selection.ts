/**
 * What an edit request is about: the lines selected in the cell's editor,
 * whole (a model reads "these lines" better than a cut through one), or
 * the whole cell when nothing is selected.
 */
import type { Cell } from '@jupyterlab/cells';

/** A position in a cell's source, as the editor gives it (0-based). */
export interface ITextPosition {
  line: number;
  column: number;
}

/** The selected lines: their text and where they are (1-based, inclusive). */
export interface ISelectedLines {
  text: string;
  first: number;
  last: number;
}

/**
 * The whole lines a selection from `start` to `end` touches, or null for an
 * empty selection (a cursor) or one of blank lines only.
 */
export function linesOf(
  source: string,
  start: ITextPosition,
  end: ITextPosition
): ISelectedLines | null {
  // The editor's anchor may come after its head (a selection made upwards).
  const [from, to] =
    start.line < end.line ||
    (start.line === end.line && start.column <= end.column)
      ? [start, end]
      : [end, start];
  if (from.line === to.line && from.column === to.column) {
    return null;
  }
  // A selection that ends at the start of a line (a whole-line selection
  // dragged down) does not take that line.
  const last = to.column === 0 && to.line > from.line ? to.line - 1 : to.line;
  const text = source
    .split('\n')
    .slice(from.line, last + 1)
    .join('\n');
  if (!text.trim()) {
    return null;
  }
  return { text, first: from.line + 1, last: last + 1 };
}

/** The lines selected in a cell's editor, if any. */
export function selectedLines(editor: Cell['editor']): ISelectedLines | null {
  if (!editor) {
    return null;
  }
  const { start, end } = editor.getSelection();
  return linesOf(editor.model.sharedModel.getSource(), start, end);
}
