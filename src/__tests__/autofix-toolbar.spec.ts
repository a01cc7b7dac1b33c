/**
 * The Fix command in JupyterLab's cell toolbar (the schema's
 * `jupyter.lab.toolbars` → `Cell`): shown on the active cell only when it
 * failed; and the `fixButtonInCell` setting, which adds or removes the button
 * under failing cells while the page is open.
 */
import * as fs from 'fs';
import * as path from 'path';

import { JupyterFrontEnd } from '@jupyterlab/application';
import { CodeCell, CodeCellModel, ICodeCellModel } from '@jupyterlab/cells';
import * as nbformat from '@jupyterlab/nbformat';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { NBTestUtils } from '@jupyterlab/testutils';
import { CommandRegistry } from '@lumino/commands';
import { Signal } from '@lumino/signaling';

import { CommandIDs } from '../commands';
import { autoFixPlugin } from '../plugins/autofix';
import { SETTINGS_ID } from '../plugins/settings';
import { IOciChatModel } from '../tokens';
import { fakePanel, settle } from './fakes';

const schema = JSON.parse(
  fs.readFileSync(path.resolve(__dirname, '../../schema/plugin.json'), 'utf-8')
) as Record<string, any>;

const ERROR: nbformat.IError = {
  output_type: 'error',
  ename: 'NameError',
  evalue: "name 'y' is not defined",
  traceback: []
};

/** What the cell toolbar passes its items (CellBarExtension). */
const inToolbar = (widgetId: string) => ({ toolbar: true, widgetId });

/** A chat with nothing running; `busy` lists the cells a request works on. */
function fakeChat(busy: string[] = []) {
  return {
    isBusy: (id: string) => busy.includes(id),
    running: null,
    stateChanged: new Signal({})
  };
}

/** Settings the test changes, as the registry would announce them. */
function fakeSettings(values: Record<string, unknown>) {
  const settings = {
    get: (key: string) => ({ composite: values[key] }),
    changed: null as unknown as Signal<unknown, void>
  };
  // Sent by the settings themselves, as the registry's are.
  const changed = new Signal<unknown, void>(settings);
  settings.changed = changed;
  const registry = {
    load: (id: string) =>
      id === SETTINGS_ID
        ? Promise.resolve(settings)
        : Promise.reject(new Error(id))
  };
  return {
    registry: registry as unknown as ISettingRegistry,
    set(key: string, value: unknown) {
      values[key] = value;
      changed.emit();
    }
  };
}

/** Activate the plugin on these notebooks; the first one is current. */
function activate(
  panels: NotebookPanel[],
  chat = fakeChat(),
  settings: ISettingRegistry | null = null
) {
  const commands = new CommandRegistry();
  const app = { commands } as unknown as JupyterFrontEnd;
  const widgetAdded = new Signal<unknown, NotebookPanel>({});
  const tracker = {
    get currentWidget() {
      return panels[0] ?? null;
    },
    get activeCell() {
      return panels[0]?.content.activeCell ?? null;
    },
    currentChanged: new Signal({}),
    widgetAdded,
    find: (fn: (panel: NotebookPanel) => boolean) => panels.find(fn),
    forEach: (fn: (panel: NotebookPanel) => void) => panels.forEach(fn)
  };
  autoFixPlugin.activate(
    app,
    chat as unknown as IOciChatModel,
    tracker as unknown as INotebookTracker,
    NBTestUtils.defaultRenderMime(),
    null,
    settings,
    null
  );
  return { commands, widgetAdded };
}

describe('the Fix command in the cell toolbar', () => {
  it('is an item of the schema’s Cell toolbar, before JupyterLab’s own', () => {
    const items = schema['jupyter.lab.toolbars'].Cell as {
      name: string;
      command: string;
      rank: number;
    }[];
    expect(items).toEqual([
      {
        name: 'oci-fix',
        command: CommandIDs.fixCell,
        rank: expect.any(Number)
      },
      {
        name: 'oci-edit',
        command: CommandIDs.editCell,
        rank: expect.any(Number)
      }
    ]);
    // JupyterLab's items have no rank (50): ours come first, on the left,
    // so theirs do not move when the Fix shows; Change This Cell, always
    // there on a code cell, is right of the Fix, so it does not move either.
    expect(items[0].rank).toBeLessThan(items[1].rank);
    expect(items[1].rank).toBeLessThan(50);
  });

  it('has an icon, a label and a caption', () => {
    const { commands } = activate([]);
    expect(commands.icon(CommandIDs.fixCell, inToolbar('nb'))).toBeTruthy();
    expect(commands.label(CommandIDs.fixCell)).toBe(
      'Fix the Cell with OpenCodeInterpreter'
    );
    expect(commands.caption(CommandIDs.fixCell)).toContain('error');
  });

  it('shows on the active cell when it is a code cell with an error, not otherwise', () => {
    const notebook = fakePanel('a.ipynb', ['x = 1', 'print(y)']);
    (notebook.panel as { id: string }).id = 'nb-a';
    const { commands } = activate([notebook.panel]);
    const args = inToolbar('nb-a');
    const shown = () => ({
      visible: commands.isVisible(CommandIDs.fixCell, args),
      enabled: commands.isEnabled(CommandIDs.fixCell, args)
    });

    // The active cell (the last) has no output yet.
    expect(shown()).toEqual({ visible: false, enabled: false });
    const failing = notebook.model.cells.get(1) as ICodeCellModel;
    failing.outputs.add(ERROR);
    expect(shown()).toEqual({ visible: true, enabled: true });
    // Another cell active: the error is not its.
    notebook.activate(0);
    expect(shown()).toEqual({ visible: false, enabled: false });
    notebook.activate(1);
    // Outputs without an error.
    failing.outputs.clear();
    failing.outputs.add({ output_type: 'stream', name: 'stdout', text: 'ok' });
    expect(shown()).toEqual({ visible: false, enabled: false });

    // A markdown cell never shows it.
    notebook.model.sharedModel.insertCell(2, {
      cell_type: 'markdown',
      source: '# notes'
    });
    notebook.activate(2);
    expect(shown()).toEqual({ visible: false, enabled: false });

    // Menus and the palette keep the item, enabled only on a failing cell.
    notebook.activate(1);
    expect(commands.isVisible(CommandIDs.fixCell)).toBe(true);
    expect(commands.isEnabled(CommandIDs.fixCell)).toBe(false);
    failing.outputs.add(ERROR);
    expect(commands.isVisible(CommandIDs.fixCell)).toBe(true);
    expect(commands.isEnabled(CommandIDs.fixCell)).toBe(true);
  });

  it('is about the toolbar’s own notebook, not the current one', () => {
    const current = fakePanel('a.ipynb', ['x = 1']);
    const other = fakePanel('b.ipynb', ['print(y)']);
    (current.panel as { id: string }).id = 'nb-a';
    (other.panel as { id: string }).id = 'nb-b';
    (other.model.cells.get(0) as ICodeCellModel).outputs.add(ERROR);
    const { commands } = activate([current.panel, other.panel]);
    expect(commands.isVisible(CommandIDs.fixCell, inToolbar('nb-b'))).toBe(
      true
    );
    expect(commands.isVisible(CommandIDs.fixCell, inToolbar('nb-a'))).toBe(
      false
    );
  });

  it('hides on a cell a request is already fixing', () => {
    const notebook = fakePanel('a.ipynb', ['print(y)']);
    (notebook.panel as { id: string }).id = 'nb-a';
    const cell = notebook.model.cells.get(0) as ICodeCellModel;
    cell.outputs.add(ERROR);
    const { commands } = activate([notebook.panel], fakeChat([cell.id]));
    expect(commands.isVisible(CommandIDs.fixCell, inToolbar('nb-a'))).toBe(
      false
    );
  });
});

describe('the button under failing cells (fixButtonInCell)', () => {
  /** A notebook of real code cells; `failing` get an error output. */
  function cellsPanel(sources: string[], failing: number[]) {
    const cells = sources.map((source, i) => {
      const model = new CodeCellModel();
      model.sharedModel.setSource(source);
      if (failing.includes(i)) {
        model.outputs.add(ERROR);
      }
      return new CodeCell({
        model,
        rendermime: NBTestUtils.defaultRenderMime(),
        contentFactory: NBTestUtils.createCodeCellFactory(),
        placeholder: false
      }).initializeState();
    });
    const content = {
      widgets: cells,
      activeCell: cells[cells.length - 1],
      activeCellChanged: new Signal({})
    };
    const panel = {
      id: 'nb',
      content,
      context: { ready: Promise.resolve() },
      isDisposed: false,
      disposed: new Signal({})
    } as unknown as NotebookPanel;
    return { panel, cells };
  }
  const buttons = (cells: CodeCell[]) =>
    cells.map(cell => cell.node.querySelectorAll('.jp-OciFixButton').length);

  it('is under a failing cell of an opened notebook by default', async () => {
    const { panel, cells } = cellsPanel(['x = 1', 'print(y)'], [1]);
    const settings = fakeSettings({});
    const { widgetAdded } = activate([panel], fakeChat(), settings.registry);
    widgetAdded.emit(panel);
    await settle();
    expect(buttons(cells)).toEqual([0, 1]);
    expect(
      cells[1].node.querySelector('.jp-OciFixButton button')?.textContent
    ).toBe('Fix with OpenCodeInterpreter');
  });

  it('goes and comes back when the setting changes, on the cells already failing', async () => {
    const { panel, cells } = cellsPanel(
      ['print(y)', 'x = 1', 'print(z)'],
      [0, 2]
    );
    const settings = fakeSettings({ fixButtonInCell: true });
    const { widgetAdded } = activate([panel], fakeChat(), settings.registry);
    widgetAdded.emit(panel);
    await settle();
    expect(buttons(cells)).toEqual([1, 0, 1]);

    settings.set('fixButtonInCell', false);
    await settle();
    expect(buttons(cells)).toEqual([0, 0, 0]);

    settings.set('fixButtonInCell', true);
    await settle();
    expect(buttons(cells)).toEqual([1, 0, 1]);

    // `autoFix: off` takes them away too.
    settings.set('autoFix', 'off');
    await settle();
    expect(buttons(cells)).toEqual([0, 0, 0]);
  });

  it('is not added to an opened notebook while the setting is off', async () => {
    const { panel, cells } = cellsPanel(['print(y)'], [0]);
    const settings = fakeSettings({ fixButtonInCell: false });
    const { widgetAdded } = activate([panel], fakeChat(), settings.registry);
    await settle();
    widgetAdded.emit(panel);
    await settle();
    expect(buttons(cells)).toEqual([0]);
  });

  it('is not added to a cell a request is fixing', async () => {
    const { panel, cells } = cellsPanel(['print(y)'], [0]);
    const settings = fakeSettings({ fixButtonInCell: false });
    const chat = fakeChat([cells[0].model.id]);
    activate([panel], chat, settings.registry);
    await settle();
    settings.set('fixButtonInCell', true);
    await settle();
    expect(buttons(cells)).toEqual([0]);
  });

  it('tells the toolbar when the active cell gains or loses its error', async () => {
    const { panel, cells } = cellsPanel(['print(y)'], []);
    const { commands, widgetAdded } = activate([panel]);
    widgetAdded.emit(panel);
    await settle();
    const changes: string[] = [];
    commands.commandChanged.connect((_, change) => {
      if (change.id) {
        changes.push(change.id);
      }
    });
    const outputs = cells[0].model.outputs;
    outputs.add({ output_type: 'stream', name: 'stdout', text: 'a' });
    expect(changes).toEqual([]);
    outputs.add(ERROR);
    expect(changes).toEqual([CommandIDs.fixCell]);
    // More output, still failing: nothing new to tell.
    outputs.add({ output_type: 'stream', name: 'stdout', text: 'b' });
    expect(changes).toEqual([CommandIDs.fixCell]);
    outputs.clear();
    expect(changes).toEqual([CommandIDs.fixCell, CommandIDs.fixCell]);
  });
});
