/**
 * A cell's outputs as text a model can read: what a person would read in
 * them. Streams and text/plain as they are; a figure is named with its size
 * ("a figure was displayed: 1 image, 640×480"), never sent as base64; HTML
 * (a styled table, a widget's fallback) is its text/plain or, without a
 * useful one, its text without the tags.
 */
import * as nbformat from '@jupyterlab/nbformat';

/** The text of an HTML output without a useful text/plain, at most. */
const HTML_LIMIT = 1500;
/** Base64 characters decoded at most to find a JPEG's frame header. */
const JPEG_SCAN_CHARS = 256 * 1024;

const IMAGE_TYPES = [
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
  'image/bmp',
  'image/svg+xml'
];

export interface IImageSize {
  width: number;
  height: number;
}

function multiline(value: unknown): string {
  if (typeof value === 'string') {
    return value;
  }
  return Array.isArray(value) ? value.map(String).join('') : '';
}

/** The first bytes of base64 data (whitespace ignored), or null if invalid. */
export function base64Prefix(data: string, chars: number): Uint8Array | null {
  // Only the head is read: strip whitespace from a little more than needed.
  const head = data.slice(0, chars + Math.ceil(chars / 16) + 64);
  let clean = head.replace(/\s+/g, '').slice(0, chars);
  clean = clean.slice(0, clean.length - (clean.length % 4));
  try {
    const binary = atob(clean);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes;
  } catch {
    return null;
  }
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Width and height from a PNG's IHDR chunk (bytes 16..24). */
export function pngSize(bytes: Uint8Array): IImageSize | null {
  if (
    bytes.length < 24 ||
    PNG_SIGNATURE.some((b, i) => bytes[i] !== b) ||
    String.fromCharCode(...bytes.subarray(12, 16)) !== 'IHDR'
  ) {
    return null;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** Width and height from a JPEG's start-of-frame segment. */
export function jpegSize(bytes: Uint8Array): IImageSize | null {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) {
    return null;
  }
  let offset = 2;
  while (offset + 4 <= bytes.length) {
    if (bytes[offset] !== 0xff) {
      return null;
    }
    const marker = bytes[offset + 1];
    if (marker === 0xff) {
      offset += 1; // fill byte
      continue;
    }
    if (
      marker === 0xd8 ||
      marker === 0x01 ||
      (marker >= 0xd0 && marker <= 0xd7)
    ) {
      offset += 2; // markers without a length
      continue;
    }
    const length = (bytes[offset + 2] << 8) | bytes[offset + 3];
    // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC).
    const isFrame =
      marker >= 0xc0 &&
      marker <= 0xcf &&
      marker !== 0xc4 &&
      marker !== 0xc8 &&
      marker !== 0xcc;
    if (isFrame) {
      if (offset + 9 > bytes.length) {
        return null;
      }
      const height = (bytes[offset + 5] << 8) | bytes[offset + 6];
      const width = (bytes[offset + 7] << 8) | bytes[offset + 8];
      return { width, height };
    }
    if (marker === 0xda || length < 2) {
      return null; // the image data starts: no frame header before it
    }
    offset += 2 + length;
  }
  return null;
}

/** Width and height from a GIF's logical screen descriptor. */
export function gifSize(bytes: Uint8Array): IImageSize | null {
  if (
    bytes.length < 10 ||
    String.fromCharCode(...bytes.subarray(0, 3)) !== 'GIF'
  ) {
    return null;
  }
  return {
    width: bytes[6] | (bytes[7] << 8),
    height: bytes[8] | (bytes[9] << 8)
  };
}

function positive(value: unknown): number | null {
  const number = typeof value === 'string' ? parseFloat(value) : value;
  return typeof number === 'number' && Number.isFinite(number) && number > 0
    ? Math.round(number)
    : null;
}

/**
 * An image's size: the output's metadata says it (`{"image/png": {"width":
 * 640, "height": 480}}`, as IPython's Image and matplotlib's retina figures
 * write), else the image's own header.
 */
export function imageSize(
  mime: string,
  data: unknown,
  metadata: unknown
): IImageSize | null {
  const meta = (metadata ?? {}) as Record<string, unknown>;
  const own = (meta[mime] ?? {}) as Record<string, unknown>;
  for (const source of [own, meta]) {
    const width = positive(source?.width);
    const height = positive(source?.height);
    if (width !== null && height !== null) {
      return { width, height };
    }
  }
  const text = multiline(data);
  if (!text) {
    return null;
  }
  if (mime === 'image/svg+xml') {
    const svg = /<svg\b[^>]*>/i.exec(text)?.[0] ?? '';
    const width = positive(
      /\bwidth\s*=\s*["']?([\d.]+)(px|pt)?["'\s>]/i.exec(svg)?.[1]
    );
    const height = positive(
      /\bheight\s*=\s*["']?([\d.]+)(px|pt)?["'\s>]/i.exec(svg)?.[1]
    );
    return width !== null && height !== null ? { width, height } : null;
  }
  if (mime === 'image/png') {
    const bytes = base64Prefix(text, 32);
    return bytes ? pngSize(bytes) : null;
  }
  if (mime === 'image/gif') {
    const bytes = base64Prefix(text, 16);
    return bytes ? gifSize(bytes) : null;
  }
  if (mime === 'image/jpeg') {
    const bytes = base64Prefix(text, JPEG_SCAN_CHARS);
    return bytes ? jpegSize(bytes) : null;
  }
  return null;
}

/** "a figure was displayed: 1 image, 640×480" */
export function figureLine(sizes: (IImageSize | null)[]): string {
  const count = sizes.length;
  const known = sizes
    .filter((size): size is IImageSize => size !== null)
    .map(size => `${size.width}×${size.height}`);
  const what =
    count === 1
      ? 'a figure was displayed: 1 image'
      : `figures were displayed: ${count} images`;
  return known.length ? `${what}, ${known.join(', ')}` : what;
}

const ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: ' ',
  times: '×',
  hellip: '…',
  mdash: '—',
  ndash: '–'
};

function decodeEntities(text: string): string {
  return text.replace(
    /&(#x[0-9a-f]+|#\d+|[a-z]+);/gi,
    (whole, name: string) => {
      if (name[0] === '#') {
        const code =
          name[1] === 'x' || name[1] === 'X'
            ? parseInt(name.slice(2), 16)
            : parseInt(name.slice(1), 10);
        return Number.isFinite(code) && code > 0 && code <= 0x10ffff
          ? String.fromCodePoint(code)
          : whole;
      }
      return ENTITIES[name.toLowerCase()] ?? whole;
    }
  );
}

/** HTML's text: no scripts, styles or tags; rows and blocks on lines of their own. */
export function htmlToText(html: string): string {
  const text = html
    .replace(/<!--[\s\S]*?-->/g, '')
    .replace(/<(script|style|template)\b[\s\S]*?<\/\1\s*>/gi, '')
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/(td|th)\s*>/gi, '\t')
    .replace(
      /<\/?(p|div|tr|li|ul|ol|table|thead|tbody|h[1-6]|pre|blockquote|section|article|header|footer)\b[^>]*>/gi,
      '\n'
    )
    .replace(/<[^>]*>/g, '');
  return decodeEntities(text)
    .split('\n')
    .map(line => line.replace(/[ \t\u00a0]+/g, ' ').trim())
    .filter(line => line.length > 0)
    .join('\n');
}

/** Python's default repr (`<IPython.core.display.HTML object>`) says nothing. */
function usefulPlain(text: string): boolean {
  const trimmed = text.trim();
  return (
    trimmed.length > 0 && !/^<[\w.]+ object( at 0x[0-9a-f]+)?>$/i.test(trimmed)
  );
}

function cutText(text: string, limit: number): string {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}

/** A display's text (images are summed up apart, see figureLine). */
function displayText(
  output: nbformat.IExecuteResult | nbformat.IDisplayData
): string {
  const data = output.data as Record<string, unknown>;
  const plain = multiline(data['text/plain']);
  if (usefulPlain(plain)) {
    return plain;
  }
  const html = multiline(data['text/html']);
  if (html) {
    return cutText(htmlToText(html), HTML_LIMIT);
  }
  for (const mime of ['text/markdown', 'text/latex']) {
    const text = multiline(data[mime]);
    if (text) {
      return cutText(text, HTML_LIMIT);
    }
  }
  if (data['application/json'] !== undefined) {
    return cutText(JSON.stringify(data['application/json']), HTML_LIMIT);
  }
  if (plain) {
    return plain;
  }
  return `<${Object.keys(data).join(', ')}>`;
}

/** The display's image type, if it shows an image. */
function imageOf(
  output: nbformat.IExecuteResult | nbformat.IDisplayData
): string | null {
  const data = output.data as Record<string, unknown>;
  return IMAGE_TYPES.find(mime => data[mime] !== undefined) ?? null;
}

/**
 * The text a person would read in a cell's outputs: streams, results and
 * displays (figures named with their size, HTML as text), and errors as
 * `ename: evalue` unless `errors` is false.
 */
export function outputText(
  outputs: readonly nbformat.IOutput[],
  options: { errors?: boolean } = {}
): string {
  const parts: string[] = [];
  let figures: (IImageSize | null)[] = [];
  const flush = () => {
    if (figures.length) {
      parts.push(figureLine(figures) + '\n');
      figures = [];
    }
  };
  for (const output of outputs) {
    if (nbformat.isExecuteResult(output) || nbformat.isDisplayData(output)) {
      const image = imageOf(output);
      if (image) {
        figures.push(imageSize(image, output.data[image], output.metadata));
        continue;
      }
      flush();
      const text = displayText(output);
      parts.push(text.endsWith('\n') ? text : text + '\n');
      continue;
    }
    flush();
    if (nbformat.isStream(output)) {
      parts.push(multiline(output.text));
    } else if (nbformat.isError(output) && options.errors !== false) {
      parts.push(`${output.ename}: ${output.evalue}\n`);
    }
  }
  flush();
  return parts.join('');
}
