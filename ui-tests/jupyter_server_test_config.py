"""Jupyter server configuration for the Galata UI tests.

Started by Playwright (see playwright.config.js) as
``jupyter lab --config jupyter_server_test_config.py``.
"""

import os

from jupyterlab.galata import configure_jupyter_server

configure_jupyter_server(c)  # noqa: F821 (`c` is injected by the config loader)

c.ServerApp.ip = "127.0.0.1"
# Not 8888 (nor 8899): keep clear of servers a developer runs alongside.
c.ServerApp.port = int(os.environ.get("OCI_UI_TEST_PORT", "8877"))
c.ServerApp.allow_root = True  # CI runs as root

# The real bundled model (Qwen2.5-Coder-1.5B-Instruct on llama.cpp); it loads in ~1-30 s.
c.OCI.engine = "llamacpp"  # noqa: F821
