/**
 * The server's OpenAI completions endpoint (`POST /oci/v1/completions`),
 * streamed: the text of a suggestion as it is generated.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { INotebookPayload } from './prompt';

/**
 * A newer request with the same key cancels the older one on the server as
 * it arrives (the next keystroke), before the browser's abort gets there.
 */
export const COMPLETION_KEY_HEADER = 'X-OCI-Completion-Key';

/** The request body: OpenAI's fields, and the notebook around the cell. */
export interface ICompletionBody {
  prompt: string;
  suffix: string;
  max_tokens: number;
  temperature: number;
  stream: true;
  stop?: string[];
  notebook?: INotebookPayload;
}

/**
 * Send a completion request; resolves once the server answered (its headers)
 * with the stream of text pieces, or null when it refused (the model is
 * loading, an error). Aborting `signal` ends the request and its generation.
 */
export type CompletionRequester = (
  body: ICompletionBody,
  key: string,
  signal: AbortSignal
) => Promise<AsyncIterable<string> | null>;

export function completionRequester(
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): CompletionRequester {
  const url = URLExt.join(settings.baseUrl, 'oci', 'v1', 'completions');
  return async (body, key, signal) => {
    const response = await ServerConnection.makeRequest(
      url,
      {
        method: 'POST',
        body: JSON.stringify(body),
        headers: { [COMPLETION_KEY_HEADER]: key },
        signal
      },
      settings
    );
    if (!response.ok || !response.body) {
      return null;
    }
    return completionTexts(decodedChunks(response.body));
  };
}

/** The text of a byte stream, piece by piece. */
async function* decodedChunks(
  body: ReadableStream<Uint8Array>
): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        return;
      }
      yield decoder.decode(value, { stream: true });
    }
  } finally {
    // Stopping early (a newer keystroke) releases the connection.
    void reader.cancel().catch(() => undefined);
  }
}

/**
 * The completion's text pieces in server-sent events (`data: {json}` blocks,
 * `data: [DONE]` last); an error event ends the stream.
 */
export async function* completionTexts(
  chunks: AsyncIterable<string>
): AsyncGenerator<string> {
  let buffer = '';
  for await (const chunk of chunks) {
    buffer += chunk;
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf('\n\n');
      if (!block.startsWith('data: ')) {
        continue; // a comment
      }
      const data = block.slice('data: '.length);
      if (data === '[DONE]') {
        return;
      }
      let event: {
        choices?: { text?: string }[];
        error?: unknown;
      };
      try {
        event = JSON.parse(data);
      } catch {
        return;
      }
      if (event.error) {
        return;
      }
      const text = event.choices?.[0]?.text;
      if (text) {
        yield text;
      }
    }
  }
}
