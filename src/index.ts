/**
 * oci_jupyter's JupyterLab plugins, one per capability: the executor of the
 * loop's cells, the chat (the `IOciChatModel` service), the sidebar (model
 * status and chat), auto-fix of failing cells, changing a cell by
 * instruction, `%%oci --insert`'s steps and ghost text as the user types.
 * Other extensions may use the services through the tokens.
 */
import { JupyterFrontEndPlugin } from '@jupyterlab/application';

import { autoFixPlugin } from './plugins/autofix';
import { cellExecutorPlugin } from './plugins/cellexecutor';
import { editCellPlugin } from './plugins/edit';
import { chatPlugin } from './plugins/chat';
import { inlineCompletionPlugin } from './plugins/inline-completion';
import { magicStepsPlugin } from './plugins/magicsteps';
import { sidebarPlugin } from './plugins/sidebar';

export { CommandIDs } from './commands';
export { IOciCellExecutor, IOciChatModel } from './tokens';

const plugins: JupyterFrontEndPlugin<any>[] = [
  cellExecutorPlugin,
  chatPlugin,
  sidebarPlugin,
  autoFixPlugin,
  editCellPlugin,
  magicStepsPlugin,
  inlineCompletionPlugin
];

export default plugins;
