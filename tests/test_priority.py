"""People before programs: the llama.cpp worker serves interactive requests (chat, fix,
``%%oci``) before background ones (the OpenAI endpoint, oci-eval), and a request that waits
for the model says how many go first: in the chat, on ``/oci/v1`` (server-sent-event
comments) and in ``%%oci`` (through the kernel's client), and ``/oci/status`` counts them.

The llama.cpp engine runs a fake model behind its real worker thread and queue."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from oci_jupyter.chat import ChatSession, ChatStore
from oci_jupyter.client import ModelClient, ServerInfo
from oci_jupyter.engine import Delta, Finish, GenerationParams, Message, StreamEvent
from oci_jupyter.engine.llamacpp import LlamaCppEngine
from oci_jupyter.engine.llamacpp_jobs import Job
from oci_jupyter.handlers import request_priority

from .doubles import ScriptedTestEngine
from .helpers import oci_app, wait_for_state
from .test_chat import Browser, ask


async def until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# ---- the llama.cpp queue -------------------------------------------------------------------------
@pytest.fixture
def queued_llama(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LlamaCppEngine, list[str]]]:
    """A LlamaCppEngine whose worker runs a fake model: it records the order in which it
    serves requests; one whose message is "hold" waits for ``gate``."""
    engine = LlamaCppEngine(model_path="/nonexistent/fake.gguf", n_threads=1, n_threads_batch=1)
    served: list[str] = []
    gate = threading.Event()

    class FakeLlama:
        def close(self) -> None:
            pass

    def run(job: Job) -> None:
        text = job.messages[-1]["content"]
        served.append(text)
        if text == "hold":
            gate.wait(5)
        job.emit(Delta(text))
        job.emit(Finish("stop", 1, 1))

    monkeypatch.setattr(engine, "_find_model_file", lambda progress: Path("fake.gguf"))
    monkeypatch.setattr(engine, "_open_model", lambda path: (FakeLlama(), None, None))
    monkeypatch.setattr(engine, "_install_abort_callback", lambda: None)
    monkeypatch.setattr(engine, "_run", run)
    engine.gate = gate  # type: ignore[attr-defined]
    yield engine, served
    gate.set()


async def reply(engine: LlamaCppEngine, text: str, request_id: str, priority: Any) -> str:
    params = GenerationParams(max_tokens=8, priority=priority)
    messages: list[Message] = [{"role": "user", "content": text}]
    parts = [
        e.text
        async for e in engine.stream_chat(messages, params, request_id)
        if isinstance(e, Delta)
    ]
    return "".join(parts)


async def test_interactive_requests_go_first_and_know_their_place(
    queued_llama: tuple[LlamaCppEngine, list[str]],
) -> None:
    engine, served = queued_llama
    engine.start()
    assert (await engine.wait_ready(5)).state == "ready"
    held = asyncio.ensure_future(reply(engine, "hold", "held", "background"))
    await until(lambda: served == ["hold"])
    # Arriving in this order while the worker is busy: two programs, then a person.
    tasks = [
        asyncio.ensure_future(reply(engine, "eval 1", "b1", "background")),
        asyncio.ensure_future(reply(engine, "eval 2", "b2", "background")),
    ]
    await until(lambda: engine.waiting_requests == 2)
    tasks.append(asyncio.ensure_future(reply(engine, "chat", "person", "interactive")))
    await until(lambda: engine.waiting_requests == 3)
    # The one running counts as ahead of everyone waiting.
    assert engine.waiting_ahead("person") == 1
    assert engine.waiting_ahead("b1") == 2
    assert engine.waiting_ahead("b2") == 3
    assert engine.waiting_ahead("unknown") == 0
    engine.gate.set()  # type: ignore[attr-defined]
    assert await asyncio.gather(held, *tasks) == ["hold", "eval 1", "eval 2", "chat"]
    assert served == ["hold", "chat", "eval 1", "eval 2"]
    assert engine.waiting_requests == 0
    assert engine.waiting_ahead("person") == 0
    await engine.shutdown()


async def test_a_background_prefill_waits_for_every_request(
    queued_llama: tuple[LlamaCppEngine, list[str]],
) -> None:
    engine, served = queued_llama
    engine.start()
    assert (await engine.wait_ready(5)).state == "ready"
    held = asyncio.ensure_future(reply(engine, "hold", "held", "interactive"))
    await until(lambda: served == ["hold"])
    assert engine.prefill([{"role": "user", "content": "warm"}])
    later = asyncio.ensure_future(reply(engine, "eval", "b1", "background"))
    await until(lambda: engine.waiting_requests == 1)
    # A prefill is no request: it is not ahead of anyone.
    assert engine.waiting_ahead("b1") == 1
    engine.gate.set()  # type: ignore[attr-defined]
    await asyncio.gather(held, later)
    await engine.wait_idle(5)
    assert served == ["hold", "eval", "warm"]
    await engine.shutdown()


def test_only_a_stated_person_is_interactive() -> None:
    assert request_priority("interactive") == "interactive"
    assert request_priority(" Interactive ") == "interactive"
    assert request_priority("") == "background"
    assert request_priority("urgent") == "background"


# ---- what a waiting request is told --------------------------------------------------------------
class QueuedTestEngine(ScriptedTestEngine):
    """A scripted engine whose replies first wait ``queue_seconds`` behind ``ahead`` others
    (as the llama.cpp queue would report); it records each request's priority."""

    name = "queued-test"

    def __init__(self, *args: Any, ahead: int = 2, queue_seconds: float = 0.8, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.ahead = ahead
        self.queue_seconds = queue_seconds
        self.priorities: list[str] = []
        self._until: dict[str, float] = {}

    def waiting_ahead(self, request_id: str) -> int:
        until = self._until.get(request_id)
        return self.ahead if until is not None and time.monotonic() < until else 0

    async def _generate(
        self,
        messages: list[Message],
        params: GenerationParams,
        request_id: str,
        cancelled: asyncio.Event,
    ) -> AsyncGenerator[StreamEvent, None]:
        self.priorities.append(params.priority)
        self._until[request_id] = time.monotonic() + self.queue_seconds
        await asyncio.sleep(self.queue_seconds)
        async for event in super()._generate(messages, params, request_id, cancelled):
            yield event


async def test_the_chat_says_how_many_requests_are_ahead(tmp_path: Path) -> None:
    engine = QueuedTestEngine(["It is 55."])
    engine.start()
    await engine.wait_ready(5)
    browser = Browser()
    session = ChatSession(engine, ChatStore(tmp_path / "chats"), browser.send)
    browser.session = session
    await session.receive(ask("r1", "what is the sum of 1..10?"))
    await asyncio.wait_for(browser.done.wait(), 10)
    waiting = [m["waiting"] for m in browser.of("turn") if "waiting" in m]
    # Two ahead; then (unless the first words came first, which end the wait anyway) its turn.
    assert waiting[0] == 2
    assert waiting in ([2], [2, 0])
    assert engine.priorities == ["interactive"]
    assert browser.text("r1") == "It is 55."


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"oci_jupyter": True}},
        "OCI": {
            "engine_class": "tests.test_priority.QueuedTestEngine",
            "engine_kwargs": {"replies": ["fine"]},
            "chat_dir": str(tmp_path / "chats"),
        },
    }


async def test_the_endpoint_serves_programs_after_people_and_says_when_they_wait(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    await wait_for_state(jp_serverapp, "ready", timeout=10)
    engine = oci_app(jp_serverapp).engine
    assert isinstance(engine, QueuedTestEngine)
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    response = await jp_fetch(
        "oci", "v1", "chat", "completions", method="POST", body=json.dumps(body)
    )
    lines = response.body.decode().splitlines()
    assert ": waiting 2" in lines
    # The comment comes before the reply's words; OpenAI clients skip comments.
    words = next(i for i, line in enumerate(lines) if '"content": "fine"' in line)
    assert lines.index(": waiting 2") < words
    assert "data: [DONE]" in lines
    await jp_fetch(
        "oci",
        "v1",
        "chat",
        "completions",
        method="POST",
        body=json.dumps(body),
        headers={"X-OCI-Priority": "interactive"},
    )
    assert engine.priorities == ["background", "interactive"]
    status = json.loads((await jp_fetch("oci", "status")).body)
    assert status["waiting_requests"] == 0


def test_the_kernels_client_asks_as_a_person_and_hears_its_place() -> None:
    seen: dict[str, Any] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        seen["priority"] = request.headers.get("X-OCI-Priority")
        stream = (
            'data: {"choices": [{"delta": {"role": "assistant", "content": ""}}]}\n\n'
            ": waiting 1\n\n"
            ": waiting 0\n\n"
            'data: {"choices": [{"delta": {"content": "hello"}}]}\n\n'
            "data: [DONE]\n\n"
        )
        return httpx.Response(200, text=stream, headers={"Content-Type": "text/event-stream"})

    client = ModelClient(ServerInfo("http://127.0.0.1:1/", "secret", "test"))
    client._http = httpx.Client(transport=httpx.MockTransport(answer), headers=client._http.headers)
    places: list[int] = []
    text = "".join(
        client.stream_chat([{"role": "user", "content": "hi"}], GenerationParams(), places.append)
    )
    assert text == "hello"
    assert places == [1, 0]
    assert seen["priority"] == "interactive"
