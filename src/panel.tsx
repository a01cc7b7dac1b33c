/**
 * The OpenCodeInterpreter sidebar: the model's state in a compact header,
 * the chat below it.
 */
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ServerConnection } from '@jupyterlab/services';
import {
  ITranslator,
  nullTranslator,
  TranslationBundle
} from '@jupyterlab/translation';
import { ReactWidget } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Signal } from '@lumino/signaling';
import * as React from 'react';

import { ChatView, useSignal } from './chat/view';
import { EngineStatusView, UnreachableView } from './components';
import { ociIcon } from './icon';
import { EngineStatusModel } from './model';
import { IOciChatModel } from './tokens';

export const PANEL_ID = 'oci-jupyter-panel';

/** Why the hosted model cannot take a request now, or null when it can. */
function engineBlocker(
  model: EngineStatusModel,
  trans: TranslationBundle
): string | null {
  const { status, failure } = model;
  if (failure) {
    return trans.__('The server extension cannot be reached.');
  }
  if (!status) {
    return trans.__('Asking the server for the model’s state…');
  }
  switch (status.state) {
    case 'ready':
      return null;
    case 'loading':
      return status.progress === null
        ? trans.__('The model is loading. You can ask once it is ready.')
        : trans.__(
            'The model is loading (%1%). You can ask once it is ready.',
            Math.round(status.progress * 100)
          );
    case 'error':
      return trans.__(
        'The model is not available; see the error above (Restart model loads it again).'
      );
    case 'stopped':
      return trans.__('The model is stopped.');
    default:
      return trans.__('The model has not started yet.');
  }
}

function StatusSection(props: {
  model: EngineStatusModel;
  trans: TranslationBundle;
}): JSX.Element {
  const { model, trans } = props;
  useSignal(model.stateChanged);
  const { status, failure } = model;
  let body: JSX.Element;
  if (failure) {
    body = <UnreachableView failure={failure} trans={trans} />;
  } else if (status) {
    body = (
      <EngineStatusView
        status={status}
        trans={trans}
        serverSettings={model.serverSettings}
      />
    );
  } else {
    body = (
      <p className="jp-OciStatus-detail">
        {trans.__('Asking the server for the model state…')}
      </p>
    );
  }
  return (
    <section
      className="jp-OciPanel-status"
      aria-label={trans.__('Model server')}
    >
      {body}
    </section>
  );
}

function PanelView(props: {
  status: EngineStatusModel;
  chat: IOciChatModel;
  rendermime: IRenderMimeRegistry;
  focusRequested: Signal<OciPanel, void>;
  onClearHistory: () => void;
  trans: TranslationBundle;
}): JSX.Element {
  const { status, trans } = props;
  useSignal(status.stateChanged);
  return (
    <>
      {/* Not a <header>: a sidebar has no banner landmark of its own. */}
      <div className="jp-OciPanel-header">
        <ociIcon.react tag="span" className="jp-OciPanel-icon" />
        <h2 className="jp-OciPanel-title">{trans.__('OpenCodeInterpreter')}</h2>
      </div>
      <StatusSection model={status} trans={trans} />
      <ChatView
        model={props.chat}
        engineBlocker={engineBlocker(status, trans)}
        rendermime={props.rendermime}
        focusRequested={props.focusRequested}
        onClearHistory={props.onClearHistory}
        trans={trans}
      />
    </>
  );
}

export class OciPanel extends ReactWidget {
  constructor(options: OciPanel.IOptions) {
    super();
    this.statusModel = new EngineStatusModel({
      settledInterval: options.settledInterval,
      serverSettings: options.serverSettings,
      isActive: () => this.isVisible
    });
    this.chatModel = options.chatModel;
    this._rendermime = options.rendermime;
    this._onClearHistory = options.onClearHistory;
    this._trans = (options.translator ?? nullTranslator).load('oci_jupyter');
    this.id = PANEL_ID;
    this.addClass('jp-OciPanel');
    this.title.icon = ociIcon;
    this.title.caption = this._trans.__('OpenCodeInterpreter');
    this.chatModel.stateChanged.connect(this._followRunning, this);
    this._followRunning();
  }

  readonly statusModel: EngineStatusModel;
  readonly chatModel: IOciChatModel;

  /**
   * Show the sidebar without taking the keyboard focus (an auto-fix the user
   * did not ask for right now must not pull them out of the notebook).
   */
  reveal(shell: { activateById(id: string): void }): void {
    if (this.isVisible) {
      return;
    }
    this._quietActivation = true;
    shell.activateById(this.id);
  }

  /** Put the keyboard focus in the chat's input. */
  focusInput(): void {
    this._focusRequested.emit();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    // The poll and the socket must stop with the panel.
    this.statusModel.dispose();
    this.chatModel.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    // The poll stood by while hidden: show fresh state at once.
    void this.statusModel.refresh();
    // The user may ask soon: let the server read the notebook now.
    this.chatModel.visible = true;
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    // Restored open with the workspace: shown without a show message.
    if (this.isVisible) {
      this.chatModel.visible = true;
    }
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.chatModel.visible = false;
  }

  protected onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    if (this._quietActivation) {
      this._quietActivation = false;
      return;
    }
    // Opening the sidebar is for asking something.
    this.focusInput();
  }

  protected render(): JSX.Element {
    return (
      <PanelView
        status={this.statusModel}
        chat={this.chatModel}
        rendermime={this._rendermime}
        focusRequested={this._focusRequested}
        onClearHistory={this._onClearHistory}
        trans={this._trans}
      />
    );
  }

  /**
   * Escape is the Stop key only while a request runs (the shortcut's
   * selector needs this class): otherwise it stays the page's and the
   * browser's.
   */
  private _followRunning(): void {
    this.toggleClass('jp-mod-running', this.chatModel.running !== null);
  }

  private _focusRequested = new Signal<OciPanel, void>(this);
  private _quietActivation = false;
  private _onClearHistory: () => void;
  private _rendermime: IRenderMimeRegistry;
  private _trans: TranslationBundle;
}

export namespace OciPanel {
  export interface IOptions {
    chatModel: IOciChatModel;
    rendermime: IRenderMimeRegistry;
    onClearHistory: () => void;
    settledInterval?: number;
    serverSettings?: ServerConnection.ISettings;
    translator?: ITranslator;
  }
}
