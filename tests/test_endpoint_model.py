"""The OpenAI-compatible endpoint serving the real bundled model through Jupyter."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI, AuthenticationError, PermissionDeniedError

from .helpers import oci_app, wait_for_state

pytestmark = pytest.mark.model


@pytest.fixture
def jp_server_config(bundled_model: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"oci_jupyter": True}},
        "OCI": {"engine": "llamacpp", "n_ctx": 2048, "hub_download": False},
    }


@pytest.fixture
def base_url(jp_fetch: Any, jp_http_port: int, jp_base_url: str) -> str:
    # (jp_fetch makes pytest-jupyter bind the server to jp_http_port.)
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}oci/v1"


async def test_openai_client_streams_code_with_the_jupyter_token(
    jp_serverapp: Any, base_url: str
) -> None:
    await wait_for_state(jp_serverapp, "ready", "error")
    status = oci_app(jp_serverapp).engine.status
    assert status.state == "ready", status
    assert status.model == "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M"

    client = AsyncOpenAI(base_url=base_url, api_key=jp_serverapp.identity_provider.token)
    models = await client.models.list()
    assert [m.id for m in models.data] == [status.model]

    stream = await client.chat.completions.create(
        model=status.model,
        messages=[{"role": "user", "content": "Write a Python function square(x). Code only."}],
        stream=True,
        max_tokens=64,
        temperature=0,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    usage = None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    code = "".join(pieces)
    assert "def square" in code
    assert len(pieces) > 5
    assert usage is not None
    assert 0 < usage.completion_tokens <= 64

    reply = await client.chat.completions.create(
        model=status.model,
        messages=[{"role": "user", "content": "What is 6*7? Answer with the number only."}],
        max_tokens=8,
        temperature=0,
    )
    assert "42" in (reply.choices[0].message.content or "")
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    await client.close()


async def test_openai_client_with_a_wrong_key_is_refused(jp_serverapp: Any, base_url: str) -> None:
    client = AsyncOpenAI(base_url=base_url, api_key="not-the-token", max_retries=0)
    with pytest.raises((AuthenticationError, PermissionDeniedError)):
        await client.models.list()
    await client.close()


async def test_disconnect_cancels_and_jupyter_stays_responsive(
    jp_fetch: Any, jp_serverapp: Any, base_url: str
) -> None:
    await wait_for_state(jp_serverapp, "ready")
    engine = oci_app(jp_serverapp).engine
    token = jp_serverapp.identity_provider.token
    request = {
        "messages": [{"role": "user", "content": "Write a long Python tutorial on sorting."}],
        "max_tokens": 600,
        "stream": True,
    }
    async with (
        httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as client,
        client.stream("POST", f"{base_url}/chat/completions", json=request) as response,
    ):
        assert response.status_code == 200
        received = 0
        async for line in response.aiter_lines():
            received += line.startswith("data: ")
            if received == 3:
                # While the model generates, Jupyter's own API answers at once.
                started = time.monotonic()
                assert (await jp_fetch("api", "status")).code == 200
                assert time.monotonic() - started < 1.0
            if received >= 6:
                break
        assert engine.running_requests
    # 600 tokens would take ~20 s; after the disconnect the engine is free within a token.
    async with asyncio.timeout(5):
        while engine.running_requests:
            await asyncio.sleep(0.02)
