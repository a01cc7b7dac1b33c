/**
 * Where the user writes: Enter sends, Shift+Enter starts a new line; the
 * send button turns into Stop while a request runs. The input stays editable
 * while nothing can be sent (the model loading, the socket reconnecting): the
 * draft is kept and Send waits, with the reason in the hint below.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import { ISignal } from '@lumino/signaling';
import * as React from 'react';

import { IRefineTarget } from './model';
import { slots, withNodes } from './texts';

export interface IComposerProps {
  /** Why nothing can be sent now (shown instead of the hint), or null. */
  disabledReason: string | null;
  /** A request of this notebook is running: the button stops it. */
  running: boolean;
  stopping: boolean;
  /** The cell the next message refines, or null for a new cell. */
  refine: IRefineTarget | null;
  /** A cell that could be refined, when the user chose a new cell instead. */
  refineCandidate: IRefineTarget | null;
  /** A summary of the settings that shape a request. */
  hint: string;
  draft: string;
  onDraftChange: (draft: string) => void;
  onSend: (prompt: string) => void;
  onStop: () => void;
  onNewThread: (value: boolean) => void;
  onRevealRefined: () => void;
  focusRequested: ISignal<unknown, void>;
  /** The input, for the chat to put the focus in (an example picked). */
  inputRef?: React.RefObject<HTMLTextAreaElement>;
  trans: TranslationBundle;
}

export function Composer(props: IComposerProps): JSX.Element {
  const { trans, running, refine, refineCandidate, draft } = props;
  const ownInput = React.useRef<HTMLTextAreaElement>(null);
  const input = props.inputRef ?? ownInput;
  const hintId = React.useId();
  const disabled = props.disabledReason !== null;
  const canSend = !disabled && !running && draft.trim().length > 0;

  React.useEffect(() => {
    const focus = () => input.current?.focus();
    props.focusRequested.connect(focus);
    return () => {
      props.focusRequested.disconnect(focus);
    };
  }, [props.focusRequested, input]);

  const send = () => {
    if (canSend) {
      props.onSend(draft);
    }
  };
  const onKeyDown = (event: React.KeyboardEvent<HTMLTextAreaElement>) => {
    // An IME composition uses Enter to pick a candidate: not a send.
    if (
      event.key === 'Enter' &&
      !event.shiftKey &&
      !event.nativeEvent.isComposing
    ) {
      event.preventDefault();
      send();
    }
  };

  return (
    <form
      className="jp-OciChat-composer"
      onSubmit={event => {
        event.preventDefault();
        send();
      }}
    >
      {refine && (
        <div className="jp-OciChat-refine" data-oci-refine={refine.cellId}>
          <span className="jp-OciChat-refineText">
            {withNodes(
              trans.__('Your next message refines %1', ...slots(1)),
              <button
                type="button"
                className="jp-OciChat-link"
                onClick={props.onRevealRefined}
                title={trans.__('Show the cell')}
              >
                {refine.label}
              </button>
            )}
          </span>
          <button
            type="button"
            className="jp-OciChat-toggle"
            onClick={() => props.onNewThread(true)}
            title={trans.__(
              'Write the answer to the next message into a new cell'
            )}
          >
            {trans.__('New cell instead')}
          </button>
        </div>
      )}
      {!refine && refineCandidate && (
        <div className="jp-OciChat-refine jp-mod-new">
          <span className="jp-OciChat-refineText">
            {trans.__('Your next message starts a new cell.')}
          </span>
          <button
            type="button"
            className="jp-OciChat-toggle"
            onClick={() => props.onNewThread(false)}
          >
            {trans.__('Refine %1 instead', refineCandidate.label)}
          </button>
        </div>
      )}
      <div className="jp-OciChat-inputRow">
        <textarea
          ref={input}
          className="jp-OciChat-input"
          aria-label={trans.__('Message to the model')}
          aria-describedby={hintId}
          placeholder={
            disabled
              ? trans.__('Write your message; it can be sent once ready.')
              : running
                ? trans.__('Your next message… (Esc stops this one)')
                : refine
                  ? trans.__('Say what to change…')
                  : trans.__('Ask for code…')
          }
          rows={2}
          value={draft}
          onChange={event => props.onDraftChange(event.target.value)}
          onKeyDown={onKeyDown}
        />
        {running ? (
          <button
            type="button"
            className="jp-OciChat-stop"
            onClick={props.onStop}
            disabled={props.stopping}
            title={trans.__('Stop (Escape)')}
            aria-label={trans.__('Stop')}
          >
            <span className="jp-OciChat-stopSquare" aria-hidden="true" />
          </button>
        ) : (
          <button
            type="submit"
            className="jp-OciChat-send"
            disabled={!canSend}
            title={trans.__('Send (Enter)')}
            aria-label={trans.__('Send')}
          >
            <svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true">
              <path d="M8 13V3M3.5 7.5 8 3l4.5 4.5" />
            </svg>
          </button>
        )}
      </div>
      <p
        id={hintId}
        className={`jp-OciChat-hint${disabled ? ' jp-mod-disabled' : ''}`}
        data-oci-disabled={disabled ? 'true' : undefined}
      >
        {props.disabledReason ?? props.hint}
      </p>
    </form>
  );
}
