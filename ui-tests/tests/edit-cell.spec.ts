/**
 * Change This Cell (`oci:edit-cell`): the prompt under a cell, the change as
 * a diff, Accept runs the cell, Reject leaves it byte for byte. The scripted
 * server for the flow and the screenshots; the real bundled model for one
 * instruction whose result a test can check.
 *
 * Both servers run for every Galata run (playwright.config.js): this file
 * belongs to the scripted project, and its real-model tests go to the real
 * server's port.
 */
import {
  expect,
  galata,
  IJupyterLabPageFixture,
  test
} from '@jupyterlab/galata';
import type { Locator } from '@playwright/test';
import * as path from 'path';

import {
  failOnPageErrors,
  IMAGES,
  newNotebook,
  notebookCells,
  openPanel,
  outputText,
  reply,
  requests,
  script
} from './helpers';

failOnPageErrors();

const SOURCE = 'values = [3, 4, 5]\nprint(sum(values))';
const CHANGED =
  'def total(values):\n    return sum(values)\n\nvalues = [3, 4, 5]\nprint(total(values))';
const INSTRUCTION =
  'make this a function named total that takes the list and returns the sum';

/** The n-th cell of the notebook. */
const cellAt = (page: IJupyterLabPageFixture, n: number) =>
  page.locator('.jp-Notebook .jp-Cell').nth(n);

/**
 * A notebook whose second cell sums a list, run by the user in place (it
 * stays the active cell). The file browser is closed: the cell toolbar
 * needs room beside the code to show.
 */
async function listCell(page: IJupyterLabPageFixture): Promise<void> {
  await page.sidebar.close('left');
  await newNotebook(page);
  await page.notebook.addCell('code', SOURCE);
  await page.notebook.runCell(1, { inplace: true });
  await expect
    .poll(async () => outputText((await notebookCells(page))[1]))
    .toContain('12');
}

/** Open the prompt with the cell toolbar's button. */
async function openPrompt(
  page: IJupyterLabPageFixture,
  cell: Locator
): Promise<Locator> {
  const button = cell.locator(
    '.jp-cell-toolbar [data-command="oci:edit-cell"]'
  );
  await expect(button).toBeVisible();
  await expect(button).toHaveAttribute('title', /change the active cell.*E/i);
  await button.click();
  const input = cell.getByRole('textbox', { name: 'How to change this cell' });
  await expect(input).toBeFocused();
  await expect(input).toHaveAttribute('placeholder', 'Change this cell…');
  return input;
}

/** Send an instruction from the prompt: the diff the model's code makes. */
async function askForChange(
  page: IJupyterLabPageFixture,
  input: Locator
): Promise<Locator> {
  await input.fill(INSTRUCTION);
  await input.press('Enter');
  const dialog = page.locator('.jp-Dialog.jp-OciDiffDialog');
  await expect(dialog).toBeVisible({ timeout: 60 * 1000 });
  return dialog;
}

test.describe('Change This Cell, scripted', () => {
  test('opens at the cell; Escape closes it and gives the cell back', async ({
    page
  }) => {
    await listCell(page);
    const cell = cellAt(page, 1);
    const input = await openPrompt(page, cell);
    // Under the cell's code, above its output.
    const order = await cell.evaluate(node => {
      const prompt = node.querySelector('.jp-OciEditPrompt')!;
      const output = node.querySelector('.jp-Cell-outputWrapper')!;
      return prompt.compareDocumentPosition(output);
    });
    // Node.DOCUMENT_POSITION_FOLLOWING: the output comes after the prompt.
    expect(order & 4).toBeTruthy();
    // Typing is not the notebook's: "a", "b", "d" insert no cells here.
    await input.pressSequentially('abd');
    expect(await notebookCells(page)).toHaveLength(2);
    await input.press('Shift+Enter');
    await expect(input).toHaveValue('abd\n');
    await input.press('Escape');
    await expect(cell.locator('.jp-OciEditPrompt')).toHaveCount(0);
    // Back on the cell in command mode: the notebook's keys work again.
    await expect(cell).toBeFocused();
    await expect(page.locator('.jp-Notebook.jp-mod-commandMode')).toHaveCount(
      1
    );
    // And the shortcut opens it from there.
    await page.keyboard.press('Shift+E');
    await expect(
      cell.getByRole('textbox', { name: 'How to change this cell' })
    ).toBeFocused();
    await page.keyboard.press('Escape');
    expect((await notebookCells(page))[1].source).toBe(SOURCE);
  });

  test('Accept replaces the source and runs that cell only', async ({
    page
  }) => {
    await listCell(page);
    const cell = cellAt(page, 1);
    const input = await openPrompt(page, cell);
    script([
      reply('A function `total` that sums the list:', CHANGED),
      'Wrapped the sum in a function `total(values)`.'
    ]);
    const dialog = await askForChange(page, input);
    await expect(dialog.locator('.jp-Dialog-header')).toContainText(
      'Apply the change?'
    );
    await expect(dialog.locator('.jp-OciDiff-added').first()).toContainText(
      'def total(values):'
    );
    await expect(dialog.locator('.jp-OciDiff-removed')).toContainText(
      'print(sum(values))'
    );
    // The chat shows the request as the user's words, about the cell.
    const request = requests(page).last();
    await expect(request.locator('.jp-OciChat-prompt')).toHaveText(
      INSTRUCTION
    );
    await expect(request.locator('.jp-OciChat-refines')).toContainText(
      'Changing'
    );
    await dialog.getByRole('button', { name: 'Accept' }).click();
    await expect(request).toHaveAttribute('data-oci-status', 'success', {
      timeout: 60 * 1000
    });
    const cells = await notebookCells(page);
    expect(cells).toHaveLength(2);
    // The model's code as the server sends it (a final newline or not).
    expect(cells[1].source.trimEnd()).toBe(CHANGED);
    expect(outputText(cells[1])).toContain('12');
    expect(cells[1].metadata.oci.original_source).toBe(SOURCE);
    // Only that cell ran: the first kept its count.
    expect(cells[0].execution_count).toBe(1);
    // The model's one-line summary, under the cell.
    await expect(cell.locator('.jp-OciFixResult')).toContainText(
      'Wrapped the sum in a function'
    );
    // The source before the change comes back with the renamed command.
    await page.evaluate(() =>
      window.jupyterapp.commands.execute('oci:restore-original')
    );
    expect((await notebookCells(page))[1].source).toBe(SOURCE);
  });

  test('Reject leaves the cell byte for byte', async ({ page }) => {
    await listCell(page);
    const cell = cellAt(page, 1);
    const before = (await notebookCells(page))[1];
    const input = await openPrompt(page, cell);
    script([reply('A function `total`:', CHANGED)]);
    const dialog = await askForChange(page, input);
    await dialog.getByRole('button', { name: 'Reject' }).click();
    await expect(requests(page).last()).toHaveAttribute(
      'data-oci-status',
      'cancelled',
      { timeout: 30 * 1000 }
    );
    const after = (await notebookCells(page))[1];
    expect(after.source).toBe(before.source);
    expect(after.outputs).toEqual(before.outputs);
    expect(after.execution_count).toBe(before.execution_count);
    expect(after.metadata.oci).toBeUndefined();
  });
});

test.describe('Change This Cell screenshots', () => {
  test.use({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 2 });

  for (const theme of ['light', 'dark']) {
    test(`the prompt and the diff, ${theme} theme`, async ({ page }) => {
      if (theme === 'dark') {
        await page.evaluate(() =>
          window.jupyterapp.commands.execute('apputils:change-theme', {
            theme: 'JupyterLab Dark'
          })
        );
        await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
      }
      await listCell(page);
      const cell = cellAt(page, 1);
      // About the selected line: the prompt says which. (Escape would drop
      // the selection: CodeMirror's own Escape; the toolbar keeps it.)
      await cell.locator('.cm-content').click();
      await page.keyboard.press('Control+End');
      await page.keyboard.press('Shift+Home');
      const input = await openPrompt(page, cell);
      await expect(cell.locator('.jp-OciEditPrompt-about')).toHaveText(
        'About line 2'
      );
      await input.fill('use a for loop instead of sum');
      await cell.screenshot({
        path: path.join(IMAGES, `edit-prompt-${theme}.png`)
      });
      await input.fill('');
      script([reply('A function `total`:', CHANGED), 'Made it a function.']);
      const dialog = await askForChange(page, input);
      await dialog
        .locator('.jp-Dialog-content')
        .screenshot({ path: path.join(IMAGES, `edit-diff-${theme}.png`) });
      await dialog.getByRole('button', { name: 'Reject' }).click();
    });
  }
});

test.describe('Change This Cell with the real model', () => {
  // The real bundled model's server (playwright.config.js, `real-model`).
  test.use({
    baseURL: `http://127.0.0.1:${process.env.OCI_UI_TEST_PORT || '8877'}`,
    mockSettings: { ...galata.DEFAULT_SETTINGS }
  });
  // Loading the model, a kernel, two or three replies on a busy 2-core CPU;
  // the model samples, as users get it: two retries, as chat-real's.
  test.describe.configure({ timeout: 14 * 60 * 1000, retries: 2 });

  test('makes a function the next cell can call', async ({ page }) => {
    await listCell(page);
    const panel = await openPanel(page);
    await expect(panel.locator('[data-oci-state="ready"]')).toBeVisible({
      timeout: 5 * 60 * 1000
    });
    const cell = cellAt(page, 1);
    await cell.click();
    const input = await openPrompt(page, cell);
    await input.fill(INSTRUCTION);
    await input.press('Enter');
    // Every rewrite the model proposes waits for Accept.
    const request = requests(page).last();
    const dialog = page.locator('.jp-Dialog.jp-OciDiffDialog');
    const deadline = Date.now() + 8 * 60 * 1000;
    let accepted = 0;
    while ((await request.getAttribute('data-oci-status')) === 'running') {
      expect(Date.now()).toBeLessThan(deadline);
      if (await dialog.isVisible()) {
        await dialog.getByRole('button', { name: 'Accept' }).click();
        await expect(dialog).toHaveCount(0);
        accepted++;
      }
      await page.waitForTimeout(200);
    }
    const cells = await notebookCells(page);
    console.log(
      `changed cell after ${accepted} accepted diff(s):\n${cells[1].source}\n` +
        `chat: ${(await request.innerText()).slice(-400)}`
    );
    await expect(request).toHaveAttribute('data-oci-status', 'success');
    expect(accepted).toBeGreaterThanOrEqual(1);
    expect(cells[1].source).toContain('def total(');
    expect(cells[1].metadata.oci.original_source).toBe(SOURCE);
    // The function is in the kernel: a new cell calls it.
    await page.notebook.addCell('code', 'print(total([1, 2, 3]))');
    await page.notebook.runCell(2, { inplace: true });
    await expect
      .poll(async () => outputText((await notebookCells(page))[2]))
      .toContain('6');
  });
});
