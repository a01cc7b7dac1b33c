/**
 * The browser-side view of the hosted model's state, kept fresh by polling.
 */
import { ServerConnection } from '@jupyterlab/services';
import { VDomModel } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';

import {
  engineRestarted,
  fetchEngineStatus,
  IEngineStatus,
  ServerExtensionError
} from './api';

/** While the model loads, ask every second so progress moves smoothly. */
export const LOADING_POLL_INTERVAL = 1000;

/** Default for the `statusPollInterval` setting, once the state has settled. */
export const SETTLED_POLL_INTERVAL = 10 * 1000;

export class EngineStatusModel extends VDomModel {
  constructor(options: EngineStatusModel.IOptions) {
    super();
    this._serverSettings =
      options.serverSettings ?? ServerConnection.makeSettings();
    this._settledInterval = options.settledInterval ?? SETTLED_POLL_INTERVAL;
    const isActive = options.isActive ?? (() => true);
    this._poll = new Poll({
      name: 'oci-jupyter:engine-status',
      factory: () => this._update(),
      frequency: this._frequency(),
      // Nobody is looking: skip requests while the view is hidden or the
      // browser tab is in the background.
      standby: () => (isActive() ? 'when-hidden' : true)
    });
    engineRestarted.connect(this._onRestarted, this);
  }

  /** The last status the server sent, or null before the first answer. */
  get status(): IEngineStatus | null {
    return this._status;
  }

  /** Why the server extension could not be asked, or null if it answered. */
  get failure(): ServerExtensionError | null {
    return this._failure;
  }

  /** Poll interval (ms) once the model is ready, failed or stopped. */
  get settledInterval(): number {
    return this._settledInterval;
  }
  set settledInterval(interval: number) {
    this._settledInterval = Math.max(LOADING_POLL_INTERVAL, interval);
    this._poll.frequency = this._frequency();
  }

  /** Ask the server now instead of at the next scheduled tick. */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    engineRestarted.disconnect(this._onRestarted, this);
    this._poll.dispose();
    super.dispose();
  }

  private async _update(): Promise<void> {
    try {
      this._status = await fetchEngineStatus(this._serverSettings);
      this._failure = null;
    } catch (reason) {
      this._failure =
        reason instanceof ServerExtensionError
          ? reason
          : new ServerExtensionError(String(reason));
    }
    if (this.isDisposed) {
      return;
    }
    // Applies from the next tick on: the poll reads it when it reschedules.
    this._poll.frequency = this._frequency();
    this.stateChanged.emit();
  }

  /** The server took a restart: show its answer now, poll at the loading pace. */
  private _onRestarted(_sender: object, status: IEngineStatus): void {
    if (this.isDisposed) {
      return;
    }
    this._status = status;
    this._failure = null;
    this._poll.frequency = this._frequency();
    this.stateChanged.emit();
    void this.refresh();
  }

  private _frequency() {
    const state = this._failure ? null : this._status?.state;
    const transient =
      state === undefined || state === 'idle' || state === 'loading';
    const interval = transient ? LOADING_POLL_INTERVAL : this._settledInterval;
    return { interval, max: interval, backoff: false };
  }

  private _failure: ServerExtensionError | null = null;
  private _poll: Poll;
  /** The server whose model this is. */
  get serverSettings(): ServerConnection.ISettings {
    return this._serverSettings;
  }

  private _serverSettings: ServerConnection.ISettings;
  private _settledInterval: number;
  private _status: IEngineStatus | null = null;
}

export namespace EngineStatusModel {
  export interface IOptions {
    /** Poll interval (ms) once the state has settled. */
    settledInterval?: number;
    /** Whether anyone can see the status; polling stands by when not. */
    isActive?: () => boolean;
    serverSettings?: ServerConnection.ISettings;
  }
}
