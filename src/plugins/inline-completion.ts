/**
 * Ghost text in code cells from the hosted model: registers the inline
 * completion provider (../completion/provider.ts) with JupyterLab's
 * completion manager, so it shows in the Inline Completer settings like any
 * other provider, and follows its own settings (schema/inline-completion.json).
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICompletionProviderManager } from '@jupyterlab/completer';
import { NotebookActions } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { completionRequester } from '../completion/client';
import { OciInlineProvider } from '../completion/provider';
import { inlineSettings } from '../completion/settings';
import { KernelVariables } from '../completion/variables';

export const INLINE_COMPLETION_ID = 'oci-jupyter:inline-completion';

export const inlineCompletionPlugin: JupyterFrontEndPlugin<void> = {
  id: INLINE_COMPLETION_ID,
  description:
    'Ghost text from the hosted model as you type in code cells (fill in the middle of the notebook).',
  autoStart: true,
  requires: [ICompletionProviderManager],
  optional: [ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    manager: ICompletionProviderManager,
    registry: ISettingRegistry | null
  ) => {
    const variables = new KernelVariables();
    const provider = new OciInlineProvider({
      request: completionRequester(app.serviceManager.serverSettings),
      variables: kernel => variables.get(kernel)
    });
    manager.registerInlineProvider(provider);
    // A run changes the variables: the next keystroke reads them again.
    NotebookActions.executed.connect(() => variables.ran());
    if (registry) {
      registry
        .load(INLINE_COMPLETION_ID)
        .then(settings => {
          const apply = () => {
            provider.settings = inlineSettings(settings);
          };
          apply();
          settings.changed.connect(apply);
        })
        .catch(reason => {
          console.error(
            'oci-jupyter: failed to load the ghost text settings.',
            reason
          );
        });
    }
  }
};
