/**
 * oci_jupyter's JupyterLab plugin: the OpenCodeInterpreter sidebar and the
 * command that opens it.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';

import { ociIcon } from './icon';
import { SETTLED_POLL_INTERVAL } from './model';
import { OciPanel, PANEL_ID } from './panel';

const PLUGIN_ID = 'oci-jupyter:plugin';

export namespace CommandIDs {
  export const openPanel = 'oci:open-panel';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'OpenCodeInterpreter: a sidebar for the code model hosted by the Jupyter server.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer, ISettingRegistry, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null
  ) => {
    const trans = (translator ?? nullTranslator).load('oci_jupyter');
    const panel = new OciPanel({
      settledInterval: SETTLED_POLL_INTERVAL,
      translator: translator ?? undefined
    });
    app.shell.add(panel, 'right', { rank: 1000 });
    if (restorer) {
      restorer.add(panel, PANEL_ID);
    }

    app.commands.addCommand(CommandIDs.openPanel, {
      label: trans.__('Open OpenCodeInterpreter'),
      caption: trans.__('Show the OpenCodeInterpreter sidebar'),
      icon: args => (args['isPalette'] ? undefined : ociIcon),
      execute: () => {
        app.shell.activateById(panel.id);
      }
    });
    if (palette) {
      palette.addItem({
        command: CommandIDs.openPanel,
        category: trans.__('OpenCodeInterpreter')
      });
    }

    if (settingRegistry) {
      const applySettings = (settings: ISettingRegistry.ISettings) => {
        panel.model.settledInterval = settings.get('statusPollInterval')
          .composite as number;
      };
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          applySettings(settings);
          settings.changed.connect(applySettings);
        })
        .catch(reason => {
          console.error('oci-jupyter: failed to load settings.', reason);
        });
    }
  }
};

export default plugin;
