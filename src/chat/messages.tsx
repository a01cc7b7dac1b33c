/**
 * One request as the chat shows it: the user's words, its steps (each a
 * cell, with the attempts at it: the model's reply and what became of its
 * code), the model's answer, and how it ended.
 */
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { Markdown, useThrottled } from './markdown';
import { IRequestView, IStepCell, ITurnView, TurnViewState } from './model';
import { BudgetName } from './protocol';
import { chatText, slots, withNodes } from './texts';

function chipLabel(
  turn: Pick<ITurnView, 'state' | 'ename' | 'evalue' | 'evalueText' | 'review'>,
  trans: TranslationBundle
): string {
  switch (turn.state) {
    case 'generating':
      return trans.__('generating');
    case 'executing':
      return trans.__('running');
    case 'queued':
      return trans.__('waiting');
    case 'waiting':
      return turn.review
        ? trans.__('review, then run')
        : trans.__('run the cell');
    case 'reviewing':
      return trans.__('review the fix');
    case 'ok':
      return trans.__('ok');
    case 'error':
      return turn.ename || trans.__('error');
    case 'timeout':
      return trans.__('timeout');
    case 'cancelled':
      return trans.__('cancelled');
    case 'skipped':
      // The server says why ("not run: same as before"), or the browser.
      return turn.evalueText
        ? chatText(turn.evalueText, trans)
        : turn.evalue || trans.__('not run');
    case 'reply':
      return trans.__('no code');
    default:
      return turn.state;
  }
}

/**
 * The state of one attempt. `data-oci-turn-state` is what tests (and
 * styles) key on; the text is for people.
 */
export function StateChip(props: {
  turn: Pick<
    ITurnView,
    'state' | 'ename' | 'evalue' | 'evalueText' | 'seconds' | 'review'
  >;
  trans: TranslationBundle;
}): JSX.Element {
  const { turn, trans } = props;
  const seconds =
    turn.seconds !== null && (turn.state === 'ok' || turn.state === 'error')
      ? ` · ${formatSeconds(turn.seconds, trans)}`
      : '';
  const evalue = turn.evalueText
    ? chatText(turn.evalueText, trans)
    : turn.evalue;
  return (
    <span
      className={`jp-OciChat-chip jp-mod-${turn.state}`}
      data-oci-turn-state={turn.state}
      title={
        evalue ? (turn.ename ? `${turn.ename}: ${evalue}` : evalue) : undefined
      }
    >
      {chipLabel(turn, trans)}
      {seconds && <span className="jp-OciChat-chipTime">{seconds}</span>}
    </span>
  );
}

function formatSeconds(seconds: number, trans: TranslationBundle): string {
  if (seconds < 1) {
    return trans.__('%1 ms', Math.max(1, Math.round(seconds * 1000)));
  }
  return trans.__(
    '%1 s',
    seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)
  );
}

const LIVE_STATES: ReadonlySet<TurnViewState> = new Set([
  'generating',
  'executing',
  'queued',
  'waiting',
  'reviewing'
]);

/** While a reply streams, its markdown is re-rendered at most this often. */
const STREAM_RENDER_MS = 150;

function TurnItem(props: {
  requestId: string;
  turn: ITurnView;
  /** "Attempt 2", or null for none. */
  label: string | null;
  onRevealCell: (requestId: string, step?: number) => void;
  rendermime: IRenderMimeRegistry;
  trans: TranslationBundle;
}): JSX.Element {
  const { requestId, turn, rendermime, trans } = props;
  const streaming = !turn.complete;
  const source = useThrottled(turn.reply, STREAM_RENDER_MS, streaming);
  return (
    <li
      className="jp-OciChat-turn"
      data-oci-turn={turn.turn}
      data-oci-turn-state={turn.state}
      aria-busy={LIVE_STATES.has(turn.state)}
    >
      <div className="jp-OciChat-turnHeader">
        {props.label && (
          <span className="jp-OciChat-turnNumber">{props.label}</span>
        )}
        <StateChip turn={turn} trans={trans} />
      </div>
      <Reply
        requestId={requestId}
        turn={turn.turn}
        source={source}
        streaming={streaming}
        rendermime={rendermime}
      />
      {turn.state === 'error' && turn.evalue && (
        <pre className="jp-OciErrorText jp-OciChat-error">
          {turn.ename}: {turn.evalue}
        </pre>
      )}
      {turn.state === 'generating' && !turn.reply && !!turn.modelAhead && (
        <p className="jp-OciChat-pending" data-oci-waiting-model="">
          <span className="jp-OciChat-dots" aria-hidden="true" />
          {trans._n(
            'Waiting for the model: %1 request ahead.',
            'Waiting for the model: %1 requests ahead.',
            turn.modelAhead
          )}
        </p>
      )}
      {turn.state === 'queued' && (
        <p className="jp-OciChat-waiting" data-oci-queued="">
          {turn.waitingFor
            ? trans.__(
                'Waiting for %1 to finish: the kernel runs one cell at a time. Stop leaves it running.',
                turn.waitingFor
              )
            : trans.__(
                'Waiting for the kernel to finish its current work. Stop leaves it running.'
              )}
        </p>
      )}
      {turn.note?.kind === 'moved' && (
        <p className="jp-OciChat-note" data-oci-note="moved">
          {trans.__(
            'You had edited %1, so it is kept as it is; this code went into a new cell below it.',
            turn.note.cell
          )}
        </p>
      )}
      {turn.note?.kind === 'edited' && (
        <p className="jp-OciChat-note" data-oci-note="edited">
          {trans.__(
            'You edited the code before it ran; the model was told what ran.'
          )}
        </p>
      )}
      {turn.state === 'waiting' && (
        <p
          className="jp-OciChat-waiting"
          data-oci-review={turn.review ? '' : undefined}
        >
          {turn.review
            ? trans.__(
                'Not run yet (this notebook is not trusted): read the code, then run it here or with Shift+Enter in its cell.'
              )
            : trans.__(
                'The code is in the notebook. Run its cell (Shift+Enter) when you are ready; the chat goes on with the result.'
              )}{' '}
          {turn.run && (
            <button
              type="button"
              className="jp-Button jp-mod-styled jp-mod-accept jp-OciChat-run"
              data-oci-run=""
              title={trans.__('Run this code in its cell, in your kernel')}
              onClick={() => turn.run?.()}
            >
              {trans.__('Run')}
            </button>
          )}{' '}
          <button
            type="button"
            className="jp-OciChat-link"
            onClick={() =>
              props.onRevealCell(requestId, turn.step || undefined)
            }
          >
            {trans.__('Show cell')}
          </button>
        </p>
      )}
    </li>
  );
}

/** A reply's words as markdown, with the typing dots while it streams. */
function Reply(props: {
  requestId: string;
  turn: number;
  source: string;
  streaming: boolean;
  rendermime: IRenderMimeRegistry;
  /** Leave the first-words mark (not for an answer shown again at the end). */
  measure?: boolean;
}): JSX.Element {
  const { source, streaming } = props;
  // For the latency measurement: when the first words are on screen.
  const marked = React.useRef(props.measure === false);
  const onRendered = (shown: string) => {
    if (!marked.current && shown.length > 0) {
      marked.current = true;
      performance.mark('oci:first-token', {
        detail: { id: props.requestId, turn: props.turn }
      });
    }
  };
  return (
    <>
      {source.length > 0 && (
        <div className={streaming ? 'jp-OciChat-streaming' : undefined}>
          <Markdown
            source={source}
            rendermime={props.rendermime}
            onRendered={onRendered}
          />
        </div>
      )}
      {streaming && (
        <span className="jp-OciChat-typing" aria-hidden="true">
          <span />
          <span />
          <span />
        </span>
      )}
    </>
  );
}

/** The attempts at one step's cell, under the cell's name. */
function StepItem(props: {
  request: IRequestView;
  step: number;
  turns: ITurnView[];
  cell: IStepCell | null;
  onRevealCell: (requestId: string, step?: number) => void;
  rendermime: IRenderMimeRegistry;
  trans: TranslationBundle;
}): JSX.Element {
  const { request, step, turns, cell, trans } = props;
  const numbered = turns.length > 1;
  const live = turns.some(t => LIVE_STATES.has(t.state));
  return (
    <section
      className={`jp-OciChat-step${live ? ' jp-mod-live' : ''}`}
      data-oci-step={step}
    >
      <header className="jp-OciChat-stepHeader">
        <span className="jp-OciChat-stepName">
          {request.mode === 'fix' || request.mode === 'edit'
            ? trans.__('Cell')
            : trans.__('Step %1', step)}
        </span>
        {cell && <span className="jp-OciChat-stepCell">{cell.label}</span>}
        {cell && (
          <button
            type="button"
            className="jp-OciChat-link jp-OciChat-stepReveal"
            onClick={() => props.onRevealCell(request.id, step)}
          >
            {trans.__('Show cell')}
          </button>
        )}
      </header>
      <ol className="jp-OciChat-turns">
        {turns.map((turn, index) => {
          // A reply whose code was not run again keeps its attempt's number.
          const repeat = index > 0 && turns[index - 1].attempt === turn.attempt;
          const label =
            numbered && turn.attempt > 0 && !repeat
              ? trans.__('Attempt %1', turn.attempt)
              : null;
          return (
            <TurnItem
              key={turn.turn}
              requestId={request.id}
              turn={turn}
              label={label}
              onRevealCell={props.onRevealCell}
              rendermime={props.rendermime}
              trans={trans}
            />
          );
        })}
      </ol>
    </section>
  );
}

type Segment =
  | { kind: 'step'; step: number; turns: ITurnView[] }
  | { kind: 'turn'; turn: ITurnView };

/**
 * The request's turns as the chat shows them: runs of turns of one step
 * grouped under it, turns without a step (a reply still streaming, an
 * answer) on their own. The final answer is taken out: it is shown at the
 * end, with how the request ended.
 */
export function layoutTurns(request: IRequestView): {
  segments: Segment[];
  answer: ITurnView | null;
} {
  const turns = [...request.turns];
  let answer: ITurnView | null = null;
  const last = turns[turns.length - 1];
  if (
    request.status !== 'running' &&
    last?.state === 'reply' &&
    last.step === 0
  ) {
    answer = last;
    turns.pop();
  }
  const segments: Segment[] = [];
  let previous: ITurnView | null = null;
  for (const turn of turns) {
    // A reply streaming after a failed run is that step's next attempt:
    // shown there at once rather than moved there when its code comes.
    const step =
      turn.step === 0 &&
      turn.state === 'generating' &&
      previous !== null &&
      previous.step > 0 &&
      (previous.state === 'error' || previous.state === 'timeout')
        ? previous.step
        : turn.step;
    const tail = segments[segments.length - 1];
    if (step > 0 && tail?.kind === 'step' && tail.step === step) {
      tail.turns.push(turn);
    } else if (step > 0) {
      segments.push({ kind: 'step', step, turns: [turn] });
    } else {
      segments.push({ kind: 'turn', turn });
    }
    previous = turn;
  }
  return { segments, answer };
}

function endLabel(request: IRequestView, trans: TranslationBundle): string {
  const tries = request.turns.filter(t => t.state !== 'reply').length;
  const attempts = trans._n('%1 attempt', '%1 attempts', tries);
  const counts =
    request.steps > 1
      ? `${trans._n('%1 step', '%1 steps', request.steps)} · ${attempts}`
      : attempts;
  switch (request.status) {
    case 'success':
      return trans.__('Worked · %1', counts);
    case 'failed':
      return trans.__('Not fixed · %1', counts);
    case 'no_code':
      return trans.__('Answered without code');
    case 'cancelled':
      return trans.__('Stopped');
    case 'error':
      return trans.__('Failed');
    default:
      return '';
  }
}

function budgetEnded(budget: BudgetName, trans: TranslationBundle): string {
  switch (budget) {
    case 'steps':
      return trans.__('stopped at the step budget');
    case 'attempts':
      return trans.__('stopped at the attempt budget');
    case 'replies':
      return trans.__('stopped at the reply budget');
  }
}

/**
 * "step 2/4 · attempt 1/3 · reply 3/8" while a request runs; each part's
 * `text` is its translated sentence, with slots for the count and the limit.
 */
export function budgetLine(
  request: IRequestView,
  trans: TranslationBundle
): { key: string; text: string; used: number; limit: number }[] {
  const { budgets } = request;
  const replies = request.turns.reduce((n, t) => Math.max(n, t.turn), 0);
  const parts = [];
  if (budgets.steps > 1) {
    parts.push({
      key: 'steps',
      text: trans.__('step %1/%2', ...slots(2)),
      used: Math.max(1, request.step),
      limit: budgets.steps
    });
  }
  parts.push({
    key: 'attempts',
    text: trans.__('attempt %1/%2', ...slots(2)),
    used: Math.max(1, request.attempt),
    limit: budgets.attempts
  });
  parts.push({
    key: 'replies',
    text: trans.__('reply %1/%2', ...slots(2)),
    used: Math.max(1, replies),
    limit: budgets.replies
  });
  return parts;
}

function Budgets(props: {
  request: IRequestView;
  trans: TranslationBundle;
}): JSX.Element {
  const parts = budgetLine(props.request, props.trans);
  return (
    <div
      className="jp-OciChat-budgets"
      data-oci-budgets=""
      title={props.trans.__(
        'Where this request stands, and how far it may go (Settings › OpenCodeInterpreter)'
      )}
    >
      {parts.map((part, index) => (
        <React.Fragment key={part.key}>
          {index > 0 && ' · '}
          <span
            className={`jp-OciChat-budget${part.used >= part.limit ? ' jp-mod-last' : ''}`}
            data-oci-budget-part={part.key}
          >
            {withNodes(part.text, <b>{part.used}</b>, part.limit)}
          </span>
        </React.Fragment>
      ))}
    </div>
  );
}

export function RequestItem(props: {
  request: IRequestView;
  /** The request's cell for a step, if it is still in the notebook. */
  stepCell: (step: number) => IStepCell | null;
  onRevealCell: (requestId: string, step?: number) => void;
  rendermime: IRenderMimeRegistry;
  trans: TranslationBundle;
}): JSX.Element {
  const { request, rendermime, trans } = props;
  const running = request.status === 'running';
  const { segments, answer } = layoutTurns(request);
  const answerText = answer ? request.answer || answer.reply : request.answer;
  // How it ended, in the user's language when the words came as a code.
  const endMessage = request.messageText
    ? chatText(request.messageText, trans)
    : request.message;
  return (
    <article
      className="jp-OciChat-request"
      data-oci-request={request.id}
      data-oci-status={request.status}
    >
      <div className="jp-OciChat-user">
        {request.refines && (
          <span className="jp-OciChat-refines">
            {request.mode === 'edit'
              ? trans.__('Changing %1', request.refines)
              : trans.__('Refining %1', request.refines)}
          </span>
        )}
        <div className="jp-OciChat-prompt">{request.prompt}</div>
      </div>
      {segments.map(segment =>
        segment.kind === 'step' ? (
          <StepItem
            key={`step-${segment.step}-${segment.turns[0].turn}`}
            request={request}
            step={segment.step}
            turns={segment.turns}
            cell={props.stepCell(segment.step)}
            onRevealCell={props.onRevealCell}
            rendermime={rendermime}
            trans={trans}
          />
        ) : (
          <ol
            className="jp-OciChat-turns jp-mod-loose"
            key={`turn-${segment.turn.turn}`}
          >
            <TurnItem
              requestId={request.id}
              turn={segment.turn}
              label={null}
              onRevealCell={props.onRevealCell}
              rendermime={rendermime}
              trans={trans}
            />
          </ol>
        )
      )}
      {running && request.turns.length === 0 && (
        <div className="jp-OciChat-pending">
          <span className="jp-OciChat-dots" aria-hidden="true" />
          {request.stopping
            ? trans.__('Stopping…')
            : trans.__('Reading the notebook…')}
        </div>
      )}
      {running && request.turns.length > 0 && (
        <Budgets request={request} trans={trans} />
      )}
      {running && request.stopping && request.turns.length > 0 && (
        <div className="jp-OciChat-pending">{trans.__('Stopping…')}</div>
      )}
      {!running && (
        <div
          className={`jp-OciChat-outcome jp-mod-${request.status}${answerText ? ' jp-mod-answered' : ''}`}
        >
          {answerText && (
            <div className="jp-OciChat-answer" data-oci-answer="">
              <Reply
                requestId={request.id}
                turn={answer?.turn ?? 0}
                source={answerText}
                streaming={false}
                rendermime={rendermime}
                measure={false}
              />
            </div>
          )}
          <footer
            className={`jp-OciChat-end jp-mod-${request.status}`}
            data-oci-end={request.status}
          >
            <span className="jp-OciChat-endLabel">
              {endLabel(request, trans)}
            </span>
            {request.budget && (
              <span
                className="jp-OciChat-budgetEnd"
                data-oci-budget={request.budget}
                title={endMessage || undefined}
              >
                {budgetEnded(request.budget, trans)}
              </span>
            )}
            {endMessage &&
              request.status !== 'success' &&
              request.status !== 'no_code' && (
                <span className="jp-OciChat-endMessage">{endMessage}</span>
              )}
          </footer>
        </div>
      )}
    </article>
  );
}
