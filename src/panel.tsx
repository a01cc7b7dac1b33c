/**
 * The OpenCodeInterpreter sidebar: the model's status now, the chat later.
 */
import { ServerConnection } from '@jupyterlab/services';
import {
  ITranslator,
  nullTranslator,
  TranslationBundle
} from '@jupyterlab/translation';
import { VDomRenderer } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import {
  ChatPlaceholder,
  EngineStatusView,
  UnreachableView
} from './components';
import { ociIcon } from './icon';
import { EngineStatusModel } from './model';

export const PANEL_ID = 'oci-jupyter-panel';

export class OciPanel extends VDomRenderer<EngineStatusModel> {
  constructor(options: OciPanel.IOptions = {}) {
    super();
    this.model = new EngineStatusModel({
      settledInterval: options.settledInterval,
      serverSettings: options.serverSettings,
      isActive: () => this.isVisible
    });
    this._trans = (options.translator ?? nullTranslator).load('oci_jupyter');
    this.id = PANEL_ID;
    this.addClass('jp-OciPanel');
    this.title.icon = ociIcon;
    this.title.caption = this._trans.__('OpenCodeInterpreter');
  }

  dispose(): void {
    // VDomRenderer lets go of its model without disposing it; the poll
    // inside must stop with the panel.
    const model = this.model;
    super.dispose();
    model?.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    // The poll stood by while hidden: show fresh state at once.
    void this.model.refresh();
  }

  protected render(): JSX.Element {
    const trans = this._trans;
    const { status, failure } = this.model;
    let body: JSX.Element;
    if (failure) {
      body = <UnreachableView failure={failure} trans={trans} />;
    } else if (status) {
      body = <EngineStatusView status={status} trans={trans} />;
    } else {
      body = (
        <p className="jp-OciStatus-detail">
          {trans.__('Asking the server for the model state…')}
        </p>
      );
    }
    return (
      <>
        <header className="jp-OciPanel-header">
          <ociIcon.react tag="span" className="jp-OciPanel-icon" />
          <h2 className="jp-OciPanel-title">
            {trans.__('OpenCodeInterpreter')}
          </h2>
        </header>
        <section
          className="jp-OciPanel-status"
          aria-label={trans.__('Model server')}
        >
          {body}
        </section>
        <ChatPlaceholder trans={trans} />
      </>
    );
  }

  private _trans: TranslationBundle;
}

export namespace OciPanel {
  export interface IOptions {
    settledInterval?: number;
    serverSettings?: ServerConnection.ISettings;
    translator?: ITranslator;
  }
}
