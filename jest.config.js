// Jest for the TypeScript unit tests (src/__tests__/*.spec.ts), the JupyterLab
// extension template's way: @jupyterlab/testutils' config (jsdom, ts-jest),
// with JupyterLab's own ES-module packages transformed by babel.
const jestJupyterLab = require('@jupyterlab/testutils/lib/jest-config');

const esModules = [
  '@codemirror',
  '@jupyter/ydoc',
  '@jupyter/react-components',
  '@jupyter/web-components',
  '@jupyterlab/',
  '@lumino/',
  '@marijn',
  '@microsoft',
  'exenv-es6',
  'lib0',
  'marked',
  'nanoid',
  'vscode-ws-jsonrpc',
  'y-protocols',
  'y-websocket',
  'yjs'
].join('|');

const baseConfig = jestJupyterLab(__dirname);

module.exports = {
  ...baseConfig,
  automock: false,
  // No junit.xml in the work tree (the base config adds jest-junit).
  reporters: ['default', 'github-actions'],
  // Only src/ is looked at (not .venv/ nor the built labextension).
  roots: ['<rootDir>/src'],
  setupFiles: [
    ...baseConfig.setupFiles,
    '<rootDir>/src/__tests__/jest-setup.ts'
  ],
  testRegex: '/__tests__/.*\\.spec\\.tsx?$',
  transformIgnorePatterns: [`/node_modules/(?!${esModules}).+`]
};
