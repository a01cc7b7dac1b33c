/**
 * The chat end to end with the real bundled model (Qwen2.5-Coder-1.5B on
 * llama.cpp): it writes the code, the notebook runs it. Also measures the
 * latency a user feels (time to the first token on screen) and the
 * browser's own overhead per turn.
 */
import {
  expect,
  galata,
  IJupyterLabPageFixture,
  test
} from '@jupyterlab/galata';

import {
  ask,
  chatInput,
  failOnPageErrors,
  marks,
  newNotebook,
  notebookCells,
  openPanel,
  outputText,
  PANEL,
  requests,
  sendButton
} from './helpers';

failOnPageErrors();

const MODEL_READY_TIMEOUT = 5 * 60 * 1000;
/**
 * One request: the model reads every result, so even a one-cell answer takes
 * two replies, each re-reading a longer prompt (~30 s per 1,700 tokens on a
 * quiet 2-core CPU, several times that on a busy one).
 */
const ANSWER_TIMEOUT = 5 * 60 * 1000;
/** A test with one request, plus loading the model and starting a kernel. */
const TEST_TIMEOUT = ANSWER_TIMEOUT + 4 * 60 * 1000;

async function modelReady(page: IJupyterLabPageFixture) {
  const panel = await openPanel(page);
  await expect(panel.locator('[data-oci-state="ready"]')).toBeVisible({
    timeout: MODEL_READY_TIMEOUT
  });
  return panel;
}

/**
 * ms from Enter to the first words on screen, for a request, and the
 * browser's share of it: gathering the context before the `ask` leaves, and
 * rendering after the first token arrives.
 */
async function firstTokenMs(page: IJupyterLabPageFixture, id: string) {
  const find = async (name: string) => {
    const mark = (await marks(page, name)).find(
      m => m.detail.id === id && (m.detail.turn ?? 1) === 1
    );
    if (!mark) {
      throw new Error(`no ${name} mark for ${id}`);
    }
    return mark.startTime;
  };
  const asked = await find('oci:ask');
  const sent = await find('oci:ask-sent');
  const received = await find('oci:token-received');
  const shown = await find('oci:first-token');
  const total = shown - asked;
  const browser = sent - asked + (shown - received);
  console.log(
    `time to first token ${total.toFixed(0)} ms: browser ${browser.toFixed(0)} ms ` +
      `(context ${(sent - asked).toFixed(0)} ms, render ${(shown - received).toFixed(0)} ms), ` +
      `server and model ${(received - sent).toFixed(0)} ms`
  );
  return total;
}

test.describe('chat with the real model', () => {
  test.describe.configure({ timeout: TEST_TIMEOUT });
  test('writes a cell below the active one and runs it', async ({ page }) => {
    // A fresh notebook: the kernel may still be starting when the code comes.
    await page.notebook.createNew();
    await modelReady(page);
    await ask(page, 'print the sum of 1..10');

    const request = requests(page).last();
    await expect(request).not.toHaveAttribute('data-oci-status', 'running', {
      timeout: ANSWER_TIMEOUT
    });
    await expect(request).toHaveAttribute('data-oci-status', 'success');
    await expect(
      request.locator('.jp-OciChat-turn').last().locator('.jp-OciChat-chip')
    ).toContainText('ok');

    const cells = await notebookCells(page);
    console.log(`generated cell:\n${cells[1].source}`);
    console.log(
      `answer: ${await request.locator('[data-oci-answer]').textContent()}`
    );
    // The model may take a second step once it read the result; the first
    // cell is the one below the active cell.
    expect(cells.length).toBeGreaterThanOrEqual(2);
    const cell = cells[1];
    expect(cell.metadata.oci).toMatchObject({ generated: true, step: 1 });
    expect(cell.execution_count).toEqual(expect.any(Number));
    expect(outputText(cell)).toContain('55');
    await firstTokenMs(page, (await request.getAttribute('data-oci-request'))!);
  });

  test("answers a question about the kernel's data in words, after reading the result", async ({
    page
  }, testInfo) => {
    await newNotebook(page, 'values = [3, 18, 7, 25, 12, 30]');
    const panel = await modelReady(page);
    await ask(
      page,
      'How many items in values are greater than 10? Answer with the number.'
    );
    const request = requests(page).last();
    await expect(request).not.toHaveAttribute('data-oci-status', 'running', {
      timeout: ANSWER_TIMEOUT
    });
    const cells = await notebookCells(page);
    const answer = request.locator('[data-oci-answer]');
    console.log(
      `${await request.getAttribute('data-oci-status')}: ` +
        `${await request.locator('.jp-OciChat-step').count()} step(s), ` +
        `cells:\n${cells
          .slice(1)
          .map(c => `${c.source}\n-> ${outputText(c).trim()}`)
          .join('\n')}\nanswer: ${await answer.textContent()}`
    );
    await expect(request).toHaveAttribute('data-oci-status', 'success');
    // The count came from running code in the kernel, and the model said it.
    expect(cells.length).toBeGreaterThanOrEqual(2);
    expect(cells.slice(1).map(outputText).join('\n')).toContain('4');
    await expect(answer).toContainText('4');
    await panel.screenshot({ path: testInfo.outputPath('answer.png') });
  });

  test('which list has the largest sum: cells, then an answer in words', async ({
    page
  }, testInfo) => {
    // The question of the interpreter-loop issue's "done": lists in several cells.
    await newNotebook(page, 'north = [12, 40, 7, 3]\nsouth = [30, 22, 9]');
    await page.notebook.addCell('code', 'east = [5, 61, 2, 1]');
    await page.notebook.runCell(1, { inplace: true });
    const panel = await modelReady(page);
    await ask(
      page,
      'Which of the lists in my notebook has the largest sum? Tell me its name.'
    );
    const request = requests(page).last();
    await expect(request).not.toHaveAttribute('data-oci-status', 'running', {
      timeout: ANSWER_TIMEOUT
    });
    const cells = await notebookCells(page);
    const answer = request.locator('[data-oci-answer]');
    console.log(
      `${await request.getAttribute('data-oci-status')}: cells:\n${cells
        .slice(2)
        .map(c => `${c.source}\n-> ${outputText(c).trim()}`)
        .join('\n')}\nanswer: ${await answer.textContent()}`
    );
    await expect(request).toHaveAttribute('data-oci-status', 'success');
    expect(cells.length).toBeGreaterThanOrEqual(3); // the model's code ran in a cell
    await expect(answer).toContainText('east'); // 69, against 62 and 61
    await panel.screenshot({ path: testInfo.outputPath('largest-sum.png') });
  });

  test('a request in two steps: each step a cell below the previous one', async ({
    page
  }, testInfo) => {
    await newNotebook(page, 'prices = [12.5, 13.0, 12.8, 14.2, 15.1]');
    await modelReady(page);
    await ask(
      page,
      'Do this in two separate steps, one code cell each. Step 1: define a list `doubled` with every price times 2 and print it. Step 2, after you see the result: print the sum of `doubled`.'
    );
    const request = requests(page).last();
    await expect(request).not.toHaveAttribute('data-oci-status', 'running', {
      timeout: ANSWER_TIMEOUT
    });
    const cells = await notebookCells(page);
    const steps = await request.locator('.jp-OciChat-step').count();
    console.log(
      `${await request.getAttribute('data-oci-status')}: ${steps} step(s); cells:\n` +
        cells
          .slice(1)
          .map(
            c =>
              `[step ${c.metadata.oci?.step}] ${c.source}\n-> ${outputText(c).trim()}`
          )
          .join('\n') +
        `\nanswer: ${await request.locator('[data-oci-answer]').textContent()}`
    );
    await request.screenshot({ path: testInfo.outputPath('two-steps.png') });
    await expect(request).toHaveAttribute('data-oci-status', 'success');
    // Every step's cell is below the previous step's, in order.
    const generated = cells.slice(1);
    expect(generated.length).toBe(steps);
    expect(generated.map(c => c.metadata.oci.step)).toEqual(
      generated.map((_, i) => i + 1)
    );
    // 2 × (12.5 + 13.0 + 12.8 + 14.2 + 15.1) = 135.2
    expect(generated.map(outputText).join('\n')).toContain('135.2');
  });

  test('time to the first token with a ~500-token notebook', async ({
    page
  }) => {
    // Two requests.
    test.setTimeout(2 * ANSWER_TIMEOUT + 4 * 60 * 1000);
    // A notebook a user might have: data prepared over a few cells.
    const sources = [
      'import math\nimport statistics\n\nprices = [12.5, 13.0, 12.8, 14.2, 15.1, 14.9, 16.3, 15.8, 17.0, 16.4]\nvolumes = [120, 98, 143, 165, 190, 172, 201, 188, 230, 215]',
      'def moving_average(values, window=3):\n    """Average of each run of `window` consecutive values."""\n    return [sum(values[i:i + window]) / window for i in range(len(values) - window + 1)]\n\nsmooth = moving_average(prices)\nprint([round(v, 2) for v in smooth])',
      "returns = [(b - a) / a for a, b in zip(prices, prices[1:])]\nvolatility = statistics.stdev(returns)\nprint(f'mean return {statistics.mean(returns):.4f}, volatility {volatility:.4f}')",
      "weighted = sum(p * v for p, v in zip(prices, volumes)) / sum(volumes)\nprint('volume-weighted price', round(weighted, 3))\nbest_day = max(range(len(prices)), key=lambda i: prices[i] * volumes[i])\nprint('best day', best_day, prices[best_day], volumes[best_day])"
    ];
    await newNotebook(page, sources[0]);
    for (const source of sources.slice(1)) {
      await page.notebook.addCell('code', source);
      await page.notebook.runCell((await notebookCells(page)).length - 1, {
        inplace: true
      });
    }
    const panel = await modelReady(page);

    // What the browser sends and when the first token comes back, read from
    // the websocket: separates the server's latency from the page's.
    const asks: any[] = [];
    const sentAt = new Map<string, number>();
    const firstTokenAt = new Map<string, number>();
    page.on('websocket', socket => {
      if (!socket.url().includes('/oci/chat')) {
        return; // kernels' sockets
      }
      socket.on('framesent', frame => {
        const text = String(frame.payload);
        if (text.includes('"type": "ask"') || text.includes('"type":"ask"')) {
          const ask = JSON.parse(text);
          asks.push(ask);
          sentAt.set(ask.id, Date.now());
        }
      });
      socket.on('framereceived', frame => {
        const message = JSON.parse(String(frame.payload));
        if (message.type === 'token' && !firstTokenAt.has(message.id)) {
          firstTokenAt.set(message.id, Date.now());
        }
      });
    });
    // The socket was opened at page load, before the listener: reopen it
    // (the kernel, and so the variables, outlive the page).
    await page.notebook.save();
    await page.reload({ waitForIsReady: false });
    await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
    await modelReady(page);

    const timings: number[] = [];
    for (const prompt of [
      'print the report as a markdown table',
      'plot nothing, just print the number of prices above the moving average'
    ]) {
      // A new cell each time: each request is a first turn of its own.
      const newCell = panel.getByRole('button', { name: 'New cell instead' });
      if (await newCell.isVisible()) {
        await newCell.click();
      }
      // As a user does: type, and take a few seconds over it. The chat sends
      // the notebook ahead while they type (prefill); Enter once the server
      // has read it, which is what a user typing for that long gets.
      const input = chatInput(page);
      await input.fill(prompt);
      // The input is always editable; Send waits for the model and the socket.
      await expect(sendButton(page)).toBeEnabled({ timeout: 60 * 1000 });
      await page.waitForTimeout(1500); // the composer's pause before a prefill
      await expect
        .poll(
          async () =>
            (await (await page.request.get('/oci/status')).json()).busy,
          { timeout: 120 * 1000, intervals: [250] }
        )
        .toBe(false);
      await input.press('Enter');
      const request = requests(page).last();
      await expect(request).not.toHaveAttribute('data-oci-status', 'running', {
        timeout: ANSWER_TIMEOUT
      });
      const id = (await request.getAttribute('data-oci-request'))!;
      timings.push(await firstTokenMs(page, id));
      console.log(
        `${prompt}: ${await request.getAttribute('data-oci-status')}, ` +
          `${await request.locator('.jp-OciChat-turn').count()} turns; ` +
          `ask frame -> first token frame ${firstTokenAt.get(id)! - sentAt.get(id)!} ms`
      );
    }

    // How big the context was, in the model's own tokens.
    const context = asks[0].context;
    const texts = [
      ...context.cells.map(
        (c: any) => `# ${c.label}\n${c.source}\n# Output:\n${c.output}`
      ),
      ...context.variables.map(
        (v: any) => `- ${v.name}: ${v.type}, ${v.summary}`
      )
    ];
    const counted = await page.request.post('/oci/tokenize', {
      data: { texts }
    });
    const counts: number[] = (await counted.json()).counts;
    const contextTokens = counts.reduce((a, b) => a + b, 0);
    console.log(
      `context: ${context.cells.length} cells, ${context.variables.length} variables, ` +
        `${contextTokens} tokens; time to first token: ${timings
          .map(t => `${t.toFixed(0)} ms`)
          .join(', ')}`
    );
    const turnMarks = await marks(page, 'oci:turn');
    console.log(
      'browser overhead per executed turn: ' +
        turnMarks.map(m => `${m.detail.overheadMs.toFixed(1)} ms`).join(', ')
    );
    expect(contextTokens).toBeGreaterThan(400);
    expect(context.variables.map((v: any) => v.name)).toContain('prices');
    await expect(page.locator(PANEL)).toBeVisible();
  });
});

test.describe('auto-fix with the real model', () => {
  // The model samples (temperature 0.2): a retry is a new sample, while a
  // broken fix path fails both times.
  test.describe.configure({ retries: 1, timeout: TEST_TIMEOUT });
  /** A notebook whose second cell, run by the user, fails. */
  async function failing(
    page: IJupyterLabPageFixture,
    setup: string,
    broken: string,
    ename: string
  ) {
    await newNotebook(page, setup);
    await page.notebook.addCell('code', broken);
    await page.notebook.runCell(1, { inplace: true });
    await expect
      .poll(async () => outputText((await notebookCells(page))[1]))
      .toContain(ename);
  }

  test('suggest: a NameError is fixed after the user accepts the diff', async ({
    page
  }, testInfo) => {
    const broken = 'print(sortd(numbers))';
    await failing(page, 'numbers = [3, 1, 2]', broken, 'NameError');
    await modelReady(page);
    const button = page
      .locator('.jp-Notebook .jp-Cell')
      .nth(1)
      .locator('.jp-OciFixButton button');
    await button.click();

    // Every rewrite the model proposes waits for Accept.
    const request = requests(page).last();
    const dialog = page.locator('.jp-Dialog.jp-OciDiffDialog');
    const deadline = Date.now() + ANSWER_TIMEOUT;
    let accepted = 0;
    while ((await request.getAttribute('data-oci-status')) === 'running') {
      expect(Date.now()).toBeLessThan(deadline);
      if (await dialog.isVisible()) {
        if (accepted === 0) {
          await page.screenshot({ path: testInfo.outputPath('diff.png') });
        }
        await dialog.getByRole('button', { name: 'Accept' }).click();
        await expect(dialog).toHaveCount(0);
        accepted++;
      }
      await page.waitForTimeout(200);
    }
    const cells = await notebookCells(page);
    console.log(
      `fixed cell after ${accepted} accepted diff(s):\n${cells[1].source}`
    );
    await expect(request).toHaveAttribute('data-oci-status', 'success');
    expect(accepted).toBeGreaterThanOrEqual(1);
    expect(cells).toHaveLength(2);
    // sorted(numbers), or numbers.sort(): any fix that prints the sorted list.
    expect(cells[1].source).not.toContain('sortd(');
    expect(outputText(cells[1])).toContain('[1, 2, 3]');
    expect(outputText(cells[1])).not.toContain('NameError');
    expect(cells[1].metadata.oci.original_source).toBe(broken);
    await page.screenshot({ path: testInfo.outputPath('fixed.png') });
  });

  test.describe('with autoFix "auto"', () => {
    test.use({
      mockSettings: {
        ...galata.DEFAULT_SETTINGS,
        'oci-jupyter:plugin': { autoFix: 'auto' }
      }
    });

    test('a TypeError is fixed and run again without a click', async ({
      page
    }) => {
      // The model loads first: a fix needs it ready when the cell fails.
      await page.notebook.createNew();
      await modelReady(page);
      await page.notebook.setCell(0, 'code', 'count = 6');
      await page.notebook.runCell(0, { inplace: true });
      const broken = 'print("total: " + count)';
      await page.notebook.addCell('code', broken);
      await page.notebook.runCell(1, { inplace: true });

      const request = requests(page).last();
      await expect(request).toBeVisible({ timeout: 30 * 1000 });
      await expect(request).not.toHaveAttribute('data-oci-status', 'running', {
        timeout: ANSWER_TIMEOUT
      });
      const cells = await notebookCells(page);
      console.log(`fixed cell:\n${cells[1].source}`);
      await expect(request).toHaveAttribute('data-oci-status', 'success');
      await expect(page.locator('.jp-OciDiffDialog')).toHaveCount(0);
      expect(cells).toHaveLength(2);
      expect(outputText(cells[1])).toMatch(/total:\s*6/);
      expect(outputText(cells[1])).not.toContain('TypeError');
      expect(cells[1].metadata.oci.original_source).toBe(broken);
    });
  });
});
