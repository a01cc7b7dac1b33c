/**
 * What the plugins that act on a notebook cell through the chat (auto-fix,
 * Change This Cell) need, in one place: the same services, one translation
 * bundle.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import {
  ITranslator,
  nullTranslator,
  TranslationBundle
} from '@jupyterlab/translation';

import { IOciChatModel } from '../tokens';

/** The services a cell plugin is activated with. */
export interface ICellPluginServices {
  app: JupyterFrontEnd;
  chat: IOciChatModel;
  tracker: INotebookTracker;
  rendermime: IRenderMimeRegistry;
  palette: ICommandPalette | null;
  settingRegistry: ISettingRegistry | null;
  trans: TranslationBundle;
}

/**
 * A plugin that needs the chat, the notebooks and the renderers, and uses
 * the palette, the settings and the translations when JupyterLab has them.
 */
export function cellPlugin(
  id: string,
  description: string,
  activate: (services: ICellPluginServices) => void
): JupyterFrontEndPlugin<void> {
  return {
    id,
    description,
    autoStart: true,
    requires: [IOciChatModel, INotebookTracker, IRenderMimeRegistry],
    optional: [ICommandPalette, ISettingRegistry, ITranslator],
    activate: (
      app: JupyterFrontEnd,
      chat: IOciChatModel,
      tracker: INotebookTracker,
      rendermime: IRenderMimeRegistry,
      palette: ICommandPalette | null,
      settingRegistry: ISettingRegistry | null,
      translator: ITranslator | null
    ) =>
      activate({
        app,
        chat,
        tracker,
        rendermime,
        palette,
        settingRegistry,
        trans: (translator ?? nullTranslator).load('oci_jupyter')
      })
  };
}
