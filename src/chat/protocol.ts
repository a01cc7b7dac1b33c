/**
 * The chat protocol spoken over the websocket `/oci/chat` (see
 * oci_jupyter/chat.py, which validates every field strictly), and the shape of
 * `GET /oci/chat/history`.
 *
 * The browser is an executor and a view: the server drives the refinement
 * loop and tells the browser what to show (`token`, `turn`, `done`) and which
 * code to run (`execute`); the browser answers each `execute` with an
 * `outcome`.
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
  mode: 'chat' | 'fix';
  context: INotebookContext;
  max_turns: number;
  /** Seconds a run may take before the browser interrupts it. */
  time_limit: number;
  auto_execute: boolean;
  /** Rewrite the previous request's cell (the human-feedback turn). */
  refine_cell: boolean;
  /** With `mode: "fix"`: the failing cell, rewritten from turn 1. */
  cell?: IFixCell;
  /**
   * The user reviews each rewrite (a diff to accept) before it runs: the
   * server then waits for the outcome without a deadline.
   */
  review?: boolean;
}

export interface IFixCell {
  source: string;
  error: IExecutionError;
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
}

export interface ICancelMessage {
  type: 'cancel';
  id: string;
}

export type ClientMessage = IAskMessage | IOutcomeMessage | ICancelMessage;

// ---- server -> browser

export interface ITokenMessage {
  type: 'token';
  id: string;
  turn: number;
  text: string;
}

/** `skipped`: the reply's code was not run; `evalue` says why. */
export type TurnState = 'generating' | 'executing' | 'skipped' | OutcomeStatus;

export interface ITurnMessage {
  type: 'turn';
  id: string;
  turn: number;
  state: TurnState;
  ename?: string;
  evalue?: string;
}

export interface IExecuteMessage {
  type: 'execute';
  id: string;
  turn: number;
  code: string;
  /** `new`: a cell below the active one; `replace`: the request's own cell. */
  target: 'new' | 'replace';
  auto_execute: boolean;
  time_limit: number;
}

export type DoneStatus =
  'success' | 'failed' | 'no_code' | 'cancelled' | 'error';

export interface IDoneMessage {
  type: 'done';
  id: string;
  status: DoneStatus;
  turns: number;
  message: string;
  final_code: string | null;
}

export interface IErrorMessage {
  type: 'error';
  id?: string;
  message: string;
}

export type ServerMessage =
  ITokenMessage | ITurnMessage | IExecuteMessage | IDoneMessage | IErrorMessage;

const SERVER_TYPES = new Set(['token', 'turn', 'execute', 'done', 'error']);

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
}

export interface IHistoryRequest {
  id: string;
  mode: string;
  prompt: string;
  /** Unix time (s). */
  started: number;
  turns: IHistoryTurn[];
  status: DoneStatus | 'running';
  message: string;
}

export interface IChatHistory {
  notebook: string;
  requests: IHistoryRequest[];
}
