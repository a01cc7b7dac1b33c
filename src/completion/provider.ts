/**
 * Ghost text from the hosted model: a JupyterLab inline completion provider.
 *
 * Each keystroke asks `POST /oci/v1/completions` for the middle of the
 * notebook at the cursor and streams the suggestion into the editor;
 * JupyterLab's own keys accept (Tab), cycle and dismiss it. The requests
 * carry one key per page: the server stops the request before a keystroke's
 * as the new one arrives (its generation within a token; a prompt it was
 * reading only once it has read the lines the new one shares, so typing in a
 * fresh notebook never throws that reading away). The browser just stops
 * showing the old suggestion; it aborts a request only when ghost text
 * stops (turned off, another kind of editor).
 */
import {
  CompletionHandler,
  IInlineCompletionContext,
  IInlineCompletionItem,
  IInlineCompletionList,
  IInlineCompletionProvider,
  InlineCompletionTriggerKind
} from '@jupyterlab/completer';
import { ICellModel } from '@jupyterlab/cells';
import { Kernel } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { UUID } from '@lumino/coreutils';
import { Widget } from '@lumino/widgets';

import { IVariableInfo } from '../chat/protocol';
import { ociIcon } from '../icon';
import { CompletionRequester, ICompletionBody } from './client';
import { notebookPayload, shapeSuggestion, splitAtCursor } from './prompt';
import { DEFAULT_INLINE_SETTINGS, IInlineSettings } from './settings';

export const PROVIDER_ID = 'oci-jupyter';

/** A suggestion ends at a blank line: the model has moved on to other code. */
export const STOPS = ['\n\n'];

export interface IOciInlineProviderOptions {
  request: CompletionRequester;
  /** The kernel's variables as last read (never waits for the kernel). */
  variables?: (kernel: Kernel.IKernelConnection | null) => IVariableInfo[];
  /** Waits `ms` (a timer; tests pass their own). */
  sleep?: (ms: number) => Promise<void>;
}

/** The notebook behind a widget, if it is one (a NotebookPanel). */
interface INotebookLike {
  content: {
    activeCellIndex: number;
    model: { cells: Iterable<ICellModel> } | null;
  };
  model?: { getMetadata(key: string): unknown } | null;
}

function notebookOf(widget: Widget | undefined): INotebookLike | null {
  const candidate = widget as unknown as Partial<INotebookLike> | undefined;
  return candidate?.content?.model?.cells ? (candidate as INotebookLike) : null;
}

interface IRunning {
  texts: AsyncIterable<string>;
  abort: AbortController;
  /** The cell's text after the cursor. */
  after: string;
}

export class OciInlineProvider implements IInlineCompletionProvider {
  readonly identifier = PROVIDER_ID;
  readonly name = 'OpenCodeInterpreter';
  readonly icon = ociIcon.bindprops({ width: 16, height: 16 });
  /**
   * JupyterLab's own settings of this provider (Settings → Inline Completer):
   * its debounce stays 0, ours applies (schema/inline-completion.json).
   */
  readonly schema: ISettingRegistry.IProperty = {
    default: { debouncerDelay: 0, timeout: 15000 }
  };

  settings: IInlineSettings = DEFAULT_INLINE_SETTINGS;

  constructor(private _options: IOciInlineProviderOptions) {}

  configure(): void {
    // JupyterLab's per-provider settings (enabled, timeout) apply by
    // themselves; ours come from the plugin's own schema.
  }

  async fetch(
    request: CompletionHandler.IRequest,
    context: IInlineCompletionContext
  ): Promise<IInlineCompletionList<IInlineCompletionItem>> {
    const generation = ++this._generation;
    // The text changed: the last suggestion is stale. Its request is left to
    // the server, which stops it when the next one (same key) arrives.
    this._streams.clear();
    const settings = this.settings;
    const typed = context.triggerKind !== InlineCompletionTriggerKind.Invoke;
    if (!settings.enabled || (typed && settings.trigger === 'shortcut')) {
      this._stopRunning();
      return { items: [] };
    }
    const body = this._body(request, context);
    if (!body) {
      this._stopRunning();
      return { items: [] };
    }
    if (typed && settings.debounceMs > 0) {
      await this._sleep(settings.debounceMs);
      if (generation !== this._generation) {
        return { items: [] };
      }
    }
    const abort = new AbortController();
    this._running = abort; // the older one is the server's to stop
    let texts: AsyncIterable<string> | null = null;
    try {
      texts = await this._options.request(body, this._key, abort.signal);
    } catch {
      texts = null; // aborted, or the server is unreachable: no suggestion
    }
    if (!texts || generation !== this._generation) {
      abort.abort();
      return { items: [] };
    }
    const token = `${PROVIDER_ID}-${generation}`;
    this._streams.set(token, { texts, abort, after: body.suffix });
    return { items: [{ insertText: '', isIncomplete: true, token }] };
  }

  async *stream(
    token: string
  ): AsyncGenerator<{ response: IInlineCompletionItem }> {
    const running = this._streams.get(token);
    if (!running) {
      return;
    }
    const maxLines = this.settings.maxLines;
    let text = '';
    try {
      for await (const piece of running.texts) {
        if (this._streams.get(token) !== running) {
          return; // a newer keystroke: this suggestion is stale
        }
        text += piece;
        const shaped = shapeSuggestion(text, maxLines, false, running.after);
        if (shaped.done) {
          running.abort.abort(); // the suggestion is whole: stop the generation
          yield { response: { insertText: shaped.text, isIncomplete: false } };
          return;
        }
        yield { response: { insertText: shaped.text, isIncomplete: true } };
      }
    } catch {
      // Aborted by a newer keystroke: what came so far stands.
    }
    this._streams.delete(token);
    const shaped = shapeSuggestion(text, maxLines, true, running.after);
    yield { response: { insertText: shaped.text, isIncomplete: false } };
  }

  dispose(): void {
    this._stopRunning();
  }

  private _stopRunning(): void {
    this._running?.abort();
    this._running = null;
    for (const running of this._streams.values()) {
      running.abort.abort();
    }
    this._streams.clear();
  }

  /** The request for the cursor, or null where no code is completed. */
  private _body(
    request: CompletionHandler.IRequest,
    context: IInlineCompletionContext
  ): ICompletionBody | null {
    if (request.mimeType && /markdown|gfm|plain/i.test(request.mimeType)) {
      return null;
    }
    const { before, after } = splitAtCursor(request.text, request.offset);
    const body: ICompletionBody = {
      prompt: before,
      suffix: after,
      max_tokens: this.settings.maxTokens,
      temperature: 0,
      stream: true,
      stop: STOPS
    };
    const notebook = notebookOf(context.widget);
    if (!notebook) {
      return body; // a console or a file: the text around the cursor
    }
    const cells = notebook.content.model
      ? Array.from(notebook.content.model.cells)
      : [];
    const index = notebook.content.activeCellIndex;
    const cell = cells[index];
    // Markdown cells get no code; a request from another editor is not ours.
    if (!cell || cell.type !== 'code') {
      return null;
    }
    if (cell.sharedModel.getSource() !== request.text) {
      return null;
    }
    const kernel = context.session?.kernel ?? null;
    const variables =
      this.settings.variables && this._options.variables
        ? this._options.variables(kernel)
        : [];
    body.notebook = notebookPayload(cells, index, {
      language: notebookLanguage(notebook),
      outputs: this.settings.outputs,
      variables
    });
    return body;
  }

  private _sleep(ms: number): Promise<void> {
    return this._options.sleep
      ? this._options.sleep(ms)
      : new Promise(resolve => setTimeout(resolve, ms));
  }

  private _generation = 0;
  private _running: AbortController | null = null;
  private _streams = new Map<string, IRunning>();
  /** One key per page: each request replaces this page's last one. */
  private _key = UUID.uuid4();
}

function notebookLanguage(notebook: INotebookLike): string {
  const info = notebook.model?.getMetadata('language_info') as
    { name?: string } | undefined;
  return (info?.name || 'python').toLowerCase();
}
