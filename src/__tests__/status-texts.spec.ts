/**
 * The model's status in the server's words: `GET /oci/status` sends its
 * `detail` and `error` with their sentences (`detail_text`, `error_text`),
 * a refused restart its message with `text`; the panel translates them and
 * shows the English for words without a known code.
 */
import { ServerConnection } from '@jupyterlab/services';
import * as React from 'react';

import { IEngineStatus, restartEngine, ServerExtensionError } from '../api';
import { EngineStatusView } from '../components';
import { serverWords } from '../chat/texts';
import { markingBundle, rendered } from './fakes';

function status(extra: Partial<IEngineStatus>): IEngineStatus {
  return {
    engine: 'llamacpp',
    model: 'qwen',
    device: 'cpu',
    state: 'loading',
    detail: '',
    progress: null,
    error: null,
    context_length: null,
    since: 1700000000,
    ...extra
  };
}

/** The texts the panel shows below the heading: the detail, the error. */
async function shown(engine: IEngineStatus): Promise<string[]> {
  const node = await rendered(
    React.createElement(EngineStatusView, {
      status: engine,
      trans: markingBundle()
    })
  );
  return Array.from(
    node.querySelectorAll('.jp-OciStatus-detail, .jp-OciStatus-error'),
    element => element.textContent ?? ''
  );
}

describe('the status panel', () => {
  it('translates what the engine is doing', async () => {
    const texts = await shown(
      status({
        detail: 'loading qwen.gguf into llama.cpp',
        detail_text: {
          code: 'engine_loading_llamacpp',
          params: { file: 'qwen.gguf' }
        }
      })
    );
    expect(texts).toEqual(['«loading qwen.gguf into llama.cpp»']);
  });

  it('translates why the engine failed, its own words put in', async () => {
    const texts = await shown(
      status({
        state: 'error',
        detail: 'engine died',
        detail_text: { code: 'engine_died', params: {} },
        error:
          'The llama.cpp engine died: exit code 1; restart the model from the panel.',
        error_text: {
          code: 'engine_died_because',
          params: { engine: 'llama.cpp', reason: 'exit code 1' }
        }
      })
    );
    expect(texts).toEqual([
      '«engine died»',
      '«The llama.cpp engine died: exit code 1; restart the model from the panel.»'
    ]);
  });

  it('shows words without a known code as they are', async () => {
    const texts = await shown(
      status({
        state: 'error',
        detail: 'warming up',
        detail_text: { code: 'newer_code', params: {} },
        // An exception's words (no code), and an older server (no field).
        error: 'RuntimeError: out of memory',
        error_text: null
      })
    );
    expect(texts).toEqual(['warming up', 'RuntimeError: out of memory']);
    expect(await shown(status({ detail: 'starting' }))).toEqual(['starting']);
  });
});

describe('a refused restart', () => {
  it('keeps the sentence of the refusal for the panel', async () => {
    const body = {
      error: {
        message:
          'The model is loading; a restart is possible once it is ready or has failed.',
        type: 'engine_busy',
        param: null,
        code: 'loading'
      },
      status: status({}),
      text: { code: 'restart_while_loading', params: {} }
    };
    const settings = ServerConnection.makeSettings({
      baseUrl: 'http://127.0.0.1:8888/',
      fetch: (() =>
        Promise.resolve(
          new Response(JSON.stringify(body), { status: 409 })
        )) as typeof fetch
    });
    const failure = await restartEngine(settings).catch(
      (reason: ServerExtensionError) => reason
    );
    expect(failure).toBeInstanceOf(ServerExtensionError);
    const error = failure as ServerExtensionError;
    expect(error.httpStatus).toBe(409);
    expect(serverWords(error.message, error.said, markingBundle())).toBe(
      '«The model is loading; a restart is possible once it is ready or has failed.»'
    );
  });

  it('has no sentence when the server sent none', async () => {
    const settings = ServerConnection.makeSettings({
      baseUrl: 'http://127.0.0.1:8888/',
      fetch: (() =>
        Promise.resolve(
          new Response('forbidden', { status: 403, statusText: 'Forbidden' })
        )) as typeof fetch
    });
    const failure = await restartEngine(settings).catch(
      (reason: ServerExtensionError) => reason
    );
    expect((failure as ServerExtensionError).said).toBeNull();
  });
});
