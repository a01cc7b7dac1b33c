/**
 * The edit prompt: a small input under a cell's code where the user says how
 * to change the cell ("make this a function"). Enter sends, Shift+Enter is
 * a new line, Escape closes; either way the focus goes back to the cell.
 *
 * A widget in the cell's own layout, like the fix's button and bar
 * (../autofix.ts): it scrolls, hides and goes with the cell, and replaces no
 * factory that other extensions set.
 */
import type { Cell } from '@jupyterlab/cells';
import { PanelLayout, Widget } from '@lumino/widgets';

const PROMPT_CLASS = 'jp-OciEditPrompt';

export interface IEditPromptLabels {
  /** "Change this cell…" */
  placeholder: string;
  /** The input's accessible name. */
  label: string;
  send: string;
  close: string;
  /** "Enter to send · Shift+Enter for a new line · Escape to close" */
  keys: string;
  /** "About lines 2–3" when lines are selected, else "". */
  about: string;
}

export interface IEditPromptOptions {
  labels: IEditPromptLabels;
  /**
   * The user sent an instruction (never empty): true when the request
   * started (the prompt closes), false to keep the prompt and its text
   * (the request cannot start now, and the caller said why).
   */
  send: (instruction: string) => boolean;
  /** The prompt closed (sent or not): give the focus back to the cell. */
  closed: () => void;
}

/** The prompt under one cell's input. */
export class EditPrompt extends Widget {
  constructor(options: IEditPromptOptions) {
    super({ node: document.createElement('div') });
    this._options = options;
    const { labels } = options;
    this.addClass(PROMPT_CLASS);
    const box = document.createElement('div');
    box.className = 'jp-OciEditPrompt-box';
    const input = document.createElement('textarea');
    input.className = 'jp-OciEditPrompt-input';
    input.rows = 1;
    input.placeholder = labels.placeholder;
    input.setAttribute('aria-label', labels.label);
    input.spellcheck = true;
    this._input = input;
    const send = document.createElement('button');
    send.type = 'button';
    send.className =
      'jp-Button jp-mod-styled jp-mod-accept jp-OciEditPrompt-send';
    send.textContent = labels.send;
    send.disabled = true;
    this._sendButton = send;
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'jp-OciEditPrompt-close';
    close.title = labels.close;
    close.setAttribute('aria-label', labels.close);
    close.textContent = '×';
    box.append(input, send, close);
    const hint = document.createElement('div');
    hint.className = 'jp-OciEditPrompt-hint';
    hint.id = `jp-OciEditPrompt-hint-${Private.next()}`;
    if (labels.about) {
      const about = document.createElement('span');
      about.className = 'jp-OciEditPrompt-about';
      about.textContent = labels.about;
      hint.append(about, ' · ');
    }
    hint.append(labels.keys);
    input.setAttribute('aria-describedby', hint.id);
    this.node.append(box, hint);

    input.addEventListener('keydown', this._onKeyDown);
    input.addEventListener('input', this._onInput);
    send.addEventListener('click', event => {
      event.stopPropagation();
      this._send();
    });
    close.addEventListener('click', event => {
      event.stopPropagation();
      this.close();
    });
    // A click in the prompt is not a click on the cell: the notebook would
    // start a drag or a selection of cells.
    this.node.addEventListener('mousedown', event => event.stopPropagation());
  }

  /** What the user typed so far. */
  get value(): string {
    return this._input.value;
  }

  /** Put the caret into the input. */
  focusInput(): void {
    this._input.focus();
  }

  /** Close the prompt (Escape, ×), giving the focus back to the cell. */
  close(): void {
    if (this.isDisposed) {
      return;
    }
    // The focus goes back before the input leaves the page: the notebook
    // takes it back only while it holds the focus.
    this._options.closed();
    this.dispose();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._input.removeEventListener('keydown', this._onKeyDown);
    this._input.removeEventListener('input', this._onInput);
    super.dispose();
  }

  private _send(): void {
    const instruction = this._input.value.trim();
    if (instruction && this._options.send(instruction)) {
      this.close();
    }
  }

  private _onKeyDown = (event: KeyboardEvent): void => {
    // A key that picks an IME candidate is the IME's, not a send.
    if (event.isComposing || event.keyCode === 229) {
      return;
    }
    if (event.key === 'Enter') {
      // Not the notebook's Enter (edit mode) or Shift+Enter (run the cell).
      event.stopPropagation();
      event.preventDefault();
      if (event.shiftKey) {
        // The new line is put in here: the page's key handling (JupyterLab
        // runs the cell on Shift+Enter) may have taken the browser's own.
        const input = this._input;
        input.setRangeText(
          '\n',
          input.selectionStart,
          input.selectionEnd,
          'end'
        );
        this._onInput();
      } else {
        this._send();
      }
    } else if (event.key === 'Escape') {
      // Not the notebook's Escape (command mode), nor the chat's Stop.
      event.preventDefault();
      event.stopPropagation();
      this.close();
    }
  };

  private _onInput = (): void => {
    this._sendButton.disabled = !this._input.value.trim();
    // Grow with the text, up to the stylesheet's max-height.
    const input = this._input;
    input.style.height = 'auto';
    input.style.height = `${input.scrollHeight}px`;
  };

  private _input: HTMLTextAreaElement;
  private _options: IEditPromptOptions;
  private _sendButton: HTMLButtonElement;
}

/** The prompt a cell shows, if any. */
export function editPromptOf(cell: Cell): EditPrompt | null {
  const layout = cell.layout as PanelLayout | null;
  const found = layout?.widgets.find(w => w instanceof EditPrompt);
  return (found as EditPrompt | undefined) ?? null;
}

/**
 * Show the prompt right under the cell's input (above its outputs), and
 * focus it. A cell shows one prompt at a time: asked again, the one it has
 * takes the focus, text kept.
 */
export function showEditPrompt(
  cell: Cell,
  options: IEditPromptOptions
): EditPrompt {
  const shown = editPromptOf(cell);
  if (shown) {
    shown.focusInput();
    return shown;
  }
  const prompt = new EditPrompt(options);
  const layout = cell.layout as PanelLayout;
  const input = cell.inputArea?.parent ?? null;
  const at = input ? layout.widgets.indexOf(input) : -1;
  if (at >= 0) {
    layout.insertWidget(at + 1, prompt);
  } else {
    layout.addWidget(prompt);
  }
  prompt.focusInput();
  // A click on the cell toolbar's button ends with the notebook taking the
  // focus back to the cell (its mouse handling runs after the command):
  // once that is done, the prompt takes it again.
  window.requestAnimationFrame(() => {
    if (!prompt.isDisposed && !prompt.node.contains(document.activeElement)) {
      prompt.focusInput();
    }
  });
  return prompt;
}

namespace Private {
  let count = 0;
  /** A number for the next prompt's ids. */
  export function next(): number {
    return ++count;
  }
}
