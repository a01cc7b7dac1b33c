/**
 * Pure React views of the engine status; all state lives in EngineStatusModel.
 */
import { ServerConnection } from '@jupyterlab/services';
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import {
  EngineState,
  IEngineStatus,
  restartEngine,
  ServerExtensionError
} from './api';
import { serverWords } from './chat/texts';

function stateLabel(state: EngineState, trans: TranslationBundle): string {
  switch (state) {
    case 'idle':
      return trans.__('Idle');
    case 'loading':
      return trans.__('Loading');
    case 'ready':
      return trans.__('Ready');
    case 'error':
      return trans.__('Error');
    case 'stopped':
      return trans.__('Stopped');
    default:
      return state;
  }
}

/**
 * The state badge. `data-oci-state` is the hook tests (and styles) wait on;
 * `unreachable` is the browser's own state for "the server did not answer".
 */
function StateBadge(props: {
  state: EngineState | 'unreachable';
  label: string;
}): JSX.Element {
  return (
    <span
      className={`jp-OciStatus-badge jp-mod-${props.state}`}
      data-oci-state={props.state}
    >
      {props.label}
    </span>
  );
}

function LoadProgress(props: {
  progress: number;
  trans: TranslationBundle;
}): JSX.Element {
  const percent = Math.round(Math.min(1, Math.max(0, props.progress)) * 100);
  return (
    <div
      className="jp-OciStatus-progress"
      role="progressbar"
      aria-label={props.trans.__('Model load progress')}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={percent}
    >
      <div
        className="jp-OciStatus-progressBar"
        style={{ width: `${percent}%` }}
      />
    </div>
  );
}

function Fact(props: { name: string; value: string }): JSX.Element {
  return (
    <>
      <dt>{props.name}</dt>
      <dd title={props.value}>{props.value}</dd>
    </>
  );
}

/**
 * Loads the model again (POST /oci/restart). The status models follow the new
 * load (see `engineRestarted`); a refusal is shown as text.
 */
function RestartButton(props: {
  trans: TranslationBundle;
  serverSettings?: ServerConnection.ISettings;
}): JSX.Element {
  const { trans } = props;
  const [restarting, setRestarting] = React.useState(false);
  const [failure, setFailure] = React.useState<string | null>(null);
  const mounted = React.useRef(false);
  React.useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);
  const restart = async () => {
    setRestarting(true);
    setFailure(null);
    try {
      await restartEngine(props.serverSettings);
    } catch (reason) {
      if (mounted.current) {
        // The server's refusal in the user's language; other failures as they are.
        setFailure(
          reason instanceof ServerExtensionError
            ? serverWords(reason.message, reason.said, trans)
            : ((reason as Error).message ?? String(reason))
        );
      }
    } finally {
      if (mounted.current) {
        setRestarting(false);
      }
    }
  };
  return (
    <div className="jp-OciStatus-restart">
      <button
        type="button"
        className="jp-mod-styled jp-mod-accept"
        data-oci-action="restart-model"
        disabled={restarting}
        onClick={() => void restart()}
      >
        {restarting ? trans.__('Restarting…') : trans.__('Restart model')}
      </button>
      {failure && (
        <p className="jp-OciStatus-restartFailure" role="alert">
          {trans.__('The model could not be restarted: %1', failure)}
        </p>
      )}
    </div>
  );
}

/**
 * The model's state in one line (badge and model name); the facts fold out
 * on demand. Progress, detail and errors show in full: they need attention.
 */
export function EngineStatusView(props: {
  status: IEngineStatus;
  trans: TranslationBundle;
  /** The server the Restart button asks (the panel's). */
  serverSettings?: ServerConnection.ISettings;
}): JSX.Element {
  const { status, trans } = props;
  const since = new Date(status.since * 1000).toLocaleTimeString();
  const unknown = trans.__('unknown');
  const showDetail = status.detail && status.state !== 'ready';
  return (
    <div className="jp-OciStatus">
      <details className="jp-OciStatus-more">
        <summary className="jp-OciStatus-heading">
          <StateBadge
            state={status.state}
            label={stateLabel(status.state, trans)}
          />
          <span className="jp-OciStatus-model" title={status.model}>
            {status.model || unknown}
          </span>
        </summary>
        <dl className="jp-OciStatus-facts">
          <Fact name={trans.__('Engine')} value={status.engine || unknown} />
          <Fact name={trans.__('Model')} value={status.model || unknown} />
          <Fact name={trans.__('Device')} value={status.device || unknown} />
          <Fact
            name={trans.__('Context')}
            value={
              status.context_length
                ? trans.__('%1 tokens', status.context_length.toLocaleString())
                : unknown
            }
          />
          {status.since > 0 && <Fact name={trans.__('Since')} value={since} />}
        </dl>
      </details>
      {status.state === 'loading' && status.progress !== null && (
        <LoadProgress progress={status.progress} trans={trans} />
      )}
      {showDetail && (
        <p className="jp-OciStatus-detail">
          {serverWords(status.detail, status.detail_text, trans)}
        </p>
      )}
      {status.state === 'error' && status.error && (
        <pre className="jp-OciErrorText jp-OciStatus-error">
          {serverWords(status.error, status.error_text, trans)}
        </pre>
      )}
      {status.state === 'error' && (
        <RestartButton trans={trans} serverSettings={props.serverSettings} />
      )}
    </div>
  );
}

export function UnreachableView(props: {
  failure: ServerExtensionError;
  trans: TranslationBundle;
}): JSX.Element {
  const { failure, trans } = props;
  return (
    <div className="jp-OciStatus">
      <div className="jp-OciStatus-heading">
        <StateBadge state="unreachable" label={trans.__('Unreachable')} />
      </div>
      <p className="jp-OciStatus-detail">
        {trans.__(
          'Cannot reach the oci_jupyter server extension (%1).',
          failure.message
        )}
      </p>
      {failure.httpStatus === 404 && (
        <p className="jp-OciStatus-hint">
          {trans.__(
            'Is it installed and enabled? Check with `jupyter server extension list`, then restart Jupyter.'
          )}
        </p>
      )}
    </div>
  );
}
