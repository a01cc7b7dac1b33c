"""The llama.cpp engine: its bookkeeping on its own, then the real bundled Qwen2.5-Coder model.

Tests marked ``model`` load the real model (the module's engine is shared); their prompts are
short except where a long prefill is the point.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
from traitlets.config import Config

from oci_jupyter.config import OCI
from oci_jupyter.engine import Delta, Finish, GenerationParams
from oci_jupyter.engine.cpu_load import usable_cores
from oci_jupyter.engine.decoding import PromptLookupDrafts, TextOut
from oci_jupyter.engine.kv_cache import PrefixCache, common_prefix
from oci_jupyter.engine.llamacpp import LlamaCppEngine

model = pytest.mark.model

ASK = [{"role": "user", "content": "Write a Python function `add(a, b)` that returns a + b."}]
GREEDY = GenerationParams(max_tokens=48, temperature=0.0, seed=1)


async def collect(
    engine: LlamaCppEngine,
    request_id: str,
    params: GenerationParams = GREEDY,
    messages: list[dict[str, str]] = ASK,
):
    return [event async for event in engine.stream_chat(messages, params, request_id)]


def reply(events: list[object]) -> str:
    return "".join(e.text for e in events if isinstance(e, Delta))


def long_text(lines: int, tag: str) -> str:
    """Code-like text of ~17 tokens a line, different for every tag (nothing cached)."""
    return "\n".join(f"{tag}_{i} = compute({i}, '{tag}') * {i % 7}" for i in range(lines))


# ---- the prefix cache, without a model --------------------------------------------------------
def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix(np.array([5, 6]), [7]) == 0


def test_the_cache_finds_the_longest_common_prefix() -> None:
    cache = PrefixCache(1000)
    a = cache.add([1, 2, 3, 4, 5, 6, 7, 8], "a", 100)
    b = cache.add([1, 2, 9, 9, 9, 9, 9, 9], "b", 100)
    assert cache.find([1, 2, 3, 4, 0]) == (a, 4)
    assert cache.find([1, 2, 9, 9]) == (b, 4)
    assert cache.find([7, 7]) == (None, 0)
    assert cache.holds([1, 2, 3, 4, 5, 6, 7, 8]) is a
    assert cache.holds([1, 2, 3]) is None


def test_the_cache_stays_within_its_budget_least_recently_used_out() -> None:
    cache = PrefixCache(250)
    first = cache.add(list(range(0, 100)), "1", 100)
    cache.add(list(range(100, 200)), "2", 100)
    assert first is not None
    first.touch()  # used again: the second is now the oldest
    cache.add(list(range(200, 300)), "3", 100)
    assert cache.nbytes <= 250
    assert sorted(e.data for e in cache.entries) == ["1", "3"]
    assert cache.stats.evictions == 1
    assert cache.add(list(range(5)), "huge", 251) is None  # alone over the budget
    assert cache.stats.too_big == 1
    assert PrefixCache(0).add([1, 2], "x", 1) is None  # a zero budget disables it


def test_a_continued_conversation_supersedes_its_earlier_state() -> None:
    cache = PrefixCache(10_000)
    turn1 = list(range(1000))
    cache.add(turn1, "turn 1", 10)
    other = [5000 + t for t in range(300)]
    cache.add(other, "other notebook", 10)
    # The next turn repeats turn 1 except its last few tokens (a reply cut short), then more.
    turn2 = turn1[:990] + list(range(2000, 2500))
    cache.add(turn2, "turn 2", 10)
    assert sorted(e.data for e in cache.entries) == ["other notebook", "turn 2"]
    # A state that shares only a short beginning is kept.
    cache.add(turn1[:100] + [9999] * 50, "branch", 10)
    assert len(cache) == 3


def test_prompt_lookup_drafts_what_followed_the_first_match() -> None:
    lookup = PromptLookupDrafts(tokens=4)
    assert lookup([1, 2, 3, 4, 5, 6, 9, 2, 3, 7], 2, room=10) == []  # (7, 2) never occurred
    assert lookup([9, 2, 3, 7, 8, 5, 2], 3, room=10) == [7, 8, 5, 2]
    # (2, 3) occurred twice before: the first occurrence is followed by 7, 2.
    assert lookup([2, 3, 7, 2, 3, 8, 1, 2], 3, room=2) == [7, 2]
    # A 3-token match wins over an earlier 2-token one.
    assert lookup([5, 3, 9, 4, 5, 3, 8, 1, 4, 5], 3, room=1) == [8]
    assert lookup([1, 2, 3], 4, room=10) == []  # nothing repeats
    assert lookup([1, 2, 3], 4, room=0) == []


def test_prompt_lookup_is_automatic_where_the_prompt_holds_code() -> None:
    engine = LlamaCppEngine(model_path="unused.gguf")
    first = [{"role": "system", "content": "Use ```python blocks."}, *ASK]
    refine = [*first, {"role": "assistant", "content": "```python\nprint(1)\n```"}]
    assert not engine.wants_lookup(first)
    assert engine.wants_lookup(refine)
    engine.prompt_lookup = "on"
    assert engine.wants_lookup(first)
    engine.prompt_lookup = "off"
    assert not engine.wants_lookup(refine)


class FakeMeter:
    def __init__(self) -> None:
        self.value: float | None = 0.0

    def others(self) -> float | None:
        return self.value


def test_threads_follow_the_load_unless_fixed() -> None:
    cores = usable_cores()
    engine = LlamaCppEngine(model_path="unused.gguf")
    meter = FakeMeter()
    engine._meter = meter  # type: ignore[assignment]
    engine._choose_threads()
    # Nothing else runs: every core reads the prompt, decoding leaves one to Jupyter.
    assert (engine._n_threads, engine._n_threads_batch) == (max(1, cores - 1), cores)
    meter.value = float(cores)  # every core busy elsewhere: one thread, never none
    engine._choose_threads()
    assert (engine._n_threads, engine._n_threads_batch) == (1, 1)
    meter.value = None  # not measured: the last choice stays
    engine._choose_threads()
    assert engine._n_threads == 1
    fixed = LlamaCppEngine(model_path="unused.gguf", n_threads=1)
    fixed._meter = FakeMeter()  # type: ignore[assignment]
    fixed._choose_threads()
    assert fixed._n_threads == 1
    assert fixed._n_threads_batch == cores


def test_text_out_holds_back_a_possible_stop_and_cuts_at_it() -> None:
    sent: list[str] = []
    pieces = {1: b"x = 1", 2: b"\n#", 3: b"#", 4: b" END", 5: b"tail"}
    out = TextOut(pieces.__getitem__, ["\n## END"], sent.append)
    assert not out.add(1)
    assert not out.add(2)
    assert not out.add(3)
    assert "".join(sent) == "x = 1"  # "\n##" could begin the stop string
    assert out.add(4)
    assert out.stopped
    assert "".join(sent) == "x = 1"
    assert out.text == "x = 1"


def test_text_out_joins_characters_split_across_tokens() -> None:
    sent: list[str] = []
    data = "é €".encode()  # 2-byte and 3-byte characters
    pieces = {i: data[i : i + 1] for i in range(len(data))}
    out = TextOut(pieces.__getitem__, [], sent.append)
    for i in range(len(data)):
        out.add(i)
    out.finish()
    assert "".join(sent) == "é €"
    assert all(piece for piece in sent)  # never an empty or broken piece


def test_config_passes_the_llamacpp_settings() -> None:
    config = Config()
    config.OCI.engine = "llamacpp"
    config.OCI.n_threads = 1
    config.OCI.n_threads_batch = 2
    config.OCI.kv_cache_bytes = 12345678
    config.OCI.prompt_lookup = "off"
    config.OCI.llama_extra_buffers = "on"
    engine = OCI(config=config).create_engine()
    assert isinstance(engine, LlamaCppEngine)
    settings = engine.settings
    assert settings["n_threads"] == 1
    assert settings["n_threads_batch"] == 2
    assert settings["kv_cache"]["budget_bytes"] == 12345678
    assert settings["prompt_lookup"] == "off"
    assert settings["extra_buffers"] is True


# ---- the real model -------------------------------------------------------------------------
@model
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


@model
async def test_max_tokens_ends_with_length(llama_engine: LlamaCppEngine) -> None:
    events = await collect(llama_engine, "short", GenerationParams(max_tokens=5, temperature=0))
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert (finish.reason, finish.prompt_tokens, finish.completion_tokens) == (
        "length",
        llama_engine.count_chat_tokens(ASK),
        5,
    )


@model
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


@model
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


@model
async def test_concurrent_requests_are_served_in_turn(llama_engine: LlamaCppEngine) -> None:
    params = GenerationParams(max_tokens=8, temperature=0)
    first, second = await asyncio.gather(
        collect(llama_engine, "one", params), collect(llama_engine, "two", params)
    )
    assert first[-1] == second[-1]  # same prompt, greedy: same outcome, both complete
    assert reply(first) == reply(second)


@model
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


@model
def test_token_counts(llama_engine: LlamaCppEngine) -> None:
    assert llama_engine.count_tokens("") == 0
    assert 1 <= llama_engine.count_tokens("def add(a, b):") <= 8
    chat = llama_engine.count_chat_tokens(ASK)
    assert chat > llama_engine.count_tokens(ASK[0]["content"])  # template adds role markers
    assert llama_engine.context_length == 4096


def conversation(topic: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You write short Python code."},
        {"role": "user", "content": f"Notebook context:\n{long_text(12, topic)}\n\nUse it."},
    ]


@model
async def test_a_second_turn_reads_only_what_is_new(llama_engine: LlamaCppEngine) -> None:
    first = conversation("alpha")
    events = await collect(llama_engine, "turn-1", GenerationParams(max_tokens=12), first)
    stats1 = llama_engine.last_stats
    assert stats1 is not None
    assert stats1.prompt_tokens > 100
    second = [
        *first,
        {"role": "assistant", "content": reply(events)},
        {"role": "user", "content": "Now print it."},
    ]
    events2 = await collect(llama_engine, "turn-2", GenerationParams(max_tokens=4), second)
    stats2 = llama_engine.last_stats
    assert stats2 is not None
    assert stats2 is not stats1
    assert stats2.prompt_tokens > stats1.prompt_tokens
    assert stats2.cached_tokens >= stats1.prompt_tokens - 1
    assert stats2.evaluated_tokens < 40 < stats1.evaluated_tokens
    assert stats2.evaluated_tokens == stats2.prompt_tokens - 1 - stats2.cached_tokens
    # The stream's Finish says so too (the OpenAI endpoint reports it as cached_tokens).
    finish2 = events2[-1]
    assert isinstance(finish2, Finish)
    assert finish2.cached_tokens == stats2.cached_tokens


@model
async def test_another_conversation_in_between_keeps_both_caches(
    llama_engine: LlamaCppEngine,
) -> None:
    params = GenerationParams(max_tokens=6, temperature=0)
    a1, b1 = conversation("notebook_a"), conversation("notebook_b")
    a_reply = reply(await collect(llama_engine, "a-1", params, a1))
    a1_tokens = llama_engine.count_chat_tokens(a1)
    b_reply = reply(await collect(llama_engine, "b-1", params, b1))
    b1_tokens = llama_engine.count_chat_tokens(b1)

    a2 = [*a1, {"role": "assistant", "content": a_reply}, {"role": "user", "content": "More."}]
    await collect(llama_engine, "a-2", params, a2)
    stats = llama_engine.last_stats
    assert stats is not None
    assert stats.restored  # from the saved state of notebook A, not the live one of B
    assert stats.cached_tokens >= a1_tokens - 1
    assert stats.evaluated_tokens < 30

    b2 = [*b1, {"role": "assistant", "content": b_reply}, {"role": "user", "content": "More."}]
    await collect(llama_engine, "b-2", params, b2)
    stats = llama_engine.last_stats
    assert stats is not None
    assert stats.restored
    assert stats.cached_tokens >= b1_tokens - 1
    assert llama_engine.cache.nbytes <= llama_engine.cache.budget_bytes


@model
async def test_stop_during_a_long_prefill_ends_the_request(llama_engine: LlamaCppEngine) -> None:
    messages = [{"role": "user", "content": long_text(150, "stop_me") + "\n\nExplain."}]
    prompt_tokens = llama_engine.count_chat_tokens(messages)
    assert prompt_tokens > 1500
    stream = llama_engine.stream_chat(messages, GenerationParams(max_tokens=8), "long")

    async def cancel_soon() -> float:
        await asyncio.sleep(0.3)
        assert llama_engine.cancel("long")
        return time.monotonic()

    canceller = asyncio.create_task(cancel_soon())
    events = [event async for event in stream]
    ended = time.monotonic()
    cancelled_at = await canceller
    assert len(events) == 1
    assert isinstance(events[0], Finish)
    assert (events[0].reason, events[0].prompt_tokens, events[0].completion_tokens) == (
        "cancelled",
        prompt_tokens,
        0,
    )
    stats = llama_engine.last_stats
    assert stats is not None
    assert stats.prompt_tokens == prompt_tokens
    # Well before the whole prompt was read: at most one 512-token chunk after 0.3 s.
    assert stats.evaluated_tokens < prompt_tokens / 2
    assert ended - cancelled_at < 1.5  # goal 0.5 s on a quiet machine (benchmarks, P10)
    after = await collect(llama_engine, "after-long", GenerationParams(max_tokens=3))
    assert after[-1].reason == "length"  # type: ignore[union-attr]


@model
async def test_prompt_lookup_drafts_a_refinement_and_changes_nothing(
    llama_engine: LlamaCppEngine,
) -> None:
    code = "def area(r):\n    return 3.14159 * r ** 2\n\nprint(area(2))\n"
    messages = [
        {"role": "user", "content": "Compute the area of a circle of radius 2."},
        {"role": "assistant", "content": f"```python\n{code}```"},
        {"role": "user", "content": "Use math.pi instead of 3.14159; repeat the whole code."},
    ]
    params = GenerationParams(max_tokens=40, temperature=0.0, seed=1)
    texts = {}
    stats = {}
    for mode in ("off", "on"):
        llama_engine.prompt_lookup = mode  # type: ignore[assignment]
        try:
            texts[mode] = reply(await collect(llama_engine, f"lookup-{mode}", params, messages))
        finally:
            llama_engine.prompt_lookup = "auto"
        stats[mode] = llama_engine.last_stats
    # Greedy: drafts change only the speed (a checked batch may differ from single steps in
    # the last float bits, so only the beginning must match exactly).
    assert texts["on"][:30] == texts["off"][:30]
    assert "area" in texts["on"]
    assert stats["off"] is not None
    assert stats["off"].drafted_tokens == 0
    assert stats["on"] is not None
    assert stats["on"].accepted_tokens > 5


@model
async def test_background_prefill_is_reused_and_yields_to_a_request(
    llama_engine: LlamaCppEngine,
) -> None:
    prefix = [
        {"role": "system", "content": "You write Python."},
        {"role": "user", "content": "Notebook context:\n" + long_text(60, "warm")},
        {"role": "assistant", "content": "I have read the notebook."},
    ]
    assert llama_engine.prefill(prefix)
    await asyncio.sleep(0.3)
    # A request arrives: the background work gives way to it at once.
    started = time.monotonic()
    events = await collect(llama_engine, "meanwhile", GenerationParams(max_tokens=2))
    assert events[-1].reason == "length"  # type: ignore[union-attr]
    warm = llama_engine.warm_stats
    assert warm is not None
    assert warm.warm
    assert warm.reason == "cancelled"
    assert warm.evaluated_tokens < warm.prompt_tokens
    assert time.monotonic() - started < 30
    # Asked again, the prefill continues from what it had read, then a request reuses it all.
    assert llama_engine.prefill(prefix)
    await llama_engine.wait_idle(120)
    warm2 = llama_engine.warm_stats
    assert warm2 is not None
    assert warm2 is not warm
    assert warm2.reason != "cancelled"
    assert warm2.cached_tokens >= warm.cached_tokens + warm.evaluated_tokens - 1
    ask = [*prefix, {"role": "user", "content": "Print warm_3."}]
    await collect(llama_engine, "after-warm", GenerationParams(max_tokens=2), ask)
    stats = llama_engine.last_stats
    assert stats is not None
    assert stats.cached_tokens >= warm2.prompt_tokens
    assert stats.evaluated_tokens < 20


@model
async def test_shutdown_during_a_prefill_waits_for_the_worker(bundled_model: Path) -> None:
    engine = LlamaCppEngine(model_path=str(bundled_model), n_ctx=2048)
    assert (await engine.wait_ready(120)).state == "ready"
    messages = [{"role": "user", "content": long_text(70, "shutdown")}]
    stream = engine.stream_chat(messages, GenerationParams(max_tokens=8), "doomed")
    consumer = asyncio.create_task(asyncio.wait_for(collect_stream(stream), 60))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await engine.shutdown()
    assert time.monotonic() - started < 5
    events = await consumer
    assert isinstance(events[-1], Finish)
    assert events[-1].reason == "cancelled"
    assert engine.status.state == "stopped"
    assert engine._llm is None  # freed, by the worker, after it stopped computing
    assert engine.prefill(messages) is False


async def collect_stream(stream):  # type: ignore[no-untyped-def]
    return [event async for event in stream]


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


@model
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
