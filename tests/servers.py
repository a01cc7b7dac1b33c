"""Jupyter servers in their own processes, for kernels to talk to (the %%oci magic)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .conftest import free_port

REPO = Path(__file__).resolve().parent.parent


@dataclass
class RunningServer:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    runtime_dir: Path
    log: Path

    def get(self, *parts: str) -> Any:
        response = httpx.get(
            self.url + "/".join(parts), headers={"Authorization": f"token {self.token}"}
        )
        response.raise_for_status()
        return response.json()

    def kernel_env(self) -> dict[str, str]:
        """Environment for a kernel that should use this server."""
        env = dict(os.environ)
        env.update(OCI_SERVER_URL=self.url, OCI_TOKEN=self.token, PYTHONPATH=str(REPO))
        env.pop("JPY_PARENT_PID", None)
        return env


@contextmanager
def jupyter_server(tmp: Path, oci: dict[str, Any], timeout: float = 180) -> Iterator[RunningServer]:
    """A Jupyter server with oci_jupyter, configured with ``c.OCI.<key> = value``."""
    port, token = free_port(), secrets.token_hex(16)
    state = tmp / f"server-{port}"
    config = {
        "ServerApp": {
            "jpserver_extensions": {"oci_jupyter": True},
            "ip": "127.0.0.1",
            "port": port,
            "port_retries": 0,
            "open_browser": False,
            "allow_root": True,
            "root_dir": str(state),
        },
        "IdentityProvider": {"token": token},
        "OCI": oci,
    }
    (state / "config").mkdir(parents=True)
    (state / "config" / "jupyter_server_config.json").write_text(json.dumps(config))
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(state / "config"),
        JUPYTER_RUNTIME_DIR=str(state / "runtime"),
        JUPYTER_DATA_DIR=str(state / "data"),
        IPYTHONDIR=str(state / "ipython"),
        PYTHONPATH=str(REPO),
    )
    log = state / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server"], env=env, stdout=out, stderr=out
        )
    server = RunningServer(f"http://127.0.0.1:{port}/", token, process, state / "runtime", log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{log.read_text()[-3000:]}")
            try:
                if server.get("oci", "status")["state"] in ("ready", "error"):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not get ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
