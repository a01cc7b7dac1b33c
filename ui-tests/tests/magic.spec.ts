/**
 * `%%oci` in JupyterLab, against the scripted engine (tests/doubles.py): the
 * magic runs in the notebook's own kernel and asks the server's model.
 */
import { expect, test } from '@jupyterlab/galata';

import {
  failOnPageErrors,
  newNotebook,
  notebookCells,
  outputText,
  reply,
  script
} from './helpers';

failOnPageErrors();

test('%%oci --insert with two steps: one new cell per step below the magic', async ({
  page
}) => {
  const one = "data = [4, 8, 15]\nprint('count', len(data))";
  const two = "print('total', sum(data))";
  script([
    reply('Looking at the data first.', one),
    reply('Now the total.', two),
    'There are 3 values and they sum to 27.'
  ]);
  await newNotebook(page, '%load_ext oci_jupyter');
  await page.notebook.addCell(
    'code',
    '%%oci --insert\nhow many values, and their total?'
  );
  await page.notebook.runCell(1, { inplace: true });
  await expect
    .poll(async () => (await notebookCells(page)).length, {
      timeout: 60 * 1000
    })
    .toBe(4);
  const cells = await notebookCells(page);
  // The model's answer, shown as markdown under the magic.
  expect(JSON.stringify(cells[1].outputs)).toContain('sum to 27');
  expect(outputText(cells[1])).toContain('total 27');
  expect(cells[2].source).toBe(one + '\n');
  expect(cells[3].source).toBe(two + '\n');
  // The marker did its work: only its words stay in the magic's output.
  for (const output of cells[1].outputs ?? []) {
    expect(Object.keys(output.data ?? {})).not.toContain(
      'application/vnd.oci.steps+json'
    );
  }
});
