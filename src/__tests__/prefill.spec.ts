/**
 * Prefill: the notebook sent ahead of the ask, with fake timers.
 */
import { Prefiller } from '../chat/prefill';
import { DEFAULT_CHAT_SETTINGS } from '../chat/types';
import { FakeConnection, fakePanel } from './fakes';
import { loadedThread } from './setups';

function setUp() {
  const connection = new FakeConnection();
  const notebook = fakePanel('a.ipynb', ['x = 41']);
  const thread = loadedThread();
  const state = { busy: false };
  const prefiller = new Prefiller({
    connection,
    notebook: () => notebook.panel,
    thread: () => thread,
    settings: () => DEFAULT_CHAT_SETTINGS,
    busyWith: () => state.busy
  });
  return { connection, notebook, prefiller, state };
}

describe('Prefiller', () => {
  beforeEach(() => {
    // The chat's performance marks stay real (jsdom has none to fake).
    jest.useFakeTimers({ doNotFake: ['performance'] });
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  it('sends the notebook when the chat is shown', async () => {
    const { connection, prefiller } = setUp();
    await jest.advanceTimersByTimeAsync(100);
    expect(connection.sentOf('prefill')).toEqual([]);
    prefiller.visible = true;
    await jest.advanceTimersByTimeAsync(100);
    const [prefill] = connection.sentOf('prefill');
    expect(prefill.notebook).toBe('a.ipynb');
    expect(prefill.context.cells.map(c => c.source)).toEqual(['x = 41']);
  });

  it('sends again after typing only if the notebook changed, at most every 2 s', async () => {
    const { connection, notebook, prefiller } = setUp();
    prefiller.visible = true;
    await jest.advanceTimersByTimeAsync(100);
    prefiller.draftChanged();
    await jest.advanceTimersByTimeAsync(3000);
    // Same context: nothing new to read.
    expect(connection.sentOf('prefill')).toHaveLength(1);

    notebook.model.cells.get(0).sharedModel.setSource('x = 42');
    prefiller.draftChanged();
    await jest.advanceTimersByTimeAsync(700);
    expect(connection.sentOf('prefill')).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(200);
    expect(connection.sentOf('prefill')).toHaveLength(2);

    notebook.model.cells.get(0).sharedModel.setSource('x = 43');
    prefiller.draftChanged();
    await jest.advanceTimersByTimeAsync(900);
    // Within 2 s of the last one: it waits for the interval.
    expect(connection.sentOf('prefill')).toHaveLength(2);
    await jest.advanceTimersByTimeAsync(1200);
    expect(connection.sentOf('prefill')).toHaveLength(3);
  });

  it('sends nothing while a request of the notebook runs', async () => {
    const { connection, prefiller, state } = setUp();
    state.busy = true;
    prefiller.visible = true;
    prefiller.draftChanged();
    await jest.advanceTimersByTimeAsync(3000);
    expect(connection.sentOf('prefill')).toEqual([]);
  });

  it('cancels a scheduled prefill when hidden or when the ask goes', async () => {
    const { connection, prefiller } = setUp();
    prefiller.draftChanged();
    prefiller.visible = true;
    prefiller.visible = false;
    await jest.advanceTimersByTimeAsync(3000);
    expect(connection.sentOf('prefill')).toEqual([]);
    prefiller.draftChanged();
    prefiller.cancel();
    await jest.advanceTimersByTimeAsync(3000);
    expect(connection.sentOf('prefill')).toEqual([]);
  });
});
