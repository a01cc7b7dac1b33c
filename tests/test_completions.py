"""POST /oci/v1/completions against a real Jupyter server hosting the scripted test engine."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from tornado.httpclient import HTTPClientError

from oci_jupyter.completions.handlers import LatestCompletions
from oci_jupyter.engine.fim import FimPrompt, prompt_segments

from .doubles import ScriptedTestEngine
from .helpers import oci_app, sse_events, wait_for_state

COMPLETIONS = ("oci", "v1", "completions")
MIDDLE = "a + b"


def body(**fields: Any) -> str:
    request: dict[str, Any] = {"prompt": "def add(a, b):\n    return ", "suffix": "\n"}
    request.update(fields)
    return json.dumps(request)


@pytest.fixture
def engine_kwargs() -> dict[str, Any]:
    return {"completions": [MIDDLE]}


@pytest.fixture
def engine_class() -> str:
    return "tests.doubles.ScriptedTestEngine"


@pytest.fixture
def jp_server_config(engine_kwargs: dict[str, Any], engine_class: str) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"oci_jupyter": True}},
        "OCI": {
            "engine_class": engine_class,
            "engine_kwargs": engine_kwargs,
            "max_request_bytes": 8192,
        },
    }


def engine_of(jp_serverapp: Any) -> Any:
    return oci_app(jp_serverapp).engine


async def fetch_error(jp_fetch: Any, *parts: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(*parts, **kwargs)
    response = caught.value.response
    assert response is not None
    return caught.value.code, json.loads(response.body)


@pytest.mark.parametrize("authorization", ["", "token wrong-token"])
async def test_refused_without_a_valid_token(
    jp_fetch: Any, jp_serverapp: Any, authorization: str
) -> None:
    await wait_for_state(jp_serverapp, "ready")
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(
            *COMPLETIONS, method="POST", body=body(), headers={"Authorization": authorization}
        )
    assert caught.value.code == 403
    assert engine_of(jp_serverapp).fim_prompts == []


async def test_a_completion_fills_in_the_middle(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "ready")
    reply = json.loads((await jp_fetch(*COMPLETIONS, method="POST", body=body())).body)
    assert reply["object"] == "text_completion"
    assert reply["id"].startswith("cmpl-")
    assert reply["model"] == "scripted-test-model"
    assert reply["choices"] == [
        {"index": 0, "text": MIDDLE, "logprobs": None, "finish_reason": "stop"}
    ]
    assert reply["usage"]["completion_tokens"] == 3
    engine = engine_of(jp_serverapp)
    assert engine.fim_prompts == [FimPrompt("def add(a, b):\n    return ", "\n")]
    # A person types: interactive, before programs.
    assert engine.fim_params[0].priority == "interactive"


async def test_without_a_suffix_the_prompt_is_continued(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "ready")
    await jp_fetch(*COMPLETIONS, method="POST", body=json.dumps({"prompt": ["import "]}))
    assert engine_of(jp_serverapp).fim_prompts == [FimPrompt("import ", None)]


async def test_streamed_as_openai_server_sent_events(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "ready")
    response = await jp_fetch(
        *COMPLETIONS,
        method="POST",
        body=body(stream=True, stream_options={"include_usage": True}),
    )
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(response.body.decode())
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert len({c["id"] for c in chunks}) == 1
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert text == MIDDLE
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("engine_kwargs", [{"completions": ["w " * 40]}])
async def test_max_tokens_defaults_to_openais_16(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "ready")
    reply = json.loads((await jp_fetch(*COMPLETIONS, method="POST", body=body())).body)
    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["usage"]["completion_tokens"] == 16


async def test_a_program_may_ask_for_background_priority(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "ready")
    headers = {"X-OCI-Priority": "background"}
    await jp_fetch(*COMPLETIONS, method="POST", body=body(), headers=headers)
    assert engine_of(jp_serverapp).fim_params[0].priority == "background"


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        ("{not json", "invalid_json", None),
        ("", "invalid_json", None),
        ('{"suffix": "x"}', "invalid_value", "prompt"),
        ('{"prompt": [1, 2, 3]}', "invalid_value", "prompt"),
        ('{"prompt": ["a", "b"]}', "unsupported_value", "prompt"),
        (body(echo=True), "unsupported_value", "echo"),
        (body(logprobs=2), "unsupported_value", "logprobs"),
        (body(best_of=2), "unsupported_value", "best_of"),
        (body(n=2), "invalid_value", "n"),
        (body(max_tokens=0), "invalid_value", "max_tokens"),
        (body(temperature=3), "invalid_value", "temperature"),
        (body(stop=["a", "b", "c", "d", "e"]), "invalid_value", "stop"),
        (body(suffix=5), "invalid_value", "suffix"),
        (body(notebook={"cells_before": [{"output": "x"}]}), "invalid_value", None),
        (body(max_tokens=5000), "context_length_exceeded", "max_tokens"),
        ("x" * 9000, "request_too_large", None),
    ],
)
async def test_bad_requests_get_400_with_an_openai_error(
    jp_fetch: Any, jp_serverapp: Any, raw: str, code: str, param: str | None
) -> None:
    await wait_for_state(jp_serverapp, "ready")
    status, error = await fetch_error(jp_fetch, *COMPLETIONS, method="POST", body=raw)
    assert status == 400
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["code"] == code
    if param is not None:
        assert error["error"]["param"] == param
    assert error["error"]["message"]
    assert engine_of(jp_serverapp).fim_prompts == []


async def test_echo_is_refused_clearly(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "ready")
    _, error = await fetch_error(jp_fetch, *COMPLETIONS, method="POST", body=body(echo=True))
    assert "echo is not supported" in error["error"]["message"]


@pytest.mark.parametrize("engine_kwargs", [{"context_length": 30}])
async def test_a_prompt_longer_than_the_context_gets_400(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "ready")
    long = body(prompt="word " * 40)
    status, error = await fetch_error(jp_fetch, *COMPLETIONS, method="POST", body=long)
    assert status == 400
    assert error["error"]["code"] == "context_length_exceeded"


async def test_unknown_model_gets_404(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "ready")
    status, error = await fetch_error(
        jp_fetch, *COMPLETIONS, method="POST", body=body(model="gpt-9")
    )
    assert status == 404
    assert error["error"]["code"] == "model_not_found"


@pytest.mark.parametrize("engine_kwargs", [{"hold_loading": True}])
async def test_503_while_the_model_loads(jp_fetch: Any, jp_serverapp: Any) -> None:
    await wait_for_state(jp_serverapp, "loading")
    status, error = await fetch_error(jp_fetch, *COMPLETIONS, method="POST", body=body())
    assert status == 503
    assert error["error"]["code"] == "loading"


async def test_the_notebook_around_the_cell_goes_into_the_prompt(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    await wait_for_state(jp_serverapp, "ready")
    notebook = {
        "cells_before": [{"source": "import pandas as pd"}],
        "cells_after": [{"source": "df.plot()"}],
        "variables": [{"name": "df", "type": "DataFrame", "summary": "2 columns: a, b"}],
    }
    await jp_fetch(
        *COMPLETIONS,
        method="POST",
        body=json.dumps({"prompt": "df.", "suffix": "", "notebook": notebook}),
    )
    (prompt,) = engine_of(jp_serverapp).fim_prompts
    assert prompt.prefix == (
        "# %%\nimport pandas as pd\n\n# Variables in the kernel:\n"
        "# - df: DataFrame, 2 columns: a, b\n\n# %%\ndf."
    )
    assert prompt.suffix == "\n\n# %%\ndf.plot()\n"


def server_url(jp_serverapp: Any, jp_http_port: int, jp_base_url: str) -> str:
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}oci/v1/completions"


@pytest.mark.parametrize("engine_kwargs", [{"completions": ["tok " * 400], "token_delay": 0.02}])
async def test_a_disconnect_cancels_the_generation(
    jp_fetch: Any, jp_serverapp: Any, jp_http_port: int, jp_base_url: str
) -> None:
    await wait_for_state(jp_serverapp, "ready")
    engine = engine_of(jp_serverapp)
    token = jp_serverapp.identity_provider.token
    url = server_url(jp_serverapp, jp_http_port, jp_base_url)
    async with (
        httpx.AsyncClient(headers={"Authorization": f"token {token}"}, timeout=10) as client,
        client.stream("POST", url, content=body(stream=True, max_tokens=400)) as response,
    ):
        assert response.status_code == 200
        received = 0
        async for line in response.aiter_lines():
            received += line.startswith("data: ")
            if received >= 3:
                break
        assert engine.running_requests  # 400 tokens take 8 s
    left = time.monotonic()
    async with asyncio.timeout(3):
        while engine.running_requests:
            await asyncio.sleep(0.02)
    assert time.monotonic() - left < 3
    assert engine.fim_finishes[-1].reason == "cancelled"


@pytest.mark.parametrize("engine_kwargs", [{"completions": ["tok " * 400], "token_delay": 0.02}])
async def test_the_next_keystroke_cancels_the_request_in_flight(
    jp_fetch: Any, jp_serverapp: Any, jp_http_port: int, jp_base_url: str
) -> None:
    # The browser aborts too, but the server does not wait for that: a newer request with the
    # same key (the same editor) cancels the older one as it arrives.
    await wait_for_state(jp_serverapp, "ready")
    engine = engine_of(jp_serverapp)
    token = jp_serverapp.identity_provider.token
    url = server_url(jp_serverapp, jp_http_port, jp_base_url)
    headers = {"Authorization": f"token {token}", "X-OCI-Completion-Key": "editor-1"}
    async with httpx.AsyncClient(headers=headers, timeout=10) as client:
        first = asyncio.ensure_future(client.post(url, content=body(max_tokens=400)))
        async with asyncio.timeout(5):
            while not engine.running_requests:
                await asyncio.sleep(0.01)
        started = time.monotonic()
        second = await client.post(url, content=body(max_tokens=2))
        first_reply = (await first).json()
    assert time.monotonic() - started < 2  # the first did not run its 8 s
    assert first_reply["choices"][0]["finish_reason"] == "stop"
    assert engine.fim_finishes[0].reason == "cancelled"
    assert second.json()["choices"][0]["text"] == "tok tok"


@pytest.mark.parametrize("engine_kwargs", [{"completions": ["tok " * 100], "token_delay": 0.02}])
async def test_other_keys_do_not_cancel_each_other(
    jp_fetch: Any, jp_serverapp: Any, jp_http_port: int, jp_base_url: str
) -> None:
    await wait_for_state(jp_serverapp, "ready")
    engine = engine_of(jp_serverapp)
    token = jp_serverapp.identity_provider.token
    url = server_url(jp_serverapp, jp_http_port, jp_base_url)
    async with httpx.AsyncClient(headers={"Authorization": f"token {token}"}, timeout=10) as client:
        replies = await asyncio.gather(
            client.post(url, content=body(max_tokens=20), headers={"X-OCI-Completion-Key": "a"}),
            client.post(url, content=body(max_tokens=20), headers={"X-OCI-Completion-Key": "b"}),
            client.post(url, content=body(max_tokens=20)),
        )
    assert [r.json()["usage"]["completion_tokens"] for r in replies] == [20, 20, 20]
    assert {f.reason for f in engine.fim_finishes} == {"length"}


@pytest.mark.parametrize("engine_kwargs", [{"completions": ["tok " * 100], "token_delay": 0.02}])
async def test_typing_on_the_same_line_supersedes_another_line_cancels(
    jp_fetch: Any, jp_serverapp: Any, jp_http_port: int, jp_base_url: str, monkeypatch: Any
) -> None:
    # Superseded: the engine may finish reading the lines the new request shares (a fresh
    # notebook's cells would otherwise never be read while someone types). Cancelled: the
    # new prompt does not continue the old one (another cell, a line joined).
    await wait_for_state(jp_serverapp, "ready")
    engine = engine_of(jp_serverapp)
    calls: list[tuple[str, str]] = []
    for name in ("supersede", "cancel"):
        original = getattr(engine, name)

        def record(request_id: str, _name: str = name, _original: Any = original) -> bool:
            calls.append((_name, request_id))
            return bool(_original(request_id))

        monkeypatch.setattr(engine, name, record)
    token = jp_serverapp.identity_provider.token
    url = server_url(jp_serverapp, jp_http_port, jp_base_url)
    headers = {"Authorization": f"token {token}", "X-OCI-Completion-Key": "page-1"}
    cells = {"cells_before": [{"source": "import math"}]}

    def keystroke(prompt: str) -> str:
        return json.dumps({"prompt": prompt, "suffix": "", "max_tokens": 50, "notebook": cells})

    async with httpx.AsyncClient(headers=headers, timeout=10) as client:
        typed = ["x = 1\ny = max_value_of", "x = 1\ny = max_value_of_", "x = 2\ny = max_value_of_"]
        pending = []
        for prompt in typed:
            pending.append(asyncio.ensure_future(client.post(url, content=keystroke(prompt))))
            async with asyncio.timeout(5):
                while len(engine.fim_prompts) < len(pending):
                    await asyncio.sleep(0.01)
        await asyncio.gather(*pending)
    superseded = [request_id for name, request_id in calls if name == "supersede"]
    cancelled = [request_id for name, request_id in calls if name == "cancel"]
    assert len(superseded) == 1  # the second keystroke, on the same line
    later = [request_id for request_id in cancelled if request_id not in superseded]
    assert len(later) == 1  # the third changed the line above: the second is cancelled


class NoFimEngine(ScriptedTestEngine):
    """A model without infilling markers: a suffix is refused, a plain prompt continued."""

    async def _generate_fim(self, prompt, params, request_id, cancelled):  # type: ignore[no-untyped-def]
        prompt_segments(None, prompt)  # raises for a suffix, as the engines do
        async for event in super()._generate_fim(prompt, params, request_id, cancelled):
            yield event


@pytest.mark.parametrize("engine_class", ["tests.test_completions.NoFimEngine"])
async def test_a_suffix_for_a_model_without_markers_gets_400(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    await wait_for_state(jp_serverapp, "ready")
    status, error = await fetch_error(jp_fetch, *COMPLETIONS, method="POST", body=body())
    assert status == 400
    assert error["error"]["code"] == "fim_unsupported"
    plain = json.loads(
        (await jp_fetch(*COMPLETIONS, method="POST", body=json.dumps({"prompt": "x"}))).body
    )
    assert plain["choices"][0]["text"] == MIDDLE


def test_the_newest_request_of_a_key_wins() -> None:
    calls: list[tuple[str, str]] = []

    class Engine:
        def supersede(self, request_id: str) -> bool:
            calls.append(("supersede", request_id))
            return True

        def cancel(self, request_id: str) -> bool:
            calls.append(("cancel", request_id))
            return True

    latest = LatestCompletions()
    engine: Any = Engine()
    latest.begin("page", "a", engine, "import os\nx = o")
    latest.begin("page", "b", engine, "import os\nx = os")  # same line: a's lines above
    latest.begin("other", "c", engine, "y")  # another page: nothing to stop
    latest.begin("page", "d", engine, "import sys\nx = os.path")  # a line above changed
    assert calls == [("supersede", "a"), ("cancel", "b")]
    assert latest.superseded("page", "b")
    assert not latest.superseded("page", "d")
    latest.end("page", "b")  # an older one ending leaves the newest in place
    assert latest.superseded("page", "a")
    latest.end("page", "d")
    assert not latest.superseded("page", "a")  # nothing newer is running
