/**
 * Ghost text with the real bundled model (Qwen2.5-Coder-1.5B on llama.cpp):
 * typing in a code cell shows a suggestion from the model, Tab accepts it,
 * typing on replaces it, Escape dismisses it, in the light and the dark
 * theme; the plugin's setting turns it off.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

import { failOnPageErrors, IMAGES } from './helpers';

failOnPageErrors();

const SETTINGS = 'oci-jupyter:inline-completion';
const GHOST = '.jp-GhostText[data-provided-by="oci-jupyter"]';
const MODEL_READY_TIMEOUT = 5 * 60 * 1000;
/** A cold prompt on a busy 2-core CPU; warm ones take well under a second. */
const GHOST_TIMEOUT = 90 * 1000;

test.use({ autoGoto: true });
test.setTimeout(MODEL_READY_TIMEOUT + 6 * 60 * 1000);

async function modelReady(page: IJupyterLabPageFixture) {
  await expect
    .poll(
      async () => {
        const response = await page.request.get('oci/status');
        return response.ok() ? (await response.json()).state : 'unreachable';
      },
      { timeout: MODEL_READY_TIMEOUT, intervals: [1000] }
    )
    .toBe('ready');
}

async function setGhostText(page: IJupyterLabPageFixture, on: boolean) {
  await page.evaluate(
    async ([id, value]) => {
      const registry = await window.galata.getPlugin(
        '@jupyterlab/apputils-extension:settings'
      );
      await registry!.set(id as string, 'enabled', value as boolean);
    },
    [SETTINGS, on]
  );
}

/** A notebook whose first cell defines something the next one uses. */
async function notebookWithData(page: IJupyterLabPageFixture) {
  await page.notebook.createNew();
  await page.notebook.setCell(0, 'code', 'import math\nradius = 2.5');
  await page.notebook.runCell(0, { inplace: true });
  await page.notebook.addCell('code', '');
  await page.notebook.enterCellEditingMode(1);
}

function cellSource(page: IJupyterLabPageFixture, index: number) {
  return page.evaluate(i => {
    const widget = window.jupyterapp.shell.currentWidget as any;
    return widget.content.model.cells.get(i).sharedModel.getSource() as string;
  }, index);
}

test.describe('ghost text from the hosted model', () => {
  test('typing shows it, Tab accepts it, typing on replaces it', async ({
    page
  }) => {
    await modelReady(page);
    await notebookWithData(page);
    await page.keyboard.type('import numpy as', { delay: 60 });
    const ghost = page.locator(GHOST);
    await expect(ghost).toBeVisible({ timeout: GHOST_TIMEOUT });
    await expect(ghost).not.toHaveText('', { timeout: GHOST_TIMEOUT });
    // Streamed to its end (the streaming indicator goes).
    await expect(page.locator('.jp-GhostText-streamingIndicator')).toHaveCount(
      0,
      { timeout: GHOST_TIMEOUT }
    );
    const suggested = (await ghost.textContent()) ?? '';
    expect(suggested.trim()).toBe('np');
    await page.screenshot({ path: path.join(IMAGES, 'ghost-text-light.png') });

    await page.keyboard.press('Tab');
    await expect(page.locator(GHOST)).toHaveCount(0);
    await expect.poll(() => cellSource(page, 1)).toBe('import numpy as np');

    // Typing on: a new suggestion for the new line, not the accepted one.
    await page.keyboard.press('Enter');
    await page.keyboard.type('area = math.pi *', { delay: 60 });
    await expect(ghost).toBeVisible({ timeout: GHOST_TIMEOUT });
    await expect(ghost).not.toHaveText('', { timeout: GHOST_TIMEOUT });
    await expect(page.locator('.jp-GhostText-streamingIndicator')).toHaveCount(
      0,
      { timeout: GHOST_TIMEOUT }
    );
    const next = (await ghost.textContent()) ?? '';
    expect(next).not.toBe(suggested);
    // The model knows the cell above: the radius is what it squares.
    expect(next).toContain('radius');

    // Escape dismisses it; the cell keeps what was typed.
    await page.keyboard.press('Escape');
    await expect(page.locator(GHOST)).toHaveCount(0);
    await expect
      .poll(() => cellSource(page, 1))
      .toBe('import numpy as np\narea = math.pi *');
  });

  test('reads in the dark theme too', async ({ page }) => {
    await modelReady(page);
    await page.theme.setDarkTheme();
    await notebookWithData(page);
    await page.keyboard.type('import pandas as', { delay: 60 });
    const ghost = page.locator(GHOST);
    await expect(ghost).not.toHaveText('', { timeout: GHOST_TIMEOUT });
    // JupyterLab's ghost text colour follows the theme: readable on dark.
    const color = await ghost.evaluate(node => getComputedStyle(node).color);
    const [r, g, b] = (color.match(/\d+/g) ?? []).map(Number);
    expect((r + g + b) / 3).toBeGreaterThan(100);
    await page.screenshot({ path: path.join(IMAGES, 'ghost-text-dark.png') });
    await page.theme.setLightTheme();
  });

  test('the setting turns it off', async ({ page }) => {
    await modelReady(page);
    await setGhostText(page, false);
    try {
      await notebookWithData(page);
      const asked: string[] = [];
      page.on('request', request => {
        if (request.url().includes('/oci/v1/completions')) {
          asked.push(request.url());
        }
      });
      await page.keyboard.type('import numpy as', { delay: 60 });
      await page.waitForTimeout(3000);
      await expect(page.locator(GHOST)).toHaveCount(0);
      expect(asked).toEqual([]);
    } finally {
      await setGhostText(page, true);
    }
  });
});
