/**
 * Accessibility of the panel against the scripted engine: axe-core finds no
 * serious or critical violation in the panel, light and dark, with a
 * finished request in it; the keyboard reaches what it should and takes no
 * key it should not.
 */
import AxeBuilder from '@axe-core/playwright';
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import type { Page, WebSocketRoute } from '@playwright/test';

import {
  ask,
  chatInput,
  failOnPageErrors,
  newNotebook,
  openPanel,
  PANEL,
  reply,
  requests,
  script,
  sendButton
} from './helpers';

failOnPageErrors();

/** axe-core's serious and critical violations within the panel. */
async function seriousViolations(page: IJupyterLabPageFixture) {
  const results = await new AxeBuilder({ page: page as unknown as Page })
    .include(PANEL)
    .analyze();
  return results.violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => ({
      rule: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map(node => node.target.join(' ')).slice(0, 5)
    }));
}

test.describe('accessibility of the panel', () => {
  test('a finished request: no serious violations, light and dark', async ({
    page
  }, testInfo) => {
    script([
      reply('I sum the range and print it.', 'print(totl)'),
      reply('The name was misspelled.', 'print(sum(range(1, 11)))'),
      'The sum of 1..10 is **55**.'
    ]);
    await newNotebook(page);
    const panel = await openPanel(page);
    await ask(page, 'print the sum of 1..10');
    const request = requests(page).last();
    await expect(request).toHaveAttribute('data-oci-status', 'success', {
      timeout: 30 * 1000
    });
    // The outcome and the answer are in the log the screen reader follows.
    const log = panel.getByRole('log', { name: 'Chat messages' });
    await expect(log).toHaveAttribute('aria-live', 'polite');
    await expect(log.locator('[data-oci-end="success"]')).toBeVisible();
    // A draft, so that Send is enabled too.
    await chatInput(page).fill('now plot it');

    for (const theme of ['light', 'dark'] as const) {
      if (theme === 'dark') {
        await page.theme.setDarkTheme();
      } else {
        await page.theme.setLightTheme();
      }
      await expect(page.locator('body')).toHaveAttribute(
        'data-jp-theme-light',
        theme === 'light' ? 'true' : 'false'
      );
      await panel.screenshot({
        path: testInfo.outputPath(`panel-${theme}.png`)
      });
      expect(await seriousViolations(page), theme).toEqual([]);
    }
    await page.theme.setLightTheme();
  });

  test('the empty chat: no serious violations; an example goes to the input, focused', async ({
    page
  }, testInfo) => {
    await newNotebook(page);
    const panel = await openPanel(page);
    const example = panel.getByRole('button', {
      name: 'print the sum of 1..10'
    });
    await expect(example).toBeVisible();
    expect(await seriousViolations(page)).toEqual([]);
    // The keyboard's way back from the input: the last example, its focus
    // ring visible (for a look).
    await chatInput(page).focus();
    await page.keyboard.press('Shift+Tab');
    await expect(panel.locator('.jp-OciChat-example').last()).toBeFocused();
    await panel.screenshot({ path: testInfo.outputPath('empty-focus.png') });
    await example.click();
    await expect(chatInput(page)).toBeFocused();
    await expect(chatInput(page)).toHaveValue('print the sum of 1..10');
    // Every button of the panel has a name.
    for (const button of await panel.getByRole('button').all()) {
      expect(
        ((await button.getAttribute('aria-label')) ?? '') +
          (await button.innerText())
      ).not.toBe('');
    }
  });

  test('the input stays editable while the socket reconnects; Send waits, the draft is kept', async ({
    page
  }) => {
    const sockets: WebSocketRoute[] = [];
    let refuse = false;
    await page.routeWebSocket(/\/oci\/chat/, socket => {
      sockets.push(socket);
      if (refuse) {
        socket.close();
      } else {
        socket.connectToServer();
      }
    });
    await page.reload({ waitForIsReady: false });
    await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
    script(['Hello.']);
    await newNotebook(page);
    const panel = await openPanel(page);
    await expect(sendButton(page)).toBeVisible();
    await expect(panel.locator('.jp-OciChat-hint')).not.toHaveAttribute(
      'data-oci-disabled',
      'true',
      { timeout: 30 * 1000 }
    );

    refuse = true;
    await sockets[sockets.length - 1].close();
    await expect(panel.locator('.jp-OciChat-banner')).toContainText(
      'lost its connection'
    );
    const input = chatInput(page);
    await input.fill('say hello');
    await input.press('Enter');
    await expect(sendButton(page)).toBeDisabled();
    await expect(input).toHaveValue('say hello');
    await expect(requests(page)).toHaveCount(0);
    // The reason is the input's description.
    await expect(input).toHaveAccessibleDescription(/Disconnected/);

    refuse = false;
    await panel.getByRole('button', { name: 'Retry now' }).click();
    await expect(sendButton(page)).toBeEnabled({ timeout: 15 * 1000 });
    await input.press('Enter');
    await expect(requests(page).last()).toHaveAttribute(
      'data-oci-status',
      'no_code',
      { timeout: 30 * 1000 }
    );
    await expect(input).toHaveValue('');
  });
});

test.describe('shortcuts', () => {
  test('Accel Shift 1 opens the panel, with the cursor in the chat', async ({
    page
  }) => {
    await newNotebook(page);
    await expect(page.locator(PANEL)).toBeHidden();
    await page.keyboard.press('ControlOrMeta+Shift+Digit1');
    await expect(page.locator(PANEL)).toBeVisible();
    await expect(chatInput(page)).toBeFocused();
  });

  test('Escape in the chat is left to the page while nothing runs', async ({
    page
  }) => {
    await newNotebook(page);
    await openPanel(page);
    const input = chatInput(page);
    await input.focus();
    // JupyterLab's shortcuts run as the key bubbles up to the document: a
    // taken key stops there, default-prevented, and never reaches the window.
    await input.evaluate(() => {
      (window as any).ociEscape = null;
      window.addEventListener('keydown', event => {
        if (event.key === 'Escape') {
          (window as any).ociEscape = { prevented: event.defaultPrevented };
        }
      });
    });
    await page.keyboard.press('Escape');
    const prevented = await page.evaluate(
      () => (window as any).ociEscape?.prevented ?? 'not delivered'
    );
    expect(prevented).toBe(false);
    await expect(page.locator(PANEL)).not.toHaveClass(/jp-mod-running/);
  });
});
