"""The openai engine fills in the middle through the remote server's ``/v1/completions``
(prompt + suffix; the remote formats its own model's infilling prompt). The remote here is
another Jupyter server with oci_jupyter, in its own process, hosting the scripted engine: the
test reads what it was asked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from oci_jupyter.engine import Delta, Finish, GenerationParams
from oci_jupyter.engine.fim import FimPrompt
from oci_jupyter.engine.openai import OpenAIEngine

from .servers import RunningServer, jupyter_server


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    tmp = tmp_path_factory.mktemp("remote")
    script = tmp / "script.json"
    script.write_text(json.dumps({"completions": ["a + b"]}))
    engine = {"script_file": str(script), "token_delay": 0.02}
    oci = {"engine_class": "tests.doubles.ScriptedTestEngine", "engine_kwargs": engine}
    with jupyter_server(tmp, oci) as server:
        yield server, script


async def fill(
    engine: OpenAIEngine, prompt: FimPrompt, params: GenerationParams, request_id: str
) -> tuple[str, Finish]:
    events = [event async for event in engine.stream_fim(prompt, params, request_id)]
    *deltas, finish = events
    assert isinstance(finish, Finish)
    return "".join(e.text for e in deltas if isinstance(e, Delta)), finish


async def connected(server: RunningServer) -> OpenAIEngine:
    engine = OpenAIEngine(base_url=server.url + "oci/v1", api_key=server.token)
    await engine.wait_ready(60)
    assert engine.status.state == "ready", engine.status
    return engine


async def test_prefix_and_suffix_reach_the_remote_server(
    remote: tuple[RunningServer, Path],
) -> None:
    server, script = remote
    engine = await connected(server)
    try:
        prompt = FimPrompt("def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n")
        text, finish = await fill(engine, prompt, GenerationParams(max_tokens=8), "f1")
        assert text == "a + b"
        assert finish.reason == "stop"
        assert finish.completion_tokens == 3
        asked = json.loads(script.read_text())["fim_prompts"][-1]
        assert asked == {"prefix": prompt.prefix, "suffix": prompt.suffix}
        await fill(engine, FimPrompt("import ", None), GenerationParams(max_tokens=8), "f2")
        assert json.loads(script.read_text())["fim_prompts"][-1] == {
            "prefix": "import ",
            "suffix": None,
        }
    finally:
        await engine.shutdown()


async def test_cancel_stops_the_remote_completion(remote: tuple[RunningServer, Path]) -> None:
    server, script = remote
    script.write_text(json.dumps({"completions": ["tok " * 300]}))
    engine = await connected(server)
    try:
        params = GenerationParams(max_tokens=300)
        task = asyncio.ensure_future(fill(engine, FimPrompt("x = [", "]"), params, "long"))
        await asyncio.sleep(1.0)  # 300 tokens take 6 s
        assert engine.cancel("long")
        _, finish = await asyncio.wait_for(task, 5)
        assert finish.reason == "cancelled"
        assert engine.running_requests == []
        # Closing the stream made the remote server stop too.
        async with asyncio.timeout(5):
            while (await asyncio.to_thread(server.get, "oci", "status"))["running_requests"]:
                await asyncio.sleep(0.05)
    finally:
        await engine.shutdown()
