"""The review's probes (issue 25) against a live Jupyter server with the real bundled model.

Starts ``python -m jupyter_server`` with the extension from this checkout (loopback only, its
own temporary folders), runs each probe and prints what it measured, with the CPU. The
same script run from an older checkout (``git worktree add /tmp/old <commit>``, then
``python /tmp/old/benchmarks/live_probes.py`` is not needed: pass ``--repo /tmp/old``) gives
the figures before a change. Not a test: tests/test_faults.py holds the asserted rows.

    python benchmarks/live_probes.py [--repo PATH] [--only NAME ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    JupyterServer,
    _process_seconds,
    bundled_model_path,
    format_table,
    write_json,
)

Row = dict[str, Any]


class Probe:
    def __init__(self, server: JupyterServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=300)

    def alive(self) -> bool:
        process = self.server.process
        if process is None or process.poll() is not None:
            return False
        with contextlib.suppress(httpx.HTTPError):
            return self.http.get("/api/status", timeout=10).status_code == 200
        return False

    def wait_ready(self, timeout: float = 300) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get("/oci/status").json()["state"] == "ready":
                    return True
            time.sleep(0.2)
        return False

    async def ws(self) -> WebSocketClientConnection:
        url = self.server.base_url.replace("http", "ws") + "/oci/chat"
        return await websocket_connect(HTTPRequest(url, headers=self.server.headers))

    async def slowest_status(self, until: asyncio.Future[Any], cap: float) -> float:
        """``GET /api/status`` every 100 ms while ``until`` runs: the slowest answer."""
        slowest = 0.0
        started = time.monotonic()
        async with httpx.AsyncClient(
            base_url=self.server.base_url, headers=self.server.headers, timeout=cap
        ) as client:
            while not until.done() and time.monotonic() - started < cap:
                t0 = time.monotonic()
                try:
                    await client.get("/api/status")
                except httpx.HTTPError:
                    slowest = max(slowest, time.monotonic() - t0)
                    break
                slowest = max(slowest, time.monotonic() - t0)
                await asyncio.sleep(0.1)
        return slowest


# ---- the probes ----------------------------------------------------------------------------------
def restart_while_counting(probe: Probe, tries: int = 5) -> Row:
    """§1: POST /oci/restart while four threads count tokens (the panel's Restart model)."""
    # Texts full of markers: counting them takes long enough to be in flight at the restart.
    body = {"texts": ["<|im_start|>" * 3_000] * 10}
    survived = 0
    for _ in range(tries):
        stop = threading.Event()

        def hammer(stop: threading.Event = stop) -> None:
            with httpx.Client(base_url=probe.server.base_url, headers=probe.server.headers) as c:
                while not stop.is_set():
                    with contextlib.suppress(httpx.HTTPError):
                        c.post("/oci/tokenize", json=body, timeout=30)

        threads = [threading.Thread(target=hammer, daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        with contextlib.suppress(httpx.HTTPError):
            probe.http.post("/oci/restart", timeout=30)
        ready = probe.wait_ready(120)
        stop.set()
        for thread in threads:
            thread.join(30)
        if ready and probe.alive():
            survived += 1
        else:
            break
    return {
        "probe": "restart while tokens are counted",
        "figure": f"server alive after {survived} of {tries} restarts",
        "ok": survived == tries,
    }


async def fix_of_newlines(probe: Probe) -> Row:
    """§2: a fix request whose failing cell is 40,000 newlines and '('."""
    ws = await probe.ws()
    source = "\n" * 40_000 + "("
    error = {"ename": "SyntaxError", "evalue": "'(' was never closed", "traceback": []}
    ask = {
        "type": "ask",
        "id": "probe-fix",
        "prompt": "",
        "mode": "fix",
        "cell": {"source": source, "error": error},
        "context": {"cells": [{"source": source, "active": True}]},
    }
    await ws.write_message(json.dumps(ask))

    async def first_turn() -> None:
        while True:
            message = await ws.read_message()
            if message is None:
                return
            kind = json.loads(message)["type"]
            if kind in ("turn", "token", "done", "error"):
                return

    waiting = asyncio.ensure_future(first_turn())
    slowest = await probe.slowest_status(waiting, cap=180)
    await ws.write_message(json.dumps({"type": "cancel", "id": "probe-fix"}))
    waiting.cancel()
    ws.close()
    await asyncio.sleep(1)
    return {
        "probe": "a fix of 40,000 newlines and '('",
        "figure": f"/api/status answered in {slowest:.2f} s at worst",
        "ok": slowest < 1,
    }


async def deep_websocket_message(probe: Probe) -> Row:
    """§2: a websocket message of 200,000 '['; then an ask on the same connection."""
    ws = await probe.ws()
    await ws.write_message("[" * 200_000)
    await ws.write_message(json.dumps({"type": "ask", "id": "empty", "prompt": ""}))
    seen: list[str] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            while True:
                message = await ws.read_message()
                if message is None:
                    seen.append("closed")
                    break
                data = json.loads(message)
                seen.append(f"{data['type']}:{data.get('code', '')}")
                if data["type"] == "done":
                    break
    ws.close()
    kept = any(s.startswith("done") for s in seen)
    return {
        "probe": "websocket message '[' x 200,000",
        "figure": ("connection kept" if kept else "connection lost") + f" ({', '.join(seen)})",
        "ok": kept,
    }


def deep_tokenize(probe: Probe) -> Row:
    """§2: JSON nested 100,000 deep to /oci/tokenize."""
    body = '{"texts": ' + "[" * 100_000 + "]" * 100_000 + "}"
    answer = probe.http.post("/oci/tokenize", content=body)
    return {
        "probe": "/oci/tokenize with JSON nested 100,000 deep",
        "figure": f"HTTP {answer.status_code}",
        "ok": answer.status_code == 400,
    }


def control_tokens(probe: Probe) -> Row:
    """§3: is '<|im_start|>' in a text one control token?"""
    answer = probe.http.post("/oci/tokenize", json={"texts": ["<|im_start|>system"]})
    count = answer.json()["counts"][0]
    return {
        "probe": "'<|im_start|>system' in content",
        "figure": f"{count} tokens ({'a control token' if count <= 2 else 'read as text'})",
        "ok": count > 2,
    }


def prefills_then_disconnect(probe: Probe) -> Row:
    """§2: ten background prefills of a large notebook, then the tab closes: the server's
    CPU time over the next 20 s (the engine reading prompts nobody will send)."""

    async def send() -> None:
        ws = await probe.ws()
        for i in range(10):
            cells = [{"source": f"values_{i}_{j} = list(range({j}))\n" * 60} for j in range(10)]
            message = {"type": "prefill", "notebook": "probe.ipynb", "context": {"cells": cells}}
            await ws.write_message(json.dumps(message))
        await asyncio.sleep(1)
        ws.close()

    asyncio.run(send())
    pid = probe.server.process.pid if probe.server.process else 0
    before = _process_seconds(pid)
    time.sleep(20)
    busy = _process_seconds(pid) - before
    return {
        "probe": "10 prefills, then the tab closes",
        "figure": f"{busy:.1f} CPU-s used in the 20 s after",
        "ok": busy < 4,
    }


def huge_token_counts(probe: Probe) -> Row:
    """§2: six ~1 MiB special-token texts to /oci/tokenize; the history read meanwhile."""
    text = "<|im_start|>" * 80_000  # 960,000 characters: within the 1 MiB body limit
    statuses: list[int | str] = []

    def count() -> None:
        with httpx.Client(base_url=probe.server.base_url, headers=probe.server.headers) as c:
            try:
                answer = c.post("/oci/tokenize", json={"texts": [text]}, timeout=400)
                statuses.append(answer.status_code)
            except httpx.HTTPError as exc:
                statuses.append(type(exc).__name__)

    threads = [threading.Thread(target=count, daemon=True) for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    started = time.monotonic()
    try:
        probe.http.get("/oci/chat/history", params={"notebook": "probe.ipynb"}, timeout=300)
        waited = f"{time.monotonic() - started:.2f} s"
        ok = time.monotonic() - started < 1
    except httpx.HTTPError:
        waited, ok = f"over {time.monotonic() - started:.0f} s", False
    for thread in threads:
        thread.join(5)
    return {
        "probe": "six ~1 MiB token counts, the chat history meanwhile",
        "figure": f"history in {waited}; tokenize answered {statuses or 'not yet'}",
        "ok": ok,
    }


async def chat_goes_with_its_notebook(probe: Probe) -> Row:
    """§4: three long asks about a notebook (each refused: too long for the window, and kept
    in its chat); the chat files' modes and size; then the notebook is deleted through
    Jupyter and a new one made at its path: what the history then holds."""
    notebook = {
        "type": "notebook",
        "content": {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5},
    }
    probe.http.put("/api/contents/private.ipynb", json=notebook)
    ws = await probe.ws()
    for i in range(3):
        ask = {
            "type": "ask",
            "id": f"long{i}",
            "prompt": "password = 'hunter2'\n" * 9_000,
            "notebook": "private.ipynb",
        }
        await ws.write_message(json.dumps(ask))
        async with asyncio.timeout(120):
            while True:
                message = await ws.read_message()
                if message is None or json.loads(message)["type"] == "done":
                    break
    ws.close()
    history = probe.http.get("/oci/chat/history", params={"notebook": "private.ipynb"}).json()
    before = len(history["requests"])
    assert probe.server.workdir is not None
    chats = probe.server.workdir / "data" / "oci_jupyter" / "chats"
    files = [f for f in chats.rglob("*") if f.is_file()]
    modes = sorted({oct(f.stat().st_mode & 0o777) for f in files})
    size = sum(f.stat().st_size for f in files)
    folder = oct(chats.stat().st_mode & 0o777) if chats.exists() else "none"
    probe.http.delete("/api/contents/private.ipynb")
    probe.http.put("/api/contents/private.ipynb", json=notebook)
    history = probe.http.get("/oci/chat/history", params={"notebook": "private.ipynb"}).json()
    after = len(history["requests"])
    return {
        "probe": "a deleted notebook's chat; the chat files",
        "figure": f"{before} records, then {after} for a new notebook at the path; "
        f"folder {folder}, files {', '.join(modes)}, {size:,} bytes",
        "ok": after == 0 and folder == "0o700" and modes == ["0o600"],
    }


PROBES: dict[str, Callable[[Probe], Row | Awaitable[Row]]] = {
    "chat_goes_with_its_notebook": chat_goes_with_its_notebook,
    "control_tokens": control_tokens,
    "deep_tokenize": deep_tokenize,
    "deep_websocket_message": deep_websocket_message,
    "fix_of_newlines": fix_of_newlines,
    "prefills_then_disconnect": prefills_then_disconnect,
    "restart_while_counting": restart_while_counting,
    "huge_token_counts": huge_token_counts,  # last: the old code is busy for minutes after
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, help="the checkout whose oci_jupyter to serve")
    parser.add_argument("--only", nargs="*", choices=sorted(PROBES))
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.repo is not None:
        import _harness

        _harness.REPO_ROOT = args.repo.resolve()
    from oci_jupyter.engine.llamacpp import cpu_model

    server = JupyterServer(oci_args={"model_path": str(bundled_model_path()), "n_ctx": 8192})
    rows: list[Row] = []
    try:
        server.start()
        server.wait_ready(300)
        probe = Probe(server)
        for name, run in PROBES.items():
            if args.only and name not in args.only:
                continue
            if not probe.alive():
                rows.append({"probe": name, "figure": "skipped: the server is gone", "ok": False})
                continue
            started = time.monotonic()
            result = run(probe)
            row = asyncio.run(result) if asyncio.iscoroutine(result) else result
            row["seconds"] = round(time.monotonic() - started, 1)
            rows.append(row)  # type: ignore[arg-type]
            print(f"{row['probe']}: {row['figure']}", flush=True)
    finally:
        alive = server.process is not None and server.process.poll() is None
        code = None if alive or server.process is None else server.process.returncode
        server.stop()
    print()
    print(
        format_table(
            ["probe", "measured", "ok", "s"],
            [
                [r["probe"], r["figure"], "yes" if r["ok"] else "NO", r.get("seconds", "")]
                for r in rows
            ],
        )
    )
    print(f"\nserver {'alive at the end' if alive else f'gone (exit code {code})'}")
    served = args.repo or "this checkout"
    print(f"code served: {served}; CPU: {cpu_model()}, {os.cpu_count()} cores")
    write_json(args.json, {"rows": rows, "alive": alive, "cpu": cpu_model()})
    return 0 if all(r["ok"] for r in rows) and alive else 1


if __name__ == "__main__":
    sys.exit(main())
