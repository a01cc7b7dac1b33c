/**
 * The chat's own words as codes: the view's text goes through the
 * translator, whole sentences with their parameters; the English text (for
 * the model and the history) comes from the same table.
 */
import * as React from 'react';

import {
  ChatText,
  chatText,
  englishText,
  KernelProblem,
  slots,
  withNodes
} from '../chat/texts';
import { KernelUnavailable } from '../notebook';
import { markingBundle } from './fakes';

const ALL: ChatText[] = [
  { code: 'stopped' },
  { code: 'not-connected' },
  { code: 'connection-lost' },
  { code: 'notebook-unreadable', detail: 'boom' },
  { code: 'server-reported', detail: 'too many requests' },
  { code: 'no-run-reply', detail: 'socket closed' },
  { code: 'not-run', budget: 'steps' },
  { code: 'not-run', budget: null },
  ...(
    [
      'notebook-closed',
      'no-kernel',
      'no-kernel-to-ask',
      'no-kernel-to-run',
      'kernel-dead',
      'died-while-running',
      'restarted-while-running',
      'died-before-run',
      'restarted-before-run',
      'kernel-cancelled'
    ] as KernelProblem[]
  ).map(problem => ({ code: 'kernel', problem }) as ChatText)
];

describe('chatText', () => {
  it('translates every code as one whole sentence, parameters in it', () => {
    for (const text of ALL) {
      const trans = markingBundle();
      const shown = chatText(text, trans);
      expect(trans.asked).toHaveLength(1);
      expect(shown).toMatch(/^«[^«»]+»$/);
      expect(shown).toBe(`«${englishText(text)}»`);
    }
  });

  it('puts the parameters into the sentence', () => {
    expect(
      chatText(
        { code: 'server-reported', detail: 'too many requests' },
        markingBundle()
      )
    ).toBe('«The server reported: too many requests»');
    expect(englishText({ code: 'not-run', budget: 'attempts' })).toBe(
      'not run: over the attempt budget'
    );
  });

  it('gives distinct sentences to distinct codes', () => {
    const english = ALL.map(englishText);
    expect(new Set(english).size).toBe(english.length);
  });
});

describe('KernelUnavailable', () => {
  it('carries its code for the view and the English for the model', () => {
    const error = new KernelUnavailable('kernel-dead');
    expect(error.name).toBe('KernelUnavailable');
    expect(error.text).toEqual({ code: 'kernel', problem: 'kernel-dead' });
    expect(error.message).toBe(
      'The kernel is dead. Restart it (Kernel › Restart Kernel…) and ask again.'
    );
  });
});

/** What `withNodes` put in its fragments, in order, empty text left out. */
function contents(nodes: React.ReactNode[]): React.ReactNode[] {
  return nodes
    .map(node => (node as React.ReactElement).props.children)
    .filter(child => child !== '');
}

describe('withNodes', () => {
  it('puts elements where the translated sentence has them', () => {
    // A language that puts the key after the verb.
    const reordered = '%2 then %1'.replace(
      /%(\d+)/g,
      (_, n) => slots(2)[Number(n) - 1]
    );
    const kbd = React.createElement('kbd', null, 'Enter');
    expect(contents(withNodes(reordered, kbd, 7))).toEqual([7, ' then ', kbd]);
  });

  it('leaves a sentence without slots as it is', () => {
    expect(contents(withNodes('plain text'))).toEqual(['plain text']);
  });
});
