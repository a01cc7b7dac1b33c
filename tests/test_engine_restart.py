"""A loaded engine that dies reports it, and a restart loads the model again in the same server.

The engines run on doubles: the base class with a scripted engine, vLLM with a fake
``AsyncLLM`` (no vLLM needed), llama.cpp with a fake model behind its real worker thread, and
``POST /oci/restart`` against a real Jupyter server hosting a double that dies.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import types
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth import Authorizer
from tornado.httpclient import HTTPClientError

from oci_jupyter.engine import (
    Delta,
    EngineError,
    EngineNotReady,
    Finish,
    GenerationParams,
    Message,
    StreamEvent,
)
from oci_jupyter.engine import llamacpp as llamacpp_module
from oci_jupyter.engine import vllm as vllm_module
from oci_jupyter.engine.base import EngineBusy
from oci_jupyter.engine.llamacpp import LlamaCppEngine
from oci_jupyter.engine.llamacpp_jobs import Job
from oci_jupyter.engine.vllm import VLLMEngine, is_engine_dead

from .doubles import DyingTestEngine, ScriptedTestEngine
from .helpers import oci_app, wait_for_state

ASK: list[Message] = [{"role": "user", "content": "sum 0..10"}]
PARAMS = GenerationParams(max_tokens=32)


async def collect(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in stream]


async def until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# ---- the base class -----------------------------------------------------------------------------
class RecordingEngine(ScriptedTestEngine):
    """Scripted, and records what a restart does in which order."""

    title = "test"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loads = 0
        self.closes: list[list[str]] = []
        """The running requests at each close (a close must never run under a request)."""

    async def _load(self) -> None:
        self.loads += 1
        await super()._load()

    async def _close(self) -> None:
        self.closes.append(self.running_requests)


async def test_a_death_turns_the_status_to_error_and_requests_fail_fast() -> None:
    engine = RecordingEngine()
    assert (await engine.wait_ready(5)).state == "ready"
    engine._died("the core process exited with signal 9")
    status = engine.status
    assert status.state == "error"
    assert status.detail == "engine died"
    assert status.error == (
        "The test engine died: the core process exited with signal 9; "
        "restart the model from the panel."
    )
    with pytest.raises(EngineNotReady, match="signal 9"):
        await collect(engine.stream_chat(ASK, PARAMS, "after"))
    assert engine.prompts == []
    await engine.shutdown()


async def test_a_death_only_counts_for_a_ready_engine() -> None:
    engine = RecordingEngine(hold_loading=True)
    engine.start()
    engine._died("late report")
    assert engine.status.state == "loading"
    await engine.shutdown()
    engine._died("late report")
    assert engine.status.state == "stopped"


async def test_restart_loads_again_and_releases_the_old_load_once() -> None:
    engine = RecordingEngine()
    await engine.wait_ready(5)
    engine._died("gone")
    task = engine.restart()
    assert engine.status.state == "loading"
    assert engine.status.error is None
    await task
    assert engine.status.state == "ready"
    assert engine.status.error is None
    assert (engine.loads, engine.closes) == (2, [[]])
    events = await collect(engine.stream_chat(ASK, PARAMS, "again"))
    assert isinstance(events[-1], Finish)
    assert events[-1].reason == "stop"
    await engine.shutdown()


async def test_restart_is_refused_while_the_model_loads() -> None:
    engine = RecordingEngine(hold_loading=True)
    engine.start()
    with pytest.raises(EngineBusy, match="loading"):
        engine.restart()
    engine.release.set()
    await engine.wait_ready(5)
    restarting = engine.restart()
    engine.release.clear()  # the restart's load now waits
    await until(lambda: engine.loads == 2)
    with pytest.raises(EngineBusy):
        engine.restart()  # a restart in progress is a load too
    engine.release.set()
    await restarting
    assert engine.status.state == "ready"
    await engine.shutdown()


async def test_restart_cancels_and_awaits_running_requests_before_releasing() -> None:
    engine = RecordingEngine(replies=["tok " * 500], token_delay=0.01)
    await engine.wait_ready(5)
    first_word = asyncio.Event()

    async def consume() -> list[StreamEvent]:
        events: list[StreamEvent] = []
        async for event in engine.stream_chat(ASK, GenerationParams(max_tokens=1000), "long"):
            events.append(event)
            first_word.set()
        return events

    consumer = asyncio.ensure_future(consume())
    await first_word.wait()
    await engine.restart()
    events = await consumer
    assert isinstance(events[-1], Finish)
    assert events[-1].reason == "cancelled"
    assert len(events) < 100
    assert engine.closes == [[]]  # nothing was running when the old load was released
    assert engine.status.state == "ready"
    await engine.shutdown()


async def test_shutdown_during_a_restart_stops_the_engine() -> None:
    engine = RecordingEngine()
    await engine.wait_ready(5)
    engine.release.clear()
    engine.restart()
    await until(lambda: engine.loads == 2)
    await engine.shutdown()
    assert engine.status.state == "stopped"


async def test_a_failed_load_can_be_restarted() -> None:
    engine = RecordingEngine(fail_load="out of memory")
    assert (await engine.wait_ready(5)).state == "error"
    engine._fail_load = None
    await engine.restart()
    assert engine.status.state == "ready"
    await engine.shutdown()


# ---- vLLM, with a fake AsyncLLM ------------------------------------------------------------------
class EngineDeadError(Exception):
    """Named as vLLM's (vllm.v1.engine.exceptions.EngineDeadError)."""


class FakeTokenizer:
    def apply_chat_template(self, messages: list[Message], **kwargs: Any) -> str:
        return " ".join(m["content"] for m in messages)

    def encode(
        self, text: str, add_special_tokens: bool = False, split_special_tokens: bool = False
    ) -> list[int]:
        return [len(word) for word in text.split()]


class FakeAsyncLLM:
    """What VLLMEngine uses of vllm's AsyncLLM. ``failure`` makes generate() raise after its
    first output (having set ``errored``, AsyncLLM's flag for a dead engine core, when
    ``failure_kills`` says so)."""

    def __init__(self) -> None:
        self.model_config = types.SimpleNamespace(max_model_len=256)
        self.failure: BaseException | None = None
        self.failure_kills = False
        self.errored = False
        self.aborted: list[str] = []
        self.shut_down = 0

    def get_tokenizer(self) -> FakeTokenizer:
        return FakeTokenizer()

    async def generate(
        self, prompt: Any, params: dict[str, Any], request_id: str
    ) -> AsyncGenerator[Any, None]:
        for index in range(3):
            if index == 1 and self.failure is not None:
                self.errored = self.errored or self.failure_kills
                raise self.failure
            done = index == 2
            completion = types.SimpleNamespace(
                text=f"w{index} ", token_ids=[index], finish_reason="stop" if done else None
            )
            yield types.SimpleNamespace(outputs=[completion], finished=done)
            await asyncio.sleep(0)

    async def abort(self, request_id: str) -> None:
        if self.errored:
            raise EngineDeadError()
        self.aborted.append(request_id)

    def shutdown(self) -> None:
        self.shut_down += 1


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> list[FakeAsyncLLM]:
    """Every AsyncLLM VLLMEngine starts, in order (no vLLM imported)."""
    started: list[FakeAsyncLLM] = []

    def start(api: dict[str, Any], engine_args: dict[str, Any]) -> FakeAsyncLLM:
        started.append(FakeAsyncLLM())
        return started[-1]

    api = {
        "AsyncEngineArgs": dict,
        "AsyncLLM": FakeAsyncLLM,
        "RequestOutputKind": types.SimpleNamespace(DELTA="delta"),
        "SamplingParams": dict,
    }
    monkeypatch.setattr(vllm_module, "_check_and_import", lambda model: api)
    monkeypatch.setattr(vllm_module, "_describe_device", lambda tensor_parallel_size: "cpu")
    monkeypatch.setattr(vllm_module, "_start_engine", start)
    return started


async def test_vllm_engine_dead_error_turns_the_status_to_error(
    fake_vllm: list[FakeAsyncLLM],
) -> None:
    engine = VLLMEngine("org/tiny")
    assert (await engine.wait_ready(5)).state == "ready"
    fake_vllm[0].failure = EngineDeadError("EngineCore encountered an issue.")
    with pytest.raises(EngineError, match="The vLLM engine died: EngineDeadError"):
        await collect(engine.stream_chat(ASK, PARAMS, "dies"))
    status = engine.status
    assert status.state == "error"
    assert status.detail == "engine died"
    assert status.error is not None
    assert status.error.startswith("The vLLM engine died: EngineDeadError: EngineCore")
    assert status.error.endswith("restart the model from the panel.")
    with pytest.raises(EngineNotReady):
        await collect(engine.stream_chat(ASK, PARAMS, "after"))
    await engine.shutdown()


async def test_vllm_a_generator_failing_after_the_engine_errored_is_a_death(
    fake_vllm: list[FakeAsyncLLM],
) -> None:
    engine = VLLMEngine("org/tiny")
    await engine.wait_ready(5)
    fake_vllm[0].failure = RuntimeError("zmq socket closed")
    fake_vllm[0].failure_kills = True
    with pytest.raises(EngineError, match="died"):
        await collect(engine.stream_chat(ASK, PARAMS, "dies"))
    assert engine.status.state == "error"
    assert "zmq socket closed" in (engine.status.error or "")
    await engine.shutdown()


async def test_vllm_an_ordinary_generation_error_fails_that_request_only(
    fake_vllm: list[FakeAsyncLLM],
) -> None:
    engine = VLLMEngine("org/tiny")
    await engine.wait_ready(5)
    fake_vllm[0].failure = ValueError("bad sampling parameter")
    with pytest.raises(EngineError, match="vLLM failed: ValueError"):
        await collect(engine.stream_chat(ASK, PARAMS, "bad"))
    assert engine.status.state == "ready"
    fake_vllm[0].failure = None
    events = await collect(engine.stream_chat(ASK, PARAMS, "good"))
    assert "".join(e.text for e in events if isinstance(e, Delta)) == "w0 w1 w2 "
    await engine.shutdown()


async def test_vllm_an_errored_engine_shows_in_the_status_before_any_request(
    fake_vllm: list[FakeAsyncLLM],
) -> None:
    engine = VLLMEngine("org/tiny")
    await engine.wait_ready(5)
    fake_vllm[0].errored = True
    assert engine.status.state == "error"
    assert "engine core stopped" in (engine.status.error or "")
    await engine.shutdown()


async def test_vllm_restart_shuts_the_dead_engine_down_and_starts_another(
    fake_vllm: list[FakeAsyncLLM],
) -> None:
    engine = VLLMEngine("org/tiny")
    await engine.wait_ready(5)
    fake_vllm[0].errored = True
    assert engine.status.state == "error"
    await engine.restart()
    assert engine.status.state == "ready"
    assert [fake.shut_down for fake in fake_vllm] == [1, 0]
    assert engine._engine is fake_vllm[1]
    events = await collect(engine.stream_chat(ASK, PARAMS, "again"))
    assert isinstance(events[-1], Finish)
    assert events[-1].reason == "stop"
    await engine.shutdown()
    assert fake_vllm[1].shut_down == 1


def test_vllm_dead_errors_are_found_by_vllms_module_path_and_through_causes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class CoreGone(Exception):
        pass

    exceptions = types.ModuleType("vllm.v1.engine.exceptions")
    exceptions.EngineDeadError = CoreGone  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    monkeypatch.setitem(sys.modules, "vllm.v1.engine.exceptions", exceptions)
    assert is_engine_dead(CoreGone())
    assert is_engine_dead(EngineDeadError())  # by name, wherever vLLM defines it
    wrapped = RuntimeError("generate failed")
    wrapped.__cause__ = CoreGone()
    assert is_engine_dead(wrapped)
    assert not is_engine_dead(RuntimeError("bad request"))


# ---- llama.cpp, with a fake model behind the real worker thread ----------------------------------
class FakeLlama:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def fake_llama(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LlamaCppEngine, list[FakeLlama]]]:
    """A LlamaCppEngine whose worker runs ``_run`` on a fake model: a request whose last
    message is "boom" raises in its generation, one that says "wait" waits for ``gate``."""
    engine = LlamaCppEngine(model_path="/nonexistent/fake.gguf", n_threads=1, n_threads_batch=1)
    models: list[FakeLlama] = []
    gate = threading.Event()

    def open_model(path: Path) -> tuple[Any, Any, Any]:
        models.append(FakeLlama())
        return models[-1], None, None

    def run(job: Job) -> None:
        text = job.messages[-1]["content"]
        if text == "boom":
            raise RuntimeError("llama_decode returned -1")
        if text == "wait":
            gate.wait(5)
        job.emit(Delta("ok"))
        job.emit(Finish("stop", 1, 1))

    monkeypatch.setattr(engine, "_find_model_file", lambda progress: Path("fake.gguf"))
    monkeypatch.setattr(engine, "_open_model", open_model)
    monkeypatch.setattr(engine, "_install_abort_callback", lambda: None)
    monkeypatch.setattr(engine, "_run", run)
    engine.gate = gate  # type: ignore[attr-defined]
    yield engine, models
    gate.set()


def say(text: str) -> list[Message]:
    return [{"role": "user", "content": text}]


async def test_llamacpp_a_failing_generation_is_an_error_of_that_request_only(
    fake_llama: tuple[LlamaCppEngine, list[FakeLlama]],
) -> None:
    engine, models = fake_llama
    assert (await engine.wait_ready(5)).state == "ready"
    with pytest.raises(EngineError, match="llama_decode returned -1"):
        await collect(engine.stream_chat(say("boom"), PARAMS, "bad"))
    assert engine.status.state == "ready"
    events = await collect(engine.stream_chat(say("hi"), PARAMS, "good"))
    assert events == [Delta("ok"), Finish("stop", 1, 1)]
    await engine.shutdown()
    assert models[0].closed == 1


async def test_llamacpp_a_worker_that_dies_turns_the_status_to_error(
    fake_llama: tuple[LlamaCppEngine, list[FakeLlama]],
) -> None:
    engine, models = fake_llama
    await engine.wait_ready(5)
    running = asyncio.ensure_future(collect(engine.stream_chat(say("wait"), PARAMS, "first")))
    await until(lambda: engine._current is not None)
    # The worker itself fails on it, between two requests (first in the queue's order).
    engine._jobs.put((0, -1, "not a job"))
    queued = asyncio.ensure_future(collect(engine.stream_chat(say("hi"), PARAMS, "queued")))
    await until(lambda: engine._jobs.qsize() == 2)
    engine.gate.set()  # type: ignore[attr-defined]
    assert (await running)[-1] == Finish("stop", 1, 1)  # the running request was not hurt
    with pytest.raises(EngineError, match=r"The llama\.cpp engine died"):
        await queued
    await until(lambda: engine.status.state == "error")
    status = engine.status
    assert status.detail == "engine died"
    assert status.error == (
        "The llama.cpp engine died: its worker thread failed: TypeError: the llama.cpp job "
        "queue holds 'not a job'; restart the model from the panel."
    )
    worker = engine._worker
    assert worker is not None
    await asyncio.to_thread(worker.join, 5)
    assert models[0].closed == 1  # the dying worker freed its model, on its way out
    with pytest.raises(EngineNotReady):
        await collect(engine.stream_chat(say("hi"), PARAMS, "after"))
    assert not engine.prefill(say("hi"))
    await engine.shutdown()


async def test_llamacpp_restart_after_a_death_loads_a_new_model(
    fake_llama: tuple[LlamaCppEngine, list[FakeLlama]],
) -> None:
    engine, models = fake_llama
    await engine.wait_ready(5)
    engine._jobs.put("not a job")
    await until(lambda: engine.status.state == "error")
    await engine.restart()
    assert engine.status.state == "ready"
    assert engine.status.error is None
    assert len(models) == 2
    assert [m.closed for m in models] == [1, 0]
    events = await collect(engine.stream_chat(say("hi"), PARAMS, "again"))
    assert events[-1] == Finish("stop", 1, 1)
    await engine.wait_idle(5)  # the new worker's bookkeeping is sound
    await engine.shutdown()
    assert [m.closed for m in models] == [1, 1]


async def test_llamacpp_a_worker_gone_without_a_report_is_noticed(
    fake_llama: tuple[LlamaCppEngine, list[FakeLlama]], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, _ = fake_llama
    monkeypatch.setattr(llamacpp_module.LlamaCppEngine, "_report_death", lambda self, r: None)
    await engine.wait_ready(5)
    engine._jobs.put("not a job")
    assert engine._worker is not None
    await asyncio.to_thread(engine._worker.join, 5)
    assert engine.status.state == "error"
    assert "worker thread stopped" in (engine.status.error or "")
    await engine.shutdown()


# ---- POST /oci/restart ---------------------------------------------------------------------------
CHAT = ("oci", "v1", "chat", "completions")
BODY = json.dumps({"messages": ASK})


class ReadOnlyAuthorizer(Authorizer):
    """Lets a user read the oci resource, nothing more."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "oci" or action == "read"


@pytest.fixture
def engine_kwargs() -> dict[str, Any]:
    return {"replies": ["print(55)"]}


@pytest.fixture
def authorizer_class() -> str | None:
    return None


@pytest.fixture
def jp_server_config(engine_kwargs: dict[str, Any], authorizer_class: str | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "ServerApp": {"jpserver_extensions": {"oci_jupyter": True}},
        "OCI": {"engine_class": "tests.doubles.DyingTestEngine", "engine_kwargs": engine_kwargs},
    }
    if authorizer_class:
        config["ServerApp"]["authorizer_class"] = authorizer_class
    return config


async def fetch_error(jp_fetch: Any, *parts: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(*parts, **kwargs)
    response = caught.value.response
    assert response is not None
    return caught.value.code, json.loads(response.body or b"{}")


def dying_engine(jp_serverapp: Any) -> DyingTestEngine:
    engine = oci_app(jp_serverapp).engine
    assert isinstance(engine, DyingTestEngine)
    return engine


async def test_a_dead_engine_reports_error_and_restarts_from_a_post(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    await wait_for_state(jp_serverapp, "ready")
    engine = dying_engine(jp_serverapp)
    code, error = await fetch_error(jp_fetch, *CHAT, method="POST", body=BODY)
    assert code == 500
    assert "died" in error["error"]["message"]
    status = json.loads((await jp_fetch("oci", "status")).body)
    assert status["state"] == "error"
    assert status["error"] == (
        "The test engine died: the test engine core exited; restart the model from the panel."
    )
    code, error = await fetch_error(jp_fetch, *CHAT, method="POST", body=BODY)
    assert code == 503  # fails fast, without reaching the engine

    response = await jp_fetch("oci", "restart", method="POST", body="")
    assert response.code == 202
    restarting = json.loads(response.body)
    assert restarting["state"] == "loading"
    assert restarting["error"] is None
    await wait_for_state(jp_serverapp, "ready", "error", timeout=10)
    assert engine.status.state == "ready"
    assert (engine.loads, engine.closes) == (2, 1)
    reply = json.loads((await jp_fetch(*CHAT, method="POST", body=BODY)).body)
    assert reply["choices"][0]["message"]["content"] == "print(55)"


@pytest.mark.parametrize("engine_kwargs", [{"hold_loading": True}])
async def test_restart_while_the_model_loads_is_409(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "loading")
    code, error = await fetch_error(jp_fetch, "oci", "restart", method="POST", body="")
    assert code == 409
    assert "loading" in error["error"]["message"]
    assert error["text"] == {"code": "restart_while_loading", "params": {}}  # the panel's
    assert error["status"]["state"] == "loading"
    assert dying_engine(jp_serverapp).loads == 1


async def test_restart_answers_only_post(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "ready")
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("oci", "restart")
    assert caught.value.code == 405


@pytest.mark.parametrize("authorization", ["", "token wrong-token"])
async def test_restart_refuses_requests_without_a_valid_token(
    jp_fetch: Any, jp_serverapp: Any, authorization: str
) -> None:
    await wait_for_state(jp_serverapp, "ready")
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(
            "oci", "restart", method="POST", body="", headers={"Authorization": authorization}
        )
    assert caught.value.code in (401, 403)
    assert dying_engine(jp_serverapp).loads == 1


@pytest.mark.parametrize("authorizer_class", ["tests.test_engine_restart.ReadOnlyAuthorizer"])
async def test_restart_needs_write_permission(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "ready")
    assert (await jp_fetch("oci", "status")).code == 200  # reading is allowed
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("oci", "restart", method="POST", body="")
    assert caught.value.code == 403
    assert dying_engine(jp_serverapp).loads == 1
