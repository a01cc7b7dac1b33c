/**
 * The chat against the scripted engine, continued from chat-scripted.spec.ts:
 * the kernel and the connection (no kernel, a lost websocket, Stop while code
 * runs, the time limit, auto-execute off).
 */
import type { WebSocketRoute } from '@playwright/test';

import {
  ask,
  BROKEN,
  chatInput,
  expect,
  failOnPageErrors,
  FIXED,
  galata,
  newNotebook,
  notebookCells,
  openPanel,
  outputText,
  PANEL,
  reply,
  requests,
  runCellByHand,
  script,
  scriptedPrompts,
  test
} from './helpers';

failOnPageErrors();

test.describe('chat with a scripted model', () => {
  test('a notebook without a kernel: a clear message, the request ends', async ({
    page
  }) => {
    script([reply('Printing.', 'print(1)'), reply('Again.', 'print(2)')]);
    await newNotebook(page);
    await page.evaluate(async () => {
      const widget = window.jupyterapp.shell.currentWidget as any;
      await widget.sessionContext.shutdown();
    });
    await openPanel(page);
    await ask(page, 'print 1');
    const request = requests(page).last();
    await expect(request).toHaveAttribute('data-oci-status', 'error', {
      timeout: 30 * 1000
    });
    await expect(request.locator('[data-oci-end]')).toContainText(
      'The notebook has no kernel'
    );
    // Only one generation: the browser ended the request at once.
    expect(scriptedPrompts()).toHaveLength(1);
  });

  test('a lost connection is said, ends the request, and heals', async ({
    page
  }) => {
    // Route the chat's socket through the test, so the test can cut it.
    const sockets: WebSocketRoute[] = [];
    await page.routeWebSocket(/\/oci\/chat/, socket => {
      socket.connectToServer();
      sockets.push(socket);
    });
    await page.reload({ waitForIsReady: false });
    await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
    script([Array.from({ length: 400 }, (_, i) => `word${i}`).join(' ')]);
    await newNotebook(page);
    const panel = await openPanel(page);
    await ask(page, 'a long answer');
    const request = requests(page).last();
    await expect(request.locator('.jp-OciChat-streaming')).toContainText(
      'word10'
    );

    await sockets[sockets.length - 1].close();
    await expect(panel.locator('.jp-OciChat-banner')).toContainText(
      'lost its connection'
    );
    await expect(request).toHaveAttribute('data-oci-status', 'error');
    await expect(request.locator('[data-oci-end]')).toContainText(
      'The connection to the server was lost'
    );
    // It reconnects by itself (the first retry comes after ~0.5 s).
    await expect(panel.locator('.jp-OciChat-banner')).toHaveCount(0, {
      timeout: 10 * 1000
    });
    expect(sockets.length).toBeGreaterThan(1);
    await expect(chatInput(page)).toBeEnabled();
  });

  test.describe('interrupting the kernel', () => {
    // Galata's kernel tracking parses every kernel POST's reply as JSON; an
    // interrupt's reply is empty (204).
    test.use({ kernels: null });

    test('Stop while the code runs interrupts the kernel', async ({ page }) => {
      script([reply('Waiting a while.', 'import time\ntime.sleep(60)')]);
      await newNotebook(page);
      const panel = await openPanel(page);
      await ask(page, 'wait a minute');
      const request = requests(page).last();
      await expect(request.locator('.jp-OciChat-turn')).toHaveAttribute(
        'data-oci-turn-state',
        'executing',
        { timeout: 30 * 1000 }
      );
      await panel.getByRole('button', { name: 'Stop' }).click();
      await expect(request).toHaveAttribute('data-oci-status', 'cancelled', {
        timeout: 10 * 1000
      });
      // The kernel is free again at once, not in a minute.
      const seconds = await page.evaluate(async () => {
        const widget = window.jupyterapp.shell.currentWidget as any;
        const started = performance.now();
        await widget.sessionContext.session.kernel.requestExecute({
          code: 'pass',
          silent: true
        }).done;
        return (performance.now() - started) / 1000;
      });
      expect(seconds).toBeLessThan(5);
      await expect
        .poll(async () => outputText((await notebookCells(page))[1]))
        .toContain('KeyboardInterrupt');
    });

    test.describe('with a 2 s time limit', () => {
      test.use({
        mockSettings: {
          ...galata.DEFAULT_SETTINGS,
          'oci-jupyter:plugin': { executionTimeLimit: 2 }
        }
      });

      test('a run over the limit is interrupted and reported as a timeout', async ({
        page
      }) => {
        script([
          reply(
            'Counting slowly.',
            'import time\ntime.sleep(30)\nprint("late")'
          ),
          reply('Faster now.', 'print("quick")'),
          'It printed quick.'
        ]);
        await newNotebook(page);
        await openPanel(page);
        await ask(page, 'print something, eventually');
        const request = requests(page).last();
        await expect(request).toHaveAttribute('data-oci-status', 'success', {
          timeout: 30 * 1000
        });
        const turns = request.locator('.jp-OciChat-turn');
        await expect(turns.nth(0)).toHaveAttribute(
          'data-oci-turn-state',
          'timeout'
        );
        await expect(turns.nth(1)).toHaveAttribute('data-oci-turn-state', 'ok');
        // The model was told the run timed out.
        const feedback = scriptedPrompts()[1].slice(-1)[0].content;
        expect(feedback).toContain('did not finish');
        const cells = await notebookCells(page);
        expect(cells[1].source).toBe('print("quick")\n');
        expect(outputText(cells[1])).toContain('quick');
      });
    });
  });

  test.describe('with auto-execute off', () => {
    test.use({
      mockSettings: {
        ...galata.DEFAULT_SETTINGS,
        'oci-jupyter:plugin': { autoExecute: false }
      }
    });

    test('the cell waits for the user; running it continues the loop', async ({
      page
    }, testInfo) => {
      script([
        reply('Printing the total.', BROKEN),
        reply('Fixed the name.', FIXED),
        'The total is 55.'
      ]);
      await newNotebook(page);
      await openPanel(page);
      await ask(page, 'print the sum of 1..10');
      const request = requests(page).last();
      const turns = request.locator('.jp-OciChat-turn');
      await expect(turns.nth(0)).toHaveAttribute(
        'data-oci-turn-state',
        'waiting',
        { timeout: 30 * 1000 }
      );
      await page
        .locator(PANEL)
        .screenshot({ path: testInfo.outputPath('waiting.png') });
      let cells = await notebookCells(page);
      expect(cells).toHaveLength(2);
      expect(cells[1].source).toBe(BROKEN + '\n');
      expect(cells[1].execution_count).toBeNull();

      // The user runs it: the error goes back to the model, which fixes it. (Run through the
      // command: Galata's runCell waits on the cell in ways the loop's rewrite can confuse.)
      await runCellByHand(page, 1);
      await expect(turns.nth(0)).toHaveAttribute(
        'data-oci-turn-state',
        'error'
      );
      await expect(turns.nth(1)).toHaveAttribute(
        'data-oci-turn-state',
        'waiting',
        { timeout: 30 * 1000 }
      );
      cells = await notebookCells(page);
      expect(cells[1].source).toBe(FIXED + '\n');
      expect(cells[1].outputs).toEqual([]);
      // The loop's own cell failing is the loop's business: no Fix button.
      await expect(page.locator('.jp-OciFixButton')).toHaveCount(0);

      await runCellByHand(page, 1);
      await expect(request).toHaveAttribute('data-oci-status', 'success', {
        timeout: 30 * 1000
      });
      cells = await notebookCells(page);
      expect(outputText(cells[1])).toContain('55');
    });
  });
});
