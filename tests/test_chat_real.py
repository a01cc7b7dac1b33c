"""The chat over its websocket with the real bundled model: the test plays the browser, and
runs every ``execute`` in a real ipykernel, as the notebook does."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from .helpers import wait_for_state
from .kernels import ipykernel, outcome_of

pytestmark = pytest.mark.model


@pytest.fixture
def jp_server_config(tmp_path: Path, bundled_model: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"oci_jupyter": True}},
        "OCI": {
            "engine": "llamacpp",
            "model_path": str(bundled_model),
            "n_ctx": 4096,
            "chat_dir": str(tmp_path / "chats"),
            "default_temperature": 0.0,
        },
    }


async def test_real_model_answers_a_question_about_kernel_data_in_words(
    jp_ws_fetch: Any, jp_serverapp: Any
) -> None:
    await wait_for_state(jp_serverapp, "ready", "error")
    # The data is made by a formula: the answer cannot be read off the prompt, only computed.
    source = "values = [(i * 37) % 101 for i in range(40)]"
    expected = str(sum((i * 37) % 101 > 50 for i in range(40)))
    ask = {
        "type": "ask",
        "id": "real",
        "prompt": "How many items in values are greater than 50?",
        "notebook": "data.ipynb",
        "context": {
            "cells": [{"source": source, "label": "In [1]"}],
            "variables": [{"name": "values", "type": "list", "summary": "40 items"}],
        },
        "max_steps": 3,
    }
    seen: list[dict[str, Any]] = []
    with ipykernel({**os.environ}) as kernel:
        kernel.run(source)
        ws = await jp_ws_fetch("oci", "chat")
        ws.write_message(json.dumps(ask))
        async with asyncio.timeout(600):
            while True:
                raw = await ws.read_message()
                assert raw is not None, "the socket closed"
                message = json.loads(raw)
                seen.append(message)
                if message["type"] == "execute":
                    ws.write_message(json.dumps(outcome_of(kernel, message)))
                if message["type"] == "done":
                    break
        ws.close()
    done = seen[-1]
    words = "".join(m["text"] for m in seen if m["type"] == "token")
    assert done["status"] == "success", (done, words)
    assert any(m["type"] == "execute" for m in seen), "the answer must be computed with code"
    # The words come after the model read the result: the number it computed.
    assert expected in done["answer"], done
