/**
 * The chat against the scripted engine (tests/doubles.py): every reply is
 * written by the test, so each step of the loop can be checked exactly. The
 * code still runs for real, in the notebook's kernel.
 */
import {
  expect,
  galata,
  IJupyterLabPageFixture,
  test
} from '@jupyterlab/galata';
import type { WebSocketRoute } from '@playwright/test';
import * as path from 'path';

import {
  ask,
  chatInput,
  IMAGES,
  marks,
  newNotebook,
  notebookCells,
  openPanel,
  outputText,
  PANEL,
  reloadWith,
  reply,
  requests,
  script,
  scriptedPrompts,
  widenSidebar
} from './helpers';

// An exception in the page (a React tree torn down, a widget that cannot
// detach) blanks the panel without failing any assertion: fail on it.
let pageErrors: string[] = [];
test.beforeEach(({ page }) => {
  pageErrors = [];
  page.on('pageerror', error => pageErrors.push(error.message));
});
test.afterEach(() => {
  expect(pageErrors).toEqual([]);
});

const BROKEN = 'total = sum(range(1, 11))\nprint(totl)';
const FIXED = 'total = sum(range(1, 11))\nprint(total)';

test.describe('chat with a scripted model', () => {
  test('an error, then a fix: two attempts in one real cell, undoable', async ({
    page
  }) => {
    script([
      reply('I sum the range and print it.', BROKEN),
      reply('The name was misspelled: `totl` should be `total`.', FIXED)
    ]);
    await newNotebook(page);
    const panel = await openPanel(page);
    await ask(page, 'print the sum of 1..10');

    const request = requests(page).last();
    await expect(request).toHaveAttribute('data-oci-status', 'success', {
      timeout: 30 * 1000
    });
    // Both attempts, as chips: the error with its exception's name, then ok.
    const turns = request.locator('.jp-OciChat-turn');
    await expect(turns).toHaveCount(2);
    await expect(turns.nth(0)).toHaveAttribute('data-oci-turn-state', 'error');
    await expect(turns.nth(0).locator('.jp-OciChat-chip')).toContainText(
      'NameError'
    );
    await expect(turns.nth(0).locator('.jp-OciChat-error')).toContainText(
      "name 'totl' is not defined"
    );
    await expect(turns.nth(1)).toHaveAttribute('data-oci-turn-state', 'ok');
    await expect(request.locator('[data-oci-end]')).toContainText(
      'Worked · 2 attempts'
    );
    // The reply is rendered markdown, its code highlighted by JupyterLab.
    const block = turns.nth(1).locator('.jp-RenderedMarkdown pre');
    await expect(block).toContainText('print(total)');
    // Highlighted by JupyterLab's CodeMirror-based highlighter.
    expect(await block.locator('code span').count()).toBeGreaterThan(3);

    // One generated cell, below the active one, with the fixed source and
    // its successful output.
    const cells = await notebookCells(page);
    expect(cells).toHaveLength(2);
    const cell = cells[1];
    expect(cell.source).toBe(FIXED + '\n');
    expect(cell.execution_count).toEqual(expect.any(Number));
    expect(outputText(cell)).toContain('55');
    expect(cell.metadata.oci).toEqual({
      request: await request.getAttribute('data-oci-request'),
      turn: 2,
      generated: true,
      previous_sources: [BROKEN + '\n']
    });

    // The model saw the notebook (the variable, the cell) and, at turn 2,
    // the error of turn 1.
    const prompts = scriptedPrompts();
    expect(prompts).toHaveLength(2);
    const first = prompts[0].map(m => m.content).join('\n');
    expect(first).toContain('- x: int, value 41');
    expect(first).toContain('print(x + 1)');
    expect(first).toContain('print the sum of 1..10');
    const feedback = prompts[1][prompts[1].length - 1].content;
    expect(feedback).toContain('Execution result:');
    expect(feedback).toContain('NameError');

    // Undo in the cell brings the first source back.
    await page.notebook.enterCellEditingMode(1);
    await page.keyboard.press('ControlOrMeta+z');
    await expect
      .poll(async () => (await notebookCells(page))[1].source)
      .toBe(BROKEN + '\n');

    // Asking for variables left nothing behind in the kernel and no history.
    await page.notebook.leaveCellEditingMode(1);
    await page.notebook.addCell(
      'code',
      "print(sorted(k for k in globals() if not k.startswith('_')), len(In))"
    );
    await page.notebook.runCell(2, { inplace: true });
    // In[0] is empty, then the first cell, the two generated runs and this
    // one: the silent variable requests added nothing.
    await expect
      .poll(async () => outputText((await notebookCells(page))[2]))
      .toContain(
        "['In', 'Out', 'exit', 'get_ipython', 'open', 'quit', 'total', 'x'] 5"
      );

    // The per-turn timings the executor records.
    const turnMarks = await marks(page, 'oci:turn');
    expect(turnMarks).toHaveLength(2);
    for (const mark of turnMarks) {
      console.log(
        `turn ${mark.detail.turn}: browser overhead ${mark.detail.overheadMs.toFixed(1)} ms, ` +
          `run ${mark.detail.runMs.toFixed(1)} ms`
      );
    }
    await expect(panel.locator('.jp-OciChat-refine')).toContainText(
      'Your next message refines'
    );
  });

  test('the next message refines the same cell; "New cell instead" does not', async ({
    page
  }) => {
    script([
      reply('Here it is.', 'print("v1")'),
      reply('Now louder.', 'print("V2!")'),
      reply('A separate cell.', 'print("other")')
    ]);
    await newNotebook(page);
    const panel = await openPanel(page);
    // Shift+Enter is a new line, not a send.
    const input = chatInput(page);
    await input.fill('first line');
    await input.press('Shift+Enter');
    await input.pressSequentially('second line');
    await expect(input).toHaveValue('first line\nsecond line');
    await expect(requests(page)).toHaveCount(0);
    await ask(page, 'print v1');
    await expect(requests(page).last()).toHaveAttribute(
      'data-oci-status',
      'success',
      { timeout: 30 * 1000 }
    );
    expect(await notebookCells(page)).toHaveLength(2);

    // The human-feedback turn: the same cell is rewritten.
    const refine = panel.locator('.jp-OciChat-refine');
    await expect(refine).toContainText('Your next message refines In [2]');
    await ask(page, 'make it louder');
    const second = requests(page).last();
    await expect(second.locator('.jp-OciChat-refines')).toHaveText(
      'Refining In [2]'
    );
    await expect(second).toHaveAttribute('data-oci-status', 'success', {
      timeout: 30 * 1000
    });
    let cells = await notebookCells(page);
    expect(cells).toHaveLength(2);
    expect(cells[1].source).toBe('print("V2!")\n');
    expect(outputText(cells[1])).toContain('V2!');
    expect(cells[1].metadata.oci.previous_sources).toEqual(['print("v1")\n']);
    expect(cells[1].metadata.oci.request).toBe(
      await second.getAttribute('data-oci-request')
    );

    // Asking for a new cell instead.
    await refine.getByRole('button', { name: 'New cell instead' }).click();
    await expect(panel.locator('.jp-OciChat-refine')).toContainText(
      'Your next message starts a new cell.'
    );
    await ask(page, 'print something else');
    await expect(requests(page).last()).toHaveAttribute(
      'data-oci-status',
      'success',
      { timeout: 30 * 1000 }
    );
    cells = await notebookCells(page);
    expect(cells).toHaveLength(3);
    expect(cells[1].source).toBe('print("V2!")\n');
    expect(cells[2].source).toBe('print("other")\n');
  });

  test('Stop while the reply streams ends the request cleanly', async ({
    page
  }, testInfo) => {
    const long = Array.from({ length: 400 }, (_, i) => `word${i}`).join(' ');
    script([long, 'Just an answer, no code this time.']);
    await newNotebook(page);
    const panel = await openPanel(page);
    await panel.screenshot({ path: testInfo.outputPath('empty.png') });
    await ask(page, 'tell me a long story');

    const request = requests(page).last();
    const streaming = request.locator('.jp-OciChat-streaming');
    await expect(streaming).toContainText('word20');
    // Escape in the panel is the Stop command.
    await chatInput(page).press('Escape');
    await expect(request).toHaveAttribute('data-oci-status', 'cancelled', {
      timeout: 10 * 1000
    });
    await expect(request.locator('.jp-OciChat-chip')).toHaveText('cancelled');
    await expect(request.locator('[data-oci-end]')).toContainText('Stopped');
    // The stream stopped well before its end, and no cell was written.
    await expect(request).not.toContainText('word399');
    expect(await notebookCells(page)).toHaveLength(1);

    // The input is usable again.
    await expect(panel.getByRole('button', { name: 'Send' })).toBeVisible();
    await ask(page, 'just answer');
    await expect(requests(page).last()).toHaveAttribute(
      'data-oci-status',
      'no_code',
      { timeout: 30 * 1000 }
    );
    await expect(requests(page).last()).toContainText(
      'Just an answer, no code this time.'
    );
  });

  test('the history survives a page reload', async ({ page, tmpPath }) => {
    script([reply('Printing it.', 'print("kept")')]);
    const name = await newNotebook(page);
    await openPanel(page);
    await ask(page, 'print kept');
    await expect(requests(page).last()).toHaveAttribute(
      'data-oci-status',
      'success',
      { timeout: 30 * 1000 }
    );
    await page.notebook.save();

    await reloadWith(page, `${tmpPath}/${name}`);
    const panel = await openPanel(page);
    const request = requests(page).last();
    await expect(request).toHaveAttribute('data-oci-status', 'success');
    await expect(request.locator('.jp-OciChat-prompt')).toHaveText(
      'print kept'
    );
    await expect(request.locator('.jp-OciChat-chip')).toHaveText(/ok/);
    await expect(request.locator('.jp-RenderedMarkdown')).toContainText(
      'Printing it.'
    );
    // The notebook remembers which cell the request wrote.
    await expect(panel.locator('.jp-OciChat-refine')).toContainText(
      'Your next message refines'
    );

    // Clearing forgets it, on the server too.
    await panel.getByRole('button', { name: 'Clear chat history' }).click();
    await page
      .getByRole('dialog')
      .getByRole('button', { name: 'Clear', exact: true })
      .click();
    await expect(requests(page)).toHaveCount(0);
    await expect(panel.locator('.jp-OciChat-empty')).toBeVisible();
    const history = await page.request.get(
      `/oci/chat/history?notebook=${encodeURIComponent(`${tmpPath}/${name}`)}`
    );
    expect((await history.json()).requests).toEqual([]);
  });

  test('the chat follows a renamed notebook, after a reload too', async ({
    page,
    tmpPath
  }) => {
    script([reply('Printing it.', 'print("renamed")')]);
    const name = await newNotebook(page);
    await openPanel(page);
    await ask(page, 'print renamed');
    await expect(requests(page).last()).toHaveAttribute(
      'data-oci-status',
      'success',
      { timeout: 30 * 1000 }
    );
    await page.notebook.save();
    const renamed = `${tmpPath}/renamed-${name}`;
    await page.evaluate(
      ([from, to]) =>
        window.jupyterapp.serviceManager.contents.rename(from, to),
      [`${tmpPath}/${name}`, renamed]
    );
    await expect(page.locator('.jp-OciChat-notebook')).toContainText(
      `renamed-${name}`
    );
    await expect(requests(page)).toHaveCount(1);

    await reloadWith(page, renamed);
    await openPanel(page);
    await expect(page.locator('.jp-OciChat-notebook')).toContainText(
      `renamed-${name}`
    );
    await expect(requests(page)).toHaveCount(1);
    await expect(
      requests(page).last().locator('.jp-OciChat-prompt')
    ).toHaveText('print renamed');
  });

  test('each notebook has its own chat; the chat follows the notebook', async ({
    page
  }) => {
    script([reply('One.', 'print(1)')]);
    const first = await newNotebook(page);
    const panel = await openPanel(page);
    await ask(page, 'print one');
    await expect(requests(page).last()).toHaveAttribute(
      'data-oci-status',
      'success',
      { timeout: 30 * 1000 }
    );

    const second = await page.notebook.createNew();
    await expect(panel.locator('.jp-OciChat-notebookName')).toHaveText(second!);
    await expect(requests(page)).toHaveCount(0);
    await expect(panel.locator('.jp-OciChat-empty')).toBeVisible();

    await page.notebook.activate(first);
    await expect(panel.locator('.jp-OciChat-notebookName')).toHaveText(first);
    await expect(requests(page)).toHaveCount(1);
    await expect(requests(page).locator('.jp-OciChat-prompt')).toHaveText(
      'print one'
    );
    await expect(requests(page).locator('.jp-RenderedMarkdown')).toContainText(
      'One.'
    );
  });

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
          reply('Faster now.', 'print("quick")')
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
        reply('Fixed the name.', FIXED)
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

test.describe('chat screenshots', () => {
  test.use({ viewport: { width: 1280, height: 1160 }, deviceScaleFactor: 2 });

  for (const theme of ['light', 'dark']) {
    test(`mid-conversation, ${theme} theme`, async ({ page }) => {
      if (theme === 'dark') {
        await page.evaluate(() =>
          window.jupyterapp.commands.execute('apputils:change-theme', {
            theme: 'JupyterLab Dark'
          })
        );
        await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
      }
      script([
        reply(
          'I load the CSV with **pandas**, then sum the `amount` column by month.',
          "df = pd.read_csv('data.csv', parse_dates=['date'])\nmonthly = df.resample('M', on='date')['amount'].sum()\nprint(monthly)"
        ),
        reply(
          '`pd` is not defined: pandas was never imported. Importing it first:',
          "import pandas as pd\n\ndf = pd.DataFrame({'date': pd.date_range('2024-01-01', periods=90), 'amount': range(90)})\nmonthly = df.resample('MS', on='date')['amount'].sum()\nprint(monthly)"
        ),
        // Long enough to still be streaming when the screenshot is taken.
        'A bar per month reads best here; I label the bars with short month names.\n\n' +
          '```python\nimport matplotlib.pyplot as plt\n\nfig, ax = plt.subplots(figsize=(6, 3))\n' +
          "ax.bar(monthly.index.strftime('%b'), monthly.values, color='tab:blue')\n" +
          "ax.set_title('Monthly totals')\nax.set_ylabel('amount')\nplt.show()\n```\n\n" +
          Array.from(
            { length: 60 },
            () => 'The bars share one axis so the months compare at a glance.'
          ).join(' ')
      ]);
      await newNotebook(page, "print('monthly report')");
      const panel = await openPanel(page);
      await widenSidebar(page, 400);
      await ask(page, 'load data.csv and sum the amounts per month');
      await expect(requests(page).last()).toHaveAttribute(
        'data-oci-status',
        'success',
        { timeout: 30 * 1000 }
      );
      await ask(page, 'now plot the monthly totals as a bar chart');
      await expect(
        requests(page).last().locator('.jp-OciChat-streaming')
      ).toContainText('ax.bar(monthly.index', { timeout: 10 * 1000 });
      await panel.screenshot({
        path: path.join(IMAGES, `chat-${theme}.png`)
      });
      await page.locator(PANEL).getByRole('button', { name: 'Stop' }).click();
      await expect(requests(page).last()).toHaveAttribute(
        'data-oci-status',
        'cancelled'
      );
    });
  }
});

test.describe('auto-fix of failing cells', () => {
  const FAILING = 'doubled = x * 2\nprint(y)';
  const REPAIRED = 'doubled = x * 2\nprint(doubled)';

  /** A notebook whose second cell, run by the user, fails with a NameError. */
  async function failingCell(page: IJupyterLabPageFixture): Promise<string> {
    const name = await newNotebook(page);
    await page.notebook.addCell('code', FAILING);
    await page.notebook.runCell(1, { inplace: true });
    await expect
      .poll(async () => outputText((await notebookCells(page))[1]))
      .toContain('NameError');
    return name;
  }

  test('suggest: the Fix button, a diff to accept, the fixed cell runs; the original comes back', async ({
    page
  }, testInfo) => {
    script([reply('`y` is not defined; `x` is.', REPAIRED)]);
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

    // The model was asked to fix that cell, with its error.
    const prompts = scriptedPrompts();
    expect(prompts).toHaveLength(1);
    const asked = prompts[0].map(m => m.content).join('\n');
    expect(asked).toContain(FAILING);
    expect(asked).toContain("name 'y' is not defined");

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
    await page.evaluate(() =>
      window.jupyterapp.commands.execute('oci:fix-cell')
    );
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

    script([reply('`y` is not defined; `x` is.', REPAIRED)]);
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
      script([reply('`y` is not defined; `x` is.', REPAIRED)]);
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
    });

    test('the failing code handed back is not run again; the model is told', async ({
      page,
      tmpPath
    }, testInfo) => {
      script([
        reply('This should work.', FAILING),
        reply('`y` is not defined; `x` is.', REPAIRED)
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
      expect(prompts).toHaveLength(2);
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

/** Select a cell and run it with JupyterLab's own command, as a user pressing Shift+Enter
 * would (without moving to the next cell). */
async function runCellByHand(page: IJupyterLabPageFixture, index: number) {
  await page.notebook.selectCells(index);
  await page.evaluate(async () => {
    await window.jupyterapp.commands.execute('notebook:run-cell');
  });
}
