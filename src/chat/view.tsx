/**
 * The chat: the current notebook's requests, newest at the bottom, and the
 * composer. Everything it shows comes from the chat model (IOciChatModel).
 */
import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { TranslationBundle } from '@jupyterlab/translation';
import { notebookIcon, UseSignal } from '@jupyterlab/ui-components';
import { ISignal } from '@lumino/signaling';
import * as React from 'react';

import { IOciChatModel } from '../tokens';
import { followTrust, isNotebookTrusted } from '../trust';
import { Composer } from './composer';
import { warmUpMarkdown } from './markdown';
import { RequestItem } from './messages';
import { chatText, slots, withNodes } from './texts';
import { IChatSettings, ILoopSettings } from './types';

const EXAMPLES = [
  'load data.csv and plot the monthly totals',
  'print the sum of 1..10',
  'write is_prime(n) and test it on the numbers below 30'
];

function EmptyState(props: {
  onPick: (example: string) => void;
  trans: TranslationBundle;
}): JSX.Element {
  const { trans } = props;
  return (
    <div className="jp-OciChat-empty">
      <p className="jp-OciChat-emptyTitle">
        {trans.__('Ask for code; it runs as a new cell below yours.')}
      </p>
      <p className="jp-OciChat-emptyText">
        {trans.__(
          'The model sees your cells and variables, runs its code in your kernel and fixes it when it fails. Try:'
        )}
      </p>
      <ul className="jp-OciChat-examples">
        {EXAMPLES.map(example => (
          <li key={example}>
            <button
              type="button"
              className="jp-OciChat-example"
              onClick={() => props.onPick(trans.__(example))}
            >
              {trans.__(example)}
            </button>
          </li>
        ))}
      </ul>
      <p className="jp-OciChat-keys">
        {withNodes(
          trans.__('%1 sends · %2 new line · %3 stops', ...slots(3)),
          <kbd>Enter</kbd>,
          <>
            <kbd>Shift</kbd>+<kbd>Enter</kbd>
          </>,
          <kbd>Esc</kbd>
        )}
      </p>
    </div>
  );
}

function settingsHint(
  settings: IChatSettings,
  loop: ILoopSettings | null,
  trusted: boolean,
  trans: TranslationBundle
) {
  const parts: string[] = [];
  // The loop's budgets are the server's unless the user set them: unknown
  // until the server has answered (the chat cannot send before that).
  if (loop) {
    parts.push(
      loop.readResults
        ? trans.__(
            'up to %1, %2 each',
            trans._n('%1 step', '%1 steps', loop.maxSteps),
            trans._n('%1 attempt', '%1 attempts', loop.maxAttempts)
          )
        : trans.__(
            '%1, stops at the first success',
            trans._n('up to %1 attempt', 'up to %1 attempts', loop.maxAttempts)
          )
    );
  }
  parts.push(
    settings.autoExecute && trusted
      ? trans.__('runs automatically')
      : trans.__('you run the cells'),
    trans.__('%1 s limit', settings.executionTimeLimit)
  );
  return parts.join(' · ');
}

/**
 * Whether JupyterLab trusts the notebook (../trust.ts), followed as its
 * cells change: a run, *Trust Notebook*, a cell added. The second value
 * asks again (after the trust dialog: a markdown cell's trust has no event).
 */
function useNotebookTrust(panel: NotebookPanel | null): [boolean, () => void] {
  const [, setTick] = React.useState(0);
  const refresh = React.useCallback(() => setTick(tick => tick + 1), []);
  React.useEffect(() => {
    if (!panel) {
      return;
    }
    const trust = followTrust(panel, refresh);
    return () => trust.dispose();
  }, [panel, refresh]);
  return [panel ? isNotebookTrusted(panel) : true, refresh];
}

/**
 * Why the chat asks before it runs code here, with JupyterLab's own way to
 * trust the notebook (the *Trust Notebook* command's dialog, then a save, so
 * that the server signs it and it opens trusted next time).
 */
function TrustNotice(props: {
  panel: NotebookPanel;
  onTrusted: () => void;
  trans: TranslationBundle;
}): JSX.Element {
  const { panel, trans } = props;
  const [asking, setAsking] = React.useState(false);
  const trust = async () => {
    setAsking(true);
    try {
      const result = await NotebookActions.trust(panel.content);
      if (result?.trusted && !panel.isDisposed) {
        await panel.context.save();
      }
    } catch (reason) {
      console.warn('oci-jupyter: trusting the notebook failed.', reason);
    } finally {
      setAsking(false);
      props.onTrusted();
    }
  };
  return (
    <div
      className="jp-OciChat-banner jp-OciChat-trust"
      role="status"
      data-oci-untrusted=""
    >
      <span className="jp-OciChat-trustText">
        <b>{trans.__('This notebook is not trusted.')}</b>{' '}
        {trans.__(
          'Its content reaches the model and may come from someone else: each cell the chat writes waits for your Run.'
        )}
      </span>
      <button
        type="button"
        className="jp-Button jp-mod-styled jp-OciChat-trustButton"
        onClick={() => void trust()}
        disabled={asking}
        title={trans.__(
          'JupyterLab’s Trust Notebook: trust it if you know where it comes from; the chat then runs its code at once again'
        )}
      >
        {trans.__('Trust notebook')}
      </button>
    </div>
  );
}

/** Seconds until the next reconnection attempt, ticking while closed. */
function useRetryCountdown(model: IOciChatModel): number | null {
  const connection = model.connection;
  const [now, setNow] = React.useState(Date.now());
  const retryAt = connection.state === 'closed' ? connection.retryAt : null;
  React.useEffect(() => {
    if (retryAt === null) {
      return;
    }
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, [retryAt]);
  return retryAt === null
    ? null
    : Math.max(0, Math.ceil((retryAt - now) / 1000));
}

export interface IChatViewProps {
  model: IOciChatModel;
  /** Why the model cannot take a request now (loading, failed), or null. */
  engineBlocker: string | null;
  rendermime: IRenderMimeRegistry;
  focusRequested: ISignal<unknown, void>;
  trans: TranslationBundle;
}

/**
 * The chat, drawn again whenever the chat model or its connection changes
 * (JupyterLab's `UseSignal`).
 */
export function ChatView(props: IChatViewProps): JSX.Element {
  const { model } = props;
  return (
    <UseSignal signal={model.stateChanged}>
      {() => (
        <UseSignal signal={model.connection.stateChanged}>
          {() => <ChatBody {...props} />}
        </UseSignal>
      )}
    </UseSignal>
  );
}

/**
 * The notebook the chat is about, for the sidebar's toolbar: its name, the
 * full path as the tooltip.
 */
export function NotebookLabel(props: {
  model: IOciChatModel;
  trans: TranslationBundle;
}): JSX.Element {
  const { model, trans } = props;
  return (
    <UseSignal signal={model.stateChanged}>
      {() => {
        const path = model.notebook ? (model.thread?.path ?? '') : '';
        const name = path.split('/').pop() ?? path;
        return (
          <span className="jp-OciChat-notebook" title={path}>
            {path ? (
              <>
                <notebookIcon.react tag="span" className="jp-OciChat-nbIcon" />
                <span className="jp-OciChat-notebookName">{name}</span>
              </>
            ) : (
              // Says what the toolbar is about instead of leaving its row bare.
              <span className="jp-OciChat-noNotebook">
                {trans.__('No notebook')}
              </span>
            )}
          </span>
        );
      }}
    </UseSignal>
  );
}

function ChatBody(props: IChatViewProps): JSX.Element {
  const { model, rendermime, trans } = props;
  const retryIn = useRetryCountdown(model);
  const [draft, setDraft] = React.useState('');
  const input = React.useRef<HTMLTextAreaElement>(null);
  React.useEffect(() => warmUpMarkdown(rendermime), [rendermime]);

  const panel = model.notebook;
  const [trusted, trustChanged] = useNotebookTrust(panel);
  const thread = model.thread;
  const running = model.running;
  const requests = thread?.requests ?? [];

  // Follow new content unless the user scrolled up to read.
  const scroller = React.useRef<HTMLDivElement>(null);
  const stick = React.useRef(true);
  React.useLayoutEffect(() => {
    const node = scroller.current;
    if (node && stick.current) {
      node.scrollTop = node.scrollHeight;
    }
  });
  React.useEffect(() => {
    stick.current = true;
  }, [thread?.path]);

  let disabledReason: string | null = null;
  if (model.connection.state === 'closed') {
    disabledReason =
      retryIn !== null
        ? trans.__(
            'Disconnected from the server. Reconnecting in %1 s…',
            retryIn
          )
        : trans.__('Disconnected from the server.');
  } else if (model.connection.state === 'connecting') {
    disabledReason = trans.__('Connecting to the server…');
  } else if (props.engineBlocker) {
    disabledReason = props.engineBlocker;
  } else if (!panel) {
    disabledReason = trans.__('Open a notebook to ask for code.');
  }

  const send = (prompt: string) => {
    if (model.ask(prompt)) {
      stick.current = true;
      setDraft('');
    }
  };

  const elsewhere = model.runningElsewhere;
  return (
    <section className="jp-OciChat" aria-label={trans.__('Chat')}>
      {model.connection.state === 'closed' && (
        <div className="jp-OciChat-banner" role="status">
          <span>
            {trans.__(
              'The chat lost its connection to the Jupyter server; it reconnects by itself.'
            )}
          </span>
          <button
            type="button"
            className="jp-OciChat-link"
            onClick={() => model.connection.reconnect()}
          >
            {trans.__('Retry now')}
          </button>
        </div>
      )}
      {model.background.map(request => {
        const where = request.path.split('/').pop() ?? request.path;
        return (
          <div
            key={request.id}
            className="jp-OciChat-banner jp-OciChat-background"
            role="status"
            data-oci-background={request.id}
            title={request.path}
          >
            <span className="jp-OciChat-backgroundText">
              {request.mode === 'fix'
                ? trans.__('Fixing a cell in %1', where)
                : request.mode === 'edit'
                  ? trans.__('Changing a cell in %1', where)
                  : trans.__('Working in %1', where)}
            </span>
            <button
              type="button"
              className="jp-OciChat-link"
              onClick={() => model.stopRequest(request.id)}
              disabled={request.stopping}
              aria-label={trans.__('Stop the request in %1', where)}
            >
              {request.stopping ? trans.__('Stopping…') : trans.__('Stop')}
            </button>
          </div>
        );
      })}
      {elsewhere && !running && (
        <div
          className="jp-OciChat-banner"
          role="status"
          data-oci-elsewhere={elsewhere.id}
        >
          {trans.__(
            'Another tab or window is running a request in this notebook (“%1”). The server runs one request per notebook at a time: stop it there, or wait for it to finish.',
            elsewhere.prompt
          )}
        </div>
      )}
      {panel && !trusted && model.settings.autoExecute && (
        <TrustNotice panel={panel} onTrusted={trustChanged} trans={trans} />
      )}
      {model.notice && (
        <div className="jp-OciChat-banner jp-mod-warn" role="status">
          {chatText(model.notice, trans)}
        </div>
      )}
      {/* A log: a finished reply (turns are aria-busy while they stream) and
          each outcome are announced politely, after what the user hears. */}
      <div
        className="jp-OciChat-messages"
        role="log"
        aria-live="polite"
        aria-label={trans.__('Chat messages')}
        ref={scroller}
        onScroll={event => {
          const node = event.currentTarget;
          stick.current =
            node.scrollTop + node.clientHeight >= node.scrollHeight - 24;
        }}
      >
        {thread?.history === 'loading' && requests.length === 0 && (
          <p className="jp-OciChat-status">
            {trans.__('Loading the chat history…')}
          </p>
        )}
        {thread?.history === 'failed' && (
          <p className="jp-OciChat-status jp-mod-error">
            {trans.__(
              'Could not load the chat history (%1).',
              thread.historyError
            )}
          </p>
        )}
        {!panel && (
          <div className="jp-OciChat-empty">
            <p className="jp-OciChat-emptyTitle">
              {trans.__('No notebook open')}
            </p>
            <p className="jp-OciChat-emptyText">
              {trans.__(
                'The chat works on the notebook you are in: open or create one, then ask for code. The model writes it into a cell, runs it in your kernel and fixes it when it fails.'
              )}
            </p>
          </div>
        )}
        {panel && requests.length === 0 && thread?.history !== 'loading' && (
          <EmptyState
            onPick={example => {
              setDraft(example);
              // The user picked it to send it, or to edit it first.
              input.current?.focus();
            }}
            trans={trans}
          />
        )}
        {requests.map(request => (
          <RequestItem
            key={request.id}
            request={request}
            stepCell={step => model.stepCell(request.id, step)}
            onRevealCell={(id, step) => void model.revealCell(id, step)}
            rendermime={rendermime}
            trans={trans}
          />
        ))}
      </div>
      <Composer
        disabledReason={disabledReason}
        running={running !== null}
        stopping={running?.stopping ?? false}
        refine={running ? null : model.refineTarget()}
        refineCandidate={running ? null : model.refineCandidate()}
        hint={settingsHint(model.settings, model.loop, trusted, trans)}
        draft={draft}
        onDraftChange={value => {
          setDraft(value);
          // The server reads the notebook while the user is still typing.
          model.draftChanged();
        }}
        onSend={send}
        onStop={() => model.stop()}
        onNewThread={value => model.setNewThread(value)}
        onRevealRefined={() => {
          const target = model.refineTarget();
          if (target) {
            void model.revealCell(target.requestId);
          }
        }}
        focusRequested={props.focusRequested}
        inputRef={input}
        trans={trans}
      />
    </section>
  );
}
