/**
 * `%%oci --insert` with several steps: one cell per step.
 *
 * A kernel can ask for one new cell per run (`set_next_input`), and
 * JupyterLab honours only the first request, so the magic puts every step
 * into that one cell (each under a `# oci · step N` comment) and adds an
 * output with the steps apart (STEPS_MIME). Here, once the magic's cell has
 * run, that one cell becomes one cell per step. Elsewhere (another front
 * end) the combined cell stays, which still holds all the code.
 */
import { ICodeCellModel } from '@jupyterlab/cells';
import * as nbformat from '@jupyterlab/nbformat';
import { IOutputModel } from '@jupyterlab/rendermime';
import { Notebook } from '@jupyterlab/notebook';

/** The output the magic adds: `{combined, cells}` (oci_jupyter/magic.py). */
export const STEPS_MIME = 'application/vnd.oci.steps+json';

interface ISteps {
  /** The source of the cell the kernel asked JupyterLab to insert. */
  combined: string;
  /** Each step's code, in order. */
  cells: string[];
}

function stepsOf(output: IOutputModel): ISteps | null {
  const data = output.data[STEPS_MIME] as Partial<ISteps> | undefined;
  if (
    !data ||
    typeof data.combined !== 'string' ||
    !Array.isArray(data.cells) ||
    data.cells.some(c => typeof c !== 'string')
  ) {
    return null;
  }
  return { combined: data.combined, cells: data.cells };
}

/**
 * After a cell ran: if it is a `%%oci --insert` cell with several steps,
 * replace the combined cell the kernel inserted below it by one cell per
 * step. Only that cell is touched, and only while it still holds exactly
 * what the kernel put there; the marker output is then reduced to its text,
 * so a reload does nothing again.
 */
export function splitMagicSteps(notebook: Notebook, cellId: string): boolean {
  const model = notebook.model;
  if (!model) {
    return false;
  }
  let index = -1;
  for (let i = 0; i < model.cells.length; i++) {
    if (model.cells.get(i).id === cellId) {
      index = i;
      break;
    }
  }
  const cell = index >= 0 ? model.cells.get(index) : null;
  if (!cell || cell.type !== 'code') {
    return false;
  }
  const outputs = (cell as ICodeCellModel).outputs;
  for (let o = 0; o < outputs.length; o++) {
    const output = outputs.get(o);
    const steps = stepsOf(output);
    if (!steps) {
      continue;
    }
    // The marker has done its work either way: keep only its words.
    const data = { ...output.data };
    delete data[STEPS_MIME];
    outputs.set(o, {
      output_type: 'display_data',
      data,
      metadata: output.metadata
    } as nbformat.IDisplayData);
    const below =
      index + 1 < model.cells.length ? model.cells.get(index + 1) : null;
    if (
      !below ||
      below.type !== 'code' ||
      below.sharedModel.getSource() !== steps.combined ||
      steps.cells.length < 2
    ) {
      return false; // not the cell the kernel inserted (or it was edited): leave it
    }
    model.sharedModel.transact(() => {
      below.sharedModel.setSource(steps.cells[0]);
      model.sharedModel.insertCells(
        index + 2,
        steps.cells.slice(1).map(source => ({ cell_type: 'code', source }))
      );
    });
    return true;
  }
  return false;
}
