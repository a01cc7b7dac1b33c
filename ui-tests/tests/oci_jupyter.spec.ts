import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';
import { failOnPageErrors, IMAGES } from './helpers';

const PANEL = '#oci-jupyter-panel';

failOnPageErrors();
const OPEN_PANEL = 'oci:open-panel';
// The real model loads in ~1-30 s; a cold page cache on CI can take longer.
const MODEL_READY_TIMEOUT = 5 * 60 * 1000;

/** A `GET /oci/status` body, as the server extension sends it. */
function engineStatus(overrides: Record<string, unknown>) {
  return {
    engine: 'llamacpp',
    model: 'Qwen2.5-Coder-1.5B-Instruct-Q4_K_M',
    device: 'cpu (2 threads)',
    state: 'ready',
    detail: '',
    progress: null,
    error: null,
    context_length: 8192,
    since: Date.now() / 1000,
    ...overrides
  };
}

async function openPanel(page: IJupyterLabPageFixture) {
  await page.evaluate(async command => {
    await window.jupyterapp.commands.execute(command);
  }, OPEN_PANEL);
  return page.locator(PANEL);
}

test.describe('OpenCodeInterpreter sidebar', () => {
  test('the palette lists the open command under its category', async ({
    page
  }) => {
    await page.evaluate(() =>
      window.jupyterapp.commands.execute('apputils:activate-command-palette')
    );
    await page.locator('.lm-CommandPalette-input').fill('OpenCodeInterpreter');
    const item = page.locator('.lm-CommandPalette-item', {
      hasText: 'Open OpenCodeInterpreter'
    });
    await expect(item).toBeVisible();
    // JupyterLab's modal palette renders category headers with display: none.
    await expect(
      page.locator('.lm-CommandPalette-header', {
        hasText: 'OpenCodeInterpreter'
      })
    ).toHaveCount(1);

    await item.click();
    await expect(page.locator(PANEL)).toBeVisible();
  });

  test('Accel Shift 1 opens the panel', async ({ page }, testInfo) => {
    await expect(page.locator(PANEL)).toBeHidden();
    await page.keyboard.press('ControlOrMeta+Shift+Digit1');
    await expect(page.locator(PANEL)).toBeVisible();
    // For a look at the sidebar tab and icon in context.
    await page.screenshot({ path: testInfo.outputPath('lab.png') });
  });

  test('says so when the server extension cannot be reached', async ({
    page
  }) => {
    await page.route('**/oci/status*', route =>
      route.fulfill({ status: 404, body: 'Not Found' })
    );
    const panel = await openPanel(page);
    await expect(panel.locator('[data-oci-state="unreachable"]')).toBeVisible();
    await expect(panel).toContainText(
      'Cannot reach the oci_jupyter server extension (HTTP 404'
    );
  });

  test('follows a load to the ready state, with progress', async ({
    page
  }, testInfo) => {
    // Two answers "loading", then "ready": the panel polls every second
    // while the model loads.
    let requests = 0;
    await page.route('**/oci/status*', route => {
      requests += 1;
      const body =
        requests <= 2
          ? engineStatus({
              state: 'loading',
              detail: 'Verifying qwen2.5-coder-1.5b-instruct-q4_k_m.gguf',
              progress: 0.42,
              context_length: null
            })
          : engineStatus({});
      return route.fulfill({ json: body });
    });
    const panel = await openPanel(page);
    await expect(panel.locator('[data-oci-state="loading"]')).toBeVisible();
    await expect(panel.getByRole('progressbar')).toHaveAttribute(
      'aria-valuenow',
      '42'
    );
    await expect(panel).toContainText('Verifying qwen2.5-coder');
    // The chat waits for the model, and says why.
    const input = panel.getByRole('textbox', { name: 'Message to the model' });
    await input.fill('print 1');
    await expect(panel.getByRole('button', { name: 'Send' })).toBeDisabled();
    await input.fill('');
    await expect(panel.locator('.jp-OciChat-hint')).toHaveText(
      'The model is loading (42%). You can ask once it is ready.'
    );
    await panel.screenshot({ path: testInfo.outputPath('loading.png') });

    await expect(panel.locator('[data-oci-state="ready"]')).toBeVisible({
      timeout: 5000
    });
    await expect(panel.getByRole('progressbar')).toHaveCount(0);
    // Ready, but there is no notebook to work on yet.
    await expect(panel.locator('.jp-OciChat-hint')).toHaveText(
      'Open a notebook to ask for code.'
    );
  });

  test('shows the whole error reason, selectable', async ({
    page
  }, testInfo) => {
    const reason =
      'ModelUnavailable: no source could provide a verified copy of ' +
      'qwen2.5-coder-1.5b-instruct-q4_k_m.gguf\n  cache: not found\n  hub: offline';
    await page.route('**/oci/status*', route =>
      route.fulfill({
        json: engineStatus({ state: 'error', error: reason })
      })
    );
    const panel = await openPanel(page);
    await expect(panel.locator('[data-oci-state="error"]')).toBeVisible();
    const error = panel.locator('.jp-OciStatus-error');
    await expect(error).toHaveText(reason);
    await expect(error).toHaveCSS('user-select', 'text');
    await panel.screenshot({ path: testInfo.outputPath('error.png') });
  });
});

test.describe('with the real model', () => {
  // Sharp, short images for the docs: the panel is mostly the chat's empty area.
  test.use({ viewport: { width: 1024, height: 600 }, deviceScaleFactor: 2 });

  test('shows the ready model in the light and dark themes', async ({
    page
  }) => {
    const panel = await openPanel(page);
    await expect(panel.locator('[data-oci-state="ready"]')).toBeVisible({
      timeout: MODEL_READY_TIMEOUT
    });
    await expect(panel.locator('.jp-OciStatus-facts')).toContainText(
      'Qwen2.5-Coder'
    );
    await panel.screenshot({
      path: path.join(IMAGES, 'status-panel-light.png')
    });

    await page.evaluate(() =>
      window.jupyterapp.commands.execute('apputils:change-theme', {
        theme: 'JupyterLab Dark'
      })
    );
    await expect(page.locator('body')).toHaveAttribute(
      'data-jp-theme-name',
      'JupyterLab Dark'
    );
    // Changing the theme shows the splash screen until the new CSS is in.
    await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
    await expect(panel.locator('[data-oci-state="ready"]')).toBeVisible();
    await panel.screenshot({
      path: path.join(IMAGES, 'status-panel-dark.png')
    });
  });
});
