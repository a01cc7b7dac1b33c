/**
 * Prefill: the notebook the user is about to ask about is sent ahead
 * (`prefill`), so the server reads the prompt's start while the user is
 * still typing and the ask's first token comes sooner. Sent when the chat is
 * shown, the notebook changes and a while after the user stops typing;
 * never during a request of that notebook, at most once per interval, only
 * when the context changed. Best effort and silent.
 */
import type { NotebookPanel } from '@jupyterlab/notebook';
import type { Kernel } from '@jupyterlab/services';

import { notebookContext, notebookLanguage } from '../context';
import type { IChatConnection } from './connection';
import type { IChatSettings, IThread } from './types';

/** A prefill waits this long after the last keystroke in the composer. */
const PREFILL_DEBOUNCE_MS = 800;
/** At most one prefill per this interval. */
const PREFILL_INTERVAL_MS = 2000;
/** How long a new notebook's kernel is waited for before its first prefill. */
const PREFILL_KERNEL_WAIT_MS = 15000;

/** What the prefiller reads of the chat. */
export interface IPrefillHost {
  readonly connection: IChatConnection;
  /** The notebook the chat is about, and its thread. */
  notebook(): NotebookPanel | null;
  thread(): IThread | null;
  settings(): IChatSettings;
  /** Whether a request of this thread is in flight. */
  busyWith(thread: IThread): boolean;
}

export class Prefiller {
  constructor(host: IPrefillHost) {
    this._host = host;
  }

  /**
   * The chat is on screen: showing it prefills the current notebook, so the
   * server reads it before the user asks.
   */
  get visible(): boolean {
    return this._visible;
  }
  set visible(value: boolean) {
    if (value === this._visible) {
      return;
    }
    this._visible = value;
    if (value) {
      this._prefillWhenReady(this._host.notebook());
    } else {
      window.clearTimeout(this._timer);
    }
  }

  /** The chat turned to another notebook. */
  notebookChanged(panel: NotebookPanel | null): void {
    if (this._visible) {
      this._prefillWhenReady(panel);
    }
  }

  /** The user is typing: prefill once they pause. */
  draftChanged(): void {
    this._schedule(PREFILL_DEBOUNCE_MS);
  }

  /** An ask reads the notebook itself now: no prefill is due. */
  cancel(): void {
    window.clearTimeout(this._timer);
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    this._isDisposed = true;
    window.clearTimeout(this._timer);
  }

  /** Prefill a notebook once its kernel is up (idle), if it is still current. */
  private _prefillWhenReady(panel: NotebookPanel | null): void {
    if (!panel) {
      return;
    }
    const stillCurrent = () =>
      this._host.notebook() === panel && this._visible && !this._isDisposed;
    void panel.sessionContext.ready
      .then(async () => {
        const kernel = panel.sessionContext.session?.kernel;
        if (kernel && kernel.status !== 'idle' && stillCurrent()) {
          await untilIdle(kernel, PREFILL_KERNEL_WAIT_MS);
        }
        if (stillCurrent()) {
          this._schedule(0);
        }
      })
      .catch(reason => console.debug('oci: no prefill:', reason));
  }

  /** Prefill after `delay` ms, replacing a prefill already scheduled. */
  private _schedule(delay: number): void {
    if (this._isDisposed) {
      return;
    }
    window.clearTimeout(this._timer);
    this._timer = window.setTimeout(() => {
      this._timer = 0;
      void this._prefill();
    }, delay);
  }

  /**
   * Send the current notebook's context as the next ask would gather it, so
   * the server reads the prompt's start ahead of the ask. Best effort and
   * silent: nothing while a request of this notebook runs or the kernel is
   * busy, at most once per interval, nothing if the context is unchanged.
   */
  private async _prefill(): Promise<void> {
    const panel = this._host.notebook();
    const thread = this._host.thread();
    if (
      !panel ||
      !thread ||
      this._isDisposed ||
      this._host.busyWith(thread) ||
      this._host.connection.state !== 'open'
    ) {
      return;
    }
    if (this._running) {
      this._again = true;
      return;
    }
    const wait = this._lastAt + PREFILL_INTERVAL_MS - Date.now();
    if (wait > 0) {
      this._schedule(wait);
      return;
    }
    const settings = this._host.settings();
    const kernel = panel.sessionContext.session?.kernel;
    if (
      settings.sendVariables &&
      kernel &&
      notebookLanguage(panel) === 'python' &&
      kernel.status !== 'idle'
    ) {
      // Asking it for the variables would queue behind the user's work.
      console.debug('oci: no prefill: the kernel is busy');
      return;
    }
    this._running = true;
    this._lastAt = Date.now();
    try {
      // Exactly as an ask gathers it (ChatModel._send), so the prompts match.
      const context = await notebookContext(panel, {
        anchorCellId: panel.content.activeCell?.model.id ?? null,
        contextCells: settings.contextCells,
        sendOutputs: settings.sendOutputs,
        sendVariables: settings.sendVariables
      });
      if (
        panel !== this._host.notebook() ||
        this._isDisposed ||
        this._host.busyWith(thread)
      ) {
        return;
      }
      // What the server would read: the context, and the chat before it.
      const last = thread.requests[thread.requests.length - 1];
      const key = JSON.stringify([
        thread.path,
        thread.requests.length,
        last?.id ?? '',
        last?.status ?? '',
        context
      ]);
      if (key === this._lastKey) {
        return;
      }
      const sent = this._host.connection.send({
        type: 'prefill',
        notebook: thread.path,
        context
      });
      if (sent) {
        this._lastKey = key;
        performance.mark('oci:prefill', { detail: { notebook: thread.path } });
      } else {
        console.debug('oci: no prefill: not connected');
      }
    } catch (reason) {
      console.debug('oci: no prefill:', reason);
    } finally {
      this._running = false;
      if (this._again) {
        this._again = false;
        this._schedule(PREFILL_DEBOUNCE_MS);
      }
    }
  }

  private _host: IPrefillHost;
  private _isDisposed = false;
  private _visible = false;
  private _timer = 0;
  private _running = false;
  private _again = false;
  private _lastAt = -Infinity;
  /** What the last prefill sent (its notebook, chat and context). */
  private _lastKey = '';
}

/** Resolves when the kernel is idle, or after `ms` (whichever is first). */
function untilIdle(
  kernel: Kernel.IKernelConnection,
  ms: number
): Promise<void> {
  return new Promise(resolve => {
    const done = () => {
      window.clearTimeout(timer);
      kernel.statusChanged.disconnect(onStatus);
      resolve();
    };
    const onStatus = (_: unknown, status: Kernel.Status) => {
      if (status === 'idle') {
        done();
      }
    };
    const timer = window.setTimeout(done, ms);
    kernel.statusChanged.connect(onStatus);
  });
}
