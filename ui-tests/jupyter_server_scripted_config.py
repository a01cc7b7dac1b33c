"""Jupyter server configuration for the scripted Galata chat tests.

Started by Playwright (see playwright.config.js) as
``jupyter lab --config jupyter_server_scripted_config.py``, with the repository root on
PYTHONPATH so that ``tests.doubles`` imports. The engine answers with the replies a test
writes into ``$OCI_UI_TEST_SCRIPT_FILE`` (``{"replies": [...], "prompts": []}``): each
generation takes the next reply, word by word, and appends the prompt it was given.
"""

import os

from jupyterlab.galata import configure_jupyter_server

configure_jupyter_server(c)  # noqa: F821 (`c` is injected by the config loader)

c.ServerApp.ip = "127.0.0.1"
c.ServerApp.port = int(os.environ.get("OCI_UI_TEST_PORT", "8878"))
c.ServerApp.allow_root = True  # CI runs as root

c.OCI.engine_class = "tests.doubles.ScriptedTestEngine"  # noqa: F821
c.OCI.engine_kwargs = {  # noqa: F821
    "script_file": os.environ["OCI_UI_TEST_SCRIPT_FILE"],
    # ~100 words/s: fast tests, yet a stream long enough to stop midway.
    "token_delay": 0.01,
}
