/**
 * What ghost text sends with each keystroke: the cell's text on either side
 * of the cursor, and the notebook around it (cells above and below, short
 * outputs, the kernel's variables). The server fits all of it into a small
 * token budget with the model's tokenizer (oci_jupyter/completions).
 */
import { ICellModel, ICodeCellModel } from '@jupyterlab/cells';
import { Text } from '@jupyterlab/coreutils';

import { IVariableInfo } from '../chat/protocol';
import { outputText } from '../outputs';

/** The cells sent at most each way: the server keeps the nearest that fit. */
export const CELLS_BEFORE = 40;
export const CELLS_AFTER = 10;
/** A cell's source beyond this is sent by its end (above) or start (below). */
export const SOURCE_CHARS = 4000;
/** Longer outputs are data, not a hint: not sent. */
export const OUTPUT_CHARS = 600;

export interface INotebookCellPayload {
  source: string;
  output: string;
  kind: 'code' | 'markdown' | 'raw';
}

export interface INotebookPayload {
  language: string;
  cells_before: INotebookCellPayload[];
  cells_after: INotebookCellPayload[];
  variables: IVariableInfo[];
}

/** The text before and after the cursor (`offset` counts characters). */
export function splitAtCursor(
  text: string,
  offset: number
): { before: string; after: string } {
  const index = Text.charIndexToJsIndex(offset, text);
  return { before: text.slice(0, index), after: text.slice(index) };
}

function cellPayload(
  cell: ICellModel,
  keep: 'start' | 'end',
  outputs: boolean
): INotebookCellPayload {
  let source = cell.sharedModel.getSource();
  if (source.length > SOURCE_CHARS) {
    source =
      keep === 'end'
        ? source.slice(-SOURCE_CHARS)
        : source.slice(0, SOURCE_CHARS);
  }
  let output = '';
  if (outputs && cell.type === 'code') {
    const text = outputText((cell as ICodeCellModel).outputs.toJSON()).trim();
    output = text.length <= OUTPUT_CHARS ? text : '';
  }
  const kind =
    cell.type === 'code' || cell.type === 'markdown' ? cell.type : 'raw';
  return { source, output, kind };
}

/** The notebook around the cell at `index`. */
export function notebookPayload(
  cells: readonly ICellModel[],
  index: number,
  options: { language: string; outputs: boolean; variables: IVariableInfo[] }
): INotebookPayload {
  const before = cells.slice(Math.max(0, index - CELLS_BEFORE), index);
  const after = cells.slice(index + 1, index + 1 + CELLS_AFTER);
  return {
    language: options.language,
    cells_before: before.map(cell => cellPayload(cell, 'end', options.outputs)),
    cells_after: after.map(cell => cellPayload(cell, 'start', false)),
    variables: options.variables
  };
}

/**
 * A suggestion as shown: at most `maxLines` lines, and not past a line that
 * repeats the first line after the cursor (the model has written the middle
 * and goes on to rewrite what follows it); `done` once cut. Trailing blank
 * space is left out once the suggestion is complete.
 */
export function shapeSuggestion(
  text: string,
  maxLines: number,
  complete: boolean,
  after = ''
): { text: string; done: boolean } {
  const lines = text.split('\n');
  const next = after
    .split('\n')
    .find(line => line.trim())
    ?.trim();
  // Whole lines only (the last one may still grow), after the first.
  const whole = complete ? lines.length : lines.length - 1;
  for (let index = 1; next && index < whole; index++) {
    if (lines[index].trim() === next) {
      return { text: lines.slice(0, index).join('\n').trimEnd(), done: true };
    }
  }
  if (maxLines > 0 && lines.length > maxLines) {
    return { text: lines.slice(0, maxLines).join('\n').trimEnd(), done: true };
  }
  return { text: complete ? text.trimEnd() : text, done: false };
}
