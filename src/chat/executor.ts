/**
 * One turn's executor: for an `execute` message, confirm the rewrite (a fix
 * in suggest mode), place the code in its cell, run it (or wait for the user
 * to), and report the `outcome` to the server.
 */
import type { ISessionContextDialogs } from '@jupyterlab/apputils';
import type { INotebookCellExecutor } from '@jupyterlab/notebook';
import type { ITranslator } from '@jupyterlab/translation';

import {
  CellDeleted,
  findCell,
  IRunResult,
  KernelUnavailable,
  placeCode,
  runCell,
  waitForUserRun
} from '../notebook';
import { editedCell, markWorking } from './cells';
import type {
  ClientMessage,
  IExecuteMessage,
  IOutcomeMessage
} from './protocol';
import type { ChatRequest } from './request';
import type { ITurnTiming } from './types';

/** The notebook operations a turn uses (tests put their own in). */
export interface INotebookOperations {
  placeCode: typeof placeCode;
  runCell: typeof runCell;
  waitForUserRun: typeof waitForUserRun;
}

export interface ITurnExecutorOptions {
  /** Sends to the server; false when not connected. */
  send: (message: ClientMessage) => boolean;
  /** Stop the request (the user rejected the rewrite or deleted the cell). */
  stop: (request: ChatRequest) => void;
  /** A request's code for a step went into this cell. */
  placed: (request: ChatRequest, step: number, cellId: string) => void;
  /** The view changed. */
  changed: () => void;
  /** JupyterLab's cell executor: the loop's cells run the way Shift+Enter does. */
  executor?: INotebookCellExecutor;
  sessionDialogs?: ISessionContextDialogs;
  translator?: ITranslator;
  notebook?: Partial<INotebookOperations>;
}

export class TurnExecutor {
  constructor(options: ITurnExecutorOptions) {
    this._options = options;
    this._notebook = {
      placeCode,
      runCell,
      waitForUserRun,
      ...options.notebook
    };
  }

  /** Place the code, run it (or wait for the user to), report the outcome. */
  async execute(request: ChatRequest, message: IExecuteMessage): Promise<void> {
    const options = this._options;
    const received = performance.now();
    const view = request.view;
    const { turn, step } = request.beginExecute(message);
    let { replaceCellId, anchorCellId } = request.placement(
      message.target,
      step
    );
    const edited = replaceCellId
      ? editedCell(
          request.panel,
          replaceCellId,
          request.written.get(replaceCellId)
        )
      : null;
    if (edited) {
      // The user changed the cell since the loop wrote it (or since the fix
      // or refinement started): their edit stays, the code goes below it.
      turn.note = { kind: 'moved', cell: edited };
      anchorCellId = replaceCellId;
      replaceCellId = null;
    }
    const abort = new AbortController();
    request.abort = abort;
    const stopped = () => request.isFinished || abort.signal.aborted;

    let result: IRunResult;
    try {
      if (request.confirm && replaceCellId) {
        // Suggest mode: the user sees the rewrite before it happens.
        const found = findCell(request.panel, replaceCellId);
        const current = found?.cell.sharedModel.getSource();
        if (current !== undefined && current !== message.code) {
          turn.state = 'reviewing';
          options.changed();
          const accepted = await request.confirm(
            current,
            message.code,
            abort.signal
          );
          if (stopped()) {
            return; // stopped meanwhile: the server ends the request
          }
          if (!accepted) {
            options.stop(request);
            return;
          }
          turn.state = message.auto_execute ? 'executing' : 'waiting';
        }
      }
      const cell = this._notebook.placeCode(request.panel, {
        requestId: view.id,
        turn: message.turn,
        step,
        code: message.code,
        // When the cell to rewrite is gone, placeCode inserts a new one
        // below the anchor instead.
        replaceCellId,
        anchorCellId,
        keepOriginal: request.fix !== null
      });
      request.placed(step, cell.id, message.code);
      markWorking(request.panel, cell.id, true);
      options.placed(request, step, cell.id);
      options.changed();
      const progress = (state: 'queued' | 'running') =>
        options.send({
          type: 'progress',
          id: view.id,
          turn: message.turn,
          state
        });
      result = message.auto_execute
        ? await this._notebook.runCell(request.panel, cell.id, {
            timeLimit: message.time_limit,
            signal: abort.signal,
            inspect: message.inspect,
            executor: options.executor,
            sessionDialogs: options.sessionDialogs,
            translator: options.translator,
            onQueued: waitingFor => {
              turn.state = 'queued';
              turn.waitingFor = waitingFor;
              progress('queued');
              options.changed();
            },
            onStarted: () => {
              if (turn.state === 'queued') {
                turn.state = 'executing';
                turn.waitingFor = undefined;
                options.changed();
              }
              progress('running');
            }
          })
        : await this._notebook.waitForUserRun(
            request.panel,
            cell.id,
            abort.signal
          );
    } catch (reason) {
      if (stopped()) {
        return; // stopped: the server ends the request
      }
      if (reason instanceof CellDeleted) {
        // The user removed the cell instead of running it: that is a stop.
        options.stop(request);
        return;
      }
      const error = reason as Error;
      if (error instanceof KernelUnavailable) {
        request.failure = error.text;
      }
      result = {
        status: 'error',
        output: '',
        error: {
          ename: error.name || 'Error',
          evalue: error.message ?? String(error),
          traceback: []
        },
        seconds: 0,
        runMs: 0
      };
    } finally {
      if (request.abort === abort) {
        request.abort = null;
      }
    }
    if (request.isFinished) {
      return; // ended meanwhile
    }
    const outcome: IOutcomeMessage = {
      type: 'outcome',
      id: view.id,
      turn: message.turn,
      status: result.status,
      output: result.output,
      seconds: Math.round(result.seconds * 1000) / 1000
    };
    if (result.error) {
      outcome.error = result.error;
    }
    if (result.values) {
      // The run printed nothing: the model reads what the code computed.
      outcome.values = result.values;
    }
    if (result.source !== undefined && result.source !== message.code) {
      // The user edited the code before it ran: the model hears what ran.
      outcome.source = result.source;
      turn.note = { kind: 'edited' };
    }
    options.send(outcome);
    if (request.failure) {
      // Nothing can run in this notebook now: further turns would only ask
      // the model for more code to fail the same way. Cancelling ends the
      // request at once; the failure stays the message shown.
      options.send({ type: 'cancel', id: view.id });
    }
    const totalMs = performance.now() - received;
    const timing: ITurnTiming = {
      id: view.id,
      turn: message.turn,
      totalMs,
      runMs: result.runMs,
      overheadMs: message.auto_execute ? totalMs - result.runMs : NaN
    };
    performance.mark('oci:turn', { detail: timing });
    request.ran(turn, result.status, result.seconds, result.error);
    options.changed();
  }

  private _options: ITurnExecutorOptions;
  private _notebook: INotebookOperations;
}
