"""A real ipykernel with ``%load_ext oci_jupyter``, talking to a real Jupyter server whose
engine is the scripted test engine (tests/doubles.py): the fixtures and readers the ``%%oci``
and ``%oci edit`` tests share. Each module
gets its own server and kernel (module scope). tests/conftest.py loads this module as a
pytest plugin, so that test modules name these fixtures as parameters without importing them
(a module that defines its own ``kernel`` fixture keeps it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .kernels import CellRun, Kernel, ipykernel
from .servers import RunningServer, jupyter_server

REGISTRY = "get_ipython().magics_manager.registry['OCIMagics']"


class Script:
    """The scripted engine's replies and the prompts it received, in a shared file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.set([])

    def set(self, replies: list[str]) -> None:
        self.path.write_text(json.dumps({"replies": replies, "prompts": []}))

    @property
    def prompts(self) -> list[list[dict[str, str]]]:
        return list(json.loads(self.path.read_text())["prompts"])


def shown(run: CellRun) -> str:
    """Everything the cell finally shows, top to bottom (a display's updates replace it)."""
    slots: list[str] = []
    where: dict[str, int] = {}
    for message in run.messages:
        kind, content = message["header"]["msg_type"], message["content"]
        if kind == "stream":
            slots.append(content["text"])
        elif kind in ("display_data", "update_display_data", "execute_result"):
            data = content["data"]
            text = data.get("text/markdown") or data.get("text/plain", "")
            key = content.get("transient", {}).get("display_id")
            if key in where:
                slots[where[key]] = text
            else:
                if key:
                    where[key] = len(slots)
                slots.append(text)
        elif kind == "error":
            slots.append("\n".join(content["traceback"]))
    return "\n".join(slots)


def in_order(text: str, *parts: str) -> None:
    """Each part appears in the text, after the one before it."""
    position = -1
    for part in parts:
        found = text.find(part, position + 1)
        assert found > position, f"{part!r} not found after position {position} in:\n{text}"
        position = found


@pytest.fixture(scope="module")
def script_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("script") / "script.json"


@pytest.fixture(scope="module")
def scripted_server(
    tmp_path_factory: pytest.TempPathFactory, script_path: Path
) -> Iterator[RunningServer]:
    Script(script_path)
    oci = {
        "engine_class": "tests.doubles.ScriptedTestEngine",
        "engine_kwargs": {"script_file": str(script_path), "token_delay": 0.002},
    }
    with jupyter_server(tmp_path_factory.mktemp("scripted"), oci) as server:
        yield server


@pytest.fixture
def script(script_path: Path, scripted_server: RunningServer) -> Script:
    return Script(script_path)


@pytest.fixture(scope="module")
def kernel(scripted_server: RunningServer) -> Iterator[Kernel]:
    with ipykernel(scripted_server.kernel_env()) as running:
        assert running.run("%load_ext oci_jupyter").status == "ok"
        yield running


@pytest.fixture
def fresh_conversation(request: pytest.FixtureRequest) -> None:
    """Each test starts without the magic's memory of the tests before it (a module uses it
    for every test: ``pytestmark = pytest.mark.usefixtures("fresh_conversation")``)."""
    if "kernel" in request.fixturenames:
        request.getfixturevalue("kernel").run("%oci reset")
