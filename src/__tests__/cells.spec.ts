/**
 * The notebook helpers: the cells requests wrote, the refine target, the
 * names the chat gives cells.
 */
import { ICodeCellModel } from '@jupyterlab/cells';

import { cellName, editedCell, RequestCells } from '../chat/cells';
import { fromHistory } from '../chat/threads';
import { IThread } from '../chat/types';
import { METADATA_KEY } from '../notebook';
import { fakePanel } from './fakes';
import { loadedThread } from './setups';

function thread(...ids: string[]): IThread {
  return {
    ...loadedThread(),
    requests: ids.map(id =>
      fromHistory({
        id,
        mode: 'chat',
        prompt: id,
        started: 0,
        status: 'success',
        message: '',
        turns: []
      })
    )
  };
}

describe('cellName', () => {
  it('is the prompt of a cell that ran, else its position', () => {
    const { model } = fakePanel('a.ipynb', ['x = 1', 'y = 2']);
    (model.cells.get(1) as ICodeCellModel).executionCount = 7;
    expect(cellName({ index: 0, cell: model.cells.get(0) })).toBe('cell 1');
    expect(cellName({ index: 1, cell: model.cells.get(1) })).toBe('In [7]');
  });
});

describe('editedCell', () => {
  it('names a cell that no longer holds what the loop expects', () => {
    const { panel, model } = fakePanel('a.ipynb', ['x = 1']);
    const id = model.cells.get(0).id;
    expect(editedCell(panel, id, 'x = 1')).toBeNull();
    expect(editedCell(panel, id, undefined)).toBeNull();
    expect(editedCell(panel, 'gone', 'x = 1')).toBeNull();
    model.cells.get(0).sharedModel.setSource('x = 2  # mine');
    expect(editedCell(panel, id, 'x = 1')).toBe('cell 1');
  });
});

describe('RequestCells', () => {
  it('knows the cells this session placed while they exist', () => {
    const { panel, model } = fakePanel('a.ipynb', ['a', 'b']);
    const cells = new RequestCells();
    const [first, second] = [model.cells.get(0).id, model.cells.get(1).id];
    cells.record('r1', 1, first);
    cells.record('r1', 2, second);
    expect([...cells.stepCells(panel, 'r1')]).toEqual([
      [1, first],
      [2, second]
    ]);
    expect(cells.lastCell(panel, 'r1')).toBe(second);
    expect(cells.stepCell(panel, 'r1', 1)).toEqual({
      cellId: first,
      label: 'cell 1'
    });
    model.sharedModel.deleteCell(1);
    cells.invalidate();
    expect(cells.lastCell(panel, 'r1')).toBe(first);
    expect(cells.stepCell(panel, 'r1', 2)).toBeNull();
  });

  it('reads the cells of earlier sessions from their metadata', () => {
    const { panel, model } = fakePanel('a.ipynb', ['a', 'b', 'c']);
    model.cells
      .get(0)
      .setMetadata(METADATA_KEY, { request: 'old', turn: 1, generated: true });
    model.cells.get(2).setMetadata(METADATA_KEY, {
      request: 'old',
      turn: 3,
      step: 2,
      generated: true
    });
    const cells = new RequestCells();
    expect([...cells.stepCells(panel, 'old')]).toEqual([
      [1, model.cells.get(0).id],
      [2, model.cells.get(2).id]
    ]);
  });

  it('reads the metadata again only when told the cells changed', () => {
    const { panel, model } = fakePanel('a.ipynb', ['a']);
    const cells = new RequestCells();
    expect(cells.lastCell(panel, 'r1')).toBeNull();
    model.cells
      .get(0)
      .setMetadata(METADATA_KEY, { request: 'r1', turn: 1, generated: true });
    expect(cells.lastCell(panel, 'r1')).toBeNull();
    cells.invalidate();
    expect(cells.lastCell(panel, 'r1')).toBe(model.cells.get(0).id);
  });

  it('reads another notebook anew', () => {
    const a = fakePanel('a.ipynb', ['a']);
    const b = fakePanel('b.ipynb', ['b']);
    b.model.cells
      .get(0)
      .setMetadata(METADATA_KEY, { request: 'r1', turn: 1, generated: true });
    const cells = new RequestCells();
    expect(cells.lastCell(a.panel, 'r1')).toBeNull();
    expect(cells.lastCell(b.panel, 'r1')).toBe(b.model.cells.get(0).id);
  });

  describe('the refine target', () => {
    it('is the cell of the most recent request that ended', () => {
      const { panel, model } = fakePanel('a.ipynb', ['a', 'b']);
      const cells = new RequestCells();
      cells.record('r1', 1, model.cells.get(0).id);
      cells.record('r2', 1, model.cells.get(1).id);
      expect(cells.refineCandidate(panel, thread('r1', 'r2'))).toEqual({
        cellId: model.cells.get(1).id,
        requestId: 'r2',
        label: 'cell 2'
      });
    });

    it('skips a request still running', () => {
      const { panel, model } = fakePanel('a.ipynb', ['a', 'b']);
      const cells = new RequestCells();
      cells.record('r1', 1, model.cells.get(0).id);
      cells.record('r2', 1, model.cells.get(1).id);
      const t = thread('r1', 'r2');
      t.requests[1].status = 'running';
      expect(cells.refineCandidate(panel, t)?.requestId).toBe('r1');
    });

    it('skips a request whose cell was deleted or is not code', () => {
      const { panel, model } = fakePanel('a.ipynb', ['a', 'c']);
      model.sharedModel.insertCell(1, { cell_type: 'markdown', source: '#' });
      const cells = new RequestCells();
      cells.record('r1', 1, model.cells.get(0).id);
      cells.record('r2', 1, model.cells.get(1).id);
      cells.record('r3', 1, model.cells.get(2).id);
      model.sharedModel.deleteCell(2);
      cells.invalidate();
      // r3's cell is gone, r2's is markdown: r1's is the target.
      expect(cells.refineCandidate(panel, thread('r1', 'r2', 'r3'))).toEqual({
        cellId: model.cells.get(0).id,
        requestId: 'r1',
        label: 'cell 1'
      });
    });

    it('is the last step of a request with several', () => {
      const { panel, model } = fakePanel('a.ipynb', ['a', 'b']);
      const cells = new RequestCells();
      cells.record('r1', 2, model.cells.get(1).id);
      cells.record('r1', 1, model.cells.get(0).id);
      expect(cells.refineCandidate(panel, thread('r1'))?.cellId).toBe(
        model.cells.get(1).id
      );
    });

    it('is none without a request cell', () => {
      const { panel } = fakePanel('a.ipynb', ['a']);
      expect(
        new RequestCells().refineCandidate(panel, thread('r1'))
      ).toBeNull();
    });
  });
});
