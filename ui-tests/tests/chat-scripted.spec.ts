/**
 * The chat against the scripted engine (tests/doubles.py): every reply is
 * written by the test, so each step of the loop can be checked exactly. The
 * code still runs for real, in the notebook's kernel.
 */
import type { WebSocketRoute } from '@playwright/test';
import * as path from 'path';

import {
  ask,
  chatInput,
  expect,
  failOnPageErrors,
  galata,
  IJupyterLabPageFixture,
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
  test,
  widenSidebar
} from './helpers';

failOnPageErrors();

const BROKEN = 'total = sum(range(1, 11))\nprint(totl)';
const FIXED = 'total = sum(range(1, 11))\nprint(total)';

test.describe('chat with a scripted model', () => {
  test('an error, then a fix: two attempts in one real cell, undoable', async ({
    page
  }) => {
    script([
      reply('I sum the range and print it.', BROKEN),
      reply('The name was misspelled: `totl` should be `total`.', FIXED),
      // The model reads the result, then answers in words.
      'The sum of 1..10 is **55**.'
    ]);
    await newNotebook(page);
    const panel = await openPanel(page);
    await ask(page, 'print the sum of 1..10');

    const request = requests(page).last();
    await expect(request).toHaveAttribute('data-oci-status', 'success', {
      timeout: 30 * 1000
    });
    // One step, its two attempts as chips: the error with its exception's
    // name, then ok.
    await expect(request.locator('.jp-OciChat-step')).toHaveCount(1);
    const turns = request.locator('.jp-OciChat-step .jp-OciChat-turn');
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
    // The answer, as markdown, at the end: after the attempts, with how the
    // request ended.
    const answer = request.locator('[data-oci-answer]');
    await expect(answer.locator('strong')).toHaveText('55');
    expect(
      await answer.evaluate(node => {
        const step = node
          .closest('.jp-OciChat-request')!
          .querySelector('.jp-OciChat-step')!;
        return Boolean(
          step.compareDocumentPosition(node) & Node.DOCUMENT_POSITION_FOLLOWING
        );
      })
    ).toBe(true);
    await expect(request.locator('[data-oci-budgets]')).toHaveCount(0);
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
      step: 1,
      generated: true,
      previous_sources: [BROKEN + '\n']
    });

    // The model saw the notebook (the variable, the cell) and, at turn 2,
    // the error of turn 1; at turn 3, the fixed cell's output.
    const prompts = scriptedPrompts();
    expect(prompts).toHaveLength(3);
    const first = prompts[0].map(m => m.content).join('\n');
    expect(first).toContain('- x: int, value 41');
    expect(first).toContain('print(x + 1)');
    expect(first).toContain('print the sum of 1..10');
    const feedback = prompts[1][prompts[1].length - 1].content;
    expect(feedback).toContain('Execution result:');
    expect(feedback).toContain('NameError');
    const result = prompts[2][prompts[2].length - 1].content;
    expect(result).toContain('Execution result:');
    expect(result).toContain('55');

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

  test('two steps: a new cell for each, the second below the first, then the answer', async ({
    page
  }, testInfo) => {
    const STEP1 = 'values = [3, 18, 7, 25, 12, 30]\nprint(len(values))';
    const STEP2 = 'print(sum(v > 10 for v in values))';
    // Long enough words before the code to still stream while the user
    // clicks elsewhere.
    const musing = Array.from({ length: 150 }, (_, i) => `w${i}`).join(' ');
    script([
      reply('First the values.', STEP1),
      reply(`Six values. Now I count those above 10. ${musing}`, STEP2),
      'There are **4** values greater than 10: 18, 25, 12 and 30.'
    ]);
    await newNotebook(page);
    await page.notebook.addCell('code', 'below = "the user\'s cell"');
    // Asked from the first cell: step 1 goes below it.
    await page.notebook.selectCells(0);
    const panel = await openPanel(page);
    await ask(page, 'how many values are above 10?');

    const request = requests(page).last();
    const steps = request.locator('.jp-OciChat-step');
    await expect(steps.nth(0).locator('.jp-OciChat-chip')).toContainText('ok', {
      timeout: 30 * 1000
    });
    // While the model writes step 2: where the request stands.
    await expect(request.locator('[data-oci-budgets]')).toHaveText(
      'step 1/4 · attempt 1/3 · reply 2/8'
    );
    // The user moves to another cell meanwhile: step 2 still goes below
    // step 1, not below the active cell.
    await page.notebook.selectCells(0);
    await expect(request).toHaveAttribute('data-oci-status', 'success', {
      timeout: 30 * 1000
    });

    const cells = await notebookCells(page);
    expect(cells.map(c => c.source.trim())).toEqual([
      'x = 41\nprint(x + 1)',
      STEP1,
      STEP2,
      'below = "the user\'s cell"'
    ]);
    const id = await request.getAttribute('data-oci-request');
    expect(cells[1].metadata.oci).toMatchObject({ request: id, step: 1 });
    expect(cells[2].metadata.oci).toMatchObject({ request: id, step: 2 });
    expect(outputText(cells[1])).toContain('6');
    expect(outputText(cells[2])).toContain('4');

    // Two steps in the chat, each with its cell; the answer at the end.
    await expect(steps).toHaveCount(2);
    await expect(steps.nth(0).locator('.jp-OciChat-stepName')).toHaveText(
      'Step 1'
    );
    await expect(steps.nth(1).locator('.jp-OciChat-stepName')).toHaveText(
      'Step 2'
    );
    await expect(steps.nth(0).locator('.jp-OciChat-stepCell')).toHaveText(
      /In \[\d+\]/
    );
    await expect(request.locator('[data-oci-answer] strong')).toHaveText('4');
    await expect(request.locator('[data-oci-end]')).toContainText(
      'Worked · 2 steps · 2 attempts'
    );
    await expect(request.locator('[data-oci-budgets]')).toHaveCount(0);
    const order = await request.evaluate(node =>
      Array.from(
        node.querySelectorAll(
          '[data-oci-step], [data-oci-answer], [data-oci-end]'
        )
      ).map(
        el =>
          el.getAttribute('data-oci-step') ??
          (el.hasAttribute('data-oci-answer') ? 'answer' : 'end')
      )
    );
    expect(order).toEqual(['1', '2', 'answer', 'end']);
    await request.screenshot({ path: testInfo.outputPath('two-steps.png') });

    // "Show cell" of step 1 selects step 1's cell.
    await steps.nth(0).getByRole('button', { name: 'Show cell' }).click();
    await expect
      .poll(() =>
        page.evaluate(
          () =>
            (window.jupyterapp.shell.currentWidget as any).content
              .activeCellIndex
        )
      )
      .toBe(1);

    // The model read each result before going on.
    const prompts = scriptedPrompts();
    expect(prompts).toHaveLength(3);
    expect(prompts[1][prompts[1].length - 1].content).toContain('6');
    expect(prompts[2][prompts[2].length - 1].content).toContain('4');
    // The next message refines the last step's cell.
    await expect(panel.locator('.jp-OciChat-refine')).toContainText(
      'Your next message refines In ['
    );
    expect(
      await panel.locator('.jp-OciChat-refine').getAttribute('data-oci-refine')
    ).toBe(
      await page.evaluate(
        () =>
          (
            window.jupyterapp.shell.currentWidget as any
          ).content.model.cells.get(2).id
      )
    );
  });

  test('a step that prints nothing: the model reads the values it assigned', async ({
    page
  }) => {
    const SILENT =
      'sums = {"north": sum(north), "east": sum(east)}\nbest = max(sums, key=sums.get)';
    script([
      reply('Sum each list.', SILENT),
      'The **east** list has the largest sum.'
    ]);
    await newNotebook(page, 'north = [12, 40, 7, 3]\neast = [5, 61, 2, 1]');
    await openPanel(page);
    await ask(page, 'which list has the largest sum?');
    const request = requests(page).last();
    await expect(request).toHaveAttribute('data-oci-status', 'success', {
      timeout: 30 * 1000
    });
    const cells = await notebookCells(page);
    expect(cells[1].source.trim()).toBe(SILENT);
    expect(outputText(cells[1]).trim()).toBe(''); // nothing printed, nothing added
    // The browser looked the values up silently, and the model read them.
    const prompts = scriptedPrompts();
    expect(prompts).toHaveLength(2);
    const result = prompts[1][prompts[1].length - 1].content;
    expect(result).toContain('printed nothing');
    // reprlib's short reprs (dict keys sorted), as %%oci shows them.
    expect(result).toContain("sums = {'east': 69, 'north': 62}");
    expect(result).toContain("best = 'east'");
  });

  test('what the model reads of figures and HTML: their size and text, no base64', async ({
    page
  }) => {
    // A 3×2 PNG and a 64×48 JPEG header, built in the kernel; an HTML table
    // (with a style to leave out) without a useful text/plain.
    const code = [
      'import struct, zlib',
      'from IPython.display import HTML, Image, display',
      'def chunk(kind, data):',
      '    body = kind + data',
      "    return struct.pack('>I', len(data)) + body + struct.pack('>I', zlib.crc32(body))",
      "rows = b''.join(b'\\x00' + b'\\xff\\x00\\x00' * 3 for _ in range(2))",
      "png = (b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 3, 2, 8, 2, 0, 0, 0))",
      "       + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))",
      'display(Image(data=png, format="png"))',
      "jfif = b'\\xff\\xe0' + struct.pack('>H', 16) + b'JFIF\\x00\\x01\\x01\\x00\\x00\\x01\\x00\\x01\\x00\\x00'",
      "sof = b'\\xff\\xc0' + struct.pack('>HBHHB', 11, 8, 48, 64, 1) + b'\\x01\\x11\\x00'",
      "display(Image(data=b'\\xff\\xd8' + jfif + sof + b'\\xff\\xd9', format='jpeg'))",
      "display(HTML('<table><tr><th>name</th><th>score</th></tr><tr><td>Ada</td><td>&lt;9&gt;</td></tr></table><style>td { color: red }</style>'))",
      "print('done')"
    ].join('\n');
    script([reply('Showing them.', code), 'Shown.']);
    await newNotebook(page);
    await openPanel(page);
    await ask(page, 'show a picture and a table');
    await expect(requests(page).last()).toHaveAttribute(
      'data-oci-status',
      'success',
      { timeout: 30 * 1000 }
    );
    const cells = await notebookCells(page);
    expect(outputText(cells[1])).toContain('done');
    const result = scriptedPrompts()[1].slice(-1)[0].content;
    console.log(`what the model read:\n${result}`);
    expect(result).toContain('figures were displayed: 2 images, 3×2, 64×48');
    expect(result).toContain('name score\nAda <9>');
    expect(result).toContain('done');
    expect(result).not.toContain('iVBOR'); // a PNG's base64
    expect(result).not.toContain('/9j/'); // a JPEG's base64
    expect(result).not.toContain('color: red');
    expect(result).not.toContain('<table');
  });

  test.describe('with a step budget of 1', () => {
    test.use({
      mockSettings: {
        ...galata.DEFAULT_SETTINGS,
        'oci-jupyter:plugin': { maxSteps: 1 }
      }
    });

    test('a second step is not run; the request says which budget ended it', async ({
      page
    }) => {
      script([
        reply('Step one.', 'print("one")'),
        reply('And a second step.', 'print("two")')
      ]);
      await newNotebook(page);
      await openPanel(page);
      await ask(page, 'print one, then two');
      const request = requests(page).last();
      await expect(request).not.toHaveAttribute('data-oci-status', 'running', {
        timeout: 30 * 1000
      });
      await expect(request).toHaveAttribute('data-oci-status', 'success');
      await expect(request.locator('[data-oci-budget]')).toHaveText(
        'stopped at the step budget'
      );
      await expect(request.locator('[data-oci-end]')).toHaveAttribute(
        'data-oci-end',
        'success'
      );
      // The second step's code was not run: no cell for it.
      const chips = request.locator('.jp-OciChat-chip');
      await expect(chips.first()).toContainText('ok');
      await expect(chips.last()).toHaveText('not run: over the step budget');
      const cells = await notebookCells(page);
      expect(cells).toHaveLength(2);
      expect(cells[1].source.trim()).toBe('print("one")');
      // The hint says the budget.
      await expect(page.locator('.jp-OciChat-hint')).toContainText(
        'up to 1 step, 3 attempts each'
      );
    });
  });

  test('the next message refines the same cell; "New cell instead" does not', async ({
    page
  }) => {
    script([
      reply('Here it is.', 'print("v1")'),
      'It printed v1.',
      reply('Now louder.', 'print("V2!")'),
      'It printed V2!.',
      reply('A separate cell.', 'print("other")'),
      'It printed other.'
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
    script([reply('Printing it.', 'print("kept")'), 'It printed `kept`.']);
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
    await expect(
      request.locator('.jp-OciChat-turn .jp-RenderedMarkdown')
    ).toContainText('Printing it.');
    // The answer and the step are where they were.
    await expect(request.locator('[data-oci-answer]')).toContainText(
      'It printed kept.'
    );
    await expect(request.locator('.jp-OciChat-step')).toHaveAttribute(
      'data-oci-step',
      '1'
    );
    await expect(
      request.locator('.jp-OciChat-step').getByRole('button', {
        name: 'Show cell'
      })
    ).toBeVisible();
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
    script([reply('Printing it.', 'print("renamed")'), 'Done.']);
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
    script([reply('One.', 'print(1)'), 'It printed 1.']);
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
    await expect(
      requests(page).locator('.jp-OciChat-turn .jp-RenderedMarkdown')
    ).toContainText('One.');
  });

  test('a request in another notebook: a badge says where it works, and Stop ends it', async ({
    page
  }, testInfo) => {
    // About 10 s of streaming: time to switch notebooks while it runs.
    const long = Array.from({ length: 1000 }, (_, i) => `word${i}`).join(' ');
    script([long, 'Not asked for.']);
    const first = await newNotebook(page);
    const panel = await openPanel(page);
    await ask(page, 'tell me a long story');
    const request = requests(page).last();
    await expect(request.locator('.jp-OciChat-streaming')).toContainText(
      'word20'
    );
    // Its own notebook shows it running, with no badge.
    await expect(panel.locator('[data-oci-background]')).toHaveCount(0);

    const second = await page.notebook.createNew();
    await expect(panel.locator('.jp-OciChat-notebookName')).toHaveText(second!);
    const badge = panel.locator('[data-oci-background]');
    await expect(badge).toHaveCount(1);
    await expect(badge).toContainText(`Working in ${first}`);
    await panel.screenshot({ path: testInfo.outputPath('background.png') });
    await badge
      .getByRole('button', { name: `Stop the request in ${first}` })
      .click();
    await expect(badge).toHaveCount(0, { timeout: 10 * 1000 });

    await page.notebook.activate(first);
    const stopped = requests(page).last();
    await expect(stopped).toHaveAttribute('data-oci-status', 'cancelled', {
      timeout: 10 * 1000
    });
    // The stream stopped well before its end, and no cell was written.
    await expect(stopped).not.toContainText('word999');
    expect(await notebookCells(page)).toHaveLength(1);
  });

  test('prefill: the notebook is sent ahead while the user types; nothing is asked', async ({
    page,
    tmpPath
  }) => {
    // Watch what the browser sends on the chat's socket (opened at load).
    const sent: any[] = [];
    page.on('websocket', socket => {
      if (!/\/oci\/chat/.test(socket.url())) {
        return;
      }
      socket.on('framesent', frame => {
        if (typeof frame.payload === 'string') {
          sent.push(JSON.parse(frame.payload));
        }
      });
    });
    await page.reload({ waitForIsReady: false });
    await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
    // The reload left the test's folder: the notebook goes there again.
    await page.evaluate(async dir => {
      await window.jupyterapp.commands.execute('filebrowser:go-to-path', {
        path: `/${dir}`,
        dontShowBrowser: true
      });
    }, tmpPath);
    script([]);
    const first = 'prefill_marker = 7\nprint(prefill_marker)';
    const name = await newNotebook(page, first);
    const notebook = `${tmpPath}/${name}`;
    const prefills = (source: string) =>
      sent.filter(
        m =>
          m.type === 'prefill' &&
          m.notebook === notebook &&
          m.context.cells.some((c: any) => c.source === source)
      );

    // Showing the panel reads the notebook: its cell and its variables.
    const panel = await openPanel(page);
    await expect
      .poll(() => prefills(first).length, { timeout: 15 * 1000 })
      .toBe(1);
    const shown = prefills(first)[0];
    expect(shown.context.language).toBe('python');
    expect(shown.context.variables.map((v: any) => v.name)).toContain(
      'prefill_marker'
    );

    // An edit alone sends nothing; typing in the composer does, once the
    // user pauses, with the cell as it is now.
    const edited = 'prefill_marker = 8\nprint(prefill_marker * 2)';
    await page.notebook.setCell(0, 'code', edited);
    await page.waitForTimeout(2500);
    expect(prefills(edited)).toHaveLength(0);
    const input = chatInput(page);
    await input.pressSequentially('what is prefill_marker', { delay: 40 });
    await expect
      .poll(() => prefills(edited).length, { timeout: 15 * 1000 })
      .toBe(1);
    // One prefill after the pause, not one per keystroke.
    await page.waitForTimeout(2500);
    expect(sent.filter(m => m.type === 'prefill')).toHaveLength(2);

    // Nothing was asked: no ask sent, no request shown, no generation, no
    // notice, the draft still there.
    expect(sent.filter(m => m.type === 'ask')).toHaveLength(0);
    await expect(requests(page)).toHaveCount(0);
    expect(scriptedPrompts()).toEqual([]);
    await expect(panel.locator('.jp-OciChat-banner')).toHaveCount(0);
    await expect(input).toHaveValue('what is prefill_marker');
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

test.describe('chat screenshots', () => {
  test.use({ viewport: { width: 1280, height: 1320 }, deviceScaleFactor: 2 });

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
          'I load the CSV with **pandas** and sum `amount` by month.',
          "df = pd.read_csv('data.csv', parse_dates=['date'])\nmonthly = df.resample('M', on='date')['amount'].sum()\nprint(monthly)"
        ),
        reply(
          '`pd` is not defined: pandas was never imported. Importing it first:',
          "import pandas as pd\n\ndf = pd.DataFrame({'date': pd.date_range('2024-01-01', periods=90), 'amount': range(90)})\nmonthly = df.resample('MS', on='date')['amount'].sum()\nprint(monthly)"
        ),
        // Step 2, after reading step 1's result.
        reply(
          'The totals rise every month. Which month is the largest:',
          "print(monthly.idxmax().strftime('%B'))"
        ),
        'The totals grow each month, from **465** in January to **2,235** in **March**, the largest.',
        // Long enough to still be streaming when the screenshot is taken:
        // the code block stays open (the code runs once it closes).
        'A bar per month, labelled with short month names:\n\n' +
          '```python\nimport matplotlib.pyplot as plt\n\nfig, ax = plt.subplots(figsize=(6, 3))\n' +
          "ax.bar(monthly.index.strftime('%b'), monthly.values, color='tab:blue')\n" +
          "ax.set_title('Monthly totals')\nax.set_ylabel('amount')\n" +
          Array.from(
            { length: 80 },
            (_, i) =>
              `# bar ${i + 1}: the months share one axis to compare at a glance`
          ).join('\n') +
          '\nplt.show()\n```'
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
      .locator('.lm-Menu-item', { hasText: 'Fix the Cell with OpenCodeInterpreter' })
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

/** Select a cell and run it with JupyterLab's own command, as a user pressing Shift+Enter
 * would (without moving to the next cell). */
async function runCellByHand(page: IJupyterLabPageFixture, index: number) {
  await page.notebook.selectCells(index);
  await page.evaluate(async () => {
    await window.jupyterapp.commands.execute('notebook:run-cell');
  });
}
