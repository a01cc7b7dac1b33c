/**
 * jsdom's `performance` has no User Timing: the chat leaves marks for the UI
 * tests' measurements (`oci:ask`, `oci:turn`), so lend it Node's.
 */
import { performance as nodePerformance } from 'perf_hooks';

if (typeof window.performance.mark !== 'function') {
  window.performance.mark = nodePerformance.mark.bind(
    nodePerformance
  ) as unknown as Performance['mark'];
  window.performance.getEntriesByName = nodePerformance.getEntriesByName.bind(
    nodePerformance
  ) as unknown as Performance['getEntriesByName'];
}

/**
 * JupyterLab's shared models warn when a standalone cell is moved into a
 * notebook's document, which every NotebookModel built here does, and its
 * clipboard helper warns that jsdom has no clipboard: noise, not a finding
 * of these tests.
 */
const warn = console.warn.bind(console);
console.warn = (...args: unknown[]) => {
  const text = String(args[0]);
  if (
    text.startsWith('Invalid access: Add Yjs type to a document') ||
    text.startsWith('[yjs#509] Not same Y.Doc') ||
    text.startsWith('Clipboard API not available')
  ) {
    return;
  }
  warn(...args);
};
