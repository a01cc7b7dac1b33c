/**
 * One turn's executor: confirm, place, run or wait, report. The cells are
 * placed in a real notebook model; running them is the test's.
 */
import { TurnExecutor } from '../chat/executor';
import { IOutcomeMessage } from '../chat/protocol';
import { FixConfirm } from '../chat/types';
import {
  CellDeleted,
  IRunOptions,
  IRunResult,
  KernelUnavailable,
  METADATA_KEY
} from '../notebook';
import { FakeConnection, fakePanel } from './fakes';
import { chatRequest, executeMessage as execute } from './setups';

type Run = (options: IRunOptions) => Promise<IRunResult>;

function setUp(
  options: {
    run?: Run;
    waitForUser?: () => Promise<IRunResult>;
    refine?: boolean;
    confirm?: FixConfirm;
  } = {}
) {
  const connection = new FakeConnection();
  const notebook = fakePanel('a.ipynb', ['x = 41', 'print(x)']);
  const { model, panel } = notebook;
  const first = model.cells.get(0);
  const stopped: string[] = [];
  const placed: [number, string][] = [];
  const request = chatRequest({
    panel,
    anchorCellId: first.id,
    cellId: options.refine ? first.id : null,
    cellSource: options.refine ? first.sharedModel.getSource() : null,
    confirm: options.confirm ?? null,
    refine: options.refine ?? false
  });
  const ran: IRunOptions[] = [];
  const executor = new TurnExecutor({
    send: message => connection.send(message),
    stop: r => stopped.push(r.id),
    placed: (_, step, cellId) => placed.push([step, cellId]),
    changed: () => undefined,
    notebook: {
      runCell: (_panel, _cellId, runOptions) => {
        ran.push(runOptions);
        return (
          options.run ??
          (() =>
            Promise.resolve({
              status: 'ok',
              output: '42\n',
              seconds: 0.12345,
              runMs: 130
            } as IRunResult))
        )(runOptions);
      },
      waitForUserRun: () =>
        (options.waitForUser ?? (() => new Promise<IRunResult>(() => {})))()
    }
  });
  return { connection, model, request, executor, stopped, placed, ran };
}

describe('TurnExecutor', () => {
  it('passes the names to inspect and reports the values of a silent run', async () => {
    const { connection, request, executor, ran } = setUp({
      run: () =>
        Promise.resolve({
          status: 'ok',
          output: '',
          seconds: 0.5,
          runMs: 510,
          values: { best: "'east'" }
        } as IRunResult)
    });
    await executor.execute(
      request,
      execute({ code: 'best = "east"', inspect: ['best'] })
    );
    expect(ran[0].inspect).toEqual(['best']);
    expect(connection.sentOf('outcome')).toEqual([
      expect.objectContaining({ status: 'ok', values: { best: "'east'" } })
    ]);
  });

  it('places the code below the anchor, runs it and reports the outcome', async () => {
    const { connection, model, request, executor, placed, ran } = setUp();
    await executor.execute(request, execute());
    expect(model.cells.length).toBe(3);
    const cell = model.cells.get(1);
    expect(cell.sharedModel.getSource()).toBe('print(x + 1)');
    expect(cell.getMetadata(METADATA_KEY)).toMatchObject({
      request: 'r1',
      turn: 1,
      step: 1
    });
    expect(placed).toEqual([[1, cell.id]]);
    expect(request.stepCells.get(1)).toBe(cell.id);
    expect(ran[0].timeLimit).toBe(60);
    expect(connection.sentOf('outcome')).toEqual([
      {
        type: 'outcome',
        id: 'r1',
        turn: 1,
        status: 'ok',
        output: '42\n',
        seconds: 0.123
      }
    ]);
    expect(request.view.turns[0]).toMatchObject({
      state: 'ok',
      seconds: 0.12345,
      step: 1,
      attempt: 1
    });
  });

  it('rewrites the cell a refinement is about, keeping its old source', async () => {
    const { model, request, executor } = setUp({ refine: true });
    await executor.execute(request, execute({ target: 'replace' }));
    expect(model.cells.length).toBe(2);
    const cell = model.cells.get(0);
    expect(cell.sharedModel.getSource()).toBe('print(x + 1)');
    expect(
      (cell.getMetadata(METADATA_KEY) as { previous_sources: string[] })
        .previous_sources
    ).toEqual(['x = 41']);
  });

  it('keeps a cell the user edited and puts the code below it', async () => {
    const { model, request, executor } = setUp({ refine: true });
    model.cells.get(0).sharedModel.setSource('x = 40  # mine');
    await executor.execute(request, execute({ target: 'replace' }));
    expect(model.cells.get(0).sharedModel.getSource()).toBe('x = 40  # mine');
    expect(model.cells.get(1).sharedModel.getSource()).toBe('print(x + 1)');
    expect(request.view.turns[0].note).toEqual({
      kind: 'moved',
      cell: 'cell 1'
    });
  });

  it('asks before a rewrite in suggest mode; a rejection stops the request', async () => {
    const seen: [string, string][] = [];
    const { connection, model, request, executor, stopped } = setUp({
      refine: true,
      confirm: (oldSource, newSource) => {
        seen.push([oldSource, newSource]);
        expect(request.view.turns[0].state).toBe('reviewing');
        return Promise.resolve(false);
      }
    });
    await executor.execute(request, execute({ target: 'replace' }));
    expect(seen).toEqual([['x = 41', 'print(x + 1)']]);
    expect(stopped).toEqual(['r1']);
    expect(model.cells.get(0).sharedModel.getSource()).toBe('x = 41');
    expect(connection.sentOf('outcome')).toEqual([]);
  });

  it('rewrites and runs once the user accepts', async () => {
    const { connection, model, request, executor } = setUp({
      refine: true,
      confirm: () => Promise.resolve(true)
    });
    await executor.execute(request, execute({ target: 'replace' }));
    expect(model.cells.get(0).sharedModel.getSource()).toBe('print(x + 1)');
    expect(connection.sentOf('outcome')).toHaveLength(1);
  });

  it('says what its cell waits for, and when it starts', async () => {
    const states: string[] = [];
    const { connection, request, executor } = setUp({
      run: options => {
        options.onQueued?.('In [7]');
        states.push(request.view.turns[0].state);
        expect(request.view.turns[0].waitingFor).toBe('In [7]');
        options.onStarted?.();
        states.push(request.view.turns[0].state);
        return Promise.resolve({
          status: 'ok',
          output: '',
          seconds: 1,
          runMs: 1000
        });
      }
    });
    await executor.execute(request, execute());
    expect(states).toEqual(['queued', 'executing']);
    expect(connection.sentOf('progress').map(m => m.state)).toEqual([
      'queued',
      'running'
    ]);
  });

  it('reports a kernel it cannot use, and cancels the request', async () => {
    const { connection, request, executor } = setUp({
      run: () => Promise.reject(new KernelUnavailable('no-kernel-to-ask'))
    });
    await executor.execute(request, execute());
    const [outcome] = connection.sentOf('outcome') as IOutcomeMessage[];
    expect(outcome.status).toBe('error');
    expect(outcome.error).toEqual({
      ename: 'KernelUnavailable',
      evalue: 'The notebook has no kernel.',
      traceback: []
    });
    expect(connection.sentOf('cancel')).toEqual([{ type: 'cancel', id: 'r1' }]);
    expect(request.failure).toEqual({
      code: 'kernel',
      problem: 'no-kernel-to-ask'
    });
  });

  it('waits for the user without auto-execute; a deleted cell is a stop', async () => {
    const { connection, request, executor, stopped } = setUp({
      waitForUser: () => Promise.reject(new CellDeleted())
    });
    await executor.execute(request, execute({ auto_execute: false }));
    expect(stopped).toEqual(['r1']);
    expect(connection.sentOf('outcome')).toEqual([]);
  });

  it('tells the model what ran when the user edited the code first', async () => {
    const { connection, request, executor } = setUp({
      waitForUser: () =>
        Promise.resolve({
          status: 'ok',
          output: '43\n',
          seconds: 0.5,
          runMs: 0,
          source: 'print(x + 2)'
        })
    });
    await executor.execute(request, execute({ auto_execute: false }));
    const [outcome] = connection.sentOf('outcome') as IOutcomeMessage[];
    expect(outcome.source).toBe('print(x + 2)');
    expect(request.view.turns[0].note).toEqual({ kind: 'edited' });
  });

  it('reports nothing for a request that ended during the run', async () => {
    const { connection, request, executor } = setUp({
      run: () => {
        request.finish('cancelled', 'Stopped.');
        return Promise.resolve({
          status: 'cancelled',
          output: '',
          seconds: 0,
          runMs: 0
        });
      }
    });
    await executor.execute(request, execute());
    expect(connection.sentOf('outcome')).toEqual([]);
  });
});
