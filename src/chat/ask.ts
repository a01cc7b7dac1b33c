/**
 * A request's `ask`: the notebook's context, gathered as the user's settings
 * say, sent to the server with the request.
 */
import type { ICodeCellModel } from '@jupyterlab/cells';
import type { NotebookPanel } from '@jupyterlab/notebook';

import { cellError } from '../autofix';
import { cellOutput, notebookContext } from '../context';
import type { IChatConnection } from './connection';
import type { DoneStatus, IEditCell, INotebookContext } from './protocol';
import type { ChatRequest } from './request';
import type { ChatText } from './texts';
import type { IChatSettings } from './types';

/**
 * Cells a fix or an edit sends at least: the server ranks those that define
 * the names the cell reads first, and fits what it can into the model's
 * window.
 */
const FIX_CONTEXT_CELLS = 100;

/** The context an ask sends, as the user's settings say. */
export function askContext(
  panel: NotebookPanel,
  settings: IChatSettings,
  /** `fix`: a fix or an edit, about one cell of the user's. */
  options: { anchorCellId: string | null; fix: boolean }
): Promise<INotebookContext> {
  return notebookContext(panel, {
    anchorCellId: options.anchorCellId,
    // A fix sends more of the cells above: the server picks those that
    // define what the failing cell reads, wherever they are.
    contextCells: options.fix
      ? Math.max(settings.contextCells, FIX_CONTEXT_CELLS)
      : settings.contextCells,
    sendOutputs: settings.sendOutputs,
    sendVariables: settings.sendVariables
  });
}

/**
 * The cell an edit changes, as its ask sends it: the source, its last output
 * (as the context sends outputs, when the user sends them), the error of its
 * last run, and the lines the request is about.
 */
export function editCell(
  cell: ICodeCellModel,
  selection: string,
  settings: Pick<IChatSettings, 'sendOutputs'>
): IEditCell {
  const edit: IEditCell = { source: cell.sharedModel.getSource() };
  const output = settings.sendOutputs ? cellOutput(cell) : '';
  if (output) {
    edit.output = output;
  }
  const error = cellError(cell);
  if (error) {
    edit.error = error;
  }
  if (selection.trim()) {
    edit.selection = selection;
  }
  return edit;
}

/**
 * Gather the notebook's context and send the request's ask. Null once sent;
 * else how the request ends without having reached the server.
 */
export async function sendAsk(
  request: ChatRequest,
  settings: IChatSettings,
  connection: IChatConnection
): Promise<{ status: DoneStatus; text: ChatText } | null> {
  let context: INotebookContext;
  try {
    context = await askContext(request.panel, settings, {
      anchorCellId: request.anchorCellId,
      fix: request.rewrites
    });
  } catch (reason) {
    const detail = String((reason as Error).message ?? reason);
    return { status: 'error', text: { code: 'notebook-unreadable', detail } };
  }
  if (request.view.stopping || request.isFinished) {
    // Stopped while the context was gathered: nothing reached the server.
    return { status: 'cancelled', text: { code: 'stopped' } };
  }
  if (!connection.send(request.askMessage(context, settings))) {
    return { status: 'error', text: { code: 'not-connected' } };
  }
  performance.mark('oci:ask-sent', { detail: { id: request.id } });
  return null;
}
