/**
 * What the model is told about the notebook with each request: the cells
 * around the active one, the kernel's language and the user's variables.
 */
import { ICellModel, ICodeCellModel } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';

import { ICellContext, INotebookContext, IVariableInfo } from './chat/protocol';
import {
  DESCRIBE_VARIABLES_SOURCE,
  VALUES_LOOKUP_SOURCE
} from './kernel/snippets.generated';
import { outputText } from './outputs';

export interface IContextOptions {
  /** At most this many cells, around the anchor. */
  contextCells: number;
  /**
   * The cell the request is about (a fix's failing cell, the cell that was
   * active when the user asked); the active cell when absent or gone.
   */
  anchorCellId?: string | null;
  sendOutputs: boolean;
  sendVariables: boolean;
  /** How long the kernel may take to describe its variables (ms). */
  variablesTimeout?: number;
}

/** A cell's source beyond this is cut to its head and tail. */
const SOURCE_LIMIT = 2000;
/** Outputs are a hint, not data: a few hundred characters each. */
const OUTPUT_LIMIT = 400;
const VARIABLES_TIMEOUT_MS = 2000;
/** How long a briefly busy kernel is waited for before asking it. */
const IDLE_WAIT_MS = 500;

/** Long text -> its head and tail with a marker between. */
export function cut(text: string, limit: number): string {
  if (text.length <= limit) {
    return text;
  }
  const keep = Math.floor((limit - 40) / 2);
  const omitted = text.length - 2 * keep;
  return `${text.slice(0, keep)}\n... [${omitted} characters omitted] ...\n${text.slice(-keep)}`;
}

/** The label a user sees next to a cell: `In [3]`, `In [ ]`, `Markdown`. */
export function cellLabel(cell: ICellModel): string {
  if (cell.type === 'code') {
    const count = (cell as ICodeCellModel).executionCount;
    return `In [${count ?? ' '}]`;
  }
  return cell.type === 'markdown' ? 'Markdown' : 'Raw';
}

/**
 * The text a person would read in a cell's outputs (see ./outputs): figures
 * are named with their size, HTML becomes text, nothing is sent as base64.
 */
export { outputText };

/**
 * Which cells to send: the active one and up to `limit - 1` others, mostly
 * before it (they made the state the new code runs in), some after.
 */
export function contextWindow(
  count: number,
  active: number,
  limit: number
): [number, number] {
  if (limit <= 0 || count === 0) {
    return [0, 0];
  }
  const center = Math.min(Math.max(active, 0), count - 1);
  let after = Math.min(count - 1 - center, Math.floor((limit - 1) / 4));
  const before = Math.min(center, limit - 1 - after);
  after = Math.min(count - 1 - center, limit - 1 - before);
  return [center - before, center + after + 1];
}

/** A code cell's outputs as the model reads them: text, cut short. */
export function cellOutput(cell: ICodeCellModel): string {
  return cut(outputText(cell.outputs.toJSON()).trimEnd(), OUTPUT_LIMIT);
}

export function cellsContext(
  cells: readonly ICellModel[],
  activeIndex: number,
  options: Pick<IContextOptions, 'contextCells' | 'sendOutputs'>
): ICellContext[] {
  const [start, end] = contextWindow(
    cells.length,
    activeIndex,
    options.contextCells
  );
  const result: ICellContext[] = [];
  for (let index = start; index < end; index++) {
    const cell = cells[index];
    if (cell.type !== 'code' && cell.type !== 'markdown') {
      continue;
    }
    const output =
      cell.type === 'code' && options.sendOutputs
        ? cellOutput(cell as ICodeCellModel)
        : '';
    result.push({
      source: cut(cell.sharedModel.getSource(), SOURCE_LIMIT),
      output,
      label: cellLabel(cell),
      active: index === activeIndex,
      kind: cell.type
    });
  }
  return result;
}

/** The notebook's language, from the running kernel or else its metadata. */
export function notebookLanguage(panel: NotebookPanel): string {
  const info = panel.model?.getMetadata('language_info') as
    { name?: string } | undefined;
  const spec = panel.model?.getMetadata('kernelspec') as
    { language?: string } | undefined;
  return (info?.name || spec?.language || 'python').toLowerCase();
}

export async function notebookContext(
  panel: NotebookPanel,
  options: IContextOptions
): Promise<INotebookContext> {
  const notebook = panel.content;
  const cells = notebook.model ? Array.from(notebook.model.cells) : [];
  const language = notebookLanguage(panel);
  const anchor = options.anchorCellId
    ? cells.findIndex(cell => cell.id === options.anchorCellId)
    : -1;
  const context: INotebookContext = {
    language,
    cells: cellsContext(
      cells,
      anchor >= 0 ? anchor : notebook.activeCellIndex,
      options
    ),
    variables: []
  };
  const kernel = panel.sessionContext.session?.kernel;
  if (
    options.sendVariables &&
    kernel &&
    language === 'python' &&
    (await becomesIdle(kernel, IDLE_WAIT_MS))
  ) {
    context.variables = await kernelVariables(
      kernel,
      options.variablesTimeout ?? VARIABLES_TIMEOUT_MS
    );
  }
  return context;
}

/**
 * Whether the kernel is idle now or within `ms`. A kernel that is starting,
 * or busy with the user's own cell, would answer only after it (or the
 * timeout): the request goes without variables rather than delay the first
 * token; a kernel busy for a moment (a completion, kernel info) is waited for.
 */
function becomesIdle(
  kernel: Kernel.IKernelConnection,
  ms: number
): Promise<boolean> {
  if (kernel.status === 'idle') {
    return Promise.resolve(true);
  }
  if (kernel.status !== 'busy' && kernel.status !== 'unknown') {
    return Promise.resolve(false);
  }
  return new Promise(resolve => {
    const done = (idle: boolean) => {
      window.clearTimeout(timer);
      kernel.statusChanged.disconnect(onStatus);
      resolve(idle);
    };
    const onStatus = (_: unknown, status: Kernel.Status) => {
      if (status === 'idle') {
        done(true);
      }
    };
    const timer = window.setTimeout(() => done(false), ms);
    kernel.statusChanged.connect(onStatus);
  });
}

/**
 * The user expression that runs a kernel snippet (oci_jupyter/kernel_snippets/,
 * the same Python %%oci imports) in a dict of its own, so nothing is left in
 * the user's namespace, and evaluates its `kernel_reply` on the user's
 * globals and `args`: an object whose repr is the JSON answer, so it comes
 * back as text/plain, unquoted. JSON string and list literals are valid
 * Python literals.
 */
export function snippetExpression(source: string, ...args: unknown[]): string {
  const extra = args.map(arg => `, ${JSON.stringify(arg)}`).join('');
  return `(lambda d: (exec(${JSON.stringify(source)}, d), d['kernel_reply'](globals()${extra}))[1])({})`;
}

/**
 * Describes the user's namespace without touching it: imports nothing the
 * user has not imported and calls no `__repr__` or `__len__` but those of
 * exact builtin types (a subclass's own may be slow or have effects).
 */
export const VARIABLES_EXPRESSION = snippetExpression(
  DESCRIBE_VARIABLES_SOURCE
);

function isVariable(value: unknown): value is IVariableInfo {
  const v = value as Partial<IVariableInfo> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.name === 'string' &&
    typeof v.type === 'string' &&
    typeof v.summary === 'string'
  );
}

/** Names the server may ask about: identifiers only, so nothing else runs. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The user expression that looks up `names` (identifiers) in the globals:
 * the short reprs of the names a step assigned, for a run that printed
 * nothing (the model reads them instead of guessing what the code computed).
 */
export function valuesExpression(names: string[]): string {
  return snippetExpression(
    VALUES_LOOKUP_SOURCE,
    names.filter(name => IDENTIFIER.test(name))
  );
}

/**
 * Evaluate one user expression after an empty silent cell: no history entry,
 * no execution count, no output. Its text/plain result, or null when the
 * kernel is busy, slow, not IPython, or the expression failed.
 */
async function silentExpression(
  kernel: Kernel.IKernelConnection,
  expression: string,
  timeoutMs: number
): Promise<string | null> {
  let timer = 0;
  const future = kernel.requestExecute({
    code: '',
    silent: true,
    store_history: false,
    allow_stdin: false,
    user_expressions: { oci: expression }
  });
  const timeout = new Promise<null>(resolve => {
    timer = window.setTimeout(() => resolve(null), timeoutMs);
  });
  try {
    const reply = (await Promise.race([future.done, timeout])) as
      KernelMessage.IExecuteReplyMsg | null | undefined;
    if (!reply || reply.content.status !== 'ok') {
      return null;
    }
    const result = reply.content.user_expressions?.['oci'] as
      { status?: string; data?: { 'text/plain'?: string } } | undefined;
    return (result?.status === 'ok' && result.data?.['text/plain']) || null;
  } catch {
    return null;
  } finally {
    window.clearTimeout(timer);
    // A request still queued behind a busy cell runs later; nobody listens.
    if (!future.isDisposed) {
      future.dispose();
    }
  }
}

/**
 * The user's variables, asked of the kernel silently: no history entry, no
 * execution count, no output. An empty list when the kernel is busy, slow or
 * not IPython: the request goes on without them.
 */
export async function kernelVariables(
  kernel: Kernel.IKernelConnection,
  timeoutMs: number = VARIABLES_TIMEOUT_MS
): Promise<IVariableInfo[]> {
  const text = await silentExpression(kernel, VARIABLES_EXPRESSION, timeoutMs);
  try {
    const parsed: unknown = text ? JSON.parse(text) : [];
    return Array.isArray(parsed) ? parsed.filter(isVariable) : [];
  } catch {
    return [];
  }
}

/**
 * `name -> short repr` of those of `names` the kernel has, asked silently
 * after a run that printed nothing. Empty when the kernel cannot tell.
 */
export async function kernelValues(
  kernel: Kernel.IKernelConnection,
  names: string[],
  timeoutMs: number = VARIABLES_TIMEOUT_MS
): Promise<Record<string, string>> {
  if (!names.length) {
    return {};
  }
  const text = await silentExpression(
    kernel,
    valuesExpression(names),
    timeoutMs
  );
  try {
    const parsed: unknown = text ? JSON.parse(text) : {};
    const values: Record<string, string> = {};
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
      for (const [name, value] of Object.entries(parsed)) {
        if (typeof value === 'string') {
          values[name] = value;
        }
      }
    }
    return values;
  } catch {
    return {};
  }
}
