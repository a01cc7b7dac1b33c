/**
 * What the chat says in its own words (not the kernel's), as a code and its
 * parameters. The chat model and the executor keep codes; the view
 * translates them with `chatText`. The same table gives the English text
 * that goes to the model and into the history (`englishText`), so a
 * sentence is written once and always whole.
 *
 * The server's own words (`done` and `error`, why a turn's code was not
 * run, the model's status) are codes too: `serverText` keeps a known one,
 * `serverSentence` translates it, `serverWords` shows one with its English
 * fallback. Their English is oci_jupyter/texts.py's, word for word
 * (tests/server_texts.json holds every code's English; both test suites
 * check against it).
 */
import { nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import {
  BudgetName,
  IServerSaid,
  IServerText,
  ServerParam,
  ServerParams
} from './protocol';

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
  /** An error of the server, not of one request (its words, and its code). */
  | { code: 'server-reported'; detail: string; said?: ChatText }
  | { code: 'kernel'; problem: KernelProblem }
  /** The run's reply never came (the reason). */
  | { code: 'no-run-reply'; detail: string }
  /** Code a budget kept from running, or null for none named. */
  | { code: 'not-run'; budget: BudgetName | null }
  /** A sentence of the server's (see `serverText`). */
  | { code: 'server'; server: ServerCode; params: ServerParams };

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
      return say(
        trans,
        'The server reported: %1',
        text.said ? chatText(text.said, trans) : text.detail
      );
    case 'no-run-reply':
      return trans.__('The run ended without a reply (%1).', text.detail);
    case 'kernel':
      return kernelText(text.problem, trans);
    case 'not-run':
      return notRunText(text.budget, trans);
    case 'server':
      return serverSentence(text.server, text.params, trans);
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

// ---- the server's words

/** The codes of oci_jupyter/texts.py, in its order. */
export const SERVER_CODES = [
  'ran_ok',
  'answered',
  'fixed',
  'changed',
  'no_fixed_code',
  'no_code',
  'interrupted',
  'cancelled',
  'stopped',
  'keyboard_interrupt',
  'stopped_because',
  'kernel_gone',
  'kernel_unavailable',
  'kernel_error',
  'model_error',
  'step_budget',
  'attempt_budget',
  'reply_budget',
  'reply_budget_ran_ok',
  'still_failing',
  'still_failing_in_step',
  'asks_input',
  'repeated_failure',
  'unchanged_cell',
  'fix_needs_cell',
  'edit_needs_cell',
  'edit_needs_instruction',
  'empty_request',
  'too_many_requests',
  'busy_here',
  'busy_elsewhere',
  'model_idle',
  'model_loading',
  'model_stopped',
  'model_failed',
  'model_not_ready',
  'prompt_too_long',
  'internal_error',
  'not_json',
  'message_too_big',
  'unknown_type',
  'invalid_message',
  'already_running',
  'not_run_input',
  'not_run_repeat',
  'not_run_already_ran',
  'not_run_unchanged',
  'not_final_unchecked',
  'not_final_unread',
  'engine_starting',
  'engine_verifying',
  'engine_contacting_hub',
  'engine_downloading',
  'engine_assembling',
  'engine_loading_llamacpp',
  'engine_importing_vllm',
  'engine_starting_vllm',
  'engine_reading_config',
  'engine_asking_models',
  'engine_load_cancelled',
  'engine_load_failed',
  'engine_restart_stopping',
  'engine_restart_releasing',
  'engine_restart_cancelled',
  'engine_restart_failed',
  'engine_died',
  'engine_shut_down',
  'engine_died_because',
  'restart_while_loading'
] as const;

export type ServerCode = (typeof SERVER_CODES)[number];

const KNOWN_CODES: ReadonlySet<string> = new Set(SERVER_CODES);

/**
 * The server's words as a code the view translates, or null when it has to
 * show the English `message` as it is: no code (an older server), a code
 * this client does not know (a newer server), or parameters that do not fit
 * the sentence, nested sentences included.
 */
export function serverText(said: IServerSaid): ChatText | null {
  const { code, params } = said;
  if (typeof code !== 'string' || !KNOWN_CODES.has(code)) {
    return null;
  }
  if (params !== undefined && (typeof params !== 'object' || params === null)) {
    return null;
  }
  const text: ChatText = {
    code: 'server',
    server: code as ServerCode,
    params: params ?? {}
  };
  try {
    serverSentence(text.server, text.params, ENGLISH);
  } catch {
    return null; // a parameter missing or of the wrong kind
  }
  return text;
}

/**
 * Words of the server in the user's language: the sentence `said` when this
 * client knows it, else the server's English `message` as it is.
 */
export function serverWords(
  message: string,
  said: IServerText | null | undefined,
  trans: TranslationBundle
): string {
  const text = said ? serverText({ message, ...said }) : null;
  return text ? chatText(text, trans) : message;
}

/** A parameter the sentence needs is missing or not of its kind. */
class UnfitParams extends Error {}

/**
 * A server sentence in the user's language. The parameters go in after the
 * translation (`slots`, `fill`): they are someone else's words, not a
 * format, so a `%` in them stays as it is.
 */
export function serverSentence(
  code: ServerCode,
  params: ServerParams,
  trans: TranslationBundle
): string {
  /** A parameter as words: a nested sentence translated. */
  const words = (name: string): string => {
    const value: ServerParam | undefined = params[name];
    if (typeof value === 'string' || typeof value === 'number') {
      return String(value);
    }
    if (
      typeof value === 'object' &&
      value !== null &&
      typeof value.code === 'string' &&
      KNOWN_CODES.has(value.code)
    ) {
      return serverSentence(
        value.code as ServerCode,
        value.params ?? {},
        trans
      );
    }
    throw new UnfitParams(`${code}: ${name}`);
  };
  /** A parameter that is a count. */
  const count = (name: string): number => {
    const value = params[name];
    if (typeof value !== 'number') {
      throw new UnfitParams(`${code}: ${name}`);
    }
    return value;
  };
  const sayN = (
    one: string,
    other: string,
    n: number,
    ...values: string[]
  ): string => fill(trans._n(one, other, n, ...slots(values.length)), values);
  switch (code) {
    case 'ran_ok':
      return trans.__('The code ran without errors.');
    case 'answered':
      return trans.__('Answered.');
    case 'fixed':
      return trans.__('Fixed.');
    case 'changed':
      return trans.__('Changed.');
    case 'no_fixed_code':
      return trans.__('The model stopped without fixed code.');
    case 'no_code':
      return trans.__("The model's reply has no code.");
    case 'interrupted':
      return trans.__('The run was interrupted.');
    case 'cancelled':
      return trans.__('Cancelled.');
    case 'stopped':
      return trans.__('Stopped.');
    case 'keyboard_interrupt':
      return trans.__('Interrupted.');
    // Someone else's words only (the caller's, the kernel's, the engine's):
    // no sentence of ours to translate around them.
    case 'stopped_because':
      return words('reason');
    case 'kernel_error':
    case 'model_error':
      return words('error');
    case 'kernel_gone':
      return trans.__('The kernel is gone.');
    case 'kernel_unavailable':
      return trans.__('The kernel is unavailable.');
    case 'step_budget':
      return sayN(
        'Stopped at the step budget (%1 step); the last step ran without errors.',
        'Stopped at the step budget (%1 steps); the last step ran without errors.',
        count('steps')
      );
    case 'attempt_budget':
      return sayN(
        'Stopped at the attempt budget (%1 attempt in a cell).',
        'Stopped at the attempt budget (%1 attempts in a cell).',
        count('attempts')
      );
    case 'reply_budget':
      return sayN(
        'Stopped at the reply budget (%1 reply).',
        'Stopped at the reply budget (%1 replies).',
        count('replies')
      );
    case 'reply_budget_ran_ok':
      return sayN(
        'Stopped at the reply budget (%1 reply); the last step ran without errors.',
        'Stopped at the reply budget (%1 replies); the last step ran without errors.',
        count('replies')
      );
    case 'still_failing':
      return sayN(
        'Still failing after %1 attempt: %2',
        'Still failing after %1 attempts: %2',
        count('attempts'),
        words('problem')
      );
    case 'still_failing_in_step':
      return sayN(
        'Still failing after %1 attempt in step %2: %3',
        'Still failing after %1 attempts in step %2: %3',
        count('attempts'),
        words('step'),
        words('problem')
      );
    case 'asks_input':
      return trans.__('The code asks for input().');
    case 'repeated_failure':
      return say(
        trans,
        'The model repeated code that failed (%1).',
        words('problem')
      );
    case 'unchanged_cell':
      return trans.__('The model gave the cell back unchanged.');
    case 'fix_needs_cell':
      return trans.__('a fix needs the failing cell');
    case 'edit_needs_cell':
      return trans.__('an edit needs the cell to change');
    case 'edit_needs_instruction':
      return trans.__(
        'an edit needs an instruction: say how to change the cell'
      );
    case 'empty_request':
      return trans.__('the request is empty');
    case 'too_many_requests':
      return sayN(
        'at most %1 request can run at once on one connection',
        'at most %1 requests can run at once on one connection',
        count('count')
      );
    case 'busy_here':
      return trans.__(
        'A request is already running in this notebook: stop it or wait for it to finish.'
      );
    case 'busy_elsewhere':
      return trans.__(
        'A request is already running in this notebook (in another tab or window): stop it there or wait for it to finish.'
      );
    case 'model_idle':
      return trans.__('The model is idle');
    case 'model_loading':
      return trans.__('The model is loading');
    case 'model_stopped':
      return trans.__('The model is stopped');
    case 'model_failed':
      return say(trans, 'The model failed: %1', words('error'));
    case 'model_not_ready':
      return trans.__('The model is not ready');
    case 'prompt_too_long':
      return say(trans, 'The request is too long: %1', words('error'));
    case 'internal_error':
      // An exception's type and message, both as Python wrote them.
      return `${words('name')}: ${words('error')}`;
    case 'not_json':
      return trans.__('messages must be JSON objects');
    case 'message_too_big':
      return say(
        trans,
        'message over %1 bytes (send less context)',
        words('limit')
      );
    case 'unknown_type':
      return say(trans, 'unknown message type %1', words('type'));
    case 'invalid_message':
      return say(
        trans,
        'invalid %1: %2: %3',
        words('kind'),
        words('field'),
        words('problem')
      );
    case 'already_running':
      return say(trans, 'request %1 is already running', words('id'));
    case 'not_run_input':
      return trans.__('not run: asks for input()');
    case 'not_run_repeat':
      return trans.__('not run: same as before');
    case 'not_run_already_ran':
      return trans.__('not run: already ran');
    case 'not_run_unchanged':
      return trans.__('not run: the cell unchanged');
    case 'not_final_unchecked':
      return trans.__('not final: states a number no run printed');
    case 'not_final_unread':
      return trans.__('not final: the last run printed nothing');
    // What the engine is doing: a status line, not a sentence.
    case 'engine_starting':
      return trans.__('starting');
    case 'engine_verifying':
      return say(trans, 'verifying %1', words('file'));
    case 'engine_contacting_hub':
      return say(trans, 'contacting the hub for %1', words('file'));
    case 'engine_downloading':
      return say(trans, 'downloading %1', words('file'));
    case 'engine_assembling':
      return say(trans, 'assembling %1', words('file'));
    case 'engine_loading_llamacpp':
      return say(trans, 'loading %1 into llama.cpp', words('file'));
    case 'engine_importing_vllm':
      return trans.__('importing vLLM');
    case 'engine_starting_vllm':
      return say(
        trans,
        'starting vLLM on %1: loading %2, profiling memory and allocating the KV cache',
        words('device'),
        words('model')
      );
    case 'engine_reading_config':
      return trans.__('reading the tokenizer and model config');
    case 'engine_asking_models':
      return say(trans, 'asking %1 for its models', words('url'));
    case 'engine_load_cancelled':
      return trans.__('load cancelled');
    case 'engine_load_failed':
      return trans.__('load failed');
    case 'engine_restart_stopping':
      return trans.__('restarting: stopping running requests');
    case 'engine_restart_releasing':
      return trans.__('restarting: releasing the model');
    case 'engine_restart_cancelled':
      return trans.__('restart cancelled');
    case 'engine_restart_failed':
      return trans.__('restart failed');
    case 'engine_died':
      return trans.__('engine died');
    case 'engine_shut_down':
      return trans.__('shut down');
    case 'engine_died_because':
      return say(
        trans,
        'The %1 engine died: %2; restart the model from the panel.',
        words('engine'),
        words('reason')
      );
    case 'restart_while_loading':
      return trans.__(
        'The model is loading; a restart is possible once it is ready or has failed.'
      );
  }
}

/**
 * `trans.__(msgid, ...values)` with the values put in after the translation
 * (see `serverSentence`).
 */
function say(
  trans: TranslationBundle,
  msgid: string,
  ...values: string[]
): string {
  return fill(trans.__(msgid, ...slots(values.length)), values);
}

/** A sentence translated with `slots`, its stand-ins replaced by the words. */
function fill(sentence: string, values: string[]): string {
  return sentence
    .split(SLOT_PATTERN)
    .map((part, index) => (index % 2 === 1 ? values[Number(part)] : part))
    .join('');
}
