/**
 * One request as the chat shows it: the user's words, each attempt (the
 * model's reply and what became of its code), and how it ended.
 */
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { Markdown, useThrottled } from './markdown';
import { IRequestView, ITurnView, RequestStatus, TurnViewState } from './model';

function chipLabel(
  turn: Pick<ITurnView, 'state' | 'ename' | 'evalue'>,
  trans: TranslationBundle
): string {
  switch (turn.state) {
    case 'generating':
      return trans.__('generating');
    case 'executing':
      return trans.__('running');
    case 'waiting':
      return trans.__('run the cell');
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
      // The server says why ("not run: same as before").
      return turn.evalue || trans.__('not run');
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
  turn: Pick<ITurnView, 'state' | 'ename' | 'evalue' | 'seconds'>;
  trans: TranslationBundle;
}): JSX.Element {
  const { turn, trans } = props;
  const seconds =
    turn.seconds !== null && (turn.state === 'ok' || turn.state === 'error')
      ? ` · ${formatSeconds(turn.seconds)}`
      : '';
  return (
    <span
      className={`jp-OciChat-chip jp-mod-${turn.state}`}
      data-oci-turn-state={turn.state}
      title={
        turn.evalue
          ? turn.ename
            ? `${turn.ename}: ${turn.evalue}`
            : turn.evalue
          : undefined
      }
    >
      {chipLabel(turn, trans)}
      {seconds && <span className="jp-OciChat-chipTime">{seconds}</span>}
    </span>
  );
}

function formatSeconds(seconds: number): string {
  if (seconds < 1) {
    return `${Math.max(1, Math.round(seconds * 1000))} ms`;
  }
  return seconds < 10 ? `${seconds.toFixed(1)} s` : `${Math.round(seconds)} s`;
}

const LIVE_STATES: ReadonlySet<TurnViewState> = new Set([
  'generating',
  'executing',
  'waiting',
  'reviewing'
]);

/** While a reply streams, its markdown is re-rendered at most this often. */
const STREAM_RENDER_MS = 150;

function TurnItem(props: {
  requestId: string;
  turn: ITurnView;
  showNumber: boolean;
  onRevealCell: (requestId: string) => void;
  rendermime: IRenderMimeRegistry;
  trans: TranslationBundle;
}): JSX.Element {
  const { requestId, turn, rendermime, trans } = props;
  const streaming = !turn.complete;
  const source = useThrottled(turn.reply, STREAM_RENDER_MS, streaming);
  // For the latency measurement: when the first words are on screen.
  const marked = React.useRef(false);
  const onRendered = (shown: string) => {
    if (!marked.current && shown.length > 0) {
      marked.current = true;
      performance.mark('oci:first-token', {
        detail: { id: requestId, turn: turn.turn }
      });
    }
  };
  return (
    <li
      className="jp-OciChat-turn"
      data-oci-turn={turn.turn}
      data-oci-turn-state={turn.state}
      aria-busy={LIVE_STATES.has(turn.state)}
    >
      <div className="jp-OciChat-turnHeader">
        {props.showNumber && (
          <span className="jp-OciChat-turnNumber">
            {trans.__('Attempt %1', turn.turn)}
          </span>
        )}
        <StateChip turn={turn} trans={trans} />
      </div>
      {source.length > 0 && (
        <div className={streaming ? 'jp-OciChat-streaming' : undefined}>
          <Markdown
            source={source}
            rendermime={rendermime}
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
      {turn.state === 'error' && turn.evalue && (
        <pre className="jp-OciErrorText jp-OciChat-error">
          {turn.ename}: {turn.evalue}
        </pre>
      )}
      {turn.state === 'waiting' && (
        <p className="jp-OciChat-waiting">
          {trans.__(
            'The code is in the notebook. Run its cell (Shift+Enter) when you are ready; the chat goes on with the result.'
          )}{' '}
          <button
            type="button"
            className="jp-OciChat-link"
            onClick={() => props.onRevealCell(requestId)}
          >
            {trans.__('Show cell')}
          </button>
        </p>
      )}
    </li>
  );
}

function endLabel(
  status: RequestStatus,
  turns: number,
  trans: TranslationBundle
): string {
  const attempts = trans._n('%1 attempt', '%1 attempts', turns);
  switch (status) {
    case 'success':
      return trans.__('Worked · %1', attempts);
    case 'failed':
      return trans.__('Not fixed · %1', attempts);
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

export function RequestItem(props: {
  request: IRequestView;
  hasCell: boolean;
  onRevealCell: (requestId: string) => void;
  rendermime: IRenderMimeRegistry;
  trans: TranslationBundle;
}): JSX.Element {
  const { request, rendermime, trans } = props;
  const running = request.status === 'running';
  const showNumbers = request.turns.length > 1;
  return (
    <article
      className="jp-OciChat-request"
      data-oci-request={request.id}
      data-oci-status={request.status}
    >
      <div className="jp-OciChat-user">
        {request.refines && (
          <span className="jp-OciChat-refines">
            {trans.__('Refining %1', request.refines)}
          </span>
        )}
        <div className="jp-OciChat-prompt">{request.prompt}</div>
      </div>
      {request.turns.length > 0 && (
        <ol className="jp-OciChat-turns">
          {request.turns.map(turn => (
            <TurnItem
              key={turn.turn}
              requestId={request.id}
              turn={turn}
              showNumber={showNumbers}
              onRevealCell={props.onRevealCell}
              rendermime={rendermime}
              trans={trans}
            />
          ))}
        </ol>
      )}
      {running && request.turns.length === 0 && (
        <div className="jp-OciChat-pending">
          <span className="jp-OciChat-dots" aria-hidden="true" />
          {request.stopping
            ? trans.__('Stopping…')
            : trans.__('Reading the notebook…')}
        </div>
      )}
      {running && request.stopping && request.turns.length > 0 && (
        <div className="jp-OciChat-pending">{trans.__('Stopping…')}</div>
      )}
      {!running && (
        <footer
          className={`jp-OciChat-end jp-mod-${request.status}`}
          data-oci-end={request.status}
        >
          <span className="jp-OciChat-endLabel">
            {endLabel(request.status, request.turns.length, trans)}
          </span>
          {request.message && request.status !== 'success' && (
            <span className="jp-OciChat-endMessage">{request.message}</span>
          )}
          {props.hasCell && (
            <button
              type="button"
              className="jp-OciChat-link"
              onClick={() => props.onRevealCell(request.id)}
            >
              {trans.__('Show cell')}
            </button>
          )}
        </footer>
      )}
    </article>
  );
}
