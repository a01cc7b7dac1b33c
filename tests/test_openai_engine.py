"""OpenAIEngine against a real OpenAI-compatible server: llama-cpp-python's own server, run as a
subprocess on 127.0.0.1 with the bundled model (one server per module)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from oci_jupyter.engine.base import (
    Delta,
    EngineNotReady,
    Finish,
    GenerationParams,
    Message,
    StreamEvent,
)
from oci_jupyter.engine.openai import OpenAIEngine

pytestmark = pytest.mark.model

SERVER_START_TIMEOUT = 120.0
SHORT_PROMPT: list[Message] = [
    {"role": "user", "content": "Write a Python function that returns the sum of two numbers."}
]
LONG_PROMPT: list[Message] = [
    {
        "role": "user",
        "content": "Explain, in great detail and with many code examples, how Python's "
        "garbage collector works.",
    }
]


@dataclass(frozen=True)
class Server:
    base_url: str
    model_ids: list[str]
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="module")
def llama_server(bundled_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable,
        "-m",
        "oci_jupyter.engine.cpu_quirks",  # llama.cpp's server, loaded AMX-safe
        "llama_cpp.server",
        "--model",
        str(bundled_model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "2",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        root = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        model_ids: list[str] = []
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while not model_ids:
                if process.poll() is not None:
                    pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{_tail(log)}")
                if time.monotonic() > deadline:
                    pytest.fail(f"llama_cpp.server did not answer within 120 s:\n{_tail(log)}")
                try:
                    response = client.get(f"{root}/v1/models")
                    if response.status_code == 200:
                        model_ids = [m["id"] for m in response.json()["data"]]
                except httpx.HTTPError:
                    pass
                if not model_ids:
                    time.sleep(0.25)  # polling interval while the server loads
        yield Server(base_url=f"{root}/v1", model_ids=model_ids, log=log)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)


@contextlib.asynccontextmanager
async def running(**kwargs: Any) -> AsyncIterator[OpenAIEngine]:
    engine = OpenAIEngine(**kwargs)
    try:
        # Generous: llama.cpp's server answers /v1/models only after finishing what it was
        # generating, and a loaded 2-core machine makes that slow.
        await engine.wait_ready(180)
        yield engine
    finally:
        await engine.shutdown()


async def collect(
    engine: OpenAIEngine, messages: list[Message], params: GenerationParams, request_id: str
) -> list[StreamEvent]:
    async def run() -> list[StreamEvent]:
        return [event async for event in engine.stream_chat(messages, params, request_id)]

    return await asyncio.wait_for(run(), 120)


def check_stream(events: list[StreamEvent]) -> tuple[str, Finish]:
    """Deltas then exactly one Finish, last; returns the text and the Finish."""
    assert events, "empty stream"
    *deltas, finish = events
    assert isinstance(finish, Finish), events
    assert all(isinstance(e, Delta) for e in deltas), events
    return "".join(e.text for e in deltas if isinstance(e, Delta)), finish


# ---- loading ---------------------------------------------------------------------------------
async def test_ready_with_the_served_model_and_a_context_length(llama_server: Server) -> None:
    async with running(base_url=llama_server.base_url) as engine:
        status = engine.status
        assert status.state == "ready", status
        assert status.error is None
        assert status.model == llama_server.model_ids[0]
        assert status.context_length is not None
        assert status.context_length > 0
        assert engine.context_length == status.context_length
        assert llama_server.base_url in status.device


async def test_explicit_model_and_context_length_are_kept(llama_server: Server) -> None:
    served = llama_server.model_ids[0]
    async with running(base_url=llama_server.base_url, model=served, context_length=2048) as e:
        assert e.status.state == "ready", e.status
        assert e.status.model == served
        assert e.context_length == 2048
        assert e.status.context_length == 2048


async def test_model_the_server_does_not_serve_is_an_error(llama_server: Server) -> None:
    async with running(base_url=llama_server.base_url, model="no-such-model") as engine:
        status = engine.status
        assert status.state == "error"
        assert status.error is not None
        assert "'no-such-model'" in status.error
        for served in llama_server.model_ids:
            assert served in status.error
        with pytest.raises(EngineNotReady):
            await anext(engine.stream_chat(SHORT_PROMPT, GenerationParams(), "r0"))


async def test_unreachable_server_is_an_error_quickly() -> None:
    base_url = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there any more
    started = time.monotonic()
    async with running(base_url=base_url, connect_timeout=2.0) as engine:
        elapsed = time.monotonic() - started
        status = engine.status
        assert status.state == "error"
        assert status.error is not None
        assert "cannot reach" in status.error
        assert base_url in status.error
        assert elapsed < 10.0, f"took {elapsed:.1f} s"


async def test_empty_base_url_names_the_setting() -> None:
    async with running(base_url="") as engine:
        assert engine.status.state == "error"
        assert engine.status.error is not None
        assert "c.OCI.openai_base_url" in engine.status.error


# ---- generation ------------------------------------------------------------------------------
async def test_stream_yields_deltas_then_one_finish(llama_server: Server) -> None:
    async with running(base_url=llama_server.base_url) as engine:
        params = GenerationParams(max_tokens=24, temperature=0.0)
        events = await collect(engine, SHORT_PROMPT, params, "short")

        text, finish = check_stream(events)
        assert len(events) >= 2  # at least one Delta
        assert text.strip()
        assert finish.reason in ("stop", "length")
        assert finish.prompt_tokens > 0
        assert finish.completion_tokens > 0
        assert engine.running_requests == []


async def test_small_max_tokens_finishes_with_length(llama_server: Server) -> None:
    async with running(base_url=llama_server.base_url) as engine:
        params = GenerationParams(max_tokens=4, temperature=0.0)
        events = await collect(engine, LONG_PROMPT, params, "tiny")

        text, finish = check_stream(events)
        assert finish.reason == "length"
        assert text
        assert 1 <= len(events) - 1 <= 4  # llama.cpp streams at most one delta per token


async def test_cancel_mid_stream_then_serve_the_next_request(llama_server: Server) -> None:
    async with running(base_url=llama_server.base_url) as engine:
        events: list[StreamEvent] = []
        cancelled_at: float | None = None
        finished_at: float | None = None
        params = GenerationParams(max_tokens=400, temperature=0.0)

        async def consume() -> None:
            nonlocal cancelled_at, finished_at
            loop = asyncio.get_running_loop()
            async for event in engine.stream_chat(LONG_PROMPT, params, "long"):
                events.append(event)
                if isinstance(event, Delta) and cancelled_at is None:
                    assert engine.running_requests == ["long"]
                    cancelled_at = time.monotonic()
                    # Cancel from outside the stream, while it waits for the next token.
                    loop.call_soon(engine.cancel, "long")
                if isinstance(event, Finish):
                    finished_at = time.monotonic()

        await asyncio.wait_for(consume(), 120)

        _, finish = check_stream(events)
        assert cancelled_at is not None
        assert finished_at is not None
        assert finish.reason == "cancelled"
        assert finished_at - cancelled_at < 2.0, f"took {finished_at - cancelled_at:.1f} s"
        assert len(events) - 1 < 50  # stopped long before max_tokens
        assert engine.running_requests == []
        assert engine.cancel("long") is False  # no longer running

        following = await collect(
            engine, SHORT_PROMPT, GenerationParams(max_tokens=8, temperature=0.0), "next"
        )
        text, after = check_stream(following)
        assert text
        assert after.reason in ("stop", "length")


async def test_cancel_while_the_server_is_still_reading_the_prompt(llama_server: Server) -> None:
    # ~1000 prompt tokens: seconds of prompt processing on 2 cores, with no chunk to wake on.
    code = "".join(f"def f{i}(x):\n    return x * {i} + {i * 7}\n\n" for i in range(60))
    messages: list[Message] = [{"role": "user", "content": f"Review this code:\n{code}"}]
    async with running(base_url=llama_server.base_url) as engine:
        events: list[StreamEvent] = []
        params = GenerationParams(max_tokens=64, temperature=0.0)

        async def consume() -> None:
            async for event in engine.stream_chat(messages, params, "prompt"):
                events.append(event)

        task = asyncio.get_running_loop().create_task(consume())
        deadline = time.monotonic() + 10
        while "prompt" not in engine.running_requests and not task.done():
            assert time.monotonic() < deadline, "the request never started"
            await asyncio.sleep(0.01)
        assert engine.cancel("prompt") is True
        cancelled_at = time.monotonic()
        await asyncio.wait_for(task, 30)
        elapsed = time.monotonic() - cancelled_at

        _, finish = check_stream(events)
        assert finish.reason == "cancelled"
        assert elapsed < 2.0, f"took {elapsed:.1f} s"
        assert finish.prompt_tokens > 0  # estimated: no usage comes back from a cancelled stream
        assert engine.running_requests == []


async def test_closing_the_stream_early_frees_the_engine(llama_server: Server) -> None:
    async with running(base_url=llama_server.base_url) as engine:
        params = GenerationParams(max_tokens=400, temperature=0.0)
        # stream_chat is an async generator, typed as a plain AsyncIterator.
        stream = cast(
            AsyncGenerator[StreamEvent, None], engine.stream_chat(LONG_PROMPT, params, "closed")
        )
        async with contextlib.aclosing(stream):
            first = await asyncio.wait_for(anext(stream), 60)
            assert isinstance(first, Delta)
            assert engine.running_requests == ["closed"]
        assert engine.running_requests == []

        following = await collect(
            engine, SHORT_PROMPT, GenerationParams(max_tokens=8, temperature=0.0), "closed"
        )
        text, after = check_stream(following)  # the same id is free again
        assert text
        assert after.reason in ("stop", "length")
