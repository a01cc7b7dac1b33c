"""The server's loop settings (``c.OCI.read_results``, ``c.OCI.max_*``) are every surface's
defaults: the sidebar's asks leave out what the user did not change, and the server fills it
in. (``%%oci`` reads the same settings from ``GET /oci/status``: tests/test_magic.py.)"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from oci_jupyter.chat.protocol import Ask
from oci_jupyter.config import OCI
from oci_jupyter.loop import DEFAULT_BUDGETS, Budgets
from oci_jupyter.request import LoopDefaults

from .helpers import wait_for_state
from .test_chat import FIXED, OK_OUTCOME, ask, finish, make_session, read_until, started

SERVER_LOOP = {"read_results": False, "max_attempts": 5, "max_steps": 2, "max_replies": 7}


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"oci_jupyter": True}},
        "OCI": {
            "engine_class": "tests.doubles.ScriptedTestEngine",
            "engine_kwargs": {"replies": [FIXED, "The total is 6."]},
            "chat_dir": str(tmp_path / "chats"),
            **SERVER_LOOP,
        },
    }


async def test_the_servers_loop_settings_reach_the_sidebar(
    jp_ws_fetch: Any, jp_fetch: Any, jp_serverapp: Any
) -> None:
    await wait_for_state(jp_serverapp, "ready")
    status = json.loads((await jp_fetch("oci", "status")).body)
    assert status["loop"] == SERVER_LOOP
    ws = await jp_ws_fetch("oci", "chat")
    ws.write_message(ask("s1", "say six"))  # no budgets, no read_results: the server's
    seen = await read_until(ws, lambda m: m["type"] == "execute")
    budgets = [m["budgets"] for m in seen if m["type"] == "turn" and "budgets" in m]
    assert budgets == [{"attempts": 5, "steps": 2, "replies": 7}]
    ws.write_message(json.dumps({"type": "outcome", "id": "s1", "turn": 1, **OK_OUTCOME}))
    seen = await read_until(ws, lambda m: m["type"] == "done")
    # c.OCI.read_results = False: the first run without errors ends the request.
    assert (seen[-1]["status"], seen[-1]["turns"]) == ("success", 1)
    ws.close()


@pytest.mark.parametrize(
    ("fields", "attempts"),
    [
        ({}, 6),  # the server's
        ({"max_turns": 2}, 2),  # the older name still works
        ({"max_attempts": 4}, 4),
        ({"max_turns": 2, "max_attempts": 4}, 4),  # both: max_attempts wins
    ],
)
async def test_an_asks_attempts_or_the_servers(
    tmp_path: Path, fields: dict[str, int], attempts: int
) -> None:
    session, browser, engine, _ = make_session(tmp_path, [FIXED, "Six."], [OK_OUTCOME])
    session.defaults = replace(session.defaults, max_attempts=6)
    await started(engine)
    await session.receive(ask(**fields))
    await finish(browser)
    generating = next(m for m in browser.of("turn") if "budgets" in m)
    assert generating["budgets"] == {"attempts": attempts, "steps": 4, "replies": 8}


def test_the_defaults_are_written_once() -> None:
    oci = OCI()
    assert LoopDefaults(**oci.loop_defaults()) == LoopDefaults()
    assert (oci.max_attempts, oci.max_steps, oci.max_replies) == (3, 4, 8)
    assert Budgets() == DEFAULT_BUDGETS == Budgets(attempts=3, steps=4, replies=8)
    fix = Ask(type="ask", id="f", mode="fix", max_turns=2)
    assert fix.budgets(LoopDefaults()) == Budgets(attempts=2, steps=1, replies=8)


def test_a_kernel_reads_an_older_or_odd_servers_loop_as_the_products() -> None:
    assert LoopDefaults.from_json(None) == LoopDefaults()
    odd = {"max_attempts": 0, "max_steps": "4", "max_replies": 9}
    assert LoopDefaults.from_json(odd) == LoopDefaults(max_replies=9)


def test_the_settings_editor_shows_the_servers_own_defaults() -> None:
    """The Settings Editor shows a schema's default for a key the user did not set (an
    unchecked box otherwise, although the model reads the results): the defaults shown are
    the server's own. The browser still sends only what the user set (Jest:
    loop-settings.spec.ts), so an administrator's c.OCI value applies."""
    schema = json.loads(
        (Path(__file__).parent.parent / "schema" / "plugin.json").read_text(encoding="utf-8")
    )
    shown = {
        key: schema["properties"][key]["default"]
        for key in ("readResults", "maxAttempts", "maxSteps", "maxReplies")
    }
    server = LoopDefaults()
    assert shown == {
        "readResults": server.read_results,
        "maxAttempts": server.max_attempts,
        "maxSteps": server.max_steps,
        "maxReplies": server.max_replies,
    }
