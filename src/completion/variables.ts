/**
 * The kernel's variables for ghost text: read silently after the notebook
 * runs something, never while the user waits for a suggestion (a keystroke
 * uses what was read last).
 */
import { Kernel } from '@jupyterlab/services';

import { IVariableInfo } from '../chat/protocol';
import { kernelVariables } from '../context';

export type VariablesReader = (
  kernel: Kernel.IKernelConnection
) => Promise<IVariableInfo[]>;

export class KernelVariables {
  constructor(
    private _read: VariablesReader = kernel => kernelVariables(kernel)
  ) {}

  /**
   * The variables last read from this kernel; reads them again in the
   * background when something ran since (or never read yet).
   */
  get(kernel: Kernel.IKernelConnection | null | undefined): IVariableInfo[] {
    if (!kernel) {
      return [];
    }
    const known = this._known.get(kernel.id);
    if (!known || (known.runs !== this._runs && !known.reading)) {
      this._refresh(kernel, known?.variables ?? []);
    }
    return known?.variables ?? [];
  }

  /** Something ran: the next keystroke reads the variables again. */
  ran(): void {
    this._runs++;
  }

  private _refresh(kernel: Kernel.IKernelConnection, current: IVariableInfo[]) {
    const runs = this._runs;
    const entry = { variables: current, runs, reading: true };
    this._known.set(kernel.id, entry);
    void this._read(kernel)
      .catch(() => [] as IVariableInfo[])
      .then(variables => {
        entry.variables = variables;
        entry.reading = false;
      });
  }

  private _runs = 0;
  private _known = new Map<
    string,
    { variables: IVariableInfo[]; runs: number; reading: boolean }
  >();
}
