/**
 * The default shortcuts (schema/plugin.json) take no key from the user: none
 * is Ctrl+Alt (AltGr on Windows layouts), a browser shortcut or a JupyterLab
 * default, and Escape is the chat's only while a request runs.
 */
import * as fs from 'fs';
import * as path from 'path';

interface IShortcut {
  command: string;
  keys: string[];
  selector: string;
}

const schema = JSON.parse(
  fs.readFileSync(path.resolve(__dirname, '../../schema/plugin.json'), 'utf-8')
);
const shortcuts: IShortcut[] = schema['jupyter.lab.shortcuts'];

/** Keys of Chrome and Firefox (Ctrl or ⌘) that a page must not take. */
const BROWSER_KEYS = [
  'Accel Shift A', // Chrome: search tabs; Firefox: add-ons
  'Accel Shift B', // bookmarks bar
  'Accel Shift I', // developer tools
  'Accel Shift J', // console
  'Accel Shift M', // Chrome: profiles; Firefox: responsive design
  'Accel Shift N', // private window
  'Accel Shift O', // Chrome: bookmark manager
  'Accel Shift P', // Firefox: private window
  'Accel Shift Q', // quit (Linux Chrome)
  'Accel Shift R', // reload without the cache
  'Accel Shift T', // reopen the closed tab
  'Accel Shift W', // close the window
  'Accel Shift Delete', // clear browsing data
  'Accel Shift 3', // macOS: screenshot
  'Accel Shift 4', // macOS: screenshot of a part
  'Accel Shift 5' // macOS: screenshot tool
];

/** JupyterLab's own defaults that fire anywhere (selector body). */
const JUPYTERLAB_KEYS = [
  'Accel Shift C',
  'Accel Shift D',
  'Accel Shift E',
  'Accel Shift F',
  'Accel Shift H',
  'Accel Shift K',
  'Accel Shift L',
  'Accel Shift U',
  'Accel Shift X',
  'Alt 1',
  'Alt Shift 1'
];

function binding(command: string): IShortcut {
  const found = shortcuts.filter(s => s.command === command);
  expect(found).toHaveLength(1);
  return found[0];
}

describe('the default shortcuts', () => {
  it('cover opening the panel, fixing and changing a cell and stopping', () => {
    expect(shortcuts.map(s => s.command).sort()).toEqual([
      'oci:edit-cell',
      'oci:fix-cell',
      'oci:open-panel',
      'oci:stop'
    ]);
  });

  it('use no Ctrl+Alt: it is AltGr, which types characters', () => {
    for (const { keys } of shortcuts) {
      for (const key of keys) {
        const parts = key.split(' ');
        const ctrl = parts.includes('Accel') || parts.includes('Ctrl');
        expect({ key, ctrlAlt: ctrl && parts.includes('Alt') }).toEqual({
          key,
          ctrlAlt: false
        });
      }
    }
  });

  it('take no browser or JupyterLab shortcut', () => {
    for (const { keys } of shortcuts) {
      for (const key of keys) {
        expect(BROWSER_KEYS).not.toContain(key);
        expect(JUPYTERLAB_KEYS).not.toContain(key);
      }
    }
  });

  it('fix a cell from command mode only: typing in a cell is left alone', () => {
    const fix = binding('oci:fix-cell');
    expect(fix.selector).toContain('.jp-mod-commandMode');
    expect(fix.selector).not.toContain('.jp-mod-editMode');
  });

  it('change a cell from command mode only, outside any input', () => {
    const edit = binding('oci:edit-cell');
    expect(edit.keys).toEqual(['Shift E']);
    // JupyterLab 4.6's command-mode Shift keys (tracker.json, viewmenu).
    for (const taken of ['A', 'B', 'J', 'K', 'L', 'M', 'R', 'Z']) {
      expect(edit.keys).not.toContain(`Shift ${taken}`);
    }
    // As JupyterLab's own command-mode keys: not while typing in a cell,
    // nor in an input inside the notebook (the edit prompt itself).
    expect(edit.selector).toBe(
      '.jp-Notebook.jp-mod-commandMode:not(.jp-mod-readWrite) :focus'
    );
  });

  it('take Escape only in the chat while a request runs', () => {
    const stop = binding('oci:stop');
    expect(stop.keys).toEqual(['Escape']);
    expect(stop.selector).toBe('.jp-OciPanel.jp-mod-running');
  });
});
