/**
 * REST client for the oci_jupyter server extension.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/**
 * Lifecycle of the model hosted by the server (see `GET /oci/status`).
 */
export type EngineState = 'idle' | 'loading' | 'ready' | 'error' | 'stopped';

/**
 * The JSON body of `GET /oci/status`.
 */
export interface IEngineStatus {
  /** Engine name, e.g. `llamacpp`, `vllm` or `openai`. */
  engine: string;
  model: string;
  device: string;
  state: EngineState;
  /** Human-readable detail, e.g. what the loader is doing right now. */
  detail: string;
  /** Load progress in 0..1, or null when the engine cannot tell. */
  progress: number | null;
  /** Why the engine failed, when `state` is `error`. */
  error: string | null;
  context_length: number | null;
  /** Unix time (s) when the engine entered `state`. */
  since: number;
}

/**
 * The server extension could not be asked: network failure, an HTTP error
 * (404 when the extension is not enabled) or a body that is not a status.
 */
export class ServerExtensionError extends Error {
  constructor(
    message: string,
    readonly httpStatus: number | null = null
  ) {
    super(message);
    this.name = 'ServerExtensionError';
  }
}

/**
 * Ask the server extension for the state of its model.
 */
export async function fetchEngineStatus(
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IEngineStatus> {
  const url = URLExt.join(settings.baseUrl, 'oci', 'status');
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, {}, settings);
  } catch (reason) {
    throw new ServerExtensionError(
      `network error: ${(reason as Error).message ?? reason}`
    );
  }
  if (!response.ok) {
    throw new ServerExtensionError(
      `HTTP ${response.status} ${response.statusText}`.trim(),
      response.status
    );
  }
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    throw new ServerExtensionError('the response is not JSON');
  }
  if (!isEngineStatus(body)) {
    throw new ServerExtensionError('the response is not an engine status');
  }
  return body;
}

function isEngineStatus(value: unknown): value is IEngineStatus {
  const candidate = value as Partial<IEngineStatus> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.state === 'string' &&
    typeof candidate.engine === 'string'
  );
}
