"""The openai engine sends each request's priority on (X-OCI-Priority), so a shared
oci_jupyter model server (a JupyterHub's, docs/jupyterhub.md) ranks a user's chat before a
program. The remote server is an httpx mock: nothing listens."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from openai import AsyncOpenAI

from oci_jupyter.engine import Delta, GenerationParams
from oci_jupyter.engine.fim import FimPrompt
from oci_jupyter.engine.openai import OpenAIEngine
from oci_jupyter.types import PRIORITY_HEADER

STREAM = (
    'data: {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m", '
    '"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}\n\n'
    "data: [DONE]\n\n"
)
FIM_STREAM = (
    'data: {"id": "x", "object": "text_completion", "created": 0, "model": "m", '
    '"choices": [{"index": 0, "text": "a + b", "finish_reason": "stop"}]}\n\n'
    "data: [DONE]\n\n"
)


def engine_seeing(seen: list[tuple[str, str | None]]) -> OpenAIEngine:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers.get(PRIORITY_HEADER)))
        body = json.loads(request.content)
        text = FIM_STREAM if "prompt" in body else STREAM
        return httpx.Response(200, text=text, headers={"Content-Type": "text/event-stream"})

    engine = OpenAIEngine(base_url="http://model.invalid/v1", model="m")
    engine._client = AsyncOpenAI(
        base_url="http://model.invalid/v1",
        api_key="unused",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
    )
    return engine


@pytest.mark.parametrize("priority", ["interactive", "background"])
async def test_the_priority_goes_on_to_the_model_server(priority: str) -> None:
    seen: list[tuple[str, str | None]] = []
    engine = engine_seeing(seen)
    params = GenerationParams(max_tokens=4, priority=priority)  # type: ignore[arg-type]
    chat = engine._generate([{"role": "user", "content": "hi"}], params, "r1", asyncio.Event())
    assert "hi" in [e.text async for e in chat if isinstance(e, Delta)]
    fim = engine._generate_fim(
        FimPrompt("def add(a, b):\n    return ", "\n"), params, "r2", asyncio.Event()
    )
    assert "a + b" in [e.text async for e in fim if isinstance(e, Delta)]
    assert seen == [("/v1/chat/completions", priority), ("/v1/completions", priority)]
