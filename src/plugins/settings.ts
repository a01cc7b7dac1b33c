/**
 * The user's settings of oci_jupyter (schema/plugin.json), shared by its
 * plugins: each reads the part it needs and follows its changes.
 */
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import {
  DEFAULT_CHAT_SETTINGS,
  IChatSettings,
  ILoopSettings
} from '../chat/types';

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

/**
 * Each of `defaults`' keys as the settings have it (the user's value, else
 * the schema's default), else as in `defaults`.
 */
export function readSettings<T extends object>(
  settings: ISettingRegistry.ISettings,
  defaults: T
): T {
  const values = { ...defaults };
  for (const key of Object.keys(defaults) as (keyof T & string)[]) {
    const value = settings.get(key).composite as T[typeof key] | undefined;
    values[key] = value ?? defaults[key];
  }
  return values;
}

export function chatSettings(
  settings: ISettingRegistry.ISettings
): IChatSettings {
  return {
    ...readSettings(settings, DEFAULT_CHAT_SETTINGS),
    ...userLoop(settings)
  };
}

/**
 * The loop's settings the user set in the Settings Editor; the others are
 * the server's (`c.OCI.*`), so only the user's own values are read, never a
 * default. `maxTurns`, the old name of `maxAttempts`, is still read.
 */
export function userLoop(
  settings: ISettingRegistry.ISettings
): Partial<ILoopSettings> {
  const user = (key: string) => settings.get(key).user;
  const loop: Partial<ILoopSettings> = {};
  const attempts = user('maxAttempts') ?? user('maxTurns');
  const steps = user('maxSteps');
  const replies = user('maxReplies');
  const readResults = user('readResults');
  if (typeof attempts === 'number') {
    loop.maxAttempts = attempts;
  }
  if (typeof steps === 'number') {
    loop.maxSteps = steps;
  }
  if (typeof replies === 'number') {
    loop.maxReplies = replies;
  }
  if (typeof readResults === 'boolean') {
    loop.readResults = readResults;
  }
  return loop;
}
