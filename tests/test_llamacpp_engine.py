"""The llama.cpp engine with the real bundled Qwen2.5-Coder model."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from oci_jupyter.engine import Delta, Finish, GenerationParams
from oci_jupyter.engine.llamacpp import LlamaCppEngine

pytestmark = pytest.mark.model

ASK = [{"role": "user", "content": "Write a Python function `add(a, b)` that returns a + b."}]
GREEDY = GenerationParams(max_tokens=48, temperature=0.0, seed=1)


async def collect(engine: LlamaCppEngine, request_id: str, params: GenerationParams = GREEDY):
    return [event async for event in engine.stream_chat(ASK, params, request_id)]


async def test_streams_code_then_one_finish(llama_engine: LlamaCppEngine) -> None:
    events = await collect(llama_engine, "stream")
    deltas = [e for e in events if isinstance(e, Delta)]
    finishes = [e for e in events if isinstance(e, Finish)]
    assert len(finishes) == 1
    assert events[-1] is finishes[0]
    text = "".join(d.text for d in deltas)
    assert "def add" in text
    assert len(deltas) > 5  # streamed piece by piece, not in one lump
    finish = finishes[0]
    assert finish.prompt_tokens == llama_engine.count_chat_tokens(ASK)
    assert 0 < finish.completion_tokens <= GREEDY.max_tokens


async def test_max_tokens_ends_with_length(llama_engine: LlamaCppEngine) -> None:
    events = await collect(llama_engine, "short", GenerationParams(max_tokens=5, temperature=0))
    assert events[-1] == Finish("length", llama_engine.count_chat_tokens(ASK), 5)


async def test_cancel_stops_within_a_token_and_the_engine_goes_on(
    llama_engine: LlamaCppEngine,
) -> None:
    long = GenerationParams(max_tokens=400, temperature=0)
    seen: list[Delta] = []
    stream = llama_engine.stream_chat(ASK, long, "to-cancel")
    async for event in stream:
        assert isinstance(event, Delta)
        seen.append(event)
        if len(seen) == 3:
            break_at = time.monotonic()
            assert llama_engine.cancel("to-cancel")
            break
    rest = [event async for event in stream]
    elapsed = time.monotonic() - break_at
    assert isinstance(rest[-1], Finish)
    assert rest[-1].reason == "cancelled"
    assert sum(isinstance(e, Delta) for e in rest) <= 2  # at most the token(s) in flight
    assert elapsed < 2
    assert llama_engine.running_requests == []
    after = await collect(llama_engine, "after-cancel", GenerationParams(max_tokens=4))
    assert isinstance(after[-1], Finish)
    assert after[-1].reason == "length"


async def test_closing_the_stream_frees_the_engine(llama_engine: LlamaCppEngine) -> None:
    stream = llama_engine.stream_chat(ASK, GenerationParams(max_tokens=400), "closed")
    async for _event in stream:
        break
    await stream.aclose()
    assert llama_engine.running_requests == []
    started = time.monotonic()
    events = await collect(llama_engine, "next", GenerationParams(max_tokens=3))
    assert events[-1].reason == "length"  # type: ignore[union-attr]
    # The next request did not wait for the 400 tokens of the abandoned one.
    assert time.monotonic() - started < 10


async def test_concurrent_requests_are_served_in_turn(llama_engine: LlamaCppEngine) -> None:
    params = GenerationParams(max_tokens=8, temperature=0)
    first, second = await asyncio.gather(
        collect(llama_engine, "one", params), collect(llama_engine, "two", params)
    )
    assert first[-1] == second[-1]  # same prompt, greedy: same outcome, both complete
    assert "".join(e.text for e in first if isinstance(e, Delta)) == "".join(
        e.text for e in second if isinstance(e, Delta)
    )


async def test_generation_does_not_block_the_event_loop(llama_engine: LlamaCppEngine) -> None:
    gaps: list[float] = []

    async def heartbeat(stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    stop = asyncio.Event()
    beat = asyncio.create_task(heartbeat(stop))
    await collect(llama_engine, "busy", GenerationParams(max_tokens=32, temperature=0))
    stop.set()
    await beat
    assert len(gaps) > 20
    assert max(gaps) < 0.5, max(gaps)  # a blocked loop would show the whole generation


def test_token_counts(llama_engine: LlamaCppEngine) -> None:
    assert llama_engine.count_tokens("") == 0
    assert 1 <= llama_engine.count_tokens("def add(a, b):") <= 8
    chat = llama_engine.count_chat_tokens(ASK)
    assert chat > llama_engine.count_tokens(ASK[0]["content"])  # template adds role markers
    assert llama_engine.context_length == 4096


async def load_error(engine: LlamaCppEngine) -> str:
    status = await engine.wait_ready(60)
    assert status.state == "error"
    assert status.error
    return status.error


async def test_missing_model_file_is_an_error_state(tmp_path: Path) -> None:
    error = await load_error(LlamaCppEngine(model_path=str(tmp_path / "nope.gguf")))
    assert "does not exist" in error


async def test_a_file_that_is_not_gguf_is_an_error_state(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"<html>not a model</html>")
    assert "not a GGUF file" in await load_error(LlamaCppEngine(model_path=str(path)))


async def test_a_wrong_hash_is_an_error_state(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 64)
    engine = LlamaCppEngine(model_path=str(path), model_sha256="0" * 64)
    assert "sha256" in await load_error(engine)


async def test_loading_reports_progress_without_blocking(bundled_model: Path) -> None:
    engine = LlamaCppEngine(model_path=str(bundled_model), n_ctx=512)
    engine.start()
    assert engine.status.state == "loading"
    ticks = 0
    while engine.status.state == "loading":
        await asyncio.sleep(0.01)
        ticks += 1
    assert engine.status.state == "ready", engine.status
    assert ticks > 5  # the loop kept running while the weights loaded
    await engine.shutdown()
    assert engine.status.state == "stopped"
