/**
 * The cell executor plugin: provides the executor of the loop's cells,
 * bound to JupyterLab's own cell executor and session dialogs (the path of
 * Shift+Enter).
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ISessionContextDialogs } from '@jupyterlab/apputils';
import { INotebookCellExecutor } from '@jupyterlab/notebook';
import { ITranslator } from '@jupyterlab/translation';

import { createCellExecutor } from '../cellexecutor';
import { IOciCellExecutor } from '../tokens';

export const cellExecutorPlugin: JupyterFrontEndPlugin<IOciCellExecutor> = {
  id: 'oci-jupyter:cell-executor',
  description:
    "Writes the model's code into notebook cells and runs them in the notebook's kernel.",
  autoStart: true,
  provides: IOciCellExecutor,
  optional: [INotebookCellExecutor, ISessionContextDialogs, ITranslator],
  activate: (
    _: JupyterFrontEnd,
    executor: INotebookCellExecutor | null,
    sessionDialogs: ISessionContextDialogs | null,
    translator: ITranslator | null
  ): IOciCellExecutor =>
    createCellExecutor({
      executor: executor ?? undefined,
      sessionDialogs: sessionDialogs ?? undefined,
      translator: translator ?? undefined
    })
};
