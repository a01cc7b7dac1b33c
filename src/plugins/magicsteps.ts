/**
 * `%%oci --insert`: one cell per step once the magic's cell has run (see
 * ../magicsteps.ts).
 */
import { JupyterFrontEndPlugin } from '@jupyterlab/application';
import { NotebookActions } from '@jupyterlab/notebook';

import { splitMagicSteps } from '../magicsteps';

export const magicStepsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'oci-jupyter:magic-steps',
  description: 'Splits the cell of `%%oci --insert` into one cell per step.',
  autoStart: true,
  activate: () => {
    NotebookActions.executed.connect((_, { notebook, cell, success }) => {
      if (success && cell.model.type === 'code') {
        splitMagicSteps(notebook, cell.model.id);
      }
    });
  }
};
