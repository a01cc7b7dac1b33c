/**
 * The chat against the scripted engine (tests/doubles.py): every reply is
 * written by the test, so each step of the loop can be checked exactly. The
 * code still runs for real, in the notebook's kernel.
 *
 * This file: the loop itself (attempts, steps, what the model reads, the step
 * budget, refining a cell, Stop). The same describe block goes on in
 * chat-scripted-notebooks.spec.ts (history, notebooks, prefill) and
 * chat-scripted-kernel.spec.ts (the kernel and the connection).
 */
import {
  ask,
  BROKEN,
  chatInput,
  expect,
  failOnPageErrors,
  FIXED,
  galata,
  marks,
  newNotebook,
  notebookCells,
  openPanel,
  outputText,
  reply,
  requests,
  script,
  scriptedPrompts,
  test
} from './helpers';

failOnPageErrors();

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
});
