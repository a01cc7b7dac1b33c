/**
 * The Python the sidebar runs in the kernel is the Python %%oci imports:
 * src/kernel/snippets.generated.ts holds oci_jupyter/kernel_snippets/ as
 * they are (`jlpm build:snippets` writes it; every build runs it), and the
 * expressions sent to the kernel carry that text. tests/test_kernel_snippets.py
 * runs both paths in a real kernel.
 */
import * as fs from 'fs';
import * as path from 'path';

import { VARIABLES_EXPRESSION, valuesExpression } from '../context';
import {
  DESCRIBE_VARIABLES_SOURCE,
  VALUES_LOOKUP_SOURCE
} from '../kernel/snippets.generated';

const SNIPPETS = path.join(
  __dirname,
  '..',
  '..',
  'oci_jupyter',
  'kernel_snippets'
);

function python(file: string): string {
  return fs.readFileSync(path.join(SNIPPETS, file), 'utf8');
}

describe('kernel snippets', () => {
  it('are the Python files as they are (else run `jlpm build:snippets`)', () => {
    expect(DESCRIBE_VARIABLES_SOURCE).toBe(python('describe_variables.py'));
    expect(VALUES_LOOKUP_SOURCE).toBe(python('values_lookup.py'));
  });

  it('go to the kernel whole, called on the user globals', () => {
    expect(VARIABLES_EXPRESSION).toBe(
      `(lambda d: (exec(${JSON.stringify(
        DESCRIBE_VARIABLES_SOURCE
      )}, d), d['kernel_reply'](globals()))[1])({})`
    );
    expect(valuesExpression(['best'])).toBe(
      `(lambda d: (exec(${JSON.stringify(
        VALUES_LOOKUP_SOURCE
      )}, d), d['kernel_reply'](globals(), ["best"]))[1])({})`
    );
  });
});
