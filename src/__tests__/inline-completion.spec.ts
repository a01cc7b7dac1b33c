/**
 * Ghost text: the request a keystroke makes (the cell around the cursor and
 * the notebook around the cell), the stream of a suggestion, and what the
 * provider does on the next keystroke, with the server replaced by a
 * scripted requester.
 */
import * as fs from 'fs';
import * as path from 'path';

import {
  IInlineCompletionContext,
  InlineCompletionTriggerKind
} from '@jupyterlab/completer';
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ServerConnection } from '@jupyterlab/services';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { ICompletionBody, completionTexts } from '../completion/client';
import {
  CELLS_BEFORE,
  notebookPayload,
  shapeSuggestion,
  splitAtCursor
} from '../completion/prompt';
import { OciInlineProvider, PROVIDER_ID, STOPS } from '../completion/provider';
import {
  DEFAULT_INLINE_SETTINGS,
  IInlineSettings
} from '../completion/settings';
import { KernelVariables } from '../completion/variables';
import { inlineCompletionPlugin } from '../plugins/inline-completion';
import { fakePanel, settle } from './fakes';

const schema = JSON.parse(
  fs.readFileSync(
    path.resolve(__dirname, '../../schema/inline-completion.json'),
    'utf-8'
  )
) as { properties: Record<string, { default: unknown }> };

async function* pieces(...texts: string[]): AsyncGenerator<string> {
  for (const text of texts) {
    yield text;
  }
}

async function all(texts: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const text of texts) {
    out.push(text);
  }
  return out;
}

describe('completionTexts', () => {
  it('reads the text of server-sent events split anywhere', async () => {
    const event = (text: string) =>
      `data: ${JSON.stringify({ choices: [{ text }] })}\n\n`;
    const raw =
      event('a +') + ': a comment\n\n' + event(' b') + 'data: [DONE]\n\n';
    const chunks = [raw.slice(0, 7), raw.slice(7, 50), raw.slice(50)];
    expect(await all(completionTexts(pieces(...chunks)))).toEqual([
      'a +',
      ' b'
    ]);
  });

  it('ends at an error event', async () => {
    const raw =
      'data: {"choices": [{"text": "x"}]}\n\n' +
      'data: {"error": {"message": "engine died"}}\n\n' +
      'data: {"choices": [{"text": "never"}]}\n\n';
    expect(await all(completionTexts(pieces(raw)))).toEqual(['x']);
  });
});

describe('the request of a keystroke', () => {
  it('splits the cell at the cursor, counting characters as JupyterLab does', () => {
    // JupyterLab's offset counts characters; an emoji is two JS units.
    expect(splitAtCursor('s = "😀"; t', 8)).toEqual({
      before: 's = "😀";',
      after: ' t'
    });
  });

  it('sends the cells above and below, short outputs only', () => {
    const { model } = fakePanel('a.ipynb', [
      'import pandas as pd',
      'df.',
      'df.plot()'
    ]);
    const cells = Array.from(model.cells);
    cells[0].sharedModel.setSource('import pandas as pd');
    const payload = notebookPayload(cells, 1, {
      language: 'python',
      outputs: true,
      variables: [{ name: 'df', type: 'DataFrame', summary: '2 columns' }]
    });
    expect(payload.cells_before).toEqual([
      { source: 'import pandas as pd', output: '', kind: 'code' }
    ]);
    expect(payload.cells_after).toEqual([
      { source: 'df.plot()', output: '', kind: 'code' }
    ]);
    expect(payload.variables[0].name).toBe('df');
  });

  it(`sends at most ${CELLS_BEFORE} cells above`, () => {
    const sources = Array.from({ length: 60 }, (_, i) => `x${i} = ${i}`);
    const { model } = fakePanel('a.ipynb', sources);
    const payload = notebookPayload(Array.from(model.cells), 55, {
      language: 'python',
      outputs: false,
      variables: []
    });
    expect(payload.cells_before).toHaveLength(CELLS_BEFORE);
    expect(payload.cells_before[CELLS_BEFORE - 1].source).toBe('x54 = 54');
    expect(payload.cells_after.map(c => c.source)).toEqual([
      'x56 = 56',
      'x57 = 57',
      'x58 = 58',
      'x59 = 59'
    ]);
  });

  it('stops a suggestion where it repeats the line after the cursor', () => {
    const after = '\n    return total\n';
    expect(
      shapeSuggestion('total = a + b\n    return total\n', 8, false, after)
    ).toEqual({ text: 'total = a + b', done: true });
    // The last line may still grow: not cut on a partial match.
    expect(shapeSuggestion('x\n    return total', 8, false, after).done).toBe(
      false
    );
  });

  it('shows at most maxLines lines of a suggestion', () => {
    expect(shapeSuggestion('a\nb\nc', 2, false)).toEqual({
      text: 'a\nb',
      done: true
    });
    expect(shapeSuggestion('a + b  \n', 8, true)).toEqual({
      text: 'a + b',
      done: false
    });
    expect(shapeSuggestion('a + b  \n', 8, false).text).toBe('a + b  \n');
  });
});

/** A requester that records each request and answers with `texts`. */
function scripted(texts: string[] = ['a', ' + b']) {
  const requests: {
    body: ICompletionBody;
    key: string;
    signal: AbortSignal;
  }[] = [];
  const request = async (
    body: ICompletionBody,
    key: string,
    signal: AbortSignal
  ): Promise<AsyncIterable<string>> => {
    requests.push({ body, key, signal });
    return pieces(...texts);
  };
  return { request, requests };
}

function contextOf(
  widget: unknown,
  triggerKind = InlineCompletionTriggerKind.Automatic
): IInlineCompletionContext {
  return { widget: widget as Widget, triggerKind, session: null };
}

function provider(
  settings: Partial<IInlineSettings> = {},
  texts?: string[]
): {
  provider: OciInlineProvider;
  requests: ReturnType<typeof scripted>['requests'];
} {
  const { request, requests } = scripted(texts);
  const ghost = new OciInlineProvider({
    request,
    variables: () => [{ name: 'n', type: 'int', summary: '3' }],
    sleep: () => Promise.resolve()
  });
  ghost.settings = { ...DEFAULT_INLINE_SETTINGS, ...settings };
  return { provider: ghost, requests };
}

async function suggestion(
  ghost: OciInlineProvider,
  token: string
): Promise<{ insertText: string; isIncomplete?: boolean }[]> {
  const updates = [];
  for await (const update of ghost.stream(token)) {
    updates.push(update.response);
  }
  return updates;
}

describe('OciInlineProvider', () => {
  const cellText = 'total = n +\nprint(total)';
  const request = {
    text: cellText,
    offset: 'total = n +'.length,
    mimeType: 'text/x-ipython'
  };

  it('asks for the middle of the notebook and streams the suggestion', async () => {
    const notebook = fakePanel('a.ipynb', ['n = 3', cellText, 'total']);
    notebook.activate(1);
    const { provider: ghost, requests } = provider();
    const list = await ghost.fetch(request, contextOf(notebook.panel));
    expect(list.items).toHaveLength(1);
    expect(list.items[0]).toMatchObject({ insertText: '', isIncomplete: true });
    expect(requests).toHaveLength(1);
    const body = requests[0].body;
    expect(body).toMatchObject({
      prompt: 'total = n +',
      suffix: '\nprint(total)',
      max_tokens: DEFAULT_INLINE_SETTINGS.maxTokens,
      temperature: 0,
      stream: true,
      stop: STOPS
    });
    expect(body.notebook?.cells_before.map(c => c.source)).toEqual(['n = 3']);
    expect(body.notebook?.cells_after.map(c => c.source)).toEqual(['total']);
    expect(body.notebook?.variables).toEqual([
      { name: 'n', type: 'int', summary: '3' }
    ]);
    const updates = await suggestion(ghost, list.items[0].token!);
    expect(updates.map(u => u.insertText)).toEqual(['a', 'a + b', 'a + b']);
    expect(updates[updates.length - 1].isIncomplete).toBe(false);
  });

  it('completes no code in a markdown cell', async () => {
    const notebook = fakePanel('a.ipynb', ['x = 1', '# Title']);
    notebook.model.sharedModel.deleteCell(1);
    notebook.model.sharedModel.insertCell(1, {
      cell_type: 'markdown',
      source: '# Title'
    });
    notebook.activate(1);
    const { provider: ghost, requests } = provider();
    const list = await ghost.fetch(
      { text: '# Title', offset: 7, mimeType: 'text/x-ipythongfm' },
      contextOf(notebook.panel)
    );
    expect(list.items).toEqual([]);
    expect(requests).toEqual([]);
  });

  it('asks nothing when turned off', async () => {
    const notebook = fakePanel('a.ipynb', [cellText]);
    const { provider: ghost, requests } = provider({ enabled: false });
    expect(
      (await ghost.fetch(request, contextOf(notebook.panel))).items
    ).toEqual([]);
    expect(requests).toEqual([]);
  });

  it('"only on the shortcut" asks on the shortcut, not on typing', async () => {
    const notebook = fakePanel('a.ipynb', [cellText]);
    const { provider: ghost, requests } = provider({ trigger: 'shortcut' });
    await ghost.fetch(request, contextOf(notebook.panel));
    expect(requests).toEqual([]);
    await ghost.fetch(
      request,
      contextOf(notebook.panel, InlineCompletionTriggerKind.Invoke)
    );
    expect(requests).toHaveLength(1);
  });

  it('the next keystroke leaves the request in flight to the server, with the same key', async () => {
    // The server stops the older request as the newer one (same key) arrives;
    // it may first finish reading the lines both share, so the browser does
    // not abort it (an abort would stop that at once).
    const notebook = fakePanel('a.ipynb', [cellText]);
    const { provider: ghost, requests } = provider();
    const first = await ghost.fetch(request, contextOf(notebook.panel));
    notebook.model.cells.get(0).sharedModel.setSource(cellText + ' ');
    await ghost.fetch(
      { ...request, text: cellText + ' ' },
      contextOf(notebook.panel)
    );
    expect(requests).toHaveLength(2);
    expect(requests[0].signal.aborted).toBe(false);
    expect(requests[0].key).toBe(requests[1].key);
    // The stale suggestion is gone: its stream yields nothing.
    expect(await suggestion(ghost, first.items[0].token!)).toEqual([]);
  });

  it('turned off mid-typing, the request in flight is aborted', async () => {
    const notebook = fakePanel('a.ipynb', [cellText]);
    const { provider: ghost, requests } = provider();
    await ghost.fetch(request, contextOf(notebook.panel));
    ghost.settings = { ...ghost.settings, enabled: false };
    await ghost.fetch(request, contextOf(notebook.panel));
    expect(requests).toHaveLength(1);
    expect(requests[0].signal.aborted).toBe(true);
  });

  it('a keystroke within the quiet time asks nothing for the one before', async () => {
    const notebook = fakePanel('a.ipynb', [cellText]);
    const { request: send, requests } = scripted();
    let wake: () => void = () => undefined;
    const ghost = new OciInlineProvider({
      request: send,
      sleep: () => new Promise<void>(resolve => (wake = resolve))
    });
    ghost.settings = { ...DEFAULT_INLINE_SETTINGS, debounceMs: 100 };
    const first = ghost.fetch(request, contextOf(notebook.panel));
    const wakeFirst = wake;
    const second = ghost.fetch(request, contextOf(notebook.panel));
    wakeFirst();
    wake();
    expect((await first).items).toEqual([]);
    expect((await second).items).toHaveLength(1);
    expect(requests).toHaveLength(1);
  });

  it('stops the generation at the most lines', async () => {
    const notebook = fakePanel('a.ipynb', [cellText]);
    const { provider: ghost, requests } = provider({ maxLines: 2 }, [
      'a\n',
      'b\n',
      'c\n'
    ]);
    const list = await ghost.fetch(request, contextOf(notebook.panel));
    const updates = await suggestion(ghost, list.items[0].token!);
    expect(updates[updates.length - 1]).toEqual({
      insertText: 'a\nb',
      isIncomplete: false
    });
    expect(requests[0].signal.aborted).toBe(true);
  });

  it('in a console or a file, the text around the cursor', async () => {
    const { provider: ghost, requests } = provider();
    await ghost.fetch(request, contextOf(new Widget()));
    expect(requests[0].body.notebook).toBeUndefined();
    expect(requests[0].body.prompt).toBe('total = n +');
  });

  it('is known to JupyterLab by its id and name', () => {
    const { provider: ghost } = provider();
    expect(ghost.identifier).toBe(PROVIDER_ID);
    expect(ghost.name).toBe('OpenCodeInterpreter');
    expect(ghost.schema.default).toMatchObject({ debouncerDelay: 0 });
  });
});

describe('KernelVariables', () => {
  it('reads after a run, in the background, never while a keystroke waits', async () => {
    let reads = 0;
    const variables = new KernelVariables(async () => {
      reads++;
      return [{ name: `v${reads}`, type: 'int', summary: '' }];
    });
    const kernel = { id: 'k1' } as any;
    expect(variables.get(kernel)).toEqual([]); // not read yet: asks, returns at once
    await settle();
    expect(variables.get(kernel).map(v => v.name)).toEqual(['v1']);
    expect(reads).toBe(1);
    variables.ran();
    expect(variables.get(kernel).map(v => v.name)).toEqual(['v1']);
    await settle();
    expect(variables.get(kernel).map(v => v.name)).toEqual(['v2']);
    expect(variables.get(null)).toEqual([]);
  });
});

describe('the settings schema', () => {
  it('has the defaults the provider starts with', () => {
    const defaults = Object.fromEntries(
      Object.entries(schema.properties).map(([key, value]) => [
        key,
        value.default
      ])
    );
    expect(defaults).toEqual(DEFAULT_INLINE_SETTINGS);
  });
});

describe('the ghost text plugin', () => {
  it('registers the provider with JupyterLab and follows its own settings', async () => {
    const registered: OciInlineProvider[] = [];
    const manager = {
      registerInlineProvider: (p: OciInlineProvider) => registered.push(p)
    };
    const changed = new Signal<unknown, void>({});
    const values: Record<string, unknown> = { enabled: false, maxLines: 3 };
    const settings = {
      get: (key: string) => ({ composite: values[key] }),
      changed
    };
    const loaded: string[] = [];
    const registry = {
      load: (id: string) => {
        loaded.push(id);
        return Promise.resolve(settings);
      }
    };
    const app = {
      serviceManager: { serverSettings: ServerConnection.makeSettings() }
    } as unknown as JupyterFrontEnd;
    inlineCompletionPlugin.activate(app, manager, registry);
    await settle();
    expect(inlineCompletionPlugin.id).toBe('oci-jupyter:inline-completion');
    expect(loaded).toEqual(['oci-jupyter:inline-completion']);
    expect(registered.map(p => p.identifier)).toEqual([PROVIDER_ID]);
    expect(registered[0].settings).toMatchObject({
      enabled: false,
      maxLines: 3
    });
    values.enabled = true;
    changed.emit();
    expect(registered[0].settings.enabled).toBe(true);
  });
});
