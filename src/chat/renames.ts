/**
 * The chat follows its notebooks' renames: the server keeps a chat per path,
 * and a request may still run in a notebook the user has moved on from.
 */
import type { NotebookPanel } from '@jupyterlab/notebook';

type DocumentContext = NotebookPanel['context'];

export class NotebookRenames {
  /** `renamed(old, new)` is called on every rename of a followed notebook. */
  constructor(renamed: (oldPath: string, newPath: string) => void) {
    this._renamed = renamed;
  }

  /** Follow this notebook's renames until its document closes. */
  follow(panel: NotebookPanel): void {
    // Keyed by the document: two views of one notebook share its renames.
    const context = panel.context;
    if (this._handlers.has(context)) {
      return;
    }
    let path = context.path;
    const onRenamed = (_: unknown, newPath: string) => {
      const old = path;
      path = newPath;
      this._renamed(old, newPath);
    };
    this._handlers.set(context, onRenamed);
    context.pathChanged.connect(onRenamed);
    context.disposed.connect(() => this._unfollow(context));
  }

  dispose(): void {
    for (const context of [...this._handlers.keys()]) {
      this._unfollow(context);
    }
  }

  private _unfollow(context: DocumentContext): void {
    const onRenamed = this._handlers.get(context);
    if (onRenamed) {
      context.pathChanged.disconnect(onRenamed);
      this._handlers.delete(context);
    }
  }

  private _renamed: (oldPath: string, newPath: string) => void;
  /** The notebooks whose renames are followed, with their handlers. */
  private _handlers = new Map<
    DocumentContext,
    (sender: unknown, path: string) => void
  >();
}
