/**
 * The OpenCodeInterpreter sidebar, a JupyterLab `SidePanel`: its header (the
 * name), its toolbar (the notebook the chat is about, clear the chat, the
 * settings), the model's state in a compact section and the chat below it.
 */
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ServerConnection } from '@jupyterlab/services';
import {
  ITranslator,
  nullTranslator,
  TranslationBundle
} from '@jupyterlab/translation';
import {
  CommandToolbarButton,
  deleteIcon,
  ReactWidget,
  settingsIcon,
  SidePanel,
  Toolbar,
  UseSignal
} from '@jupyterlab/ui-components';
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { Signal } from '@lumino/signaling';
import { Panel } from '@lumino/widgets';
import * as React from 'react';

import { serverLoop } from './api';
import { ChatView, NotebookLabel } from './chat/view';
import { CommandIDs } from './commands';
import { EngineStatusView, UnreachableView } from './components';
import { ociIcon } from './icon';
import { EngineStatusModel } from './model';
import { IOciChatModel } from './tokens';

export const PANEL_ID = 'oci-jupyter-panel';

/** JupyterLab's settings editor (hidden when it is not installed). */
const SETTINGS_COMMAND = 'settingeditor:open';

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
  trans: TranslationBundle;
}): JSX.Element {
  const { status, trans } = props;
  return (
    <UseSignal signal={status.stateChanged}>
      {() => (
        <>
          <StatusSection model={status} trans={trans} />
          <ChatView
            model={props.chat}
            engineBlocker={engineBlocker(status, trans)}
            rendermime={props.rendermime}
            focusRequested={props.focusRequested}
            trans={trans}
          />
        </>
      )}
    </UseSignal>
  );
}

/** The sidebar's header: the icon and the name (not a banner landmark). */
function panelHeader(trans: TranslationBundle): Panel {
  const header = new Panel();
  header.addClass('jp-OciPanel-header');
  header.node.appendChild(
    ociIcon.element({ tag: 'span', className: 'jp-OciPanel-icon' })
  );
  const title = document.createElement('h2');
  title.className = 'jp-OciPanel-title';
  title.textContent = trans.__('OpenCodeInterpreter');
  header.node.appendChild(title);
  return header;
}

export class OciPanel extends SidePanel {
  constructor(options: OciPanel.IOptions) {
    const trans = (options.translator ?? nullTranslator).load('oci_jupyter');
    super({
      content: new Panel(),
      header: panelHeader(trans),
      translator: options.translator
    });
    this.statusModel = new EngineStatusModel({
      settledInterval: options.settledInterval,
      serverSettings: options.serverSettings,
      isActive: () => this.isVisible
    });
    this.chatModel = options.chatModel;
    this._ociTrans = trans;
    this.id = PANEL_ID;
    this.addClass('jp-OciPanel');
    this.title.icon = ociIcon;
    this.title.caption = trans.__('OpenCodeInterpreter');
    this._populateToolbar(this.toolbar, options.commands);
    const body = ReactWidget.create(
      <PanelView
        status={this.statusModel}
        chat={this.chatModel}
        rendermime={options.rendermime}
        focusRequested={this._focusRequested}
        trans={trans}
      />
    );
    body.addClass('jp-OciPanel-body');
    this.addWidget(body);
    this.chatModel.stateChanged.connect(this._followRunning, this);
    this._followRunning();
    this.statusModel.stateChanged.connect(this._followServerLoop, this);
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

  /** The toolbar: which notebook, clear its chat, the settings. */
  private _populateToolbar(toolbar: Toolbar, commands: CommandRegistry): void {
    const trans = this._ociTrans;
    const notebook = ReactWidget.create(
      <NotebookLabel model={this.chatModel} trans={trans} />
    );
    notebook.addClass('jp-OciPanel-notebookItem');
    toolbar.addItem('notebook', notebook);
    toolbar.addItem('spacer', Toolbar.createSpacerItem());
    toolbar.addItem(
      'clear',
      new CommandToolbarButton({
        commands,
        id: CommandIDs.clearHistory,
        icon: deleteIcon,
        label: '',
        caption: trans.__('Clear chat history')
      })
    );
    toolbar.addItem(
      'settings',
      new CommandToolbarButton({
        commands,
        id: SETTINGS_COMMAND,
        args: { query: 'OpenCodeInterpreter' },
        icon: settingsIcon,
        label: '',
        caption: trans.__('OpenCodeInterpreter settings')
      })
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

  /**
   * The server's loop settings (`c.OCI.*`) are the chat's defaults: what the
   * user did not set follows them. An unreachable server changes nothing.
   */
  private _followServerLoop(): void {
    const loop = serverLoop(this.statusModel.status);
    if (loop) {
      this.chatModel.serverLoop = loop;
    }
  }

  private _focusRequested = new Signal<OciPanel, void>(this);
  private _quietActivation = false;
  private _ociTrans: TranslationBundle;
}

export namespace OciPanel {
  export interface IOptions {
    chatModel: IOciChatModel;
    rendermime: IRenderMimeRegistry;
    /** Where the toolbar's buttons find their commands. */
    commands: CommandRegistry;
    settledInterval?: number;
    serverSettings?: ServerConnection.ISettings;
    translator?: ITranslator;
  }
}
