/**
 * Auto-fix of failing cells against the scripted engine: the Fix button under
 * a failing cell, the diff to accept, the explanation, reject, stop, a busy
 * chat, after a reload, `autoFix: auto` (and `autofix-diff.png` for the docs).
 */
import * as path from 'path';

import {
  ask,
  chatInput,
  expect,
  failOnPageErrors,
  galata,
  IJupyterLabPageFixture,
  IMAGES,
  newNotebook,
  notebookCells,
  openPanel,
  outputText,
  PANEL,
  reloadWith,
  reply,
  requests,
  runCellByHand,
  script,
  scriptedPrompts,
  test
} from './helpers';

failOnPageErrors();

test.describe('auto-fix of failing cells', () => {
  const FAILING = 'doubled = x * 2\nprint(y)';
  const REPAIRED = 'doubled = x * 2\nprint(doubled)';
  /** The model's words once it has read the fixed cell's result. */
  const EXPLAINED = '`y` was never defined: the cell now prints `doubled`, 82.';

  /** A notebook whose second cell, run by the user, fails with a NameError. */
  async function failingCell(page: IJupyterLabPageFixture): Promise<string> {
    const name = await newNotebook(page);
    await page.notebook.addCell('code', FAILING);
    await page.notebook.runCell(1, { inplace: true });
    // It failed: its NameError shows, unless an automatic fix (autoFix "auto",
    // a fast scripted model) already rewrote it, keeping the failing source.
    await expect
      .poll(async () => {
        const cell = (await notebookCells(page))[1];
        return outputText(cell).includes('NameError')
          ? 'failed'
          : cell.metadata.oci?.original_source === FAILING
            ? 'failed, and already being fixed'
            : outputText(cell);
      })
      .toMatch(/^failed/);
    return name;
  }

  test('suggest: the Fix button, a diff to accept, the fixed cell runs; the original comes back', async ({
    page
  }, testInfo) => {
    script([reply('`y` is not defined; `x` is.', REPAIRED), EXPLAINED]);
    await failingCell(page);

    const cell = page.locator('.jp-Notebook .jp-Cell').nth(1);
    const button = cell.locator('.jp-OciFixButton button');
    await expect(button).toHaveText('Fix with OpenCodeInterpreter');
    await cell.screenshot({ path: testInfo.outputPath('fix-button.png') });
    // Only the failing cell has one.
    await expect(page.locator('.jp-OciFixButton')).toHaveCount(1);
    await button.click();

    // The chat shows the fix as a request; the diff waits for the user.
    const panel = page.locator(PANEL);
    await expect(panel).toBeVisible();
    const dialog = page.locator('.jp-Dialog.jp-OciDiffDialog');
    await expect(dialog).toBeVisible({ timeout: 30 * 1000 });
    await expect(dialog.locator('.jp-OciDiff-same')).toHaveText(
      '  doubled = x * 2'
    );
    await expect(dialog.locator('.jp-OciDiff-removed')).toHaveText(
      '- print(y)'
    );
    await expect(dialog.locator('.jp-OciDiff-added')).toHaveText(
      '+ print(doubled)'
    );
    await expect(cell).toHaveClass(/jp-mod-ociFixing/);
    await page.screenshot({ path: testInfo.outputPath('fixing.png') });
    // Not replaced before it is accepted.
    expect((await notebookCells(page))[1].source).toBe(FAILING);
    await dialog
      .locator('.jp-Dialog-content')
      .screenshot({ path: path.join(IMAGES, 'autofix-diff.png') });
    await dialog.getByRole('button', { name: 'Accept' }).click();

    const request = requests(page).last();
    await expect(request).toHaveAttribute('data-oci-status', 'success', {
      timeout: 30 * 1000
    });
    await expect(request.locator('.jp-OciChat-prompt')).toContainText(
      'NameError'
    );
    await expect(cell).not.toHaveClass(/jp-mod-ociFixing/);
    await expect(page.locator('.jp-OciFixButton')).toHaveCount(0);

    // Rewritten in place, run, and the original kept.
    const cells = await notebookCells(page);
    expect(cells).toHaveLength(2);
    expect(cells[1].source.trim()).toBe(REPAIRED);
    expect(outputText(cells[1])).toContain('82');
    expect(cells[1].metadata.oci.original_source).toBe(FAILING);

    // The model was asked to fix that cell, with its error; then it read
    // the fixed cell's output and explained.
    const prompts = scriptedPrompts();
    expect(prompts).toHaveLength(2);
    const asked = prompts[0].map(m => m.content).join('\n');
    expect(asked).toContain(FAILING);
    expect(asked).toContain("name 'y' is not defined");
    expect(prompts[1][prompts[1].length - 1].content).toContain('82');

    // The explanation, under the fixed cell where the fix's progress was,
    // and in the chat.
    const note = cell.locator('.jp-OciFixResult');
    await expect(note).toHaveAttribute('data-oci-fix-result', 'fixed');
    await expect(note.locator('.jp-OciFixResult-title')).toHaveText(
      'Fixed by OpenCodeInterpreter'
    );
    await expect(note.locator('code').first()).toHaveText('y');
    await expect(note).toContainText('the cell now prints doubled, 82.');
    await expect(request.locator('[data-oci-answer]')).toContainText(
      'the cell now prints doubled, 82.'
    );
    await cell.screenshot({ path: testInfo.outputPath('fix-result.png') });
    // Dismissed, it goes.
    await note.getByRole('button', { name: 'Dismiss' }).click();
    await expect(cell.locator('.jp-OciFixResult')).toHaveCount(0);

    // One undo in the cell brings the original back; redo, the fix.
    await page.notebook.enterCellEditingMode(1);
    await page.keyboard.press('ControlOrMeta+z');
    await expect
      .poll(async () => (await notebookCells(page))[1].source)
      .toBe(FAILING);
    await page.keyboard.press('ControlOrMeta+Shift+z');
    await expect
      .poll(async () => (await notebookCells(page))[1].source.trim())
      .toBe(REPAIRED);
    await page.notebook.leaveCellEditingMode(1);

    // The original comes back on request.
    await page.notebook.selectCells(1);
    await page.evaluate(() =>
      window.jupyterapp.commands.execute('oci:restore-original')
    );
    await expect
      .poll(async () => (await notebookCells(page))[1].source)
      .toBe(FAILING);
    expect((await notebookCells(page))[1].metadata.oci.original_source).toBe(
      undefined
    );
  });

  test('suggest: rejecting the diff cancels the fix and keeps the cell', async ({
    page
  }) => {
    script([reply('`y` is not defined; `x` is.', REPAIRED)]);
    await failingCell(page);
    // From the cell's context menu (the schema's `jupyter.lab.menus`).
    await page
      .locator('.jp-Notebook .jp-Cell')
      .nth(1)
      .locator('.jp-InputArea-editor')
      .click({ button: 'right' });
    await page
      .locator('.lm-Menu-item', {
        hasText: 'Fix the Cell with OpenCodeInterpreter'
      })
      .click();
    const dialog = page.locator('.jp-Dialog.jp-OciDiffDialog');
    await expect(dialog).toBeVisible({ timeout: 30 * 1000 });
    await dialog.getByRole('button', { name: 'Reject' }).click();
    const request = requests(page).last();
    await expect(request).toHaveAttribute('data-oci-status', 'cancelled', {
      timeout: 30 * 1000
    });
    const cells = await notebookCells(page);
    expect(cells[1].source).toBe(FAILING);
    expect(outputText(cells[1])).toContain('NameError');
    const cell = page.locator('.jp-Notebook .jp-Cell').nth(1);
    await expect(cell).not.toHaveClass(/jp-mod-ociFixing/);
    // Still failing: another try is one click away.
    await expect(cell.locator('.jp-OciFixButton button')).toBeVisible();
  });

  test('the cell shows the fix in progress and stops it', async ({
    page
  }, testInfo) => {
    const long = Array.from({ length: 400 }, (_, i) => `word${i}`).join(' ');
    script([long]);
    await failingCell(page);
    const cell = page.locator('.jp-Notebook .jp-Cell').nth(1);
    await cell.locator('.jp-OciFixButton button').click();

    const bar = cell.locator('.jp-OciFixingBar');
    await expect(bar).toContainText('OpenCodeInterpreter is fixing this cell');
    await expect(cell).toHaveClass(/jp-mod-ociFixing/);
    await expect(requests(page).last()).toContainText('word20');
    await cell.screenshot({ path: testInfo.outputPath('fixing-bar.png') });
    await bar.getByRole('button', { name: 'Stop' }).click();

    const request = requests(page).last();
    await expect(request).toHaveAttribute('data-oci-status', 'cancelled', {
      timeout: 10 * 1000
    });
    await expect(request).not.toContainText('word399');
    await expect(bar).toHaveCount(0);
    await expect(cell).not.toHaveClass(/jp-mod-ociFixing/);
    const cells = await notebookCells(page);
    expect(cells[1].source).toBe(FAILING);
    expect(outputText(cells[1])).toContain('NameError');
    await expect(cell.locator('.jp-OciFixButton button')).toBeVisible();
  });

  test('a fix asked for while the chat is busy says why it waits', async ({
    page
  }) => {
    const long = Array.from({ length: 400 }, (_, i) => `word${i}`).join(' ');
    script([long]);
    await failingCell(page);
    await openPanel(page);
    await ask(page, 'tell me a long story');
    await expect(requests(page).last()).toContainText('word10');

    const cell = page.locator('.jp-Notebook .jp-Cell').nth(1);
    await cell.locator('.jp-OciFixButton button').click();
    await expect(page.locator('.Toastify__toast').last()).toContainText(
      'still working on a request in this notebook'
    );
    // Nothing started: the button stays, the cell is not marked.
    await expect(cell.locator('.jp-OciFixButton button')).toBeVisible();
    await expect(cell).not.toHaveClass(/jp-mod-ociFixing/);
    await chatInput(page).press('Escape');
    await expect(requests(page).last()).toHaveAttribute(
      'data-oci-status',
      'cancelled',
      { timeout: 10 * 1000 }
    );
  });

  test('after a reload the Fix button is back; it fixes its own cell, with what that cell reads', async ({
    page,
    tmpPath
  }) => {
    // x is defined in the first cell; the failing cell is second; two more
    // cells below it, the last one active when the fix is asked for.
    const name = await newNotebook(page);
    await page.notebook.addCell('code', FAILING);
    await page.notebook.runCell(1, { inplace: true });
    await expect
      .poll(async () => outputText((await notebookCells(page))[1]))
      .toContain('NameError');
    await page.notebook.addCell('code', 'below = 1');
    await page.notebook.addCell('code', 'last_cell = 2');
    await page.notebook.selectCells(3);
    await page.notebook.save();

    await reloadWith(page, `${tmpPath}/${name}`);
    const cell = page.locator('.jp-Notebook .jp-Cell').nth(1);
    const button = cell.locator('.jp-OciFixButton button');
    await expect(button).toBeVisible({ timeout: 30 * 1000 });
    await expect(page.locator('.jp-OciFixButton')).toHaveCount(1);
    await page.notebook.selectCells(3);

    script([reply('`y` is not defined; `x` is.', REPAIRED), EXPLAINED]);
    await button.click();
    const dialog = page.locator('.jp-Dialog.jp-OciDiffDialog');
    await expect(dialog).toBeVisible({ timeout: 30 * 1000 });
    await dialog.getByRole('button', { name: 'Accept' }).click();
    await expect(requests(page).last()).toHaveAttribute(
      'data-oci-status',
      'success',
      { timeout: 30 * 1000 }
    );
    const cells = await notebookCells(page);
    expect(cells.map(c => c.source.trim())).toEqual([
      'x = 41\nprint(x + 1)',
      REPAIRED,
      'below = 1',
      'last_cell = 2'
    ]);
    // The kernel outlives the reload: x from the first cell is still there.
    expect(outputText(cells[1])).toContain('82');

    // The context was the failing cell's, not the active cell's: it is the
    // one marked, in its place, and the cell defining x came with it.
    const asked = scriptedPrompts()[0]
      .map(m => m.content)
      .join('\n');
    expect(asked).toContain(
      '# In [2]  <- active cell\n(the failing cell, shown below)'
    );
    expect(asked).toContain('# In [ ]\nlast_cell = 2');
    expect(asked).toContain('x = 41');
  });

  test.describe('with autoFix "auto"', () => {
    test.use({
      mockSettings: {
        ...galata.DEFAULT_SETTINGS,
        'oci-jupyter:plugin': { autoFix: 'auto' }
      }
    });

    test('a failing cell is fixed without a click', async ({ page }) => {
      script([reply('`y` is not defined; `x` is.', REPAIRED), EXPLAINED]);
      await failingCell(page);
      const request = requests(page).last();
      await expect(request).toHaveAttribute('data-oci-status', 'success', {
        timeout: 30 * 1000
      });
      await expect(page.locator('.jp-OciDiffDialog')).toHaveCount(0);
      // The sidebar opened to show it, without pulling the keyboard focus.
      await expect(page.locator(PANEL)).toBeVisible();
      await expect(chatInput(page)).not.toBeFocused();
      const cells = await notebookCells(page);
      expect(cells[1].source.trim()).toBe(REPAIRED);
      expect(outputText(cells[1])).toContain('82');
      expect(cells[1].metadata.oci.original_source).toBe(FAILING);
      // The model's explanation stays under the cell until it runs again.
      const cell = page.locator('.jp-Notebook .jp-Cell').nth(1);
      await expect(cell.locator('.jp-OciFixResult')).toContainText(
        'the cell now prints doubled, 82.'
      );
      await runCellByHand(page, 1);
      await expect(cell.locator('.jp-OciFixResult')).toHaveCount(0);
    });

    test('the failing code handed back is not run again; the model is told', async ({
      page,
      tmpPath
    }, testInfo) => {
      script([
        reply('This should work.', FAILING),
        reply('`y` is not defined; `x` is.', REPAIRED),
        EXPLAINED
      ]);
      const name = await failingCell(page);
      const request = requests(page).last();
      await expect(request).toHaveAttribute('data-oci-status', 'success', {
        timeout: 30 * 1000
      });
      const chips = request.locator('.jp-OciChat-chip');
      await expect(chips.first()).toHaveText('not run: same as before');
      await expect(chips.last()).toContainText('ok');
      await request.screenshot({ path: testInfo.outputPath('repeat.png') });
      const prompts = scriptedPrompts();
      expect(prompts).toHaveLength(3);
      expect(prompts[1][prompts[1].length - 1].content).toContain(
        'not run: this is the same code as the cell'
      );
      const cells = await notebookCells(page);
      expect(cells[1].source.trim()).toBe(REPAIRED);
      // Run once by the user and once fixed: never twice as it was.
      expect(cells[1].execution_count).toBe(3);

      // The reason survives a reload.
      await page.notebook.save();
      await reloadWith(page, `${tmpPath}/${name}`);
      await openPanel(page);
      await expect(
        requests(page).last().locator('.jp-OciChat-chip').first()
      ).toHaveText('not run: same as before');
    });
  });
});
