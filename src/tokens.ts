/**
 * What oci_jupyter's plugins offer each other, and other extensions: the
 * chat (ask about a notebook, fix a failing cell, change a cell, follow and
 * stop its requests) and the executor of the loop's cells.
 */
import type { ICodeCellModel } from '@jupyterlab/cells';
import type { NotebookPanel } from '@jupyterlab/notebook';
import { Token } from '@lumino/coreutils';
import type { IDisposable } from '@lumino/disposable';
import type { ISignal } from '@lumino/signaling';

import type { IChatConnection } from './chat/connection';
import type { RunningElsewhere } from './chat/dispatcher';
import type {
  IBackgroundRequest,
  IChatSettings,
  IEditOptions,
  IFixOptions,
  ILoopSettings,
  IRefineTarget,
  IRequestResult,
  IRequestView,
  IStepCell,
  IThread
} from './chat/types';
import type { IPlaceOptions, IRunOptions, IRunResult } from './notebook';
import type { ChatText } from './chat/texts';

/** The chat with the server's model, about the notebook the user is in. */
export interface IOciChatModel extends IDisposable {
  /** Anything the chat shows changed (coalesced per frame while streaming). */
  readonly stateChanged: ISignal<IOciChatModel, void>;
  /** The websocket to the server's chat. */
  readonly connection: IChatConnection;
  /** The settings that shape each request, as the user set them. */
  settings: IChatSettings;
  /**
   * The server's loop settings (`GET /oci/status`: `c.OCI.*`), the defaults
   * of those the user did not set; null until known. The sidebar sets it as
   * it follows the server's status.
   */
  serverLoop: ILoopSettings | null;
  /** The loop's settings that apply (the user's, else the server's). */
  readonly loop: ILoopSettings | null;
  /** The notebook the chat is about: the last one the user was in. */
  notebook: NotebookPanel | null;
  /** The chat is on screen: the notebook is prefilled for the next ask. */
  visible: boolean;
  /** The current notebook's thread, or null without a notebook. */
  readonly thread: IThread | null;
  /** The current notebook's request in flight. */
  readonly running: IRequestView | null;
  /** The request another tab or user runs in the current notebook. */
  readonly runningElsewhere: RunningElsewhere | null;
  /**
   * This page's requests in flight in other notebooks than the current one
   * (the user switched notebooks while they run), oldest first.
   */
  readonly background: IBackgroundRequest[];
  /** A message about the server or the connection. */
  readonly notice: ChatText | null;
  /** Ask about the current notebook; false when it cannot be sent now. */
  ask(prompt: string): boolean;
  /** Fix a failing cell; null when it cannot start now. */
  fix(options: IFixOptions): Promise<IRequestResult> | null;
  /** Change a code cell as the user says; null when it cannot start now. */
  edit(options: IEditOptions): Promise<IRequestResult> | null;
  /** Stop the current notebook's request. */
  stop(): void;
  /** Stop one request of this page by its id, in whichever notebook it runs. */
  stopRequest(id: string): void;
  /** Stop the request working on this cell, wherever it runs. */
  stopCell(cellId: string): void;
  /** Whether a request in flight writes, runs or fixes this cell. */
  isBusy(cellId: string): boolean;
  /** The user is typing a message. */
  draftChanged(): void;
  /** The cell the next message refines (null: a new cell). */
  refineTarget(): IRefineTarget | null;
  /** The cell a refinement would rewrite, whether or not one is wanted. */
  refineCandidate(): IRefineTarget | null;
  /** Whether the next message writes a new cell instead of refining. */
  setNewThread(value: boolean): void;
  /** Forget the current notebook's chat, here and on the server. */
  clearHistory(): Promise<void>;
  /** Show a cell a request wrote (a step's, or its last). */
  revealCell(requestId: string, step?: number): Promise<void>;
  /** Whether a request's cell is still in the current notebook. */
  hasCell(requestId: string): boolean;
  /** A request's cell for one step, if still in the current notebook. */
  stepCell(requestId: string, step: number): IStepCell | null;
}

export const IOciChatModel = new Token<IOciChatModel>(
  'oci-jupyter:IOciChatModel',
  'The OpenCodeInterpreter chat: ask the model about a notebook, fix a failing cell, follow and stop its requests.'
);

/**
 * The executor of the loop's cells: writes the model's code into a real
 * cell and runs it the way Shift+Enter does (JupyterLab's cell executor),
 * waiting for the user's own cells and interrupting only its own.
 */
export interface IOciCellExecutor {
  /** Rewrite a cell (keeping its old source), or insert one below the anchor. */
  placeCode(panel: NotebookPanel, options: IPlaceOptions): ICodeCellModel;
  /** Run a cell in the notebook's kernel and report what happened. */
  runCell(
    panel: NotebookPanel,
    cellId: string,
    options: IRunOptions
  ): Promise<IRunResult>;
  /** Wait for the user to run the cell themselves, and report that run. */
  waitForUserRun(
    panel: NotebookPanel,
    cellId: string,
    signal: AbortSignal
  ): Promise<IRunResult>;
}

export const IOciCellExecutor = new Token<IOciCellExecutor>(
  'oci-jupyter:IOciCellExecutor',
  "Writes the model's code into notebook cells and runs them in the notebook's kernel, as Shift+Enter does."
);
