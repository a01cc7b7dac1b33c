/**
 * The chat's screenshots for the docs (`chat-{light,dark}.png`), against the
 * scripted engine: a two-step request with a fix and its answer, then a
 * request streaming.
 */
import * as path from 'path';

import {
  ask,
  expect,
  failOnPageErrors,
  IMAGES,
  newNotebook,
  openPanel,
  PANEL,
  reply,
  requests,
  script,
  test,
  widenSidebar
} from './helpers';

failOnPageErrors();

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
