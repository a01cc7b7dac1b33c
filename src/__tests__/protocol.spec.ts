import { parseServerMessage } from '../chat/protocol';

describe('parseServerMessage', () => {
  it.each([
    { type: 'token', id: 'r1', turn: 1, text: 'Hello' },
    { type: 'turn', id: 'r1', turn: 1, state: 'generating' },
    {
      type: 'execute',
      id: 'r1',
      turn: 1,
      code: 'print(1)',
      target: 'new',
      auto_execute: true,
      time_limit: 60
    },
    {
      type: 'done',
      id: 'r1',
      status: 'success',
      turns: 1,
      message: '',
      final_code: null
    },
    { type: 'error', message: 'bad message' },
    { type: 'notebook', notebook: 'a.ipynb', running: null }
  ])('reads a $type message', message => {
    expect(parseServerMessage(JSON.stringify(message))).toEqual(message);
  });

  it('ignores a type this client does not know (a newer server)', () => {
    expect(
      parseServerMessage(JSON.stringify({ type: 'telemetry', id: 'r1' }))
    ).toBeNull();
  });

  it('ignores what is not a JSON object with a type', () => {
    expect(parseServerMessage('{not json')).toBeNull();
    expect(parseServerMessage('null')).toBeNull();
    expect(parseServerMessage('"token"')).toBeNull();
    expect(parseServerMessage('[{"type": "token"}]')).toBeNull();
    expect(parseServerMessage(JSON.stringify({ type: 3 }))).toBeNull();
    expect(parseServerMessage(JSON.stringify({ id: 'r1' }))).toBeNull();
  });

  it('ignores binary frames', () => {
    expect(parseServerMessage(new ArrayBuffer(4))).toBeNull();
    expect(parseServerMessage(undefined)).toBeNull();
  });
});
