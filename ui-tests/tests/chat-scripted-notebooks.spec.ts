/**
 * The chat against the scripted engine, continued from chat-scripted.spec.ts:
 * the history across reloads, renames and notebooks; a request running in
 * another notebook; the notebook sent ahead while the user types.
 */
import {
  ask,
  chatInput,
  expect,
  failOnPageErrors,
  newNotebook,
  notebookCells,
  openPanel,
  reloadWith,
  reply,
  requests,
  script,
  scriptedPrompts,
  test
} from './helpers';

failOnPageErrors();

test.describe('chat with a scripted model', () => {
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
});
