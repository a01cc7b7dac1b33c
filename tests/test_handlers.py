"""The HTTP endpoints, against a real Jupyter server hosting the scripted test engine."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from tornado.httpclient import HTTPClientError

from .helpers import oci_app, sse_events, wait_for_state

ENDPOINTS = [
    ("GET", "oci/status"),
    ("GET", "oci/v1/models"),
    ("POST", "oci/v1/chat/completions"),
    ("POST", "oci/tokenize"),
]
CHAT = ("oci", "v1", "chat", "completions")
REPLY = "```python\nprint(sum(range(11)))\n``` That prints 55."


def body(**fields: Any) -> str:
    request: dict[str, Any] = {"messages": [{"role": "user", "content": "sum 0..10"}]}
    request.update(fields)
    return json.dumps(request)


@pytest.fixture
def engine_kwargs() -> dict[str, Any]:
    return {"replies": [REPLY]}


@pytest.fixture
def jp_server_config(engine_kwargs: dict[str, Any]) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"oci_jupyter": True}},
        "OCI": {
            "engine_class": "tests.doubles.ScriptedTestEngine",
            "engine_kwargs": engine_kwargs,
            "max_request_bytes": 4096,
        },
    }


async def fetch_error(jp_fetch: Any, *parts: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(*parts, **kwargs)
    response = caught.value.response
    assert response is not None
    return caught.value.code, json.loads(response.body)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("authorization", ["", "token wrong-token", "Bearer wrong-token"])
async def test_every_endpoint_refuses_requests_without_a_valid_token(
    jp_fetch: Any, jp_serverapp: Any, method: str, path: str, authorization: str
) -> None:
    await wait_for_state(jp_serverapp, "ready")
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(
            *path.split("/"),
            method=method,
            body=body() if method == "POST" else None,
            headers={"Authorization": authorization},
        )
    assert caught.value.code == 403
    assert oci_app(jp_serverapp).engine.prompts == []  # type: ignore[attr-defined]


async def test_status_reports_the_engine(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "ready")
    status = json.loads((await jp_fetch("oci", "status")).body)
    assert status["state"] == "ready"
    assert status["engine"] == "scripted-test"
    assert status["model"] == "scripted-test-model"
    assert status["running_requests"] == 0
    assert "version" in status


async def test_models_lists_the_served_model(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "ready")
    listing = json.loads((await jp_fetch("oci", "v1", "models")).body)
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == ["scripted-test-model"]
    assert listing["data"][0]["max_model_len"] == 4096


async def test_non_streaming_completion(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "ready")
    reply = json.loads((await jp_fetch(*CHAT, method="POST", body=body())).body)
    assert reply["object"] == "chat.completion"
    assert reply["id"].startswith("chatcmpl-")
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": REPLY}
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert reply["usage"]["completion_tokens"] == len(REPLY.split(" "))
    assert reply["usage"]["total_tokens"] == (
        reply["usage"]["prompt_tokens"] + reply["usage"]["completion_tokens"]
    )
    engine = oci_app(jp_serverapp).engine
    assert engine.prompts == [[{"role": "user", "content": "sum 0..10"}]]  # type: ignore[attr-defined]


async def test_streaming_completion_is_openai_server_sent_events(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    await wait_for_state(jp_serverapp, "ready")
    response = await jp_fetch(
        *CHAT, method="POST", body=body(stream=True, stream_options={"include_usage": True})
    )
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(response.body.decode())
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == REPLY
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in finals] == ["stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == len(REPLY.split(" "))


async def test_max_tokens_ends_with_length(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "ready")
    reply = json.loads((await jp_fetch(*CHAT, method="POST", body=body(max_tokens=2))).body)
    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        ("{not json", "invalid_json", None),
        ("", "invalid_json", None),
        ("[]", "invalid_value", None),
        ('{"messages": "hi"}', "invalid_value", "messages"),
        ('{"messages": []}', "invalid_value", "messages"),
        ('{"prompt": "hi"}', "invalid_value", "messages"),
        ('{"messages": [{"role": "user"}]}', "invalid_value", "messages.0.content"),
        ('{"messages": [{"role": "wizard", "content": "x"}]}', "invalid_value", "messages.0.role"),
        ('{"messages": [{"role": "user", "content": 5}]}', "invalid_value", "messages.0.content"),
        (body(temperature="hot"), "invalid_value", "temperature"),
        (body(temperature=3), "invalid_value", "temperature"),
        (body(max_tokens=0), "invalid_value", "max_tokens"),
        (body(max_tokens="10"), "invalid_value", "max_tokens"),
        (body(stream="yes"), "invalid_value", "stream"),
        (body(stop=["a", "b", "c", "d", "e"]), "invalid_value", "stop"),
        (body(n=2), "invalid_value", "n"),
        (body(max_tokens=5000), "context_length_exceeded", "max_tokens"),
        ("x" * 5000, "request_too_large", None),
    ],
)
async def test_bad_requests_get_400_with_an_openai_error(
    jp_fetch: Any, jp_serverapp: Any, raw: str, code: str, param: str | None
) -> None:
    await wait_for_state(jp_serverapp, "ready")
    status, error = await fetch_error(jp_fetch, *CHAT, method="POST", body=raw)
    assert status == 400
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["code"] == code
    assert error["error"]["param"] == param
    assert error["error"]["message"]
    assert oci_app(jp_serverapp).engine.prompts == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("engine_kwargs", [{"context_length": 40}])
async def test_messages_longer_than_the_context_get_400(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "ready")
    long = body(messages=[{"role": "user", "content": "word " * 60}])
    status, error = await fetch_error(jp_fetch, *CHAT, method="POST", body=long)
    assert status == 400
    assert error["error"]["code"] == "context_length_exceeded"
    assert "40" in error["error"]["message"]


async def test_unknown_model_gets_404(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "ready")
    status, error = await fetch_error(jp_fetch, *CHAT, method="POST", body=body(model="gpt-9"))
    assert status == 404
    assert error["error"]["code"] == "model_not_found"
    assert "scripted-test-model" in error["error"]["message"]


@pytest.mark.parametrize("engine_kwargs", [{"hold_loading": True}])
async def test_503_while_the_model_loads_then_200(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "loading")
    status = json.loads((await jp_fetch("oci", "status")).body)
    assert status["state"] == "loading"
    assert status["progress"] == 0.5
    models = ("oci", "v1", "models")
    for parts, kwargs in [(CHAT, {"method": "POST", "body": body()}), (models, {})]:
        code, error = await fetch_error(jp_fetch, *parts, **kwargs)
        assert code == 503
        assert error["error"]["code"] == "loading"
        assert error["status"]["state"] == "loading"
    # Jupyter itself keeps serving while the model loads.
    assert (await jp_fetch("api", "status")).code == 200
    oci_app(jp_serverapp).engine.release.set()  # type: ignore[attr-defined]
    await wait_for_state(jp_serverapp, "ready")
    assert (await jp_fetch(*CHAT, method="POST", body=body())).code == 200


@pytest.mark.parametrize("engine_kwargs", [{"fail_load": "out of memory loading weights"}])
async def test_failed_load_is_reported_and_jupyter_keeps_working(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    await wait_for_state(jp_serverapp, "error")
    status = json.loads((await jp_fetch("oci", "status")).body)
    assert status["state"] == "error"
    assert "out of memory loading weights" in status["error"]
    # The panel translates the detail; the exception's words have no code.
    assert status["detail_text"] == {"code": "engine_load_failed", "params": {}}
    assert status["error_text"] is None
    code, error = await fetch_error(jp_fetch, *CHAT, method="POST", body=body())
    assert code == 503
    assert "out of memory loading weights" in error["error"]["message"]
    assert (await jp_fetch("api", "contents")).code == 200


@pytest.mark.parametrize("engine_kwargs", [{"replies": ["tok " * 400], "token_delay": 0.02}])
async def test_client_disconnect_cancels_the_generation(
    jp_fetch: Any, jp_serverapp: Any, jp_http_port: int, jp_base_url: str
) -> None:
    # (jp_fetch makes pytest-jupyter bind the server to jp_http_port.)
    await wait_for_state(jp_serverapp, "ready")
    engine = oci_app(jp_serverapp).engine
    token = jp_serverapp.identity_provider.token
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}oci/v1/chat/completions"
    async with (
        httpx.AsyncClient(headers={"Authorization": f"token {token}"}, timeout=10) as client,
        client.stream("POST", url, content=body(stream=True)) as response,
    ):
        assert response.status_code == 200
        lines = response.aiter_lines()
        received = 0
        async for line in lines:
            received += line.startswith("data: ")
            if received >= 5:
                break
        assert engine.running_requests  # still generating: 400 tokens take 8 s
    # The connection is closed: the request must end within a few tokens, not 8 s.
    left = time.monotonic()
    async with asyncio.timeout(3):
        while engine.running_requests:
            await asyncio.sleep(0.02)
    assert time.monotonic() - left < 3


@pytest.mark.parametrize("engine_kwargs", [{"no_such_option": 1}])
async def test_configuration_error_is_reported_not_raised(jp_fetch: Any, jp_serverapp: Any) -> None:
    # An engine that cannot even be constructed must not stop Jupyter: the status says why.
    await wait_for_state(jp_serverapp, "error")
    status = json.loads((await jp_fetch("oci", "status")).body)
    assert status["state"] == "error"
    assert "no_such_option" in status["error"]
    assert (await jp_fetch("api", "status")).code == 200


async def test_tokenize_counts_with_the_engines_tokenizer(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "ready")
    texts = ["one", "two words", "", "a b c d e"]
    reply = json.loads(
        (await jp_fetch("oci", "tokenize", method="POST", body=json.dumps({"texts": texts}))).body
    )
    assert reply["counts"] == [1, 2, 0, 5]  # the scripted engine counts words
    assert reply["context_length"] == 4096
    assert reply["model"] == "scripted-test-model"


@pytest.mark.parametrize(
    "raw", ["", "{", "[]", '{"texts": "abc"}', '{"texts": [1, 2]}', '{"text": ["a"]}']
)
async def test_tokenize_rejects_bad_input(jp_fetch: Any, jp_serverapp: Any, raw: str) -> None:
    await wait_for_state(jp_serverapp, "ready")
    status, error = await fetch_error(jp_fetch, "oci", "tokenize", method="POST", body=raw)
    assert status == 400
    assert error["error"]["message"]


def test_usage_reports_cached_prompt_tokens_as_openai_does() -> None:
    from oci_jupyter.openai_schema import usage

    assert usage(120, 8, 96) == {
        "prompt_tokens": 120,
        "completion_tokens": 8,
        "total_tokens": 128,
        "prompt_tokens_details": {"cached_tokens": 96},
    }
    # An engine that does not say: no details, rather than a made-up zero.
    assert "prompt_tokens_details" not in usage(120, 8)
