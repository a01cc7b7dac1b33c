/**
 * Ghost text's settings (schema/inline-completion.json, the plugin
 * `oci-jupyter:inline-completion`).
 */
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { readSettings } from '../plugins/settings';

/** When to ask the model: as the user types, or only on the shortcut. */
export type InlineTrigger = 'typing' | 'shortcut';

export interface IInlineSettings {
  enabled: boolean;
  trigger: InlineTrigger;
  /** Quiet time after a keystroke before asking (ms). */
  debounceMs: number;
  /** Most tokens in a suggestion. */
  maxTokens: number;
  /** Most lines in a suggestion. */
  maxLines: number;
  /** Tell the model the kernel's variables (names, types, columns). */
  variables: boolean;
  /** Tell the model the short text outputs of the cells above. */
  outputs: boolean;
}

export const DEFAULT_INLINE_SETTINGS: IInlineSettings = {
  enabled: true,
  trigger: 'typing',
  debounceMs: 50,
  maxTokens: 48,
  maxLines: 8,
  variables: true,
  outputs: true
};

export function inlineSettings(
  settings: ISettingRegistry.ISettings
): IInlineSettings {
  return readSettings(settings, DEFAULT_INLINE_SETTINGS);
}
