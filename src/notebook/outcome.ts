/**
 * What a run of one of the loop's cells reports (`IRunResult`), and how it
 * can fail before it reports: no usable kernel, or the cell deleted.
 */
import { ICodeCellModel } from '@jupyterlab/cells';

import { IExecutionError, OutcomeStatus } from '../chat/protocol';
import { ChatText, englishText, KernelProblem } from '../chat/texts';
import { cut } from '../context';
import { outputText } from '../outputs';

/** The output sent back to the model: its head and tail. */
const OUTPUT_LIMIT = 4000;

/**
 * What the model reads of a run: the cell's outputs as text (figures named
 * with their size, HTML as text, never base64), the error apart.
 */
export function runOutput(cell: ICodeCellModel): string {
  return cut(
    outputText(cell.outputs.toJSON(), { errors: false }),
    OUTPUT_LIMIT
  );
}
/**
 * The code cannot run: no kernel, a dead kernel, a closed notebook. Reported
 * to the server as an error outcome with this exception name and the English
 * message; `text` is what the chat shows, translated.
 */
export class KernelUnavailable extends Error {
  constructor(problem: KernelProblem | ChatText) {
    const text: ChatText =
      typeof problem === 'string' ? { code: 'kernel', problem } : problem;
    super(englishText(text));
    this.name = 'KernelUnavailable';
    this.text = text;
  }

  readonly text: ChatText;
}

/** The user deleted the request's cell while it was waiting to be run. */
export class CellDeleted extends Error {
  constructor() {
    super('The generated cell was deleted.');
    this.name = 'CellDeleted';
  }
}

export interface IRunResult {
  status: OutcomeStatus;
  output: string;
  error?: IExecutionError;
  /** Seconds the kernel spent on the code. */
  seconds: number;
  /** Milliseconds from the execute request to its reply, as the browser saw it. */
  runMs: number;
  /** The source that ran (the user may have edited it before running). */
  source?: string;
  /** After a run that printed nothing: the values of `IRunOptions.inspect`. */
  values?: Record<string, string>;
}

/** A kernel's error, as the model reads it. */
export interface IKernelError {
  errorName: string;
  errorValue: string;
  traceback: string[];
}

/**
 * The outcome of a run that failed: an error the model may fix, or a
 * cancellation (someone pressed the notebook's interrupt button).
 */
export function failedRun(
  error: IExecutionError,
  run: Pick<IRunResult, 'output' | 'seconds' | 'runMs' | 'source'>
): IRunResult {
  const status = error.ename === 'KeyboardInterrupt' ? 'cancelled' : 'error';
  return { status, error, ...run };
}
