// Babel turns the ES modules of JupyterLab's packages into CommonJS for Jest.
module.exports = require('@jupyterlab/testutils/lib/babel.config');
