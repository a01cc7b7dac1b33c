/**
 * Nothing lost, nothing hijacked: the chat touches only its own cells. A
 * user's cell that runs when the chat asks is waited for and never
 * interrupted; an edit the user makes to the loop's cell survives the next
 * refinement; a kernel restart ends a request that waits for the user.
 * Against the scripted engine (tests/doubles.py); the code runs for real.
 */

import {
  ask,
  expect,
  failOnPageErrors,
  galata,
  IJupyterLabPageFixture,
  newNotebook,
  notebookCells,
  openPanel,
  outputText,
  PANEL,
  reply,
  requests,
  script,
  scriptedPrompts,
  test
} from './helpers';

failOnPageErrors();

// Galata's kernel tracking parses every kernel POST's reply as JSON; an
// interrupt's reply is empty (204).
test.use({ kernels: null });

const USER_CELL = 'import time\ntime.sleep(6)\nprint("user cell done")';

/** Run a cell the way a user does, without waiting for it to finish. */
async function startCell(page: IJupyterLabPageFixture, index: number) {
  await page.notebook.selectCells(index);
  await page.evaluate(() => {
    void window.jupyterapp.commands.execute('notebook:run-cell');
  });
}

test.describe('the chat and the user’s own cells', () => {
  test('a user cell running when the chat asks: the chat waits, Stop leaves the user’s cell alone', async ({
    page
  }, testInfo) => {
    script([reply('Printing.', 'print("from the chat")')]);
    await newNotebook(page, USER_CELL);
    // newNotebook ran it once already (6 s): run it again, and ask meanwhile.
    await startCell(page, 0);
    const panel = await openPanel(page);
    await ask(page, 'print something');
    const request = requests(page).last();
    const turn = request.locator('.jp-OciChat-turn').first();
    await expect(turn).toHaveAttribute('data-oci-turn-state', 'queued', {
      timeout: 15 * 1000
    });
    await expect(turn.locator('[data-oci-queued]')).toContainText(
      'Waiting for cell 1 to finish'
    );
    await panel.screenshot({ path: testInfo.outputPath('queued.png') });
    await panel.getByRole('button', { name: 'Stop' }).click();
    await expect(request).toHaveAttribute('data-oci-status', 'cancelled', {
      timeout: 10 * 1000
    });
    // The user's cell finishes as it would have: no KeyboardInterrupt.
    await expect
      .poll(async () => outputText((await notebookCells(page))[0]), {
        timeout: 20 * 1000
      })
      .toContain('user cell done');
    const cells = await notebookCells(page);
    expect(outputText(cells[0])).not.toContain('KeyboardInterrupt');
    // The chat's cell never ran.
    expect(cells[1].source).toBe('print("from the chat")\n');
    expect(cells[1].execution_count).toBeNull();
    expect(cells[1].outputs).toEqual([]);
  });

  test.describe('with a 3 s time limit', () => {
    test.use({
      mockSettings: {
        ...galata.DEFAULT_SETTINGS,
        'oci-jupyter:plugin': { executionTimeLimit: 3 }
      }
    });

    test('the chat’s cell runs once the user’s is done; its time limit counts from its own start', async ({
      page
    }) => {
      script([
        reply('Counting.', 'import time\ntime.sleep(1.5)\nprint("chat ran")'),
        'It printed chat ran.'
      ]);
      await newNotebook(page, USER_CELL);
      await startCell(page, 0);
      await openPanel(page);
      await ask(page, 'print something');
      const request = requests(page).last();
      await expect(request.locator('.jp-OciChat-turn').first()).toHaveAttribute(
        'data-oci-turn-state',
        'queued',
        { timeout: 15 * 1000 }
      );
      await expect(request).toHaveAttribute('data-oci-status', 'success', {
        timeout: 40 * 1000
      });
      await expect(request.locator('.jp-OciChat-turn').first()).toHaveAttribute(
        'data-oci-turn-state',
        'ok'
      );
      const cells = await notebookCells(page);
      expect(outputText(cells[0])).toContain('user cell done');
      expect(outputText(cells[0])).not.toContain('KeyboardInterrupt');
      expect(outputText(cells[1])).toContain('chat ran');
      // The user's cell ran first, the chat's after it.
      expect(cells[1].execution_count).toBeGreaterThan(
        cells[0].execution_count ?? 0
      );
    });
  });

  test('an edit of the loop’s cell during a refinement survives; the refinement goes below', async ({
    page
  }) => {
    const BROKEN = 'total = sum(range(1, 11))\nprint(totl)';
    const FIXED = 'total = sum(range(1, 11))\nprint(total)';
    // A long preamble: the reply streams for a few seconds before its code.
    const preamble = Array.from({ length: 250 }, (_, i) => `w${i}`).join(' ');
    script([
      reply('Printing the total.', BROKEN),
      reply(preamble, FIXED),
      'The total is 55.'
    ]);
    await newNotebook(page);
    await openPanel(page);
    await ask(page, 'print the sum of 1..10');
    const request = requests(page).last();
    const turns = request.locator('.jp-OciChat-turn');
    await expect(turns.nth(0)).toHaveAttribute('data-oci-turn-state', 'error', {
      timeout: 30 * 1000
    });
    // While the model writes its refinement, the user fixes the cell their way.
    const mine =
      'total = 0\nfor i in range(1, 11):\n    total += i\nprint(total)';
    await page.evaluate(source => {
      const widget = window.jupyterapp.shell.currentWidget as any;
      widget.content.model.cells.get(1).sharedModel.setSource(source);
    }, mine);
    await expect(request).toHaveAttribute('data-oci-status', 'success', {
      timeout: 40 * 1000
    });
    await expect(turns.nth(1).locator('[data-oci-note="moved"]')).toContainText(
      'You had edited'
    );
    const cells = await notebookCells(page);
    expect(cells).toHaveLength(3);
    // The user's edit is there, untouched; the refinement is in a new cell.
    expect(cells[1].source).toBe(mine);
    expect(cells[2].source).toBe(FIXED + '\n');
    expect(outputText(cells[2])).toContain('55');
  });

  test.describe('with auto-execute off', () => {
    test.use({
      mockSettings: {
        ...galata.DEFAULT_SETTINGS,
        'oci-jupyter:plugin': { autoExecute: false }
      }
    });

    test('the user edits the cell before running it: the model is told what ran', async ({
      page
    }) => {
      script([reply('Printing.', 'print(1 + 1)'), 'It printed 3.']);
      await newNotebook(page);
      await openPanel(page);
      await ask(page, 'print something');
      const request = requests(page).last();
      const turn = request.locator('.jp-OciChat-turn').first();
      await expect(turn).toHaveAttribute('data-oci-turn-state', 'waiting', {
        timeout: 30 * 1000
      });
      await page.evaluate(() => {
        const widget = window.jupyterapp.shell.currentWidget as any;
        widget.content.model.cells.get(1).sharedModel.setSource('print(1 + 2)');
      });
      await startCell(page, 1);
      await expect(request).toHaveAttribute('data-oci-status', 'success', {
        timeout: 30 * 1000
      });
      await expect(turn.locator('[data-oci-note="edited"]')).toBeVisible();
      const feedback = scriptedPrompts()[1].slice(-1)[0].content;
      expect(feedback).toContain('print(1 + 2)');
      expect(feedback).toContain('3');
    });

    test('a kernel restart while the cell waits for the user ends the request', async ({
      page
    }) => {
      script([reply('Printing.', 'print("waiting")')]);
      await newNotebook(page);
      await openPanel(page);
      await ask(page, 'print something');
      const request = requests(page).last();
      await expect(request.locator('.jp-OciChat-turn').first()).toHaveAttribute(
        'data-oci-turn-state',
        'waiting',
        { timeout: 30 * 1000 }
      );
      await page.evaluate(async () => {
        const widget = window.jupyterapp.shell.currentWidget as any;
        await widget.sessionContext.session.kernel.restart();
      });
      await expect(request).toHaveAttribute('data-oci-status', 'error', {
        timeout: 20 * 1000
      });
      await expect(request).toContainText('restarted');
      // The chat is usable again.
      await expect(
        page.locator(PANEL).getByRole('button', { name: 'Send' })
      ).toBeVisible();
    });
  });

  test('another tab running a request in this notebook: the chat says so, and the server runs one at a time', async ({
    page
  }) => {
    const long = Array.from({ length: 1500 }, (_, i) => `w${i}`).join(' ');
    script([long]);
    await newNotebook(page);
    await openPanel(page);
    const notebook = await page.evaluate(
      () => (window.jupyterapp.shell.currentWidget as any).context.path
    );
    // The other tab: a second chat connection to the same server, asking
    // about the same notebook.
    await page.evaluate(async notebook => {
      const settings = window.jupyterapp.serviceManager.serverSettings;
      const url = new URL('oci/chat', settings.wsUrl);
      if (settings.token) {
        url.searchParams.set('token', settings.token);
      }
      const socket = new WebSocket(url.href);
      await new Promise(resolve => socket.addEventListener('open', resolve));
      (window as any).otherTab = socket;

      socket.send(
        JSON.stringify({
          type: 'ask',
          id: 'other-tab',
          prompt: 'a long story from the other tab',
          notebook,
          mode: 'chat',
          context: { language: 'python', cells: [], variables: [] },
          max_turns: 1,
          time_limit: 10,
          auto_execute: true,
          refine_cell: false
        })
      );
    }, notebook);
    const banner = page.locator(`${PANEL} [data-oci-elsewhere="other-tab"]`);
    await expect(banner).toContainText('a long story from the other tab', {
      timeout: 15 * 1000
    });
    // Asking here meanwhile: refused with the reason, nothing is written.
    await ask(page, 'print something');
    const request = requests(page).last();
    await expect(request).toHaveAttribute('data-oci-status', 'error', {
      timeout: 15 * 1000
    });
    await expect(request).toContainText('already running in this notebook');
    expect(await notebookCells(page)).toHaveLength(1);
    // The other tab stops: the banner goes.
    await page.evaluate(() => {
      (window as any).otherTab.send(
        JSON.stringify({ type: 'cancel', id: 'other-tab' })
      );
    });
    await expect(banner).toHaveCount(0, { timeout: 15 * 1000 });
  });
});
