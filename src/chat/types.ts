/**
 * What the chat panel shows and the user sets: the settings that shape a
 * request, and the view state of threads, requests and turns. Plain data
 * (but for a waiting turn's `run`), mutated by the modules that follow the
 * server's messages (./request.ts, ./threads.ts, ./executor.ts) and read by
 * the React views.
 */
import type { NotebookPanel } from '@jupyterlab/notebook';

import type {
  AskMode,
  BudgetName,
  DoneStatus,
  IBudgets,
  IFixCell,
  TurnState
} from './protocol';
import type { ChatText } from './texts';

/**
 * The loop's settings: how far one request may go, and whether the model
 * reads its results. The server's `c.OCI.*` are their defaults (`GET
 * /oci/status` reports them as `loop`); the user may set their own.
 */
export interface ILoopSettings {
  /** Attempts per cell: the first try and its refinements. */
  maxAttempts: number;
  /** Cells one request may add. */
  maxSteps: number;
  /** Model replies one request may take. */
  maxReplies: number;
  /**
   * The model reads each successful result, then answers or takes another
   * step; off, the request stops at the first run without errors.
   */
  readResults: boolean;
}

/**
 * The user's settings that shape a request (schema/plugin.json). Each of
 * the loop's settings is here only when the user set it in the Settings
 * Editor: the others follow the server, so an administrator's `c.OCI.*`
 * applies to the sidebar as to `%%oci`, and only what the user set is sent.
 */
export interface IChatSettings extends Partial<ILoopSettings> {
  autoExecute: boolean;
  /** Seconds. */
  executionTimeLimit: number;
  sendVariables: boolean;
  sendOutputs: boolean;
  contextCells: number;
}

export const DEFAULT_CHAT_SETTINGS: IChatSettings = {
  autoExecute: true,
  executionTimeLimit: 60,
  sendVariables: true,
  sendOutputs: true,
  contextCells: 20
};

/**
 * The loop's settings that apply: the user's, else the server's. Null while
 * the server has not said its own (and the user has not set them all).
 */
export function loopSettings(
  user: Partial<ILoopSettings>,
  server: ILoopSettings | null
): ILoopSettings | null {
  const maxAttempts = user.maxAttempts ?? server?.maxAttempts;
  const maxSteps = user.maxSteps ?? server?.maxSteps;
  const maxReplies = user.maxReplies ?? server?.maxReplies;
  const readResults = user.readResults ?? server?.readResults;
  return maxAttempts === undefined ||
    maxSteps === undefined ||
    maxReplies === undefined ||
    readResults === undefined
    ? null
    : { maxAttempts, maxSteps, maxReplies, readResults };
}

/**
 * What a turn shows: the server's states, plus `waiting` (the cell is in,
 * waiting for the user to run it), `reply` (an answer without code) and
 * `skipped` (code that was not run).
 */
export type TurnViewState =
  TurnState | 'waiting' | 'reviewing' | 'reply' | 'skipped';

export interface ITurnView {
  turn: number;
  /** The model's reply, growing while it streams. */
  reply: string;
  /** The reply is complete: render it as markdown. */
  complete: boolean;
  state: TurnViewState;
  ename: string;
  evalue: string;
  /** `evalue` as a code the view translates (the browser's or the server's). */
  evalueText?: ChatText;
  /** Seconds the code ran, once known. */
  seconds: number | null;
  /** The request's cell this turn's code was for (0: no code, or not yet known). */
  step: number;
  /** The try in that cell (0: no code). */
  attempt: number;
  /**
   * What the user did to the loop's cell: `moved` (they had edited the cell
   * the code was for: their edit is kept, the code went into a new cell
   * below it), `edited` (they edited the code before running it: the model
   * was told what ran).
   */
  note?: { kind: 'moved'; cell: string } | { kind: 'edited' };
  /**
   * While the cell waits for the kernel (state `queued`): the cell it waits
   * for (`In [7]`, `cell 5`), or null for other work of the kernel.
   */
  waitingFor?: string | null;
  /** Before its first token: requests the model serves before this reply. */
  modelAhead?: number;
  /**
   * The code waits (state `waiting`) because the notebook is not trusted:
   * the user reviews it before it runs.
   */
  review?: boolean;
  /**
   * While the code waits for the user (state `waiting`): run it now, as
   * auto-execute would (the chat's Run button). Set by the executor.
   */
  run?: () => void;
}

export type RequestStatus = 'running' | DoneStatus;

export interface IRequestView {
  id: string;
  mode: AskMode;
  prompt: string;
  /** ms since epoch. */
  started: number;
  turns: ITurnView[];
  status: RequestStatus;
  /** The server's closing words (or why the browser ended it), in English. */
  message: string;
  /**
   * The same as a code the view translates (the browser's own, or the
   * server's); null: `message` as it is (no code this client knows).
   */
  messageText: ChatText | null;
  /**
   * The model's final words (markdown): its answer after a success, its
   * explanation after a failure or a fix; "" if none.
   */
  answer: string;
  /** Cells the request ran code in, once it ended. */
  steps: number;
  /** The budget that ended the request, if one did. */
  budget: BudgetName | null;
  /** The request's budgets (the server's, else what was asked for). */
  budgets: IBudgets;
  /** While it runs: the current step (0 before any code) and its attempt. */
  step: number;
  attempt: number;
  /** The label of the cell this request refines, when it does. */
  refines: string | null;
  autoExecute: boolean;
  /**
   * The notebook was not trusted when the request was asked: its code runs
   * only when the user runs it (until the notebook is trusted).
   */
  review?: boolean;
  /** A Stop is on its way to the server. */
  stopping: boolean;
}

export type HistoryState = 'idle' | 'loading' | 'loaded' | 'failed';

export interface IThread {
  /**
   * The notebook's path: the server keeps one chat per notebook, and moves
   * it when the notebook is renamed.
   */
  path: string;
  requests: IRequestView[];
  history: HistoryState;
  historyError: string;
  /** The user chose a new cell for the next request instead of a refinement. */
  newThread: boolean;
}

export interface IRefineTarget {
  cellId: string;
  /** `In [4]` or `cell 5`. */
  label: string;
  requestId: string;
}

/** A request's cell for one step, as the chat names it. */
export interface IStepCell {
  cellId: string;
  /** `In [4]` or `cell 5`. */
  label: string;
}

/** How a request ended (what a fix's caller shows under the cell). */
export interface IRequestResult {
  status: RequestStatus;
  /** The model's final words: an answer, or the fix's explanation. */
  answer: string;
  message: string;
  budget: BudgetName | null;
}

/**
 * Shown the cell's current and proposed sources before a fix rewrites it;
 * resolves true to accept. The signal aborts when the request stops.
 */
export type FixConfirm = (
  oldSource: string,
  newSource: string,
  signal: AbortSignal
) => Promise<boolean>;

export interface IFixOptions {
  /** The notebook of the failing cell. */
  panel: NotebookPanel;
  cellId: string;
  error: IFixCell['error'];
  /** Suggest mode: confirm each rewrite; null rewrites at once. */
  confirm: FixConfirm | null;
}

export interface IEditOptions {
  /** The notebook of the cell. */
  panel: NotebookPanel;
  cellId: string;
  /** The user's instruction ("make this a function"). */
  prompt: string;
  /** The lines the request is about ("": the whole cell). */
  selection: string;
  /** Confirm each rewrite (the diff); null rewrites at once. */
  confirm: FixConfirm | null;
}

/** The timings the executor records for each turn (read by the UI tests). */
export interface ITurnTiming {
  id: string;
  turn: number;
  /** From the `execute` message to the `outcome` sent, in ms. */
  totalMs: number;
  /** Of which the kernel's run, request to reply, in ms. */
  runMs: number;
  /** The browser's own share: placing the cell, collecting the outcome. */
  overheadMs: number;
}

/** A request of this page in flight in a notebook other than the current one. */
export interface IBackgroundRequest {
  id: string;
  /** The notebook it works in (follows a rename). */
  path: string;
  prompt: string;
  mode: AskMode;
  /** Stop was asked; the request ends soon. */
  stopping: boolean;
}
