/**
 * Trust in the chat's view and in fixes: in a notebook JupyterLab does not
 * trust, the chat says why each cell waits (with a button to trust the
 * notebook), and a fix shows its rewrite first, even in `auto` mode.
 * The executor's side is trust.spec.tsx.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICodeCellModel } from '@jupyterlab/cells';
import {
  INotebookTracker,
  NotebookActions,
  NotebookModel
} from '@jupyterlab/notebook';
import {
  RenderMimeRegistry,
  standardRendererFactories
} from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { nullTranslator } from '@jupyterlab/translation';
import { CommandRegistry } from '@lumino/commands';
import { Signal } from '@lumino/signaling';
import * as React from 'react';

import { confirmFix } from '../autofix';
import { CommandIDs } from '../commands';
import { RequestItem } from '../chat/messages';
import { ChatView } from '../chat/view';
import { DEFAULT_CHAT_SETTINGS, IRequestView } from '../chat/types';
import { autoFixPlugin } from '../plugins/autofix';
import { SETTINGS_ID } from '../plugins/settings';
import { IOciChatModel } from '../tokens';
import { fakePanel, rendered, settle } from './fakes';
import { chatRequest, fakeChat } from './setups';

const trans = nullTranslator.load('oci_jupyter');

/** What *Trust Notebook* does to the cells once the user confirms. */
function trustAll(model: NotebookModel): void {
  for (let index = 0; index < model.cells.length; index++) {
    model.cells.get(index).trusted = true;
  }
}

describe('the chat view', () => {
  const rendermime = () =>
    new RenderMimeRegistry({ initialFactories: standardRendererFactories });

  async function chatView(options: {
    trusted: boolean;
    autoExecute?: boolean;
  }) {
    const chat = fakeChat();
    const notebook = fakePanel('theirs.ipynb', ['x = 1'], {
      trusted: options.trusted
    });
    const saved: string[] = [];
    (notebook.panel.context as unknown as { save: () => Promise<void> }).save =
      () => {
        saved.push(notebook.panel.context.path);
        return Promise.resolve();
      };
    chat.model.settings = {
      ...DEFAULT_CHAT_SETTINGS,
      autoExecute: options.autoExecute ?? true
    };
    chat.model.notebook = notebook.panel;
    await settle();
    const node = await rendered(
      <ChatView
        model={chat.model}
        engineBlocker={null}
        rendermime={rendermime()}
        focusRequested={new Signal<unknown, void>({})}
        trans={trans}
      />
    );
    await settle();
    return { chat, notebook, node, saved };
  }

  afterEach(() => {
    jest.restoreAllMocks();
    document.body.innerHTML = '';
  });

  it('says why each cell waits, with a button to trust the notebook', async () => {
    const { node } = await chatView({ trusted: false });
    const notice = node.querySelector('[data-oci-untrusted]');
    expect(notice).not.toBeNull();
    expect(notice!.getAttribute('role')).toBe('status');
    expect(notice!.textContent).toContain('This notebook is not trusted');
    expect(notice!.querySelector('button')?.textContent).toBe('Trust notebook');
    expect(node.textContent).toContain('you run the cells');
    expect(node.textContent).not.toContain('runs automatically');
  });

  it('says nothing in a trusted notebook, nor with auto-execute off', async () => {
    const trusted = await chatView({ trusted: true });
    expect(trusted.node.querySelector('[data-oci-untrusted]')).toBeNull();
    expect(trusted.node.textContent).toContain('runs automatically');
    const manual = await chatView({ trusted: false, autoExecute: false });
    expect(manual.node.querySelector('[data-oci-untrusted]')).toBeNull();
  });

  it('trusts the notebook through JupyterLab’s own dialog, then saves it; the notice goes', async () => {
    const { notebook, node, saved } = await chatView({ trusted: false });
    const trust = jest
      .spyOn(NotebookActions, 'trust')
      .mockImplementation(async () => {
        trustAll(notebook.model);
        return { trusted: true };
      });
    node
      .querySelector<HTMLButtonElement>('[data-oci-untrusted] button')!
      .click();
    await settle();
    expect(trust).toHaveBeenCalledWith(notebook.panel.content);
    expect(saved).toEqual(['theirs.ipynb']);
    expect(node.querySelector('[data-oci-untrusted]')).toBeNull();
  });

  it('shows a waiting cell’s review, with a Run button that runs it', async () => {
    let runs = 0;
    const view: IRequestView = {
      ...chatRequest().view,
      turns: [
        {
          turn: 1,
          reply: 'Summing:\n\n```python\nprint(x + 1)\n```',
          complete: true,
          state: 'waiting',
          ename: '',
          evalue: '',
          seconds: null,
          step: 1,
          attempt: 1,
          review: true,
          run: () => runs++
        }
      ]
    };
    const node = await rendered(
      <RequestItem
        request={view}
        stepCell={() => null}
        onRevealCell={() => undefined}
        rendermime={rendermime()}
        trans={trans}
      />
    );
    const waiting = node.querySelector('[data-oci-review]');
    expect(waiting?.textContent).toContain('this notebook is not trusted');
    expect(node.querySelector('.jp-OciChat-chip')?.textContent).toBe(
      'review, then run'
    );
    const run = node.querySelector<HTMLButtonElement>('[data-oci-run]');
    expect(run?.textContent).toBe('Run');
    run!.click();
    expect(runs).toBe(1);
  });
});

describe('a fix in a notebook that is not trusted', () => {
  /** The Fix command of the plugin, in `auto` mode; returns what the chat got. */
  function fixIn(trusted: boolean) {
    const notebook = fakePanel('theirs.ipynb', ['print(y)'], { trusted });
    (notebook.model.cells.get(0) as ICodeCellModel).outputs.add({
      output_type: 'error',
      ename: 'NameError',
      evalue: "name 'y' is not defined",
      traceback: []
    });
    const asked: { confirm: unknown }[] = [];
    const chat = {
      isBusy: () => false,
      running: null,
      stateChanged: new Signal({}),
      connection: { state: 'open' },
      fix: (options: { confirm: unknown }) => {
        asked.push(options);
        return null;
      }
    };
    const settings = {
      get: (key: string) => ({
        composite: key === 'autoFix' ? 'auto' : undefined
      }),
      changed: new Signal({})
    };
    const registry = {
      load: (id: string) =>
        id === SETTINGS_ID
          ? Promise.resolve(settings)
          : Promise.reject(new Error(id))
    } as unknown as ISettingRegistry;
    const commands = new CommandRegistry();
    const tracker = {
      currentWidget: notebook.panel,
      activeCell: null,
      currentChanged: new Signal({}),
      widgetAdded: new Signal({}),
      find: () => notebook.panel,
      forEach: () => undefined
    };
    autoFixPlugin.activate(
      { commands } as unknown as JupyterFrontEnd,
      chat as unknown as IOciChatModel,
      tracker as unknown as INotebookTracker,
      new RenderMimeRegistry({ initialFactories: standardRendererFactories }),
      null,
      registry,
      null
    );
    return { commands, asked };
  }

  it('shows the rewrite first even in `auto` mode; a trusted notebook is fixed at once', async () => {
    const untrusted = fixIn(false);
    await settle();
    await untrusted.commands.execute(CommandIDs.fixCell);
    expect(untrusted.asked).toHaveLength(1);
    expect(typeof untrusted.asked[0].confirm).toBe('function');

    const trusted = fixIn(true);
    await settle();
    await trusted.commands.execute(CommandIDs.fixCell);
    expect(trusted.asked).toHaveLength(1);
    expect(trusted.asked[0].confirm).toBeNull();
  });

  it('says why in the diff dialog', async () => {
    const abort = new AbortController();
    const answer = confirmFix(
      trans,
      'print(y)',
      'print(x)',
      abort.signal,
      'This notebook is not trusted: review the fix before it replaces the cell and runs.'
    );
    await settle();
    const note = document.querySelector('.jp-OciDiffDialog-note');
    expect(note?.textContent).toContain('not trusted');
    expect(document.querySelector('.jp-OciDiff')).not.toBeNull();
    abort.abort();
    expect(await answer).toBe(false);
  });
});

// The request under review asked the server not to wait with a deadline.
