/**
 * The chat protocol spoken over the websocket `/oci/chat` (its Python twin is
 * oci_jupyter/chat/protocol.py, which validates every field strictly), and the
 * shape of `GET /oci/chat/history`.
 *
 * The browser is an executor and a view: the server drives the interpreter
 * loop and tells the browser what to show (`token`, `turn`, `done`) and which
 * code to run, in which cell (`execute`); the browser answers each `execute`
 * with an `outcome`. After every run the model reads the outcome, then
 * answers in words (`done.answer`), takes the next step (a new cell below the
 * previous step's) or refines the cell.
 *
 * The server's own words in `done` and `error` come twice: `message` in
 * English, and `code` with `params`, a sentence of oci_jupyter/texts.py that
 * the view translates (./texts.ts); an unknown code, or none (an older
 * server), shows `message`. A `skipped` turn's `evalue` comes the same way.
 */

// ---- the notebook context sent with each request

export interface ICellContext {
  source: string;
  /** Text outputs (text/plain, streams, `ename: evalue`), cut short. */
  output: string;
  /** `In [3]`, `In [ ]` or `Markdown`. */
  label: string;
  /** The cell the user was in when asking. */
  active: boolean;
  kind: 'code' | 'markdown';
}

export interface IVariableInfo {
  name: string;
  type: string;
  /** Shape, dtype, columns, length or a short value. */
  summary: string;
}

export interface INotebookContext {
  language: string;
  cells: ICellContext[];
  variables: IVariableInfo[];
}

// ---- browser -> server

export interface IAskMessage {
  type: 'ask';
  id: string;
  prompt: string;
  /** The notebook's path: the server keeps one history per notebook. */
  notebook: string;
  /**
   * `chat`: new cells (or a refinement); `fix`: the failing `cell`; `edit`:
   * the user's `cell` changed as `prompt` says.
   */
  mode: AskMode;
  context: INotebookContext;
  /*
   * The loop's settings, each sent only when the user set it: omitted, the
   * server's `c.OCI.*` default applies.
   */
  /** Attempts per cell: the first try and its refinements (1..10). */
  max_attempts?: number;
  /**
   * The older name of `max_attempts`, still accepted by the server; this
   * client no longer sends it.
   * @deprecated
   */
  max_turns?: number;
  /** Cells one request may add (1..20). */
  max_steps?: number;
  /** Model replies one request may take (1..40). */
  max_replies?: number;
  /**
   * The model reads each successful result and answers (or takes another
   * step); false stops at the first run without errors.
   */
  read_results?: boolean;
  /** Seconds a run may take before the browser interrupts it. */
  time_limit: number;
  auto_execute: boolean;
  /** Rewrite the previous request's cell (the human-feedback turn). */
  refine_cell: boolean;
  /**
   * With `mode: "fix"`: the failing cell; with `mode: "edit"`: the cell to
   * change. Rewritten from turn 1.
   */
  cell?: IFixCell | IEditCell;
  /**
   * The user reviews each rewrite (a diff to accept) before it runs: the
   * server then waits for the outcome without a deadline.
   */
  review?: boolean;
}

export type AskMode = 'chat' | 'fix' | 'edit';

export interface IFixCell {
  source: string;
  error: IExecutionError;
}

/** The cell an `edit` ask changes, with what the model needs to read of it. */
export interface IEditCell {
  source: string;
  /** Its last output as text, cut as the context's outputs are. */
  output?: string;
  /** Its last run failed: the error. */
  error?: IExecutionError;
  /** The lines the request is about; absent or "": the whole cell. */
  selection?: string;
}

export type OutcomeStatus = 'ok' | 'error' | 'timeout' | 'cancelled';

export interface IExecutionError {
  ename: string;
  evalue: string;
  traceback: string[];
}

export interface IOutcomeMessage {
  type: 'outcome';
  id: string;
  turn: number;
  status: OutcomeStatus;
  output: string;
  error?: IExecutionError;
  seconds: number;
  /**
   * The source that ran, when it differs from the code the server sent (the
   * user edited the cell before running it): the model is told about it.
   */
  source?: string;
  /** After a run that printed nothing: `name -> short repr` of `inspect`. */
  values?: Record<string, string>;
}

export interface ICancelMessage {
  type: 'cancel';
  id: string;
}

/**
 * Read the notebook ahead of the next ask, while the user is still typing:
 * the server builds the prompt an ask with this context would start with and
 * reads it in the background, so the ask's first token comes sooner. Never
 * answered (an invalid one gets an `error` without id).
 */
export interface IPrefillMessage {
  type: 'prefill';
  /** The notebook's path, as an ask would send it. */
  notebook: string;
  /** Gathered exactly as the next ask would gather it. */
  context: INotebookContext;
}

/**
 * Where the run of a turn's cell stands: `queued` while it waits for the
 * user's own cell to finish (the server then waits without a deadline),
 * `running` once it starts (the time limit counts from here).
 */
export interface IProgressMessage {
  type: 'progress';
  id: string;
  turn: number;
  state: 'queued' | 'running';
}

export type ClientMessage =
  | IAskMessage
  | IOutcomeMessage
  | ICancelMessage
  | IPrefillMessage
  | IProgressMessage;

// ---- server -> browser

export interface ITokenMessage {
  type: 'token';
  id: string;
  turn: number;
  text: string;
}

/** `skipped`: the reply's code was not run; `evalue` says why. */
export type TurnState =
  'generating' | 'executing' | 'queued' | 'skipped' | OutcomeStatus;

/** How far one request may go: the limits, not what is used. */
export interface IBudgets {
  /** Attempts per cell. */
  attempts: number;
  /** Cells per request. */
  steps: number;
  /** Model replies per request. */
  replies: number;
}

export type BudgetName = keyof IBudgets;

export interface ITurnMessage {
  type: 'turn';
  id: string;
  turn: number;
  state: TurnState;
  ename?: string;
  evalue?: string;
  /** With `skipped`: `evalue` as a sentence of the server's (see `IServerSaid`). */
  code?: string;
  params?: ServerParams;
  /**
   * With `generating`: the request's current step (0 before any code ran);
   * with other states: the step this turn's code was for.
   */
  step?: number;
  /** The attempt in that step. */
  attempt?: number;
  /** With `generating`: the request's budgets. */
  budgets?: IBudgets;
  /**
   * With `generating`: the reply waits for the model behind this many other
   * requests (0: its turn now).
   */
  waiting?: number;
}

/**
 * Where the code goes: `new`, a new cell below the active one (step 1);
 * `next`, a new cell directly below the previous step's cell (steps 2, 3,
 * ...); `replace`, this step's own cell rewritten (a refinement, a
 * `refine_cell` request, a fix).
 */
export type ExecuteTarget = 'new' | 'next' | 'replace';

export interface IExecuteMessage {
  type: 'execute';
  id: string;
  turn: number;
  code: string;
  target: ExecuteTarget;
  /** The request's cell this code is for: 1, 2, ... (older servers: absent). */
  step?: number;
  /** The try in that cell: 1, then each refinement. */
  attempt?: number;
  auto_execute: boolean;
  time_limit: number;
  /** Names to look up in the kernel if the run prints nothing. */
  inspect?: string[];
}

export type DoneStatus =
  'success' | 'failed' | 'no_code' | 'cancelled' | 'error';

/**
 * A parameter of a server sentence: words or a number put in as they are (a
 * kernel's error, an id), or another whole sentence.
 */
export type ServerParam = string | number | IServerText;

export type ServerParams = { [name: string]: ServerParam };

/** A sentence of the server's (oci_jupyter/texts.py): its code and parameters. */
export interface IServerText {
  code: string;
  params?: ServerParams;
}

/** The server's words as a code beside the English `message`. */
export interface IServerSaid {
  /** The English text. */
  message: string;
  /** Its sentence, for the view to translate; absent from older servers. */
  code?: string;
  params?: ServerParams;
}

export interface IDoneMessage extends IServerSaid {
  type: 'done';
  id: string;
  status: DoneStatus;
  turns: number;
  final_code: string | null;
  /**
   * The model's last words without code (markdown): the answer after a
   * success, the explanation after a failure or a fix; "" if none.
   */
  answer?: string;
  /** Cells the request ran code in. */
  steps?: number;
  /** The budget that ended the request, if one did. */
  budget?: BudgetName | null;
}

export interface IErrorMessage extends IServerSaid {
  type: 'error';
  id?: string;
}

/**
 * A notebook's request started (`running`) or ended (null) on another
 * connection: another tab or window, or another user of the server.
 */
export interface INotebookMessage {
  type: 'notebook';
  notebook: string;
  running: { id: string; mode: string; prompt: string } | null;
}

export type ServerMessage =
  | ITokenMessage
  | ITurnMessage
  | IExecuteMessage
  | IDoneMessage
  | IErrorMessage
  | INotebookMessage;

const SERVER_TYPES = new Set([
  'token',
  'turn',
  'execute',
  'done',
  'error',
  'notebook'
]);

/**
 * A server message, or null for anything else (a newer server may send types
 * this client does not know; they are ignored, not fatal).
 */
export function parseServerMessage(raw: unknown): ServerMessage | null {
  if (typeof raw !== 'string') {
    return null;
  }
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof data !== 'object' || data === null) {
    return null;
  }
  const type = (data as { type?: unknown }).type;
  if (typeof type !== 'string' || !SERVER_TYPES.has(type)) {
    return null;
  }
  return data as ServerMessage;
}

// ---- GET /oci/chat/history?notebook=<path>

export interface IHistoryOutcome {
  status: OutcomeStatus;
  output: string;
  ename: string;
  evalue: string;
  seconds: number;
}

export interface IHistoryTurn {
  turn: number;
  reply: string;
  code: string | null;
  outcome: IHistoryOutcome | null;
  feedback: string | null;
  /** Why the code was not run ("not run: same as before"); older records lack it. */
  skipped?: string | null;
  /** `skipped` as a sentence of the server's ("": none; older records lack it). */
  skipped_code?: string;
  skipped_params?: ServerParams;
  /** The cell the code was for (0: no code); older records lack it. */
  step?: number;
  /** The try in that cell; older records lack it. */
  attempt?: number;
}

export interface IHistoryRequest extends IServerSaid {
  id: string;
  mode: string;
  prompt: string;
  /** Unix time (s). */
  started: number;
  turns: IHistoryTurn[];
  status: DoneStatus | 'running';
  /** As in `done` (older records lack them). */
  answer?: string;
  steps?: number;
  budget?: BudgetName | null;
}

export interface IChatHistory {
  notebook: string;
  requests: IHistoryRequest[];
}
