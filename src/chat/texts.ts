/**
 * What the chat says in its own words (not the server's or the kernel's),
 * as a code and its parameters. The chat model and the executor keep codes;
 * the view translates them with `chatText`. The same table gives the English
 * text that goes to the model and into the history (`englishText`), so a
 * sentence is written once and always whole.
 */
import { nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { BudgetName } from './protocol';

/** Why the code could not run in the notebook's kernel. */
export type KernelProblem =
  | 'notebook-closed'
  | 'no-kernel'
  | 'no-kernel-to-ask'
  | 'no-kernel-to-run'
  | 'kernel-dead'
  | 'died-while-running'
  | 'restarted-while-running'
  | 'died-before-run'
  | 'restarted-before-run'
  | 'kernel-cancelled';

export type ChatText =
  | { code: 'stopped' }
  | { code: 'not-connected' }
  | { code: 'connection-lost' }
  /** The notebook could not be read for the request (the reason). */
  | { code: 'notebook-unreadable'; detail: string }
  /** An error of the server, not of one request (its words). */
  | { code: 'server-reported'; detail: string }
  | { code: 'kernel'; problem: KernelProblem }
  /** The run's reply never came (the reason). */
  | { code: 'no-run-reply'; detail: string }
  /** Code a budget kept from running, or null for none named. */
  | { code: 'not-run'; budget: BudgetName | null };

/** The text of a chat code in the user's language. */
export function chatText(text: ChatText, trans: TranslationBundle): string {
  switch (text.code) {
    case 'stopped':
      return trans.__('Stopped.');
    case 'not-connected':
      return trans.__('Not connected to the server.');
    case 'connection-lost':
      return trans.__(
        'The connection to the server was lost; the request ended.'
      );
    case 'notebook-unreadable':
      return trans.__('Could not read the notebook: %1', text.detail);
    case 'server-reported':
      return trans.__('The server reported: %1', text.detail);
    case 'no-run-reply':
      return trans.__('The run ended without a reply (%1).', text.detail);
    case 'kernel':
      return kernelText(text.problem, trans);
    case 'not-run':
      return notRunText(text.budget, trans);
  }
}

/** The English text of a chat code: what the model and the history read. */
export function englishText(text: ChatText): string {
  return chatText(text, ENGLISH);
}

const ENGLISH = nullTranslator.load('oci_jupyter');

function kernelText(problem: KernelProblem, trans: TranslationBundle): string {
  switch (problem) {
    case 'notebook-closed':
      return trans.__('The notebook was closed.');
    case 'no-kernel':
      return trans.__(
        'The notebook has no kernel. Select one (Kernel › Change Kernel…) and ask again.'
      );
    case 'no-kernel-to-ask':
      return trans.__('The notebook has no kernel.');
    case 'no-kernel-to-run':
      return trans.__('The cell could not run: the notebook has no kernel.');
    case 'kernel-dead':
      return trans.__(
        'The kernel is dead. Restart it (Kernel › Restart Kernel…) and ask again.'
      );
    case 'died-while-running':
      return trans.__('The kernel died while the code ran.');
    case 'restarted-while-running':
      return trans.__('The kernel restarted while the code ran.');
    case 'died-before-run':
      return trans.__('The kernel died before the cell was run.');
    case 'restarted-before-run':
      return trans.__('The kernel restarted before the cell was run.');
    case 'kernel-cancelled':
      return trans.__('The cell did not run: the kernel cancelled it.');
  }
}

function notRunText(
  budget: BudgetName | null,
  trans: TranslationBundle
): string {
  switch (budget) {
    case 'steps':
      return trans.__('not run: over the step budget');
    case 'attempts':
      return trans.__('not run: over the attempt budget');
    case 'replies':
      return trans.__('not run: over the reply budget');
    default:
      return trans.__('not run');
  }
}

const SLOT_MARK = '\u2063';
const SLOT_PATTERN = new RegExp(`${SLOT_MARK}(\\d+)${SLOT_MARK}`);

/**
 * Stand-ins for the elements of a sentence, as the parameters of its
 * translation: `trans.__('%1 sends', ...slots(1))`, then `withNodes`. The
 * sentence is translated whole and a language puts the elements where its
 * word order needs them.
 */
export function slots(count: number): string[] {
  return Array.from(
    { length: count },
    (_, i) => `${SLOT_MARK}${i}${SLOT_MARK}`
  );
}

/** A sentence translated with `slots`, its stand-ins replaced by the nodes. */
export function withNodes(
  sentence: string,
  ...nodes: React.ReactNode[]
): React.ReactNode[] {
  // split with a capturing group: text, slot index, text, slot index, ...
  return sentence
    .split(SLOT_PATTERN)
    .map((part, index) =>
      React.createElement(
        React.Fragment,
        { key: index },
        index % 2 === 1 ? nodes[Number(part)] : part
      )
    );
}
