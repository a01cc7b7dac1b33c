/**
 * The values of a silent step: the user expression that looks them up (only
 * identifiers reach the kernel) and the reading of the kernel's reply.
 */
import type { Kernel } from '@jupyterlab/services';

import { kernelValues, valuesExpression } from '../context';

/** A kernel whose silent execute replies with one user expression's text. */
function fakeKernel(reply: { status: string; text?: string }): {
  kernel: Kernel.IKernelConnection;
  requests: any[];
} {
  const requests: any[] = [];
  const kernel = {
    requestExecute: (content: any) => {
      requests.push(content);
      const expression =
        reply.status === 'ok'
          ? { status: 'ok', data: { 'text/plain': reply.text } }
          : { status: 'error', ename: 'NameError' };
      return {
        done: Promise.resolve({
          content: { status: 'ok', user_expressions: { oci: expression } }
        }),
        isDisposed: false,
        dispose: () => undefined
      };
    }
  } as unknown as Kernel.IKernelConnection;
  return { kernel, requests };
}

describe('valuesExpression', () => {
  it('passes only identifiers to the kernel', () => {
    const expression = valuesExpression([
      'best',
      'sums',
      'x); import os; (',
      '1abc'
    ]);
    expect(expression).toContain(`globals(), ["best","sums"])`);
    expect(expression).not.toContain('import os');
    expect(expression).not.toContain('1abc');
  });
});

describe('kernelValues', () => {
  it('asks silently, without history, and reads the reprs', async () => {
    const { kernel, requests } = fakeKernel({
      status: 'ok',
      text: JSON.stringify({ best: "'east'", sums: "{'east': 69}" })
    });
    const values = await kernelValues(kernel, ['best', 'sums']);
    expect(values).toEqual({ best: "'east'", sums: "{'east': 69}" });
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({
      code: '',
      silent: true,
      store_history: false
    });
    expect(requests[0].user_expressions.oci).toContain('"best","sums"');
  });

  it('asks nothing when there are no names', async () => {
    const { kernel, requests } = fakeKernel({ status: 'ok', text: '{}' });
    expect(await kernelValues(kernel, [])).toEqual({});
    expect(requests).toHaveLength(0);
  });

  it('is empty when the kernel cannot tell, never throws', async () => {
    const failed = fakeKernel({ status: 'error' });
    expect(await kernelValues(failed.kernel, ['best'])).toEqual({});
    const garbled = fakeKernel({ status: 'ok', text: 'not json' });
    expect(await kernelValues(garbled.kernel, ['best'])).toEqual({});
    const wrongShape = fakeKernel({
      status: 'ok',
      text: JSON.stringify({ best: 3, ok: 'x' })
    });
    expect(await kernelValues(wrongShape.kernel, ['best', 'ok'])).toEqual({
      ok: 'x'
    });
  });
});
