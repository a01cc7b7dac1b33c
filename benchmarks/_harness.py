"""Shared pieces of the benchmarks: a throw-away Jupyter server with the extension, SSE
parsing, percentiles, tables and JSON output. Not a test; nothing here imports pytest."""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bundled_model_path() -> Path:
    """The real bundled GGUF, from the cache (assembled from the offline mirror if needed)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from oci_jupyter.engine.bundled import ensure_default_model

    return ensure_default_model()


@dataclass
class JupyterServer:
    """``python -m jupyter_server`` with only loopback traffic, in its own temp dirs."""

    oci_args: dict[str, str | int] = field(default_factory=dict)
    """``--OCI.<key>=<value>`` arguments."""
    port: int = 0
    token: str = ""
    process: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "server.log"

    def start(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="oci-bench-"))
        self.port = free_port()
        self.token = secrets.token_hex(16)
        env = dict(os.environ)
        for name in ("RUNTIME", "DATA", "CONFIG"):
            folder = self.workdir / name.lower()
            folder.mkdir()
            env[f"JUPYTER_{name}_DIR"] = str(folder)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        env.setdefault("HF_HUB_OFFLINE", "1")
        root = self.workdir / "root"
        root.mkdir()
        command = [
            sys.executable,
            "-m",
            "jupyter_server",
            '--ServerApp.jpserver_extensions={"oci_jupyter": True}',
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--port-retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root}",
            "--allow-root",
            "--no-browser",
            *(f"--OCI.{key}={value}" for key, value in self.oci_args.items()),
        ]
        log = self.log_path.open("wb")
        # stdout/stderr go to a file: a pipe nobody reads would eventually block the server.
        self.process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root
        )
        log.close()

    def wait_ready(self, timeout: float = 300.0) -> dict[str, Any]:
        """Poll ``GET /oci/status`` until the engine is ready; raise on error or timeout."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | str = "no answer yet"
        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited early:\n{self.log_tail()}")
                try:
                    answer = client.get(f"{self.base_url}/oci/status", headers=self.headers)
                    if answer.status_code == 200:
                        status: dict[str, Any] = answer.json()
                        last = status
                        if status["state"] == "ready":
                            return status
                        if status["state"] in ("error", "stopped"):
                            raise RuntimeError(f"engine failed: {status}\n{self.log_tail()}")
                    else:
                        last = f"HTTP {answer.status_code}"
                except httpx.TransportError as exc:
                    last = repr(exc)
                time.sleep(0.25)
        raise TimeoutError(f"server not ready after {timeout} s ({last})\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        """Ask for a clean shutdown (``POST /api/shutdown``), then SIGTERM, then SIGKILL."""
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(f"{self.base_url}/api/shutdown", headers=self.headers, timeout=5.0)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
        self.process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


@contextlib.contextmanager
def running_server(
    oci_args: dict[str, str | int], timeout: float = 300.0
) -> Iterator[tuple[JupyterServer, dict[str, Any]]]:
    server = JupyterServer(oci_args=oci_args)
    try:
        server.start()
        status = server.wait_ready(timeout)
        yield server, status
    finally:
        server.stop()


async def iter_sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The ``data:`` payloads of a server-sent-event stream, one per event."""
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


@dataclass
class StreamResult:
    """One streamed chat completion, timed with ``time.perf_counter``."""

    start: float
    first_token: float | None = None
    last_token: float | None = None
    text: str = ""
    content_chunks: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None

    @property
    def elapsed(self) -> float:
        """Request start to the last token (includes prompt processing)."""
        return (self.last_token or self.start) - self.start

    @property
    def ttft(self) -> float:
        return (self.first_token or self.start) - self.start

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.elapsed if self.elapsed > 0 else math.nan

    @property
    def decode_tokens_per_s(self) -> float:
        """Tokens after the first over the time after the first (no prompt processing)."""
        if self.first_token is None or self.last_token is None:
            return math.nan
        span = self.last_token - self.first_token
        return (self.completion_tokens - 1) / span if span > 0 else math.nan


def chat_body(
    prompt: str, *, max_tokens: int, seed: int, temperature: float = 0.0
) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": 1.0,
        "seed": seed,
    }


async def stream_chat_http(
    client: httpx.AsyncClient, server: JupyterServer, body: dict[str, Any]
) -> StreamResult:
    """POST /oci/v1/chat/completions with stream=true and time the tokens as they arrive."""
    result = StreamResult(start=time.perf_counter())
    parts: list[str] = []
    async with client.stream(
        "POST", f"{server.base_url}/oci/v1/chat/completions", headers=server.headers, json=body
    ) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"HTTP {response.status_code}: {response.text}")
        async for data in iter_sse_data(response.aiter_lines()):
            if data == "[DONE]":
                break
            event = json.loads(data)
            if "error" in event:
                raise RuntimeError(f"in-band error: {event['error']}")
            if event.get("usage"):
                result.prompt_tokens = event["usage"]["prompt_tokens"]
                result.completion_tokens = event["usage"]["completion_tokens"]
            for choice in event.get("choices", []):
                content = choice.get("delta", {}).get("content")
                if content:
                    now = time.perf_counter()
                    if result.first_token is None:
                        result.first_token = now
                    result.last_token = now
                    result.content_chunks += 1
                    parts.append(content)
                if choice.get("finish_reason"):
                    result.finish_reason = choice["finish_reason"]
    result.text = "".join(parts)
    return result


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): p99 of 300 samples is the 297th smallest."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def write_json(path: str | None, result: dict[str, Any]) -> None:
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {target}")


def machine_info() -> dict[str, Any]:
    import platform

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cores": cores,
    }


# ---- noise: CPU used by processes other than ours ---------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_seconds() -> float:
    """All CPUs' non-idle time since boot (from /proc/stat), in seconds."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / _TICK


def _process_seconds(pid: int) -> float:
    """utime + stime of one process, all its threads, in seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return 0.0
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class ForeignLoad:
    """Average CPU cores used by everything except ``pids`` between start() and stop().

    The benchmarks assume an otherwise idle machine; this measures how far that held.
    """

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self._t0 = self._busy0 = self._ours0 = 0.0
        self.cores = math.nan

    def _ours(self) -> float:
        return sum(_process_seconds(pid) for pid in self.pids)

    def start(self) -> ForeignLoad:
        if os.path.exists("/proc/stat"):
            self._t0, self._busy0, self._ours0 = time.monotonic(), _busy_seconds(), self._ours()
        return self

    def stop(self) -> float:
        if self._t0:
            wall = time.monotonic() - self._t0
            foreign = (_busy_seconds() - self._busy0) - (self._ours() - self._ours0)
            self.cores = max(0.0, foreign / wall) if wall > 0 else math.nan
        return self.cores


def wait_for_quiet(
    pids: Sequence[int], threshold: float, timeout: float, window: float = 1.0
) -> tuple[bool, float]:
    """Wait (at most ``timeout`` s) for a ``window`` during which other processes use less
    than ``threshold`` cores. Returns (became quiet, last measured load)."""
    deadline = time.monotonic() + timeout
    load = math.nan
    while True:
        probe = ForeignLoad(pids).start()
        time.sleep(window)
        load = probe.stop()
        if not load > threshold:  # also true for nan: no /proc, nothing to wait for
            return True, load
        if time.monotonic() >= deadline:
            return False, load
