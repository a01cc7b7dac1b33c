/**
 * The model's words load nothing from elsewhere. JupyterLab's sanitizer
 * keeps remote images (and audio, video, CSS `url()`), which load the moment
 * the reply is on screen: a reply steered by a notebook's content could
 * carry the notebook's data out in an image's URL, without a click. Replies
 * (the chat's, a fix's note) are rendered through a copy of the app's
 * rendermime whose sanitizer, after JupyterLab's, turns remote images into
 * links (their alt text, the URL as the target and tooltip) and drops every
 * other element or attribute that would load something. The HTML is cleaned
 * in an inert document (`DOMParser`: nothing there loads) before the
 * renderer puts it on the page; `guardRemoteLoads` also cleans what is added
 * later (the math typesetter's styles).
 */
import { IRenderMime, IRenderMimeRegistry } from '@jupyterlab/rendermime';
import type { IDisposable } from '@lumino/disposable';

/** The class of a link that stands for an image the reply did not load. */
export const IMAGE_LINK_CLASS = 'jp-OciChat-imageLink';

/** Elements that load what they show, or a document, from their URL. */
const DROPPED = new Set([
  'audio',
  'base',
  'embed',
  'feimage',
  'frame',
  'frameset',
  'iframe',
  'image',
  'link',
  'meta',
  'object',
  'portal',
  'script',
  'source',
  'style',
  'track',
  'use',
  'video'
]);

/** Attributes that load (or send) something wherever they are. */
const LOADING_ATTRIBUTES = [
  'srcset',
  'lowsrc',
  'dynsrc',
  'poster',
  'background',
  'longdesc',
  'ping',
  'action',
  'formaction',
  'data',
  'codebase',
  'xlink:href',
  // JupyterLab's command linker runs a command when the element is clicked.
  'data-commandlinker-command',
  'data-commandlinker-args'
];

/** Inline CSS that may fetch: url(), image-set(), escapes that spell them. */
const LOADING_STYLE = /url|image|@import|\\|expression/i;

/** Whether an image's source is in the page already (nothing to fetch). */
function isInline(url: string): boolean {
  return /^\s*(data|blob):/i.test(url);
}

/** Whether a URL is a web address a link may point at. */
function isWebAddress(url: string): boolean {
  return /^\s*(https?:)?\/\//i.test(url);
}

/**
 * What stands for an element that would have loaded `url`: a link to it
 * (a web address) or its text alone (any other scheme: never a link to
 * `javascript:` or a file).
 */
function standIn(
  doc: Document,
  url: string,
  text: string,
  inLink = false
): HTMLElement {
  const label = text.trim() || url.trim();
  // Inside a link (a linked image), the text stands in: no link in a link.
  if (!isWebAddress(url) || inLink) {
    const span = doc.createElement('span');
    span.className = IMAGE_LINK_CLASS;
    span.textContent = label;
    return span;
  }
  const link = doc.createElement('a');
  link.className = IMAGE_LINK_CLASS;
  link.href = url.trim();
  link.title = url.trim();
  link.target = '_blank';
  link.rel = 'noopener noreferrer nofollow';
  link.textContent = label;
  return link;
}

/** Clean one element (not its descendants); false when it was removed. */
function cleanElement(element: Element): boolean {
  const doc = element.ownerDocument;
  const tag = element.localName.toLowerCase();
  if (tag === 'img' || (tag === 'input' && element.hasAttribute('src'))) {
    const src = element.getAttribute('src') ?? '';
    if (!src || !isInline(src)) {
      const text =
        element.getAttribute('alt') || element.getAttribute('title') || '';
      const inLink = !!element.parentElement?.closest('a');
      element.replaceWith(standIn(doc, src, text, inLink));
      return false;
    }
  } else if (tag === 'picture') {
    // Its <source>s go; its <img> stays, cleaned like any other.
    element.replaceWith(...Array.from(element.childNodes));
    return false;
  } else if (DROPPED.has(tag)) {
    const src =
      element.getAttribute('src') ??
      element.getAttribute('href') ??
      element.getAttribute('data') ??
      '';
    if ((tag === 'audio' || tag === 'video') && isWebAddress(src)) {
      element.replaceWith(standIn(doc, src, ''));
    } else {
      element.remove();
    }
    return false;
  }
  for (const name of LOADING_ATTRIBUTES) {
    if (element.hasAttribute(name)) {
      element.removeAttribute(name);
    }
  }
  if (tag !== 'a' && tag !== 'area' && element.hasAttribute('href')) {
    element.removeAttribute('href');
  }
  if (tag !== 'img' && tag !== 'input' && element.hasAttribute('src')) {
    element.removeAttribute('src');
  }
  const style = element.getAttribute('style');
  if (style !== null && LOADING_STYLE.test(style)) {
    element.removeAttribute('style');
  }
  return true;
}

/** Clean an element and everything in it, in place. */
export function removeRemoteLoads(root: Element): void {
  // Children before their parent is replaced: a snapshot of the subtree.
  for (const element of Array.from(root.querySelectorAll('*')).reverse()) {
    cleanElement(element);
  }
}

/**
 * HTML without anything that loads from elsewhere, cleaned in an inert
 * document (nothing in it is fetched).
 */
export function withoutRemoteLoads(html: string): string {
  const doc = new DOMParser().parseFromString(
    '<!DOCTYPE html><body></body>',
    'text/html'
  );
  doc.body.innerHTML = html;
  removeRemoteLoads(doc.body);
  return doc.body.innerHTML;
}

/** JupyterLab's sanitizer, then nothing that loads from elsewhere. */
export class ReplySanitizer implements IRenderMime.ISanitizer {
  constructor(private readonly _base: IRenderMime.ISanitizer) {}

  get allowNamedProperties(): boolean {
    return this._base.allowNamedProperties ?? false;
  }

  get allowCommandLinker(): boolean {
    return false;
  }

  getAutolink(): boolean {
    return this._base.getAutolink?.() ?? true;
  }

  sanitize(dirty: string, options?: IRenderMime.ISanitizerOptions): string {
    return withoutRemoteLoads(this._base.sanitize(dirty, options));
  }
}

const replyRegistries = new WeakMap<IRenderMimeRegistry, IRenderMimeRegistry>();

/**
 * The app's rendermime for the model's words: the same parser, highlighter
 * and typesetter, with the reply sanitizer. One copy per registry.
 */
export function replyRendermime(
  rendermime: IRenderMimeRegistry
): IRenderMimeRegistry {
  let copy = replyRegistries.get(rendermime);
  if (!copy) {
    copy = rendermime.clone({
      sanitizer: new ReplySanitizer(rendermime.sanitizer)
    });
    replyRegistries.set(rendermime, copy);
  }
  return copy;
}

/**
 * Keep a rendered reply clean of what is added to it later (the math
 * typesetter styles what it draws): cleaned before the page is drawn again.
 */
export function guardRemoteLoads(node: HTMLElement): IDisposable {
  const observer = new MutationObserver(records => {
    for (const record of records) {
      if (record.type === 'attributes') {
        const target = record.target as Element;
        if (node.contains(target)) {
          cleanElement(target);
        }
        continue;
      }
      for (const added of Array.from(record.addedNodes)) {
        if (added instanceof Element) {
          removeRemoteLoads(added);
          cleanElement(added);
        }
      }
    }
  });
  observer.observe(node, {
    subtree: true,
    childList: true,
    attributes: true,
    attributeFilter: ['src', 'srcset', 'style', 'href', 'poster', 'background']
  });
  let disposed = false;
  return {
    get isDisposed() {
      return disposed;
    },
    dispose() {
      disposed = true;
      observer.disconnect();
    }
  };
}
