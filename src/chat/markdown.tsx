/**
 * Markdown through JupyterLab's own renderer: the same parser, sanitizer and
 * code highlighting as a notebook's markdown cells, and nothing loaded from
 * elsewhere (./sanitize.ts: a remote image is a link).
 */
import { IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';
import { MessageLoop } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import * as React from 'react';

import { guardRemoteLoads, replyRendermime } from './sanitize';

const MARKDOWN = 'text/markdown';

type Renderer = ReturnType<IRenderMimeRegistry['createRenderer']>;

/**
 * The value, updated at most every `ms` while `throttle` is on: the first
 * change shows at once, later ones at the end of each interval.
 */
export function useThrottled<T>(value: T, ms: number, throttle: boolean): T {
  const [shown, setShown] = React.useState(value);
  const last = React.useRef(0);
  React.useEffect(() => {
    const wait = last.current + ms - Date.now();
    if (!throttle || wait <= 0) {
      last.current = Date.now();
      setShown(value);
      return;
    }
    const timer = window.setTimeout(() => {
      last.current = Date.now();
      setShown(value);
    }, wait);
    return () => window.clearTimeout(timer);
  }, [value, throttle, ms]);
  return throttle ? shown : value;
}

/**
 * Detach and dispose a widget attached to a React-owned host. Widget.detach
 * refuses a node React already took out of the document (a whole panel being
 * unmounted); the lifecycle messages it would send do not need the document.
 */
function release(widget: Widget): void {
  if (widget.isAttached) {
    MessageLoop.sendMessage(widget, Widget.Msg.BeforeDetach);
    widget.node.remove();
    MessageLoop.sendMessage(widget, Widget.Msg.AfterDetach);
  }
  widget.dispose();
  widget.node.remove();
}

export function Markdown(props: {
  source: string;
  rendermime: IRenderMimeRegistry;
  /** Called after each render with the source now on screen. */
  onRendered?: (source: string) => void;
}): JSX.Element {
  const { source, rendermime } = props;
  const host = React.useRef<HTMLDivElement>(null);
  const renderer = React.useRef<Renderer | null>(null);
  // Renders run one after the other, and only the newest source is rendered:
  // an older parse finishing late must not overwrite a newer one.
  const queue = React.useRef<Promise<void>>(Promise.resolve());
  const latest = React.useRef(source);
  const onRendered = React.useRef(props.onRendered);
  onRendered.current = props.onRendered;

  // One renderer for the component's life: a streaming reply re-renders into
  // it in place, without flicker. A layout effect: its cleanup runs while
  // the host is still in the document.
  React.useLayoutEffect(() => {
    const node = host.current;
    if (!node) {
      return;
    }
    const widget = replyRendermime(rendermime).createRenderer(MARKDOWN);
    renderer.current = widget;
    const guard = guardRemoteLoads(widget.node);
    // Attached as a Lumino widget so it gets its lifecycle messages like any
    // other rendered output; a host outside the document (a panel not shown
    // yet) cannot attach, and holds the node until it is shown.
    if (node.isConnected) {
      Widget.attach(widget, node);
    } else {
      node.appendChild(widget.node);
    }
    return () => {
      renderer.current = null;
      guard.dispose();
      release(widget);
    };
  }, [rendermime]);

  React.useEffect(() => {
    latest.current = source;
    queue.current = queue.current.then(async () => {
      const widget = renderer.current;
      if (!widget || widget.isDisposed || latest.current !== source) {
        return;
      }
      // The model's words are untrusted: no scripts, sanitized HTML, no
      // remote resources.
      const model = new MimeModel({ data: { [MARKDOWN]: source } });
      try {
        await widget.renderModel(model);
        onRendered.current?.(source);
      } catch (reason) {
        console.warn('oci-jupyter: markdown rendering failed.', reason);
      }
    });
  }, [source, rendermime]);

  return <div className="jp-OciChat-markdown" ref={host} />;
}

/**
 * Render a line of markdown with code once, off screen: JupyterLab loads its
 * markdown parser and code highlighter on first use (~200 ms), which would
 * otherwise delay the first words of the first reply.
 */
export function warmUpMarkdown(rendermime: IRenderMimeRegistry): void {
  const renderer = replyRendermime(rendermime).createRenderer(MARKDOWN);
  const model = new MimeModel({
    data: { [MARKDOWN]: '`x`\n\n```python\nx = 1\n```' }
  });
  void renderer
    .renderModel(model)
    .catch(() => undefined)
    .then(() => renderer.dispose());
}
