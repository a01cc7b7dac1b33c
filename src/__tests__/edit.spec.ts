/**
 * Changing a cell by instruction: the lines a request is about, the prompt's
 * keys, the `edit` ask the chat sends (mode, cell, selection, review) and
 * the plugin's command with the `applyEditsAtOnce` setting.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { CodeCell, CodeCellModel, ICodeCellModel } from '@jupyterlab/cells';
import * as nbformat from '@jupyterlab/nbformat';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { NBTestUtils } from '@jupyterlab/testutils';
import { CommandRegistry } from '@lumino/commands';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { IEditOptions } from '../chat/types';
import { CommandIDs } from '../commands';
import { EditPrompt, IEditPromptOptions, showEditPrompt } from '../edit/prompt';
import { linesOf } from '../edit/selection';
import { editCellPlugin } from '../plugins/edit';
import { SETTINGS_ID } from '../plugins/settings';
import { IOciChatModel } from '../tokens';
import { fakePanel, settle } from './fakes';
import { fakeChat, lastAsk } from './setups';

const ERROR: nbformat.IError = {
  output_type: 'error',
  ename: 'NameError',
  evalue: "name 'y' is not defined",
  traceback: ['Traceback', "NameError: name 'y' is not defined"]
};

const at = (line: number, column: number) => ({ line, column });

describe('the lines an edit is about', () => {
  const source = 'a = 1\nb = 2\nc = 3\n';

  it('are none for a cursor or blank lines', () => {
    expect(linesOf(source, at(1, 2), at(1, 2))).toBeNull();
    expect(linesOf('a\n\n\nb', at(1, 0), at(2, 0))).toBeNull();
  });

  it('are the whole lines a selection touches, in either direction', () => {
    const lines = { text: 'a = 1\nb = 2', first: 1, last: 2 };
    expect(linesOf(source, at(0, 3), at(1, 1))).toEqual(lines);
    expect(linesOf(source, at(1, 1), at(0, 3))).toEqual(lines);
  });

  it('leave out the line a selection ends at the start of', () => {
    expect(linesOf(source, at(1, 0), at(2, 0))).toEqual({
      text: 'b = 2',
      first: 2,
      last: 2
    });
  });
});

/** A prompt in the page whose sends the test answers. */
function promptInPage(accept = true) {
  const sent: string[] = [];
  const closed: number[] = [];
  const options: IEditPromptOptions = {
    labels: {
      placeholder: 'Change this cell…',
      label: 'How to change this cell',
      send: 'Send',
      close: 'Close',
      keys: 'Enter to send',
      about: ''
    },
    send: text => {
      sent.push(text);
      return accept;
    },
    closed: () => closed.push(1)
  };
  const prompt = new EditPrompt(options);
  Widget.attach(prompt, document.body);
  const input = prompt.node.querySelector('textarea')!;
  const key = (key: string, init: KeyboardEventInit = {}) => {
    const event = new KeyboardEvent('keydown', {
      key,
      bubbles: true,
      cancelable: true,
      ...init
    });
    // What JupyterLab's own key handling (on the document) would see.
    let reached = false;
    const spy = () => (reached = true);
    document.addEventListener('keydown', spy);
    input.dispatchEvent(event);
    document.removeEventListener('keydown', spy);
    return { defaultPrevented: event.defaultPrevented, reached };
  };
  const type = (text: string) => {
    input.value = text;
    input.dispatchEvent(new Event('input'));
  };
  return { prompt, input, sent, closed, key, type };
}

describe('the edit prompt', () => {
  it('shows its placeholder and sends nothing empty', () => {
    const { prompt, input, sent, key } = promptInPage();
    expect(input.placeholder).toBe('Change this cell…');
    expect(
      prompt.node.querySelector<HTMLButtonElement>('.jp-OciEditPrompt-send')!
        .disabled
    ).toBe(true);
    key('Enter');
    expect(sent).toEqual([]);
    expect(prompt.isDisposed).toBe(false);
    prompt.dispose();
  });

  it('sends on Enter, closes and gives the focus back', () => {
    const { prompt, sent, closed, key, type } = promptInPage();
    type('  make this a function  ');
    const enter = key('Enter');
    expect(sent).toEqual(['make this a function']);
    // Not the notebook's Enter, not a new line.
    expect(enter).toEqual({ defaultPrevented: true, reached: false });
    expect(closed).toHaveLength(1);
    expect(prompt.isDisposed).toBe(true);
  });

  it('keeps the words when the request cannot start', () => {
    const { prompt, input, sent, closed, key, type } = promptInPage(false);
    type('use a log scale');
    key('Enter');
    expect(sent).toEqual(['use a log scale']);
    expect(closed).toHaveLength(0);
    expect(prompt.isDisposed).toBe(false);
    expect(input.value).toBe('use a log scale');
    prompt.dispose();
  });

  it('takes Shift+Enter as a new line, not a send nor a run', () => {
    const { prompt, input, sent, key, type } = promptInPage();
    type('first line');
    expect(key('Enter', { shiftKey: true }).reached).toBe(false);
    expect(sent).toEqual([]);
    expect(input.value).toBe('first line\n');
    prompt.dispose();
  });

  it('leaves an Enter that picks an IME candidate to the IME', () => {
    const { prompt, sent, key, type } = promptInPage();
    type('関数にして');
    key('Enter', { isComposing: true });
    expect(sent).toEqual([]);
    prompt.dispose();
  });

  it('closes on Escape, sending nothing', () => {
    const { prompt, sent, closed, key, type } = promptInPage();
    type('half a thought');
    expect(key('Escape')).toEqual({ defaultPrevented: true, reached: false });
    expect(sent).toEqual([]);
    expect(closed).toHaveLength(1);
    expect(prompt.isDisposed).toBe(true);
  });

  it('lets other keys through to JupyterLab (Ctrl+S saves)', () => {
    const { prompt, key } = promptInPage();
    expect(key('s', { ctrlKey: true }).reached).toBe(true);
    prompt.dispose();
  });
});

/** A real code cell in the page, with its own model. */
function codeCell(source: string, outputs: nbformat.IOutput[] = []): CodeCell {
  const model = new CodeCellModel();
  model.sharedModel.setSource(source);
  model.trusted = true;
  for (const output of outputs) {
    model.outputs.add(output);
  }
  const cell = new CodeCell({
    model,
    rendermime: NBTestUtils.defaultRenderMime(),
    contentFactory: NBTestUtils.createCodeCellFactory(),
    placeholder: false
  }).initializeState();
  Widget.attach(cell, document.body);
  return cell;
}

describe('the prompt at a cell', () => {
  it('is under the input, above the outputs, and has the focus', () => {
    const cell = codeCell('print(1)', [
      { output_type: 'stream', name: 'stdout', text: '1\n' }
    ]);
    const prompt = showEditPrompt(cell, promptInPage().prompt['_options']);
    const children = Array.from(cell.node.children);
    const input = children.indexOf(cell.inputArea!.parent!.node);
    expect(children.indexOf(prompt.node)).toBe(input + 1);
    expect(document.activeElement).toBe(prompt.node.querySelector('textarea'));
    // Asked again: the same prompt.
    expect(showEditPrompt(cell, prompt['_options'])).toBe(prompt);
    cell.dispose();
    expect(prompt.isDisposed).toBe(true);
  });
});

describe('an edit request', () => {
  function failing() {
    const notebook = fakePanel('a.ipynb', ['x = 1', 'values = [3, 4]\ny']);
    const cell = notebook.model.cells.get(1) as ICodeCellModel;
    cell.outputs.add({ output_type: 'stream', name: 'stdout', text: 'hi\n' });
    cell.outputs.add(ERROR);
    return { notebook, cellId: cell.id };
  }

  it('asks in edit mode with the instruction, the cell and the lines', async () => {
    const chat = fakeChat();
    const { notebook, cellId } = failing();
    const finished = chat.model.edit({
      panel: notebook.panel,
      cellId,
      prompt: '  make this a function ',
      selection: 'values = [3, 4]',
      confirm: () => Promise.resolve(true)
    });
    expect(finished).not.toBeNull();
    expect(chat.model.isBusy(cellId)).toBe(true);
    await settle();
    const ask = lastAsk(chat.connection);
    expect(ask).toMatchObject({
      mode: 'edit',
      prompt: 'make this a function',
      refine_cell: false,
      review: true,
      cell: {
        source: 'values = [3, 4]\ny',
        error: {
          ename: 'NameError',
          evalue: "name 'y' is not defined",
          traceback: ERROR.traceback
        },
        selection: 'values = [3, 4]'
      }
    });
    expect((ask.cell as { output: string }).output).toContain('hi');
    // The server ranks the cells the edited one reads: a wide context.
    expect(ask.context.cells.find(c => c.active)?.source).toBe(
      'values = [3, 4]\ny'
    );
    const view = chat.model.running!;
    expect(view).toMatchObject({
      mode: 'edit',
      prompt: 'make this a function',
      refines: 'cell 2'
    });
  });

  it('sends no selection for the whole cell, no review when applied at once', async () => {
    const chat = fakeChat();
    const notebook = fakePanel('a.ipynb', ['print(1)']);
    const cellId = notebook.model.cells.get(0).id;
    chat.model.edit({
      panel: notebook.panel,
      cellId,
      prompt: 'print two',
      selection: '',
      confirm: null
    });
    await settle();
    const ask = lastAsk(chat.connection);
    expect(ask.review).toBe(false);
    expect(ask.cell).toEqual({ source: 'print(1)' });
  });

  it('is not sent without words, or while a request runs', async () => {
    const chat = fakeChat();
    const notebook = fakePanel('a.ipynb', ['print(1)']);
    const cellId = notebook.model.cells.get(0).id;
    const edit = (prompt: string) =>
      chat.model.edit({
        panel: notebook.panel,
        cellId,
        prompt,
        selection: '',
        confirm: null
      });
    expect(edit('   ')).toBeNull();
    expect(edit('print two')).not.toBeNull();
    expect(edit('print three')).toBeNull();
    await settle();
    expect(chat.connection.sentOf('ask')).toHaveLength(1);
  });

  it('goes on in the chat: the next message refines the changed cell', async () => {
    const chat = fakeChat();
    const notebook = fakePanel('a.ipynb', ['print(1)']);
    const cellId = notebook.model.cells.get(0).id;
    const finished = chat.model.edit({
      panel: notebook.panel,
      cellId,
      prompt: 'print two',
      selection: '',
      confirm: null
    });
    await settle();
    const { id } = lastAsk(chat.connection);
    chat.connection.receive({
      type: 'execute',
      id,
      turn: 1,
      code: 'print(2)',
      target: 'replace',
      step: 1,
      attempt: 1,
      auto_execute: false,
      time_limit: 60
    });
    await settle();
    // Rewritten in place, the source before kept for the Restore command.
    const cell = notebook.model.cells.get(0);
    expect(cell.sharedModel.getSource()).toBe('print(2)');
    expect(cell.getMetadata('oci')).toMatchObject({
      original_source: 'print(1)'
    });
    chat.model.stop();
    chat.connection.receive({
      type: 'done',
      id,
      status: 'cancelled',
      turns: 1,
      message: 'Stopped.',
      final_code: 'print(2)',
      answer: '',
      steps: 1,
      budget: null
    });
    await finished;
    expect(chat.model.refineTarget()).toMatchObject({ cellId });
  });
});

describe('the Change This Cell command', () => {
  /** Settings the test sets, as the registry would give them. */
  function settingsWith(values: Record<string, unknown>): ISettingRegistry {
    const settings = {
      get: (key: string) => ({ composite: values[key] }),
      changed: new Signal<unknown, void>({})
    };
    return {
      load: (id: string) =>
        id === SETTINGS_ID
          ? Promise.resolve(settings)
          : Promise.reject(new Error(id))
    } as unknown as ISettingRegistry;
  }

  async function activate(values: Record<string, unknown>) {
    const cells = [codeCell('values = [3, 4, 5]\nprint(sum(values))')];
    // The notebook makes its active cell focusable.
    cells[0].node.tabIndex = 0;
    const content = {
      widgets: cells,
      activeCell: cells[0],
      mode: 'command'
    };
    const panel = {
      id: 'nb',
      content,
      model: { cells: { length: 1, get: () => cells[0].model } },
      isDisposed: false
    } as unknown as NotebookPanel;
    const asked: IEditOptions[] = [];
    const chat = {
      isBusy: () => false,
      running: null,
      stateChanged: new Signal({}),
      connection: { state: 'open' },
      edit: (options: IEditOptions) => {
        asked.push(options);
        return new Promise(() => undefined);
      },
      stopCell: () => undefined
    };
    const commands = new CommandRegistry();
    commands.addCommand(CommandIDs.openPanel, { execute: () => undefined });
    const tracker = {
      currentWidget: panel,
      find: (fn: (p: NotebookPanel) => boolean) =>
        fn(panel) ? panel : undefined
    };
    editCellPlugin.activate(
      { commands } as unknown as JupyterFrontEnd,
      chat as unknown as IOciChatModel,
      tracker as unknown as INotebookTracker,
      NBTestUtils.defaultRenderMime(),
      null,
      settingsWith(values),
      null
    );
    await settle();
    return { commands, cell: cells[0], asked };
  }

  async function send(commands: CommandRegistry, cell: CodeCell) {
    expect(commands.isEnabled(CommandIDs.editCell)).toBe(true);
    await commands.execute(CommandIDs.editCell, {});
    const input = cell.node.querySelector<HTMLTextAreaElement>(
      '.jp-OciEditPrompt textarea'
    )!;
    expect(document.activeElement).toBe(input);
    input.value = 'make this a function named total';
    input.dispatchEvent(
      new KeyboardEvent('keydown', { key: 'Enter', bubbles: true })
    );
    // Sent: the prompt is gone and the cell has the focus again.
    expect(cell.node.querySelector('.jp-OciEditPrompt')).toBeNull();
    expect(document.activeElement).toBe(cell.node);
  }

  it('shows the change as a diff by default', async () => {
    const { commands, cell, asked } = await activate({});
    await send(commands, cell);
    expect(asked).toHaveLength(1);
    expect(asked[0].prompt).toBe('make this a function named total');
    expect(asked[0].selection).toBe('');
    expect(asked[0].confirm).toBeInstanceOf(Function);
    cell.dispose();
  });

  it('applies it at once with applyEditsAtOnce, about the selected lines', async () => {
    const { commands, cell, asked } = await activate({
      applyEditsAtOnce: true
    });
    cell.editor!.setSelection({ start: at(0, 2), end: at(0, 5) });
    await send(commands, cell);
    expect(asked[0].confirm).toBeNull();
    expect(asked[0].selection).toBe('values = [3, 4, 5]');
    cell.dispose();
  });
});
