/**
 * The user's settings of oci_jupyter (schema/plugin.json), shared by its
 * plugins: each reads the part it needs and follows its changes.
 */
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { DEFAULT_CHAT_SETTINGS, IChatSettings } from '../chat/types';

/** The plugin whose id names the settings schema. */
export const SETTINGS_ID = 'oci-jupyter:plugin';

/** Apply the settings now and on every change. */
export function followSettings(
  registry: ISettingRegistry | null,
  apply: (settings: ISettingRegistry.ISettings) => void
): void {
  if (!registry) {
    return;
  }
  registry
    .load(SETTINGS_ID)
    .then(settings => {
      apply(settings);
      settings.changed.connect(apply);
    })
    .catch(reason => {
      console.error('oci-jupyter: failed to load settings.', reason);
    });
}

export function chatSettings(
  settings: ISettingRegistry.ISettings
): IChatSettings {
  const get = <K extends keyof IChatSettings>(key: K): IChatSettings[K] =>
    (settings.get(key).composite as IChatSettings[K] | undefined) ??
    DEFAULT_CHAT_SETTINGS[key];
  return {
    maxTurns: get('maxTurns'),
    maxSteps: get('maxSteps'),
    maxReplies: get('maxReplies'),
    readResults: get('readResults'),
    autoExecute: get('autoExecute'),
    executionTimeLimit: get('executionTimeLimit'),
    sendVariables: get('sendVariables'),
    sendOutputs: get('sendOutputs'),
    contextCells: get('contextCells')
  };
}
