/**
 * Playwright configuration for the Galata UI tests.
 *
 * The Jupyter server is started with plain `jupyter` from PATH: activate the
 * project's virtualenv first (`source ../.venv/bin/activate`), as for every
 * other `jupyter` / `jlpm build` command of this repository.
 *
 * Chromium comes from Debian (/usr/bin/chromium, override with
 * OCI_CHROMIUM): Playwright cannot download its own browser here.
 */
const fs = require('fs');
const os = require('os');
const path = require('path');
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

const port = process.env.OCI_UI_TEST_PORT || '8877';
const baseURL = `http://127.0.0.1:${port}`;

// The server's runtime files, config and IPython profile go to a throwaway
// folder, not the user's home. Workers re-read this file: create it once.
if (!process.env.OCI_UI_TEST_STATE_DIR) {
  process.env.OCI_UI_TEST_STATE_DIR = fs.mkdtempSync(
    path.join(os.tmpdir(), 'oci-ui-tests-')
  );
}
const stateDir = process.env.OCI_UI_TEST_STATE_DIR;

module.exports = {
  ...baseConfig,
  reporter: [['list']],
  // Loading the real model can take a while on a cold cache.
  timeout: 6 * 60 * 1000,
  workers: 1,
  use: {
    ...baseConfig.use,
    baseURL,
    video: 'off',
    trace: 'off',
    launchOptions: {
      executablePath: process.env.OCI_CHROMIUM || '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run'
      ]
    }
  },
  webServer: {
    command: 'jupyter lab --config jupyter_server_test_config.py',
    url: `${baseURL}/lab`,
    timeout: 120 * 1000,
    // Reusing whatever listens on the port could test someone else's server.
    reuseExistingServer: Boolean(process.env.OCI_UI_TEST_REUSE_SERVER),
    stdout: 'pipe',
    env: {
      ...process.env,
      OCI_UI_TEST_PORT: port,
      JUPYTER_RUNTIME_DIR: path.join(stateDir, 'runtime'),
      JUPYTER_DATA_DIR: path.join(stateDir, 'data'),
      JUPYTER_CONFIG_DIR: path.join(stateDir, 'config'),
      IPYTHONDIR: path.join(stateDir, 'ipython')
    }
  }
};
