/**
 * The Fix button in JupyterLab's cell toolbar (the schema's
 * `jupyter.lab.toolbars` → `Cell`), and the `fixButtonInCell` setting that
 * keeps or removes the button under failing cells. Scripted server.
 */
import {
  expect,
  galata,
  IJupyterLabPageFixture,
  test
} from '@jupyterlab/galata';
import type { Locator } from '@playwright/test';

import {
  failOnPageErrors,
  newNotebook,
  notebookCells,
  outputText,
  reply,
  requests,
  script
} from './helpers';

failOnPageErrors();

const FAILING = 'doubled = x * 2\nprint(y)';
const REPAIRED = 'doubled = x * 2\nprint(doubled)';
const SETTINGS = 'oci-jupyter:plugin';

/**
 * A notebook whose second cell, run in place by the user, failed with a
 * NameError: that cell stays the active one.
 */
async function failingCell(page: IJupyterLabPageFixture): Promise<void> {
  // JupyterLab hides the cell toolbar where it would cover the cell's code
  // (past the editor's middle): at 1024 px wide with both sidebars open (the
  // chat opens with a fix), it would not show at all. The file browser
  // closed, it has room.
  await page.sidebar.close('left');
  await newNotebook(page);
  await page.notebook.addCell('code', FAILING);
  await page.notebook.runCell(1, { inplace: true });
  await expect
    .poll(async () => outputText((await notebookCells(page))[1]))
    .toContain('NameError');
}

/** The n-th cell of the notebook. */
const cellAt = (page: IJupyterLabPageFixture, n: number) =>
  page.locator('.jp-Notebook .jp-Cell').nth(n);

/**
 * The Fix button of the cell toolbar: in this cell, or (the page) wherever
 * the toolbar is.
 */
const toolbarFix = (within: IJupyterLabPageFixture | Locator) =>
  within.locator('.jp-cell-toolbar [data-command="oci:fix-cell"]');

/**
 * Click this Fix button with the model's repair scripted: the diff of the
 * fix, shown for the user to accept or reject.
 */
async function openFix(
  page: IJupyterLabPageFixture,
  fix: Locator
): Promise<Locator> {
  script([reply('`y` is not defined; `x` is.', REPAIRED)]);
  await fix.click();
  const dialog = page.locator('.jp-Dialog.jp-OciDiffDialog');
  await expect(dialog).toBeVisible({ timeout: 30 * 1000 });
  return dialog;
}

/** Reject the diff: the fix request ends, cancelled. */
async function rejectFix(
  page: IJupyterLabPageFixture,
  dialog: Locator
): Promise<void> {
  await dialog.getByRole('button', { name: 'Reject' }).click();
  await expect(requests(page).last()).toHaveAttribute(
    'data-oci-status',
    'cancelled',
    { timeout: 30 * 1000 }
  );
}

async function setFixButtonInCell(
  page: IJupyterLabPageFixture,
  value: boolean
): Promise<void> {
  await page.evaluate(
    async ([id, on]) => {
      const registry = await window.galata.getPlugin(
        '@jupyterlab/apputils-extension:settings'
      );
      await registry!.set(id as string, 'fixButtonInCell', on as boolean);
    },
    [SETTINGS, value]
  );
}

test.describe('the Fix button in the cell toolbar', () => {
  test('shows on the selected failing cell only, and starts a fix', async ({
    page
  }, testInfo) => {
    await failingCell(page);
    const cell = cellAt(page, 1);
    // The toolbar is on the active cell, the failing one: its Fix button,
    // first, before JupyterLab's own buttons.
    const fix = toolbarFix(cell);
    await expect(fix).toBeVisible();
    await expect(fix).toHaveAttribute(
      'title',
      /fix the active cell’s error.*Shift\+?F/
    );
    await expect(fix.locator('svg')).toHaveCount(1);
    const first = cell
      .locator('.jp-cell-toolbar .jp-ToolbarButtonComponent:visible')
      .first();
    await expect(first).toHaveAttribute('data-command', 'oci:fix-cell');
    // The button under the error is there too, by default.
    await expect(cell.locator('.jp-OciFixButton button')).toBeVisible();
    await cell.screenshot({
      path: testInfo.outputPath('cell-toolbar-fix-light.png')
    });
    await page.theme.setDarkTheme();
    await cell.screenshot({
      path: testInfo.outputPath('cell-toolbar-fix-dark.png')
    });
    await page.theme.setLightTheme();

    // The cell above, without an error: the toolbar moves there, without Fix.
    await page.notebook.selectCells(0);
    await expect(
      cellAt(page, 0).locator('.jp-cell-toolbar [data-command]').first()
    ).toBeAttached();
    await expect(toolbarFix(page)).toBeHidden();
    await page.notebook.selectCells(1);
    await expect(fix).toBeVisible();

    // Clicked, it fixes that cell: the diff waits for the user.
    const dialog = await openFix(page, fix);
    await expect(dialog.locator('.jp-OciDiff-added')).toHaveText(
      '+ print(doubled)'
    );
    await expect(cell).toHaveClass(/jp-mod-ociFixing/);
    // While the fix runs, neither button offers another one.
    await expect(toolbarFix(page)).toBeHidden();
    await expect(cell.locator('.jp-OciFixButton')).toHaveCount(0);
    await rejectFix(page, dialog);
    // Still failing: both are back.
    await expect(fix).toBeVisible();
    await expect(cell.locator('.jp-OciFixButton button')).toBeVisible();
  });

  test('the button under the error follows the setting while the page is open', async ({
    page
  }) => {
    await failingCell(page);
    const cell = cellAt(page, 1);
    await expect(cell.locator('.jp-OciFixButton button')).toBeVisible();
    await setFixButtonInCell(page, false);
    await expect(cell.locator('.jp-OciFixButton')).toHaveCount(0);
    // The toolbar's Fix button stays.
    await expect(toolbarFix(cell)).toBeVisible();
    await setFixButtonInCell(page, true);
    await expect(cell.locator('.jp-OciFixButton button')).toBeVisible();
  });

  test.describe('with fixButtonInCell off', () => {
    test.use({
      mockSettings: {
        ...galata.DEFAULT_SETTINGS,
        [SETTINGS]: { fixButtonInCell: false }
      }
    });

    test('a failing cell has no button under its error; the toolbar fixes it', async ({
      page
    }) => {
      await failingCell(page);
      const cell = cellAt(page, 1);
      const fix = toolbarFix(cell);
      await expect(fix).toBeVisible();
      await expect(page.locator('.jp-OciFixButton')).toHaveCount(0);

      await rejectFix(page, await openFix(page, fix));
      // Still failing, and still no button under it.
      await expect(fix).toBeVisible();
      await expect(page.locator('.jp-OciFixButton')).toHaveCount(0);
    });
  });
});
