"""A real JupyterHub on loopback for the team tests: one shared model server (a Jupyter server
with oci_jupyter and the scripted engine, its token the key), a hub with the test
authenticator and SimpleLocalProcessSpawner, and each user's single-user server configured
once by the hub, as docs/jupyterhub.md says: ``c.OCI.engine = "openai"`` in a system-wide
config file, the key in the spawner's environment.

Everything binds 127.0.0.1 on free ports and keeps its state in the test's temporary folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

REPO = Path(__file__).resolve().parents[2]

CODE_REPLY = (
    "I will compute it in the notebook and print the result for you right away, as asked. "
    "```python\nprint(6 * 7)\n```"
)
"""Every reply of the scripted model: some words to stream (a person sees them arrive), then
the code. The chat's asks set read_results off, so one reply ends each request."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Seen:
    """Every response body and websocket message the test received, to search for the key."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, text: str) -> str:
        self.texts.append(text)
        return text

    def contains(self, secret: str) -> bool:
        return any(secret in text for text in self.texts)


def wait_until(check: Any, what: str, timeout: float = 90.0, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
            raise TimeoutError(f"{what} did not happen in {timeout} s\n{tail}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _state_env(root: Path) -> dict[str, str]:
    """The environment of a process whose Jupyter and IPython state goes under ``root``."""
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(root / "config"),
        JUPYTER_RUNTIME_DIR=str(root / "runtime"),
        JUPYTER_DATA_DIR=str(root / "data"),
        IPYTHONDIR=str(root / "ipython"),
        PYTHONPATH=str(REPO),
    )
    return env


@dataclass
class ModelServer:
    url: str
    key: str
    script: Path
    process: subprocess.Popen[bytes]
    log: Path

    def prompts(self) -> list[list[dict[str, str]]]:
        """The messages of every generation the shared model served so far."""
        prompts: list[list[dict[str, str]]] = json.loads(self.script.read_text())["prompts"]
        return prompts


@contextmanager
def model_server(root: Path, token_delay: float = 0.05) -> Iterator[ModelServer]:
    """The hub's one model server, as the try-out shape of docs/jupyterhub.md: a Jupyter
    server with oci_jupyter serving ``/oci/v1``, its token the key (here with the scripted
    engine instead of the bundled model)."""
    root.mkdir(parents=True)
    port, key = free_port(), secrets.token_hex(24)
    script = root / "script.json"
    script.write_text(json.dumps({"replies": [CODE_REPLY] * 200, "prompts": []}))
    config = {
        "ServerApp": {
            "jpserver_extensions": {"oci_jupyter": True},
            "ip": "127.0.0.1",
            "port": port,
            "port_retries": 0,
            "open_browser": False,
            "allow_root": True,
            "root_dir": str(root),
        },
        "IdentityProvider": {"token": key},
        "OCI": {
            "engine_class": "tests.doubles.ScriptedTestEngine",
            "engine_kwargs": {"script_file": str(script), "token_delay": token_delay},
        },
    }
    (root / "config").mkdir()
    (root / "config" / "jupyter_server_config.json").write_text(json.dumps(config))
    log = root / "model-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server"],
            env=_state_env(root),
            stdout=out,
            stderr=out,
            cwd=root,
        )
    server = ModelServer(f"http://127.0.0.1:{port}", key, script, process, log)
    try:
        headers = {"Authorization": f"Bearer {key}"}

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the model server exited:\n{log.read_text()[-3000:]}")
            response = httpx.get(f"{server.url}/oci/status", headers=headers, timeout=5)
            return response.status_code == 200 and response.json()["state"] == "ready"

        wait_until(ready, "the model server's start", log=log)
        yield server
    finally:
        _stop(process)


USER_CONFIG = """\
# The system-wide config every user's server reads (docs/jupyterhub.md: /etc/jupyter/
# jupyter_server_config.py; here a folder on JUPYTER_CONFIG_PATH). No key in it: the server
# reads $OCI_OPENAI_API_KEY, which the hub sets in the spawner's environment.
c.ServerApp.jpserver_extensions = {{"oci_jupyter": True}}
c.ServerApp.allow_root = True  # CI runs as root
c.OCI.engine = "openai"
c.OCI.openai_base_url = "{base_url}"
"""


@dataclass
class Hub:
    url: str
    """The proxy's public address (what users open)."""
    api: str
    admin_token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path
    seen: Seen = field(default_factory=Seen)

    # ---- the hub's REST API, as an admin service -------------------------------------------
    def hub_api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = httpx.request(
            method,
            f"{self.api}{path}",
            headers={"Authorization": f"token {self.admin_token}"},
            timeout=30,
            **kwargs,
        )
        self.seen.add(response.text)
        return response

    def user_token(self, user: str) -> str:
        response = self.hub_api("POST", f"/users/{user}/tokens", json={"note": "hub test"})
        response.raise_for_status()
        token: str = response.json()["token"]
        return token

    def server_state(self, user: str) -> dict[str, Any] | None:
        response = self.hub_api("GET", f"/users/{user}")
        response.raise_for_status()
        server: dict[str, Any] | None = response.json()["servers"].get("")
        return server

    def start_server(self, user: str) -> None:
        response = self.hub_api("POST", f"/users/{user}/server")
        assert response.status_code in (201, 202), response.text
        wait_until(
            lambda: (self.server_state(user) or {}).get("ready"),
            f"{user}'s server start",
            log=self.log,
        )

    def stop_server(self, user: str) -> None:
        response = self.hub_api("DELETE", f"/users/{user}/server")
        assert response.status_code in (202, 204), response.text
        wait_until(lambda: self.server_state(user) is None, f"{user}'s server stop", log=self.log)

    def home(self, user: str) -> Path:
        return self.root / "homes" / user

    # ---- a user's server, through the proxy --------------------------------------------------
    def user_url(self, user: str, *parts: str) -> str:
        return f"{self.url}/user/{user}/" + "/".join(parts)

    def get(self, user: str, token: str, *parts: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", user, token, *parts, **kwargs)

    def request(
        self, method: str, user: str, token: str, *parts: str, **kwargs: Any
    ) -> httpx.Response:
        response = httpx.request(
            method,
            self.user_url(user, *parts),
            headers={"Authorization": f"token {token}"},
            timeout=60,
            **kwargs,
        )
        self.seen.add(response.text)
        return response


@contextmanager
def jupyterhub(root: Path, model: ModelServer, users: list[str]) -> Iterator[Hub]:
    root.mkdir(parents=True)
    proxy = os.environ.get("OCI_HUB_PROXY")
    if not proxy:
        raise RuntimeError(
            "OCI_HUB_PROXY (configurable-http-proxy) is not set: run scripts/test-hub.sh"
        )
    port, hub_port, proxy_api_port = free_port(), free_port(), free_port()
    admin_token = secrets.token_hex(24)
    system_config = root / "etc-jupyter"
    system_config.mkdir()
    (system_config / "jupyter_server_config.py").write_text(
        USER_CONFIG.format(base_url=f"{model.url}/oci/v1")
    )
    config = {
        "bind_url": f"http://127.0.0.1:{port}",
        "hub_bind_url": f"http://127.0.0.1:{hub_port}",
        "proxy_api": f"http://127.0.0.1:{proxy_api_port}",
        "proxy": proxy,
        "root": str(root),
        "admin_token": admin_token,
        "users": users,
        "python": sys.executable,
        "system_config": str(system_config),
        "key": model.key,
    }
    (root / "settings.json").write_text(json.dumps(config))
    (root / "jupyterhub_config.py").write_text(HUB_CONFIG)
    log = root / "hub.log"
    env = _state_env(root / "hub-state")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(root / "jupyterhub_config.py")],
            env=env,
            stdout=out,
            stderr=out,
            cwd=root,
        )
    hub = Hub(
        f"http://127.0.0.1:{port}",
        f"http://127.0.0.1:{port}/hub/api",
        admin_token,
        root,
        process,
        log,
    )
    try:

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the hub exited:\n{log.read_text()[-4000:]}")
            return hub.hub_api("GET", "/users").status_code == 200

        wait_until(up, "the hub's start", log=log)
        yield hub
    finally:
        # Stop the users' servers through the hub first, so that no process outlives the test.
        for user in users:
            try:
                if hub.server_state(user) is not None:
                    hub.stop_server(user)
            except Exception:  # the hub may be gone already; the terminate below still runs
                pass
        _stop(process)


HUB_CONFIG = '''\
"""The hub of the team test: loopback only, state in this folder (settings.json)."""
import json
from pathlib import Path

settings = json.loads((Path(__file__).parent / "settings.json").read_text())
root = Path(settings["root"])

c.JupyterHub.bind_url = settings["bind_url"]
c.JupyterHub.hub_bind_url = settings["hub_bind_url"]
c.ConfigurableHTTPProxy.api_url = settings["proxy_api"]
c.ConfigurableHTTPProxy.command = [settings["proxy"]]
c.ConfigurableHTTPProxy.pid_file = str(root / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{root / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(root / "cookie_secret")
c.JupyterHub.pid_file = str(root / "hub.pid")

# The test authenticator with a password, two allowed users.
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "team-password"
c.Authenticator.allowed_users = set(settings["users"])

# The test drives the hub through its REST API as an admin service.
c.JupyterHub.services = [{"name": "hub-test", "api_token": settings["admin_token"]}]
c.JupyterHub.load_roles = [{"name": "admin", "services": ["hub-test"]}]

# Every user's server, configured once here (docs/jupyterhub.md): the same Python, the
# system-wide config with c.OCI.engine = "openai", the model server's key in the environment.
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = str(root / "homes" / "{username}")
c.Spawner.cmd = [settings["python"], "-m", "jupyterhub.singleuser"]
c.Spawner.ip = "127.0.0.1"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.environment = {
    "OCI_OPENAI_API_KEY": settings["key"],
    "JUPYTER_CONFIG_PATH": settings["system_config"],
    "HF_HUB_OFFLINE": "1",
}
'''


# ---- the chat websocket and a kernel, through the proxy ----------------------------------------


async def chat(
    hub: Hub, user: str, token: str, prompt: str, notebook: str = "work.ipynb"
) -> dict[str, Any]:
    """One chat request on ``/user/<user>/oci/chat``, as the sidebar sends it; each ``execute``
    is answered as a browser would after running the cell. Returns the request's messages and
    when its tokens came."""
    url = hub.user_url(user, "oci", "chat").replace("http://", "ws://", 1)
    connection = await websocket_connect(
        HTTPRequest(url, headers={"Authorization": f"token {token}"}, connect_timeout=30)
    )
    request_id = uuid.uuid4().hex[:8]
    ask = {
        "type": "ask",
        "id": request_id,
        "prompt": prompt,
        "notebook": notebook,
        "read_results": False,
        "time_limit": 30,
    }
    await connection.write_message(json.dumps(ask))
    messages: list[dict[str, Any]] = []
    token_times: list[float] = []
    try:
        while True:
            raw = await asyncio.wait_for(connection.read_message(), 60)
            if raw is None:
                raise RuntimeError(f"{user}'s chat connection closed: {messages}")
            text = raw if isinstance(raw, str) else raw.decode()
            hub.seen.add(text)
            message = json.loads(text)
            if message.get("id") != request_id:
                continue
            messages.append(message)
            if message["type"] == "token":
                token_times.append(time.monotonic())
            elif message["type"] == "execute":
                outcome = {
                    "type": "outcome",
                    "id": request_id,
                    "turn": message["turn"],
                    "status": "ok",
                    "output": "42\n",
                    "seconds": 0.1,
                }
                await connection.write_message(json.dumps(outcome))
            elif message["type"] == "done":
                return {"messages": messages, "done": message, "token_times": token_times}
    finally:
        connection.close()


class Kernel:
    """A kernel started through the user's server REST API, run over its channels websocket."""

    def __init__(self, hub: Hub, user: str, token: str) -> None:
        self.hub, self.user, self.token = hub, user, token
        response = hub.request("POST", user, token, "api", "kernels", json={"name": "python3"})
        response.raise_for_status()
        self.id: str = response.json()["id"]

    async def run(self, code: str, timeout: float = 90.0) -> str:
        """Run ``code``; its stdout, stderr and error text."""
        url = self.hub.user_url(self.user, "api", "kernels", self.id, "channels")
        connection = await websocket_connect(
            HTTPRequest(
                url.replace("http://", "ws://", 1),
                headers={"Authorization": f"token {self.token}"},
                connect_timeout=30,
            )
        )
        msg_id = uuid.uuid4().hex
        request = {
            "header": {
                "msg_id": msg_id,
                "username": self.user,
                "session": uuid.uuid4().hex,
                "msg_type": "execute_request",
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {},
            "content": {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
            },
            "channel": "shell",
        }
        await connection.write_message(json.dumps(request))
        parts: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                raw = await asyncio.wait_for(connection.read_message(), deadline - time.monotonic())
                if raw is None:
                    raise RuntimeError("the kernel's channels closed")
                text = raw if isinstance(raw, str) else raw.decode()
                self.hub.seen.add(text)
                message = json.loads(text)
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "stream":
                    parts.append(content["text"])
                elif kind in ("execute_result", "display_data"):
                    parts.append(content["data"].get("text/plain", ""))
                elif kind == "error":
                    parts.append("\n".join(content["traceback"]))
                elif kind == "status" and content["execution_state"] == "idle":
                    return "".join(parts)
        finally:
            connection.close()

    def shutdown(self) -> None:
        self.hub.request("DELETE", self.user, self.token, "api", "kernels", self.id)
