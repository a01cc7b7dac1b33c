/**
 * Auto-fix: a failing cell gets a "Fix with OpenCodeInterpreter" button (or
 * is fixed at once), and in suggest mode each rewrite is shown as a diff the
 * user accepts or rejects.
 */
import { Cell, CodeCell, ICellModel } from '@jupyterlab/cells';
import { Dialog } from '@jupyterlab/apputils';
import { IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';
import { TranslationBundle } from '@jupyterlab/translation';
import type { IDisposable } from '@lumino/disposable';
import { PanelLayout, Widget } from '@lumino/widgets';
import { diffLines } from 'diff';

import { IExecutionError } from './chat/protocol';
import { guardRemoteLoads, replyRendermime } from './chat/sanitize';
import { METADATA_KEY } from './notebook';

/** `off`: nothing; `suggest`: a button and a diff to accept; `auto`: at once. */
export type AutoFixMode = 'off' | 'suggest' | 'auto';

/** The class of a cell a fix is working on. */
export const FIXING_CLASS = 'jp-mod-ociFixing';
const FIX_BUTTON_CLASS = 'jp-OciFixButton';
const FIXING_BAR_CLASS = 'jp-OciFixingBar';
const FIX_RESULT_CLASS = 'jp-OciFixResult';

/** The error a code cell's outputs show, if any. */
export function cellError(cell: ICellModel): IExecutionError | null {
  if (cell.type !== 'code') {
    return null;
  }
  const outputs = (cell as CodeCell['model']).outputs;
  for (let i = 0; i < outputs.length; i++) {
    const output = outputs.get(i).toJSON();
    if (output.output_type === 'error') {
      return {
        ename: String(output.ename ?? ''),
        evalue: String(output.evalue ?? ''),
        traceback: Array.isArray(output.traceback)
          ? (output.traceback as string[]).map(String)
          : []
      };
    }
  }
  return null;
}

/**
 * Whether a cell shows an error, without copying its outputs: asked on every
 * output change of the active cell, to show or hide its toolbar's Fix button.
 */
export function hasError(cell: ICellModel): boolean {
  if (cell.type !== 'code') {
    return false;
  }
  const outputs = (cell as CodeCell['model']).outputs;
  for (let i = 0; i < outputs.length; i++) {
    if (outputs.get(i).type === 'error') {
      return true;
    }
  }
  return false;
}

/** The source a fix replaced, kept in the cell's metadata. */
export function originalSource(cell: ICellModel): string | null {
  const meta = cell.getMetadata(METADATA_KEY) as
    { original_source?: unknown } | undefined;
  return typeof meta?.original_source === 'string'
    ? meta.original_source
    : null;
}

// ---- the button on a failing cell

/**
 * The button under a failing cell's outputs. It goes away by itself when the
 * error does (outputs cleared, the cell run again).
 */
class FixButton extends Widget {
  constructor(
    private readonly _cell: CodeCell,
    label: string,
    onClick: () => void
  ) {
    super({ node: document.createElement('div') });
    this.addClass(FIX_BUTTON_CLASS);
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'jp-Button jp-mod-styled jp-mod-accept';
    button.textContent = label;
    button.addEventListener('click', event => {
      event.stopPropagation();
      onClick();
    });
    this.node.appendChild(button);
    _cell.model.outputs.changed.connect(this._onOutputs, this);
  }

  dispose(): void {
    if (!this.isDisposed && !this._cell.isDisposed) {
      this._cell.model.outputs.changed.disconnect(this._onOutputs, this);
    }
    super.dispose();
  }

  private _onOutputs(): void {
    if (cellError(this._cell.model) === null) {
      this.dispose();
    }
  }
}

/** Show the fix button on a failing cell (once). */
export function showFixButton(
  cell: CodeCell,
  label: string,
  onClick: () => void
): void {
  hideFixButton(cell);
  // The cell's own layout: after the outputs (and the empty footer).
  (cell.layout as PanelLayout).addWidget(new FixButton(cell, label, onClick));
}

export function hideFixButton(cell: Cell): void {
  disposeOwn(cell, FIX_BUTTON_CLASS);
}

/**
 * Mark a cell as being fixed: its border, and a bar under it that says so
 * with a Stop button. The returned function removes both.
 */
export function showFixing(
  cell: Cell,
  labels: { fixing: string; stop: string },
  onStop: () => void
): () => void {
  disposeOwn(cell, FIXING_BAR_CLASS);
  disposeOwn(cell, FIX_RESULT_CLASS);
  cell.addClass(FIXING_CLASS);
  const bar = new Widget({ node: document.createElement('div') });
  bar.addClass(FIXING_BAR_CLASS);
  const text = document.createElement('span');
  text.className = 'jp-OciFixingBar-text';
  text.textContent = labels.fixing;
  const stop = document.createElement('button');
  stop.type = 'button';
  stop.className = 'jp-Button jp-mod-styled jp-mod-reject';
  stop.textContent = labels.stop;
  stop.addEventListener('click', event => {
    event.stopPropagation();
    stop.disabled = true;
    onStop();
  });
  bar.node.append(text, stop);
  (cell.layout as PanelLayout).addWidget(bar);
  return () => {
    bar.dispose();
    if (!cell.isDisposed) {
      cell.removeClass(FIXING_CLASS);
    }
  };
}

// ---- how the fix ended, under the cell

export interface IFixResultView {
  kind: 'fixed' | 'failed';
  /** "Fixed", "Not fixed · stopped at the attempt budget". */
  title: string;
  /** The model's explanation (markdown), or "". */
  explanation: string;
  /** Why it ended, when there is no explanation. */
  message: string;
  dismiss: string;
}

/**
 * Where the fix's progress was shown: how it ended and the model's short
 * explanation. It goes when dismissed, when the cell runs again or its
 * outputs are cleared, or when another fix starts.
 */
class FixResult extends Widget {
  constructor(
    private readonly _cell: CodeCell,
    view: IFixResultView,
    rendermime: IRenderMimeRegistry
  ) {
    super({ node: document.createElement('div') });
    this.addClass(FIX_RESULT_CLASS);
    this.addClass(`jp-mod-${view.kind}`);
    this.node.setAttribute('role', 'status');
    this.node.dataset.ociFixResult = view.kind;
    const card = document.createElement('div');
    card.className = 'jp-OciFixResult-card';
    const header = document.createElement('div');
    header.className = 'jp-OciFixResult-header';
    const title = document.createElement('span');
    title.className = 'jp-OciFixResult-title';
    title.textContent = view.title;
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'jp-OciFixResult-dismiss';
    close.title = view.dismiss;
    close.setAttribute('aria-label', view.dismiss);
    close.textContent = '×';
    close.addEventListener('click', event => {
      event.stopPropagation();
      this.dispose();
    });
    header.append(title, close);
    card.appendChild(header);
    if (view.explanation) {
      // The model's words: nothing loaded from elsewhere (a remote image is
      // a link), as in the chat.
      const renderer =
        replyRendermime(rendermime).createRenderer('text/markdown');
      renderer.addClass('jp-OciFixResult-body');
      // The model's words are untrusted: sanitized, no scripts.
      void renderer
        .renderModel(
          new MimeModel({ data: { 'text/markdown': view.explanation } })
        )
        .catch(() => {
          renderer.node.textContent = view.explanation;
        });
      card.appendChild(renderer.node);
      this._renderer = renderer;
      this._guard = guardRemoteLoads(renderer.node);
    } else if (view.message) {
      const text = document.createElement('p');
      text.className = 'jp-OciFixResult-message';
      text.textContent = view.message;
      card.appendChild(text);
    }
    this.node.appendChild(card);
    _cell.model.outputs.changed.connect(this._onOutputs, this);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    if (!this._cell.isDisposed) {
      this._cell.model.outputs.changed.disconnect(this._onOutputs, this);
    }
    this._guard?.dispose();
    this._renderer?.dispose();
    super.dispose();
  }

  private _onOutputs(): void {
    this.dispose();
  }

  private _guard: IDisposable | null = null;
  private _renderer: Widget | null = null;
}

/** Show how a fix ended under its cell (replacing an earlier note). */
export function showFixResult(
  cell: CodeCell,
  view: IFixResultView,
  rendermime: IRenderMimeRegistry
): void {
  disposeOwn(cell, FIX_RESULT_CLASS);
  (cell.layout as PanelLayout).addWidget(new FixResult(cell, view, rendermime));
}

export function hideFixResult(cell: Cell): void {
  disposeOwn(cell, FIX_RESULT_CLASS);
}

/** Remove this module's widgets of one kind from a cell. */
function disposeOwn(cell: Cell, className: string): void {
  const layout = cell.layout as PanelLayout | null;
  for (const widget of [...(layout?.widgets ?? [])]) {
    if (widget.hasClass(className)) {
      widget.dispose();
    }
  }
}

// ---- the diff

export interface IDiffLine {
  kind: 'same' | 'removed' | 'added';
  text: string;
}

/** The lines of a cell's old and new source, each marked same, removed or added. */
export function lineDiff(oldText: string, newText: string): IDiffLine[] {
  // One final newline on both sides, so that a missing one is not a change.
  const normalize = (text: string) => text.replace(/\n?$/, '\n');
  const lines: IDiffLine[] = [];
  for (const part of diffLines(normalize(oldText), normalize(newText))) {
    const kind = part.added ? 'added' : part.removed ? 'removed' : 'same';
    for (const text of part.value.replace(/\n$/, '').split('\n')) {
      lines.push({ kind, text });
    }
  }
  return lines;
}

function diffWidget(oldText: string, newText: string): Widget {
  const widget = new Widget({ node: document.createElement('pre') });
  widget.addClass('jp-OciDiff');
  for (const line of lineDiff(oldText, newText)) {
    const row = document.createElement('div');
    row.className = `jp-OciDiff-line jp-OciDiff-${line.kind}`;
    const sign =
      line.kind === 'added' ? '+ ' : line.kind === 'removed' ? '- ' : '  ';
    row.textContent = sign + line.text;
    widget.node.appendChild(row);
  }
  return widget;
}

/**
 * Show the rewrite a fix (or an edit) proposes; true when the user accepts
 * it. Closed (as a rejection) when the request stops.
 */
export async function confirmFix(
  trans: TranslationBundle,
  oldSource: string,
  newSource: string,
  signal: AbortSignal,
  /** Why the fix asks (shown above the diff), if it says. */
  note?: string,
  /** The dialog's question; the fix's when absent. */
  title?: string
): Promise<boolean> {
  let body = diffWidget(oldSource, newSource);
  if (note) {
    const diff = body;
    body = new Widget({ node: document.createElement('div') });
    const text = document.createElement('p');
    text.className = 'jp-OciDiffDialog-note';
    text.textContent = note;
    body.node.append(text, diff.node);
  }
  const dialog = new Dialog({
    title: title ?? trans.__('Apply the fix?'),
    body,
    buttons: [
      Dialog.cancelButton({ label: trans.__('Reject') }),
      Dialog.okButton({ label: trans.__('Accept') })
    ]
  });
  dialog.addClass('jp-OciDiffDialog');
  const onAbort = () => dialog.reject();
  signal.addEventListener('abort', onAbort);
  try {
    const result = await dialog.launch();
    return !signal.aborted && result.button.accept;
  } finally {
    signal.removeEventListener('abort', onAbort);
    dialog.dispose();
  }
}
