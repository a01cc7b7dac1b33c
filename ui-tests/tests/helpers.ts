/**
 * Helpers shared by the chat's UI tests.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

// The scripted-chat specs take Galata's test API from here, with the helpers,
// in one import.
export { expect, galata, test } from '@jupyterlab/galata';
export type { IJupyterLabPageFixture } from '@jupyterlab/galata';

export const PANEL = '#oci-jupyter-panel';
/**
 * Where the screenshots for the docs go: the test output, unless
 * `OCI_UPDATE_DOCS_IMAGES=1` asks to refresh docs/images (a test run leaves the
 * tracked tree as it found it).
 */
export const IMAGES = process.env.OCI_UPDATE_DOCS_IMAGES
  ? path.resolve(__dirname, '..', '..', 'docs', 'images')
  : path.resolve(__dirname, '..', 'test-results', 'docs-images');

export async function openPanel(page: IJupyterLabPageFixture) {
  await page.evaluate(async () => {
    await window.jupyterapp.commands.execute('oci:open-panel');
  });
  const panel = page.locator(PANEL);
  await expect(panel).toBeVisible();
  return panel;
}

/** The chat's input box. */
export function chatInput(page: IJupyterLabPageFixture) {
  return page
    .locator(PANEL)
    .getByRole('textbox', { name: 'Message to the model' });
}

/** The chat's Send button (Stop takes its place while a request runs). */
export function sendButton(page: IJupyterLabPageFixture) {
  return page.locator(PANEL).getByRole('button', { name: 'Send' });
}

/**
 * Type a message and send it with Enter. The input is editable before the
 * chat can send (model loading, socket connecting): Enter waits for Send.
 */
export async function ask(page: IJupyterLabPageFixture, prompt: string) {
  const input = chatInput(page);
  await input.fill(prompt);
  await expect(sendButton(page)).toBeEnabled({ timeout: 60 * 1000 });
  await input.press('Enter');
}

/** The request items of the chat, oldest first. */
export function requests(page: IJupyterLabPageFixture) {
  return page.locator(`${PANEL} .jp-OciChat-request`);
}

export interface ICellJSON {
  cell_type: string;
  source: string;
  metadata: Record<string, any>;
  execution_count?: number | null;
  outputs?: any[];
}

/** The current notebook as nbformat JSON, read from its model. */
export async function notebookCells(
  page: IJupyterLabPageFixture
): Promise<ICellJSON[]> {
  return page.evaluate(() => {
    const widget = window.jupyterapp.shell.currentWidget as any;
    const cells = widget.content.model.toJSON().cells as any[];
    return cells.map(cell => ({
      ...cell,
      source: Array.isArray(cell.source) ? cell.source.join('') : cell.source
    }));
  });
}

/** All text outputs of a cell, joined; errors as `ename: evalue`. */
export function outputText(cell: ICellJSON): string {
  return (cell.outputs ?? [])
    .map(output => {
      if (output.output_type === 'error') {
        return `${output.ename}: ${output.evalue}\n`;
      }
      const text = output.text ?? output.data?.['text/plain'] ?? '';
      return Array.isArray(text) ? text.join('') : text;
    })
    .join('');
}

/**
 * A fresh notebook whose kernel is up: its first cell is set and run, so the
 * chat has a variable and an executed cell to see.
 */
export async function newNotebook(
  page: IJupyterLabPageFixture,
  firstCell = 'x = 41\nprint(x + 1)'
): Promise<string> {
  const name = await page.notebook.createNew();
  if (!name) {
    throw new Error('could not create a notebook');
  }
  await page.notebook.setCell(0, 'code', firstCell);
  await page.notebook.runCell(0, { inplace: true });
  return name;
}

/**
 * Reload the page and make this notebook current. The restored workspace
 * shows the notebook, not the launcher Galata waits for by default; restored
 * with the workspace or opened again, either way it is current.
 */
export async function reloadWith(
  page: IJupyterLabPageFixture,
  notebookPath: string
) {
  await page.reload({ waitForIsReady: false });
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
  // The command resolves with the notebook widget: return nothing, Playwright
  // cannot serialize a widget.
  await page.evaluate(async path => {
    await window.jupyterapp.commands.execute('docmanager:open', { path });
  }, notebookPath);
}

/**
 * Select a cell and run it with JupyterLab's own command, as a user pressing
 * Shift+Enter would (without moving to the next cell).
 */
export async function runCellByHand(
  page: IJupyterLabPageFixture,
  index: number
) {
  await page.notebook.selectCells(index);
  await page.evaluate(async () => {
    await window.jupyterapp.commands.execute('notebook:run-cell');
  });
}

// ---- the scripted engine's replies (tests/doubles.py: ScriptedTestEngine)

interface IScript {
  replies: string[];
  prompts: { role: string; content: string }[][];
}

function scriptFile(): string {
  const file = process.env.OCI_UI_TEST_SCRIPT_FILE;
  if (!file) {
    throw new Error(
      'OCI_UI_TEST_SCRIPT_FILE is not set (see playwright.config.js)'
    );
  }
  return file;
}

/** The replies the scripted model gives next, in order. */
export function script(replies: string[]): void {
  fs.writeFileSync(scriptFile(), JSON.stringify({ replies, prompts: [] }));
}

/** What the scripted model was asked since the last `script()`. */
export function scriptedPrompts(): IScript['prompts'] {
  return (JSON.parse(fs.readFileSync(scriptFile(), 'utf8')) as IScript).prompts;
}

/** A cell that fails with a NameError (a misspelled name), and its fix. */
export const BROKEN = 'total = sum(range(1, 11))\nprint(totl)';
export const FIXED = 'total = sum(range(1, 11))\nprint(total)';

/** A reply as the model writes one: a sentence, then a python block. */
export function reply(text: string, code: string): string {
  return `${text}\n\n\`\`\`python\n${code}\n\`\`\``;
}

/** Performance marks the chat leaves for measurements. */
export async function marks(page: IJupyterLabPageFixture, name: string) {
  return page.evaluate(
    markName =>
      performance.getEntriesByName(markName).map(entry => ({
        startTime: entry.startTime,
        detail: (entry as PerformanceMark).detail
      })),
    name
  );
}

/**
 * Drag the right sidebar's edge so it is `width` pixels wide, as a user
 * would (the shell has no public API for sidebar sizes).
 */
export async function widenSidebar(
  page: IJupyterLabPageFixture,
  width: number
) {
  const panel = page.locator(PANEL);
  const box = await panel.boundingBox();
  const handle = page
    .locator('#jp-main-split-panel > .lm-SplitPanel-handle:not(.lm-mod-hidden)')
    .last();
  const grip = await handle.boundingBox();
  if (!box || !grip) {
    throw new Error('the sidebar or its handle is not visible');
  }
  const y = grip.y + grip.height / 2;
  await page.mouse.move(grip.x + grip.width / 2, y);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width - width, y, { steps: 5 });
  await page.mouse.up();
}

/**
 * Fail every test of the file on an exception in the page: one (a React
 * tree torn down, a widget that cannot detach) blanks the panel without
 * failing any assertion.
 */
export function failOnPageErrors(): void {
  let pageErrors: string[] = [];
  test.beforeEach(({ page }) => {
    pageErrors = [];
    page.on('pageerror', error => pageErrors.push(error.message));
  });
  test.afterEach(() => {
    expect(pageErrors).toEqual([]);
  });
}
