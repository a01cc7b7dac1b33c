/**
 * One turn's executor: for an `execute` message, confirm the rewrite (a fix
 * in suggest mode), place the code in its cell, run it (or wait for the user
 * to), and report the `outcome` to the server.
 *
 * In a notebook JupyterLab does not trust (./trust.ts), the code never runs
 * at once: it waits in its cell, shown in the chat, until the user runs it
 * (the chat's Run, Shift+Enter) or trusts the notebook.
 */
import type { ISessionContextDialogs } from '@jupyterlab/apputils';
import type { INotebookCellExecutor } from '@jupyterlab/notebook';
import type { ITranslator } from '@jupyterlab/translation';
import { PromiseDelegate } from '@lumino/coreutils';
import type { IDisposable } from '@lumino/disposable';

import {
  CellDeleted,
  findCell,
  IRunResult,
  KernelUnavailable,
  placeCode,
  runCell,
  waitForUserRun
} from '../notebook';
import { followTrust } from '../trust';
import { editedCell, markWorking } from './cells';
import type {
  ClientMessage,
  IExecuteMessage,
  IOutcomeMessage
} from './protocol';
import type { ChatRequest } from './request';
import type { ITurnTiming, ITurnView } from './types';

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
    // The user's setting, unless the notebook is not trusted: then the code
    // waits for the user's Run (or for the notebook to be trusted).
    const auto = request.autoExecutes(message);
    let runNow = auto && !request.underReview();
    const { turn, step } = request.beginExecute(message, runNow);
    if (auto && !runNow) {
      turn.review = true;
    }
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
          // Accepting the rewrite is the review: it runs as the setting says.
          if (turn.review) {
            runNow = true;
            turn.review = undefined;
          }
          turn.state = runNow ? 'executing' : 'waiting';
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
        keepOriginal: request.rewrites
      });
      if (!request.review) {
        // The chat's cell in a trusted notebook is trusted, as a cell the
        // user adds is (it has no outputs yet): the notebook stays trusted.
        // Under review it is trusted once the user runs it.
        cell.trusted = true;
      }
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
      const run = () =>
        this._notebook.runCell(request.panel, cell.id, {
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
        });
      if (runNow) {
        result = await run();
      } else {
        const ran = await this._waitForRun(
          request,
          turn,
          cell.id,
          abort.signal,
          auto
        );
        if (ran) {
          result = ran;
        } else {
          if (stopped()) {
            return;
          }
          // Run from the chat, or the notebook was trusted meanwhile.
          turn.state = 'executing';
          turn.review = undefined;
          options.changed();
          result = await run();
        }
      }
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
      overheadMs: runNow ? totalMs - result.runMs : NaN
    };
    performance.mark('oci:turn', { detail: timing });
    request.ran(turn, result.status, result.seconds, result.error);
    options.changed();
  }

  /**
   * Wait until the user runs the cell themselves (Shift+Enter, Run All: the
   * run they made), or asks the chat to run it (`turn.run`, the chat's Run
   * button), or, when the setting runs code at once, until the notebook is
   * trusted: null for the last two, the cell is to be run now.
   */
  private async _waitForRun(
    request: ChatRequest,
    turn: ITurnView,
    cellId: string,
    signal: AbortSignal,
    auto: boolean
  ): Promise<IRunResult | null> {
    const waiting = new AbortController();
    const stop = () => waiting.abort();
    signal.addEventListener('abort', stop);
    if (signal.aborted) {
      stop();
    }
    const go = new PromiseDelegate<null>();
    turn.run = () => go.resolve(null);
    let trust: IDisposable | null = null;
    if (auto && request.review) {
      // The waiting cell is left out: the user running it (Shift+Enter)
      // trusts it, and that run is theirs to report, not to start again.
      trust = followTrust(request.panel, () => {
        if (!request.underReview(cellId)) {
          go.resolve(null);
        }
      });
    }
    const byUser = this._notebook.waitForUserRun(
      request.panel,
      cellId,
      waiting.signal
    );
    // Given up once the chat runs the cell: that rejection is nobody's.
    byUser.catch(() => undefined);
    this._options.changed();
    try {
      return await Promise.race([byUser, go.promise]);
    } finally {
      turn.run = undefined;
      trust?.dispose();
      signal.removeEventListener('abort', stop);
      waiting.abort();
    }
  }

  private _options: ITurnExecutorOptions;
  private _notebook: INotebookOperations;
}
