/**
 * The server's words as codes: every code of oci_jupyter/texts.py has the
 * same English here, word for word (tests/server_texts.json, which the
 * Python tests render too), goes through the translator as one whole
 * sentence, and anything this client cannot render falls back to the
 * server's English.
 */
import * as fs from 'fs';
import * as path from 'path';

import { nullTranslator } from '@jupyterlab/translation';
import * as React from 'react';

import { StateChip } from '../chat/messages';
import type {
  IHistoryRequest,
  ServerMessage,
  ServerParams
} from '../chat/protocol';
import {
  ChatText,
  chatText,
  englishText,
  SERVER_CODES,
  serverSentence,
  serverText,
  serverWords
} from '../chat/texts';
import { fromHistory } from '../chat/threads';
import { markingBundle, rendered } from './fakes';
import { startedRequest } from './setups';

interface ISample {
  code: string;
  params: ServerParams;
  english: string;
}

const SAMPLES: ISample[] = JSON.parse(
  fs.readFileSync(
    path.resolve(__dirname, '../../tests/server_texts.json'),
    'utf-8'
  )
);

describe('server texts', () => {
  it('knows exactly the codes of oci_jupyter/texts.py', () => {
    expect(new Set(SAMPLES.map(s => s.code))).toEqual(new Set(SERVER_CODES));
  });

  it.each(SAMPLES.map(s => [s.code, s] as [string, ISample]))(
    'renders %s in the English of the server',
    (_, sample) => {
      const text = serverText({
        message: sample.english,
        code: sample.code,
        params: sample.params
      });
      expect(text).not.toBeNull();
      expect(englishText(text!)).toBe(sample.english);
      expect(chatText(text!, nullTranslator.load('oci_jupyter'))).toBe(
        sample.english
      );
    }
  );

  it('asks the translator for whole sentences, the words put in after', () => {
    const trans = markingBundle();
    const shown = serverSentence(
      'still_failing_in_step',
      {
        attempts: 2,
        step: 3,
        problem: { code: 'repeated_failure', params: { problem: '50%% %1' } }
      },
      trans
    );
    expect(trans.asked).toEqual([
      'The model repeated code that failed (%1).',
      'Still failing after %1 attempt in step %2: %3 | ' +
        'Still failing after %1 attempts in step %2: %3'
    ]);
    // Someone else's words keep their % signs: they are not a format.
    expect(shown).toBe(
      '«Still failing after 2 attempts in step 3: «The model repeated code that failed (50%% %1).»»'
    );
  });

  it('counts with the plural forms', () => {
    const trans = markingBundle();
    expect(serverSentence('step_budget', { steps: 1 }, trans)).toBe(
      '«Stopped at the step budget (1 step); the last step ran without errors.»'
    );
    expect(trans.asked).toHaveLength(1);
  });

  it.each([
    ['no code (an older server)', { message: 'Answered.' }],
    ['an unknown code', { message: 'New words.', code: 'newer_code' }],
    [
      'a missing parameter',
      { message: 'Stopped.', code: 'step_budget', params: {} }
    ],
    [
      'a count that is not a number',
      { message: 'Stopped.', code: 'step_budget', params: { steps: 'two' } }
    ],
    [
      'an unknown nested code',
      {
        message: 'Still failing.',
        code: 'still_failing',
        params: { attempts: 1, problem: { code: 'newer_code' } }
      }
    ],
    [
      'params that are not an object',
      {
        message: 'Fixed.',
        code: 'fixed',
        params: 'x' as unknown as ServerParams
      }
    ]
  ])('falls back to the English for %s', (_, said) => {
    expect(serverText(said)).toBeNull();
  });

  it('shows words with a known code translated, others as they are', () => {
    const trans = markingBundle();
    expect(
      serverWords('load failed', { code: 'engine_load_failed' }, trans)
    ).toBe('«load failed»');
    expect(serverWords('warming up', { code: 'newer_code' }, trans)).toBe(
      'warming up'
    );
    expect(serverWords('RuntimeError: out of memory', null, trans)).toBe(
      'RuntimeError: out of memory'
    );
    expect(serverWords('waiting', undefined, trans)).toBe('waiting');
  });

  it('translates a notice with its code', () => {
    const said = serverText({
      message: 'messages must be JSON objects',
      code: 'not_json'
    });
    const notice: ChatText = {
      code: 'server-reported',
      detail: 'messages must be JSON objects',
      said: said!
    };
    expect(chatText(notice, markingBundle())).toBe(
      '«The server reported: «messages must be JSON objects»»'
    );
  });
});

describe("the server's words in the panel", () => {
  /** The chat after a request was asked and the server said this of it. */
  async function told(message: (id: string) => ServerMessage) {
    const { connection, model, id } = await startedRequest();
    connection.receive(message(id));
    return model;
  }

  it('keeps the code of a done for the view, the English for the history', async () => {
    const model = await told(id => ({
      type: 'done',
      id,
      status: 'failed',
      turns: 3,
      message:
        'Still failing after 3 attempts: ZeroDivisionError: division by zero',
      code: 'still_failing',
      params: { attempts: 3, problem: 'ZeroDivisionError: division by zero' },
      final_code: null
    }));
    const view = model.thread!.requests[0];
    expect(view.message).toBe(
      'Still failing after 3 attempts: ZeroDivisionError: division by zero'
    );
    expect(chatText(view.messageText!, markingBundle())).toBe(
      '«Still failing after 3 attempts: ZeroDivisionError: division by zero»'
    );
  });

  it('shows the English of a done from an older server', async () => {
    const model = await told(id => ({
      type: 'done',
      id,
      status: 'error',
      turns: 0,
      message: 'The model is loading',
      final_code: null
    }));
    const view = model.thread!.requests[0];
    expect(view.message).toBe('The model is loading');
    expect(view.messageText).toBeNull();
  });

  it('translates a refused ask', async () => {
    const model = await told(id => ({
      type: 'error',
      id,
      message: 'the request is empty',
      code: 'empty_request',
      params: {}
    }));
    const view = model.thread!.requests[0];
    expect(view.status).toBe('error');
    expect(view.message).toBe('the request is empty');
    expect(chatText(view.messageText!, markingBundle())).toBe(
      '«the request is empty»'
    );
  });

  it('translates why a turn was not run', async () => {
    const model = await told(id => ({
      type: 'turn',
      id,
      turn: 1,
      state: 'skipped',
      step: 1,
      attempt: 2,
      evalue: 'not run: same as before',
      code: 'not_run_repeat',
      params: {}
    }));
    const turn = model.running!.turns[0];
    // The English stays with the turn (the history's); the view translates.
    expect(turn.evalue).toBe('not run: same as before');
    const chip = (
      await rendered(
        React.createElement(StateChip, { turn, trans: markingBundle() })
      )
    ).querySelector('[data-oci-turn-state="skipped"]')!;
    expect(chip.textContent).toBe('«not run: same as before»');
    expect(chip.getAttribute('title')).toBe('«not run: same as before»');
  });

  it('shows the English of a skipped turn it cannot translate', async () => {
    const model = await told(id => ({
      type: 'turn',
      id,
      turn: 1,
      state: 'skipped',
      evalue: 'not run: too late',
      code: 'newer_code',
      params: {}
    }));
    const turn = model.running!.turns[0];
    expect(turn.evalueText).toBeUndefined();
    const chip = await rendered(
      React.createElement(StateChip, { turn, trans: markingBundle() })
    );
    expect(chip.textContent).toBe('not run: too late');
  });

  it('translates a past skipped turn by the code its record kept', () => {
    const turn = (extra: object) =>
      fromHistory({
        id: 'r1',
        mode: 'chat',
        prompt: 'p',
        started: 1700000000,
        status: 'success',
        message: 'Answered.',
        turns: [
          {
            turn: 1,
            reply: 'x',
            code: 'name = input()',
            outcome: null,
            feedback: null,
            skipped: 'not run: asks for input()',
            ...extra
          }
        ]
      }).turns[0];
    const coded = turn({ skipped_code: 'not_run_input', skipped_params: {} });
    expect(coded.state).toBe('skipped');
    expect(chatText(coded.evalueText!, markingBundle())).toBe(
      '«not run: asks for input()»'
    );
    // Older records: the English only.
    expect(turn({}).evalueText).toBeUndefined();
    expect(turn({ skipped_code: '' }).evalueText).toBeUndefined();
  });

  it('translates a past request by the code its record kept', () => {
    const past = (extra: Partial<IHistoryRequest>): IHistoryRequest => ({
      id: 'r1',
      mode: 'chat',
      prompt: 'p',
      started: 1700000000,
      status: 'success',
      message: 'Stopped at the reply budget (8 replies).',
      turns: [],
      ...extra
    });
    expect(
      fromHistory(past({ code: 'reply_budget', params: { replies: 8 } }))
        .messageText
    ).toEqual({
      code: 'server',
      server: 'reply_budget',
      params: { replies: 8 }
    });
    // Older records: no code; a record with none: "".
    expect(fromHistory(past({})).messageText).toBeNull();
    expect(fromHistory(past({ code: '', params: {} })).messageText).toBeNull();
  });
});
