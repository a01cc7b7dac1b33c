/**
 * The server's loop settings are the sidebar's defaults: a setting the user
 * did not set in the Settings Editor follows `c.OCI.*` (`GET /oci/status`
 * `loop`) and is not sent; what the user set is sent and shown.
 */
import type { ISettingRegistry } from '@jupyterlab/settingregistry';

import { IEngineStatus, serverLoop } from '../api';
import { DEFAULT_CHAT_SETTINGS, loopSettings } from '../chat/types';
import { chatSettings, userLoop } from '../plugins/settings';
import { fakePanel } from './fakes';
import { askIn, fakeChat, SERVER_LOOP } from './setups';

/** Settings as the registry has them: the user's values over the schema's defaults. */
function registrySettings(
  user: Record<string, unknown>,
  defaults: Record<string, unknown> = {}
): ISettingRegistry.ISettings {
  return {
    get: (key: string) => ({
      user: user[key],
      composite: user[key] ?? defaults[key]
    })
  } as unknown as ISettingRegistry.ISettings;
}

/** What a server with `c.OCI.max_attempts = 6` reports. */
const status = {
  engine: 'llamacpp',
  state: 'ready',
  loop: { read_results: true, max_attempts: 6, max_steps: 5, max_replies: 12 }
} as unknown as IEngineStatus;

describe('the loop settings the user set', () => {
  it('are only those in the user settings, never a default', () => {
    expect(userLoop(registrySettings({}, { maxAttempts: 3 }))).toEqual({});
    expect(
      userLoop(registrySettings({ maxSteps: 2, readResults: false }))
    ).toEqual({ maxSteps: 2, readResults: false });
  });

  it('read the old maxTurns when maxAttempts is not set', () => {
    expect(userLoop(registrySettings({ maxTurns: 5 }))).toEqual({
      maxAttempts: 5
    });
    expect(userLoop(registrySettings({ maxTurns: 5, maxAttempts: 2 }))).toEqual(
      { maxAttempts: 2 }
    );
  });

  it('come with the other settings, which keep their defaults', () => {
    expect(
      chatSettings(registrySettings({ maxReplies: 9, contextCells: 5 }))
    ).toEqual({ ...DEFAULT_CHAT_SETTINGS, contextCells: 5, maxReplies: 9 });
  });
});

describe('the loop settings that apply', () => {
  it('are the server’s where the user set nothing', () => {
    const server = serverLoop(status);
    expect(server).toEqual({
      maxAttempts: 6,
      maxSteps: 5,
      maxReplies: 12,
      readResults: true
    });
    expect(loopSettings({ maxSteps: 2 }, server)).toEqual({
      maxAttempts: 6,
      maxSteps: 2,
      maxReplies: 12,
      readResults: true
    });
  });

  it('are unknown until the server says, unless the user set them all', () => {
    expect(serverLoop(null)).toBeNull();
    expect(
      serverLoop({ ...status, loop: undefined } as IEngineStatus)
    ).toBeNull();
    expect(loopSettings({ maxAttempts: 2 }, null)).toBeNull();
    expect(loopSettings(SERVER_LOOP, null)).toEqual(SERVER_LOOP);
  });
});

describe('a request of the sidebar', () => {
  it('follows c.OCI.max_attempts: shown, not sent', async () => {
    const chat = fakeChat();
    chat.model.serverLoop = serverLoop(status);
    expect(chat.model.loop?.maxAttempts).toBe(6);
    const ask = await askIn(chat, fakePanel('a.ipynb', ['x = 1']).panel, 'go');
    expect(ask).not.toHaveProperty('max_attempts');
    expect(ask).not.toHaveProperty('max_turns');
    expect(chat.model.running?.budgets).toEqual({
      attempts: 6,
      steps: 5,
      replies: 12
    });
  });

  it('sends what the user set, as max_attempts', async () => {
    const chat = fakeChat();
    chat.model.serverLoop = serverLoop(status);
    chat.model.settings = chatSettings(
      registrySettings({ maxTurns: 2, readResults: false })
    );
    expect(chat.model.loop).toEqual({
      maxAttempts: 2,
      maxSteps: 5,
      maxReplies: 12,
      readResults: false
    });
    const ask = await askIn(chat, fakePanel('a.ipynb', ['x = 1']).panel, 'go');
    expect(ask).toMatchObject({ max_attempts: 2, read_results: false });
    expect(ask).not.toHaveProperty('max_steps');
    expect(ask).not.toHaveProperty('max_replies');
    expect(chat.model.running?.budgets).toEqual({
      attempts: 2,
      steps: 1,
      replies: 12
    });
  });
});
