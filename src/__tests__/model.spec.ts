/**
 * The chat model as the panel uses it, with a fake connection and notebook
 * models: several notebooks, renames, reconnects and refinements.
 */
import type { NotebookPanel } from '@jupyterlab/notebook';

import { IHistoryRequest } from '../chat/protocol';
import { createCellExecutor } from '../cellexecutor';
import { IRunResult } from '../notebook';
import { fakePanel, IFakePanel, settle } from './fakes';
import { askIn, executeMessage, fakeChat, lastAsk } from './setups';

/** A chat model whose cells run at once and print 42. */
function setUp(histories: Record<string, IHistoryRequest[]> = {}) {
  return fakeChat({
    histories,
    cellExecutor: {
      ...createCellExecutor({}),
      runCell: () =>
        Promise.resolve({
          status: 'ok',
          output: '42\n',
          seconds: 0.1,
          runMs: 100
        } as IRunResult)
    }
  });
}

/** Notebooks a (asking, at `aPath`) and b (where the user goes next). */
function twoNotebooks(aPath = 'a.ipynb'): [IFakePanel, IFakePanel] {
  return [fakePanel(aPath, ['x = 41']), fakePanel('b.ipynb', ['y = 1'])];
}

/** The chat with 'add one' asked in this notebook (by default a.ipynb). */
async function askedIn(notebook = fakePanel('a.ipynb', ['x = 41'])) {
  const chat = setUp();
  const { id } = await askIn(chat, notebook.panel, 'add one');
  return { ...chat, notebook, id };
}

function done(id: string) {
  return {
    type: 'done' as const,
    id,
    status: 'success' as const,
    turns: 1,
    message: '',
    final_code: 'print(x + 1)',
    answer: 'It is 42.',
    steps: 1,
    budget: null
  };
}

describe('ChatModel', () => {
  it('keeps one thread per notebook and loads each history once', async () => {
    const { model, fetched } = setUp({
      'b.ipynb': [
        {
          id: 'old',
          mode: 'chat',
          prompt: 'earlier',
          started: 1,
          status: 'success',
          message: '',
          turns: []
        }
      ]
    });
    const [a, b] = twoNotebooks();
    model.notebook = a.panel;
    await settle();
    model.notebook = b.panel;
    await settle();
    expect(model.thread?.path).toBe('b.ipynb');
    expect(model.thread?.requests.map(r => r.id)).toEqual(['old']);
    model.notebook = a.panel;
    expect(model.thread?.requests).toEqual([]);
    expect(fetched).toEqual(['a.ipynb', 'b.ipynb', 'a.ipynb']);
  });

  it('goes on with a request when the user switches notebooks mid-request', async () => {
    const [a, b] = twoNotebooks();
    const { connection, model, id } = await askedIn(a);

    model.notebook = b.panel;
    await settle();
    expect(model.running).toBeNull();
    connection.receive({ type: 'token', id, turn: 1, text: 'Adding.' });
    connection.receive(executeMessage({ id }));
    await settle();
    // The code went into the notebook that asked, not the one shown.
    expect(a.model.cells.length).toBe(2);
    expect(b.model.cells.length).toBe(1);
    expect(connection.sentOf('outcome')).toHaveLength(1);
    // The other notebook can ask meanwhile: the server runs one per notebook.
    expect(model.ask('other')).toBe(true);

    model.notebook = a.panel;
    await settle();
    expect(model.running?.id).toBe(id);
    expect(model.running?.turns[0].state).toBe('ok');
    connection.receive(done(id));
    expect(model.running).toBeNull();
    expect(model.thread?.requests[0].answer).toBe('It is 42.');
  });

  it('lists a request in another notebook as a background one, and stops it', async () => {
    const [a, b] = twoNotebooks('dir/a.ipynb');
    const { connection, model, id } = await askedIn(a);
    // In its own notebook it is the running request, not a background one.
    expect(model.background).toEqual([]);

    model.notebook = b.panel;
    await settle();
    expect(model.background).toEqual([
      {
        id,
        path: 'dir/a.ipynb',
        prompt: 'add one',
        mode: 'chat',
        stopping: false
      }
    ]);
    model.stopRequest(id);
    expect(connection.sentOf('cancel')).toEqual([{ type: 'cancel', id }]);
    expect(model.background[0].stopping).toBe(true);
    connection.receive({ ...done(id), status: 'cancelled', message: '' });
    expect(model.background).toEqual([]);
    // An unknown id stops nothing.
    model.stopRequest('nope');
    expect(connection.sentOf('cancel')).toHaveLength(1);
  });

  it('follows a rename of a background notebook with its request in flight', async () => {
    const [a, b] = twoNotebooks();
    const { connection, model, fetched, id } = await askedIn(a);
    model.notebook = b.panel;
    await settle();

    a.rename('renamed.ipynb');
    connection.receive({ type: 'token', id, turn: 1, text: 'Still here.' });
    model.notebook = a.panel;
    await settle();
    expect(model.thread?.path).toBe('renamed.ipynb');
    expect(model.running?.id).toBe(id);
    expect(model.running?.turns[0].reply).toBe('Still here.');
    // A request in flight is newer than any history: nothing was reloaded.
    expect(fetched).toEqual(['a.ipynb', 'b.ipynb']);
  });

  it('follows a rename of the current notebook', async () => {
    const { model } = setUp();
    const a = fakePanel('a.ipynb', ['x = 41']);
    model.notebook = a.panel;
    await settle();
    const thread = model.thread;
    a.rename('b.ipynb');
    expect(model.thread).toBe(thread);
    expect(thread?.path).toBe('b.ipynb');
  });

  it('follows a rename once when the notebook is open in two views', async () => {
    const { model, fetched } = setUp();
    const a = fakePanel('a.ipynb', ['x = 41']);
    const secondView = { ...a.panel } as NotebookPanel;
    model.notebook = a.panel;
    await settle();
    model.notebook = secondView;
    await settle();
    const thread = model.thread;
    a.rename('b.ipynb');
    await settle();
    expect(model.thread).toBe(thread);
    expect(thread?.path).toBe('b.ipynb');
    // Moved once: a second move would find nothing and load b.ipynb anew.
    expect(fetched).not.toContain('b.ipynb');
  });

  it('ends requests on a lost connection and asks again once reconnected', async () => {
    const { connection, model, id } = await askedIn();
    connection.setState('closed');
    expect(model.running).toBeNull();
    expect(model.thread?.requests[0]).toMatchObject({
      status: 'error',
      message: 'The connection to the server was lost; the request ended.'
    });
    // A late message of the ended request changes nothing.
    connection.receive({ type: 'token', id, turn: 1, text: 'late' });
    expect(model.thread?.requests[0].turns).toEqual([]);
    expect(model.ask('again')).toBe(false);
    connection.setState('connecting');
    connection.setState('open');
    expect(model.ask('again')).toBe(true);
  });

  it('stops: a cancel to the server, or at once when not connected', async () => {
    const { connection, model, id } = await askedIn();
    model.stop();
    expect(connection.sentOf('cancel')).toEqual([{ type: 'cancel', id }]);
    expect(model.running?.stopping).toBe(true);
    connection.receive({
      ...done(id),
      status: 'cancelled',
      message: 'Stopped.'
    });
    expect(model.thread?.requests[0].status).toBe('cancelled');
  });

  describe('the refine target', () => {
    async function answered() {
      const asked = await askedIn();
      asked.connection.receive(executeMessage({ id: asked.id }));
      await settle();
      asked.connection.receive(done(asked.id));
      return asked;
    }

    it('is the last request cell; the next ask refines it', async () => {
      const { connection, model, notebook, id } = await answered();
      const cell = notebook.model.cells.get(1);
      expect(model.refineTarget()).toEqual({
        cellId: cell.id,
        requestId: id,
        label: 'cell 2'
      });
      expect(model.hasCell(id)).toBe(true);
      expect(model.stepCell(id, 1)).toEqual({
        cellId: cell.id,
        label: 'cell 2'
      });
      model.ask('make it print 43');
      await settle();
      expect(lastAsk(connection).refine_cell).toBe(true);
      expect(model.running?.refines).toBe('cell 2');
      // The refinement's step 1 rewrites that cell.
      connection.receive(
        executeMessage({
          id: lastAsk(connection).id,
          code: 'print(43)',
          target: 'replace'
        })
      );
      await settle();
      expect(notebook.model.cells.length).toBe(2);
      expect(cell.sharedModel.getSource()).toBe('print(43)');
    });

    it('is none when the user asks for a new cell, for one request', async () => {
      const { connection, model } = await answered();
      model.setNewThread(true);
      expect(model.refineTarget()).toBeNull();
      expect(model.refineCandidate()).not.toBeNull();
      model.ask('something else');
      await settle();
      expect(lastAsk(connection).refine_cell).toBe(false);
      expect(model.thread?.newThread).toBe(false);
    });

    it('is none once the request cell is deleted', async () => {
      const { model, notebook, id } = await answered();
      notebook.model.sharedModel.deleteCell(1);
      expect(model.refineTarget()).toBeNull();
      expect(model.hasCell(id)).toBe(false);
    });
  });

  it('fixes a failing cell: a fix ask with the cell and its error', async () => {
    const { connection, model } = setUp();
    const notebook = fakePanel('a.ipynb', ['1/0']);
    const cellId = notebook.model.cells.get(0).id;
    const error = {
      ename: 'ZeroDivisionError',
      evalue: 'division by zero',
      traceback: []
    };
    const finished = model.fix({
      panel: notebook.panel,
      cellId,
      error,
      confirm: null
    });
    expect(finished).not.toBeNull();
    expect(model.notebook).toBe(notebook.panel);
    expect(model.isBusy(cellId)).toBe(true);
    await settle();
    const ask = lastAsk(connection);
    expect(ask).toMatchObject({
      mode: 'fix',
      prompt: '',
      cell: { source: '1/0', error },
      review: false
    });
    expect(model.running?.prompt).toBe(
      'Fix the error in cell 1: ZeroDivisionError: division by zero'
    );
    connection.receive({ ...done(ask.id), answer: 'Divide by one.' });
    await expect(finished).resolves.toEqual({
      status: 'success',
      answer: 'Divide by one.',
      message: '',
      budget: null
    });
    expect(model.isBusy(cellId)).toBe(false);
  });
});
