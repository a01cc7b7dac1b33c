"""A small synchronous client of the server's model, for code running in a kernel (%%oci).

The kernel finds the Jupyter server that started it: that server wrote ``jpserver-<pid>.json``
(url, token) into the runtime folder, and it is the kernel's parent process. Elsewhere,
``OCI_SERVER_URL`` and ``OCI_TOKEN`` say where the server is.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from .engine import GenerationParams, Message, ModelError


class ServerUnavailable(RuntimeError):
    """No Jupyter server with oci_jupyter could be found or reached."""


class ModelRequestError(ModelError):
    """The server refused or failed a request; the message is the server's own. The model
    could not answer (:class:`~oci_jupyter.engine.base.ModelError`), as seen over HTTP:
    ``status`` says how."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


TOKENIZE_TEXTS = 2000
TOKENIZE_CHARACTERS = 400_000
"""``POST /oci/tokenize``'s limits per request: texts, and characters in all (about 100,000
tokens, more than any window here): counting stays bounded work."""

HOW_TO_CONNECT = (
    "Start this notebook from JupyterLab with oci_jupyter installed, or set OCI_SERVER_URL "
    "(e.g. http://127.0.0.1:8888/) and OCI_TOKEN (the server's token) in the kernel's "
    "environment."
)


@dataclass(frozen=True)
class ServerInfo:
    url: str
    token: str
    source: str

    def endpoint(self, *parts: str) -> str:
        return self.url.rstrip("/") + "/" + "/".join(parts)


def find_server(parent_pid: int | None = None) -> ServerInfo:
    """The Jupyter server this kernel belongs to, else the one named by the environment."""
    parent = os.getppid() if parent_pid is None else parent_pid
    try:
        from jupyter_server.serverapp import list_running_servers

        for info in list_running_servers():
            if info.get("pid") == parent:
                return ServerInfo(info["url"], info.get("token", ""), f"server pid {parent}")
    except Exception:  # a broken runtime folder must not hide the environment fallback
        pass
    url = os.environ.get("OCI_SERVER_URL")
    if url:
        refused = unsafe_server_url(url)
        if refused:
            raise ServerUnavailable(f"OCI_SERVER_URL={url!r} is refused: {refused}")
        return ServerInfo(url, os.environ.get("OCI_TOKEN", ""), "OCI_SERVER_URL")
    raise ServerUnavailable(f"No Jupyter server with oci_jupyter was found. {HOW_TO_CONNECT}")


def unsafe_server_url(url: str) -> str | None:
    """Why the token (and the notebook's code and data) must not be sent to ``url``, or None:
    only https, or plain http to this machine (127.0.0.0/8, ::1, localhost), is safe."""
    try:
        parts = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        return f"not a URL ({exc})"
    host = parts.host.lower().rstrip(".")
    if parts.scheme not in ("http", "https") or not host:
        return "it must be an http:// or https:// address of the Jupyter server"
    if parts.scheme == "https" or _loopback(host):
        return None
    return (
        "plain http to another machine would send the Jupyter token (and the notebook's code "
        "and data) unencrypted. Use https://, or http:// to this machine only "
        "(127.0.0.1, [::1] or localhost)"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


class ModelClient:
    """Talks to ``/oci/...`` of one server. Not thread-safe; one per kernel is plenty."""

    def __init__(self, server: ServerInfo, *, timeout: float = 600.0) -> None:
        self.server = server
        # A person waits for what a kernel asks (%%oci): served before programs' requests.
        headers = {"X-OCI-Priority": "interactive"}
        if server.token:
            headers["Authorization"] = f"token {server.token}"
        # Loopback servers must not go through a proxy configured for the outside world.
        self._http = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout, connect=5.0), trust_env=False
        )

    def close(self) -> None:
        self._http.close()

    # ---- requests ----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return self._json("GET", "oci", "status")

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts with the served model's tokenizer, in batches within the server's
        limits; a text over the per-request limit counts as its bytes (an upper bound: no
        token is shorter than a byte), so the prompt budget leaves it out instead."""
        counts: list[int | None] = [None] * len(texts)
        batch: list[int] = []
        size = 0

        def send() -> None:
            reply = self._json("POST", "oci", "tokenize", body={"texts": [texts[i] for i in batch]})
            for index, count in zip(batch, reply["counts"], strict=True):
                counts[index] = int(count)
            batch.clear()

        for index, text in enumerate(texts):
            if len(text) > TOKENIZE_CHARACTERS:
                counts[index] = len(text.encode("utf-8", "replace"))
                continue
            if batch and (len(batch) >= TOKENIZE_TEXTS or size + len(text) > TOKENIZE_CHARACTERS):
                send()
                size = 0
            batch.append(index)
            size += len(text)
        if batch:
            send()
        return [count or 0 for count in counts]

    def stream_chat(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        on_waiting: Callable[[int], None] | None = None,
    ) -> Iterator[str]:
        """Yield the reply's text as it streams. Closing the iterator (or a KeyboardInterrupt
        while it waits) closes the connection, and the server cancels the generation.
        ``on_waiting(n)`` hears while the request waits behind ``n`` others (0: its turn)."""
        body: dict[str, Any] = {
            "messages": list(messages),
            "stream": True,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        url = self.server.endpoint("oci", "v1", "chat", "completions")
        try:
            with self._http.stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise _error_from(response)
                for line in response.iter_lines():
                    if line.startswith(": waiting ") and on_waiting is not None:
                        with contextlib.suppress(ValueError):
                            on_waiting(int(line[len(": waiting ") :]))
                        continue
                    if not line.startswith("data: "):
                        continue
                    payload = line[len("data: ") :]
                    if payload == "[DONE]":
                        return
                    event = json.loads(payload)
                    if "error" in event:
                        raise ModelRequestError(500, event["error"].get("message", "model error"))
                    for choice in event.get("choices", []):
                        text = choice.get("delta", {}).get("content")
                        if text:
                            yield text
        except httpx.TransportError as exc:
            raise ServerUnavailable(
                f"Cannot reach the Jupyter server at {self.server.url} ({exc}). {HOW_TO_CONNECT}"
            ) from exc

    def _json(self, method: str, *parts: str, body: Any = None) -> dict[str, Any]:
        try:
            response = self._http.request(method, self.server.endpoint(*parts), json=body)
        except httpx.TransportError as exc:
            raise ServerUnavailable(
                f"Cannot reach the Jupyter server at {self.server.url} ({exc}). {HOW_TO_CONNECT}"
            ) from exc
        if response.status_code != 200:
            raise _error_from(response)
        result: dict[str, Any] = response.json()
        return result


def _error_from(response: httpx.Response) -> ModelRequestError:
    status = response.status_code
    try:
        data = response.json()
        message = data["error"]["message"] if "error" in data else data.get("message", "")
    except (ValueError, KeyError, TypeError):
        message = response.text[:300]
    if status == 403:
        message = (
            "The Jupyter server refused the request (403): the token is missing or wrong. "
            + HOW_TO_CONNECT
        )
    elif status == 404 and not message:
        message = "The Jupyter server has no oci_jupyter endpoints: is the extension enabled?"
    return ModelRequestError(status, message or f"HTTP {status}")
