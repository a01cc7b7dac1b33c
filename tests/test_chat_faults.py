"""Nothing lost, nothing hijacked: the chat's server side when things go wrong. A run queued
behind the user's cell, a cell the user edited, a Stop while the socket stalls, a chat file
that cannot be read, two tabs on one notebook. Every request id ends with exactly one done."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from oci_jupyter.chat import ChatSession, ChatStore, NotebookRequests, RequestRecord
from oci_jupyter.chat.protocol import InvalidMessage, Progress, parse_client_message
from oci_jupyter.loop import Execute, Generate, RefinementLoop
from oci_jupyter.prompts import FeedbackMarker
from oci_jupyter.prompts.feedback import EDITED_NOTE, execution_feedback
from oci_jupyter.texts import text
from oci_jupyter.types import ExecutionOutcome

from .doubles import ScriptedTestEngine
from .helpers import wait_for_state
from .test_chat import (
    ANSWER,
    ERROR_OUTCOME,
    FIXED,
    OK_OUTCOME,
    Browser,
    ask,
    finish,
    jp_server_config,  # noqa: F401  (the server's configuration for the websocket test)
    make_session,
    read_until,
    started,
)

LONG = "word " * 500
"""A reply that streams for seconds (with a token delay): a request that is still running."""
KERNEL_GONE = {
    "status": "error",
    "error": {"ename": "KernelUnavailable", "evalue": "The kernel restarted."},
}

BUSY_HERE = str(text("busy_here"))
BUSY_ELSEWHERE = str(text("busy_elsewhere"))


def dones(browser: Browser, request_id: str) -> list[dict[str, Any]]:
    return [d for d in browser.of("done") if d["id"] == request_id]


async def until(condition: Callable[[], object], timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def progress(request_id: str, turn: int, state: str) -> str:
    return json.dumps({"type": "progress", "id": request_id, "turn": turn, "state": state})


def outcome(request_id: str, turn: int, **fields: Any) -> str:
    return json.dumps({"type": "outcome", "id": request_id, "turn": turn, **fields})


def connection(
    engine: ScriptedTestEngine,
    store: ChatStore,
    notebooks: NotebookRequests,
    outcomes: list[dict[str, Any]] | None = None,
) -> tuple[ChatSession, Browser]:
    """One more tab of the same server: the engine, the store and the registry are shared."""
    browser = Browser(outcomes)
    session = ChatSession(engine, store, browser.send, outcome_grace=0.5, notebooks=notebooks)
    browser.session = session
    return session, browser


# ---- progress: a run queued behind the user's own cell -----------------------------------------
def test_progress_is_a_client_message() -> None:
    message = parse_client_message(progress("r1", 2, "queued"))
    assert message == Progress(type="progress", id="r1", turn=2, state="queued")
    with pytest.raises(InvalidMessage, match="invalid progress: state"):
        parse_client_message(progress("r1", 2, "sleeping"))
    with pytest.raises(InvalidMessage, match="invalid progress: id"):
        parse_client_message(progress("x" * 201, 2, "running"))


async def test_a_queued_run_waits_past_the_deadline(tmp_path: Path) -> None:
    # time_limit 0.1 s + grace 0.5 s: without "queued" the wait would end after 0.6 s.
    session, browser, engine, _ = make_session(tmp_path, [FIXED, ANSWER], [])
    await started(engine)
    await session.receive(ask(time_limit=0.1))
    await until(lambda: browser.of("execute"))
    await session.receive(progress("r1", 1, "queued"))
    queued = [t for t in browser.of("turn") if t["state"] == "queued"]
    assert queued == [
        {"type": "turn", "id": "r1", "turn": 1, "state": "queued", "step": 1, "attempt": 1}
    ]
    await asyncio.sleep(1.5)  # the user's long cell is still running
    assert browser.of("done") == []
    assert [t for t in browser.of("turn") if t["state"] == "timeout"] == []
    await session.receive(progress("r1", 1, "running"))
    await session.receive(outcome("r1", 1, **OK_OUTCOME))
    await finish(browser)
    assert [d["status"] for d in browser.of("done")] == ["success"]
    assert "never reported" not in engine.prompts[1][-1]["content"]


async def test_running_restarts_the_deadline_from_now(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, [FIXED, FIXED], [])
    await started(engine)
    await session.receive(ask(time_limit=0.1, max_turns=1))
    await until(lambda: browser.of("execute"))
    await session.receive(progress("r1", 1, "queued"))
    await asyncio.sleep(1.0)
    await session.receive(progress("r1", 1, "running"))
    restarted = asyncio.get_running_loop().time()
    # The panel goes back from "queued" to "executing".
    assert [t["state"] for t in browser.of("turn")][-2:] == ["queued", "executing"]
    await finish(browser)
    waited = asyncio.get_running_loop().time() - restarted
    # A browser that then never reports: the wait ends time_limit + grace after "running".
    assert 0.5 <= waited < 5
    assert [t for t in browser.of("turn") if t["state"] == "timeout"]
    assert dones(browser, "r1")[0]["status"] == "failed"


async def test_progress_nobody_waits_for_is_ignored(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, [LONG], [], token_delay=0.01)
    await started(engine)
    await session.receive(progress("nobody", 1, "queued"))  # no such request
    await session.receive(ask())
    await until(lambda: browser.of("token"))
    await session.receive(progress("r1", 1, "queued"))  # generating: not waiting for a run
    await session.receive(progress("r1", 7, "running"))  # another turn
    assert browser.of("error") == []
    assert [t["state"] for t in browser.of("turn")] == ["generating"]
    session.cancel("r1")
    await finish(browser)
    assert len(browser.of("done")) == 1


# ---- what really ran: the user edited the cell ------------------------------------------------
EDITED = "total = 7\nprint(total)\n"


def test_the_feedback_says_what_ran_instead() -> None:
    ran = ExecutionOutcome("ok", output="7\n", source=EDITED)
    feedback = execution_feedback(ran, EDITED)
    assert feedback.startswith(f"{EDITED_NOTE}\n```python\n{EDITED}```\n{FeedbackMarker}\n7\n")
    assert execution_feedback(ran).startswith(FeedbackMarker)  # the magic, the evaluation


@pytest.mark.parametrize(
    ("next_code", "runs"),
    [("x = 1 / 0", False), ("1 / 0", True)],
    ids=["repeat-of-what-ran", "the-model-code-that-never-ran"],
)
def test_the_loop_keeps_the_code_that_ran(next_code: str, runs: bool) -> None:
    loop = RefinementLoop([{"role": "user", "content": "divide"}])
    loop.start()
    assert isinstance(loop.on_reply("```python\n1 / 0\n```"), Execute)
    failed = ExecutionOutcome("error", ename="ZeroDivisionError", source="x = 1 / 0\n")
    assert isinstance(loop.on_outcome(failed), Generate)
    assert loop.turns[0].code == "x = 1 / 0\n"
    assert loop.messages[-1]["content"].startswith(EDITED_NOTE)
    following = loop.on_reply(f"```python\n{next_code}\n```")
    # Repeats are told by what ran: the edited code is not run again, the model's is.
    assert isinstance(following, Execute) is runs
    assert loop.turns[1].skipped == (None if runs else "repeat")


async def test_the_model_is_told_what_the_user_ran(tmp_path: Path) -> None:
    session, browser, engine, store = make_session(
        tmp_path, [FIXED, "The total is 7."], [{**OK_OUTCOME, "output": "7\n", "source": EDITED}]
    )
    await started(engine)
    await session.receive(ask(auto_execute=False))
    await finish(browser)
    feedback = engine.prompts[1][-1]["content"]
    assert feedback.startswith(f"{EDITED_NOTE}\n```python\n{EDITED}```\n{FeedbackMarker}\n7\n")
    (done,) = browser.of("done")
    assert (done["status"], done["final_code"]) == ("success", EDITED)
    (record,) = store.load("work.ipynb")["requests"]
    assert record["turns"][0]["code"] == EDITED


async def test_an_unchanged_source_changes_nothing(tmp_path: Path) -> None:
    ran = {**OK_OUTCOME, "source": "total = 6\nprint(total)  \n\n"}  # trailing space only
    session, browser, engine, _ = make_session(tmp_path, [FIXED, ANSWER], [ran])
    await started(engine)
    await session.receive(ask())
    await finish(browser)
    assert engine.prompts[1][-1]["content"].startswith(f"{FeedbackMarker}\n6\n")
    assert browser.of("done")[0]["final_code"] == "total = 6\nprint(total)\n"


# ---- every Stop lands --------------------------------------------------------------------------
class StalledBrowser(Browser):
    """A browser whose socket stalls on the first message ``stalls`` picks (and with ``all``,
    on every message from then on) until ``gate`` opens. A message is recorded before the
    stall: what was sent is what was attempted."""

    def __init__(self, stalls: Callable[[dict[str, Any]], bool], every: bool = False) -> None:
        super().__init__([])
        self.stalls, self.every = stalls, every
        self.gate = asyncio.Event()
        self.stalled = False

    async def send(self, message: dict[str, Any]) -> None:
        await super().send(message)
        if self.stalled and not self.every:
            return
        if self.stalled or self.stalls(message):
            self.stalled = True
            await self.gate.wait()


def stalled_session(
    tmp_path: Path, stalls: Callable[[dict[str, Any]], bool], every: bool = False
) -> tuple[ChatSession, StalledBrowser, ScriptedTestEngine]:
    engine = ScriptedTestEngine([FIXED, ANSWER])
    browser = StalledBrowser(stalls, every)
    session = ChatSession(
        engine, ChatStore(tmp_path / "chats"), browser.send, outcome_grace=0.5, cancel_grace=0.2
    )
    browser.session = session
    return session, browser, engine


def generating(message: dict[str, Any]) -> bool:
    return message["type"] == "turn" and message["state"] == "generating"


def executing(message: dict[str, Any]) -> bool:
    return message["type"] == "execute"


@pytest.mark.parametrize("stalls", [generating, executing], ids=["generating", "execute"])
async def test_stop_lands_while_the_socket_stalls(
    tmp_path: Path, stalls: Callable[[dict[str, Any]], bool]
) -> None:
    session, browser, engine = stalled_session(tmp_path, stalls)
    await started(engine)
    await session.receive(ask())
    await until(lambda: browser.stalled)
    session.cancel("r1")
    await finish(browser, timeout=3)
    assert [d["status"] for d in dones(browser, "r1")] == ["cancelled"]
    assert session.running == {}
    assert session.notebooks.holder("work.ipynb") is None
    (record,) = session.store.load("work.ipynb")["requests"]
    assert record["status"] == "cancelled"
    browser.gate.set()
    await asyncio.sleep(0.05)
    assert len(browser.of("done")) == 1


async def test_stop_lands_even_if_the_done_stalls(tmp_path: Path) -> None:
    session, browser, engine = stalled_session(tmp_path, generating, every=True)
    await started(engine)
    await session.receive(ask())
    await until(lambda: browser.stalled)
    session.cancel("r1")
    await finish(browser, timeout=3)  # the done is attempted: it is stuck in the socket
    assert len(browser.of("done")) == 1
    assert session.running == {}
    assert session.notebooks.holder("work.ipynb") is None
    browser.gate.set()
    await asyncio.sleep(0.05)
    assert [d["status"] for d in browser.of("done")] == ["cancelled"]


@pytest.mark.parametrize(
    "fields", [{"auto_execute": False}, {"review": True}], ids=["by-hand", "review"]
)
@pytest.mark.parametrize("how", ["stop", "close"])
async def test_a_wait_for_the_user_ends_on_stop_or_close(
    tmp_path: Path, fields: dict[str, Any], how: str
) -> None:
    session, browser, engine, _ = make_session(tmp_path, [FIXED], [])
    await started(engine)
    await session.receive(ask(time_limit=0.1, **fields))
    await until(lambda: browser.of("execute"))
    await asyncio.sleep(0.8)  # past time_limit + grace: no deadline while the user has it
    assert browser.of("done") == []
    if how == "stop":
        await session.receive(json.dumps({"type": "cancel", "id": "r1"}))
    else:
        await asyncio.wait_for(session.close(), 3)
    await finish(browser, timeout=3)
    assert [d["status"] for d in browser.of("done")] == ["cancelled"]
    assert session.running == {}


async def test_a_kernel_restart_while_the_user_has_the_cell(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, [FIXED, FIXED], [])
    await started(engine)
    await session.receive(ask(auto_execute=False, time_limit=0.1))
    await until(lambda: browser.of("execute"))
    await asyncio.sleep(0.8)
    await session.receive(outcome("r1", 1, **KERNEL_GONE))
    await finish(browser)
    (done,) = browser.of("done")
    assert (done["status"], done["message"]) == ("error", "The kernel restarted.")
    assert len(engine.prompts) == 1


async def test_a_task_cancelled_from_outside_still_sends_its_done(tmp_path: Path) -> None:
    session, browser, engine, store = make_session(tmp_path, [LONG], [], token_delay=0.01)
    await started(engine)
    await session.receive(ask())
    await until(lambda: browser.of("token"))
    task = session.running["r1"].task
    assert task is not None
    task.cancel()  # the server shutting down
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [d["status"] for d in browser.of("done")] == ["cancelled"]
    assert store.load("work.ipynb")["requests"][0]["status"] == "cancelled"
    assert session.running == {}
    assert session.notebooks.holder("work.ipynb") is None


async def test_a_task_cancelled_before_it_began_still_ends(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, [FIXED], [])
    await started(engine)
    await session.receive(ask())
    task = session.running["r1"].task
    assert task is not None
    task.cancel()  # before its first step: its own finally never runs
    await finish(browser)
    assert [d["status"] for d in browser.of("done")] == ["cancelled"]
    assert session.running == {}
    assert session.notebooks.holder("work.ipynb") is None


# ---- a chat file that cannot be read ----------------------------------------------------------
async def test_an_unreadable_history_ends_the_request_with_one_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, browser, engine, store = make_session(tmp_path, [FIXED], [])
    await started(engine)

    def refuse(notebook: str) -> dict[str, Any]:
        raise PermissionError(13, "Permission denied", notebook)

    monkeypatch.setattr(store, "load", refuse)
    await session.receive(ask())
    await finish(browser)
    (done,) = browser.of("done")
    assert done["status"] == "error"
    assert "PermissionError" in done["message"]
    assert engine.prompts == []
    assert session.notebooks.holder("work.ipynb") is None


def test_a_permission_error_leaves_the_file_where_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ChatStore(tmp_path / "chats")
    store.save_request("n.ipynb", RequestRecord(id="r1", mode="chat", prompt="hi"), [])

    def refuse(self: Path, *args: Any, **kwargs: Any) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refuse)
    with pytest.raises(PermissionError):
        store.load("n.ipynb")
    monkeypatch.undo()
    assert list((tmp_path / "chats").glob("*.bak")) == []
    assert [r["id"] for r in store.load("n.ipynb")["requests"]] == ["r1"]


@pytest.mark.parametrize("content", ["[1, 2, 3]", '"a string"', "42", "null", "{not json"])
async def test_a_chat_file_that_is_no_record(tmp_path: Path, content: str) -> None:
    session, browser, engine, store = make_session(tmp_path, [FIXED, ANSWER], [OK_OUTCOME])
    store.root.mkdir(parents=True)
    store._path("work.ipynb").write_text(content)
    await started(engine)
    await session.receive(ask())
    await finish(browser)
    assert [d["status"] for d in browser.of("done")] == ["success"]
    (aside,) = store.root.glob("*.bak")
    assert aside.read_text() == content
    assert [r["id"] for r in store.load("work.ipynb")["requests"]] == ["r1"]


async def test_malformed_entries_are_dropped(tmp_path: Path) -> None:
    session, browser, engine, store = make_session(tmp_path, [FIXED, ANSWER], [OK_OUTCOME])
    store.root.mkdir(parents=True)
    record = {
        "notebook": "work.ipynb",
        "requests": [1, "two", None, {"id": "old", "prompt": "before"}],
        "conversation": [
            3,
            "text",
            ["user", "hi"],
            {"role": "user"},
            {"content": "no role"},
            {"role": "user", "content": 5},
            {"role": "user", "content": "remembered question"},
            {"role": "assistant", "content": "remembered answer"},
        ],
    }
    store._path("work.ipynb").write_text(json.dumps(record))
    loaded = store.load("work.ipynb")
    assert loaded["requests"] == [{"id": "old", "prompt": "before"}]
    assert [m["content"] for m in loaded["conversation"]] == [
        "remembered question",
        "remembered answer",
    ]
    await started(engine)
    await session.receive(ask())
    await finish(browser)
    assert [d["status"] for d in browser.of("done")] == ["success"]
    contents = [m["content"] for m in engine.prompts[0]]
    assert "remembered answer" in contents
    saved = store.load("work.ipynb")
    assert [r["id"] for r in saved["requests"]] == ["old", "r1"]


async def test_a_save_that_fails_still_sends_the_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, browser, engine, store = make_session(tmp_path, [FIXED], [OK_OUTCOME])

    def broken(*args: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "save_request", broken)
    await started(engine)
    await session.receive(ask(read_results=False))
    await finish(browser)
    assert [d["status"] for d in browser.of("done")] == ["success"]
    assert session.notebooks.holder("work.ipynb") is None


# ---- two tabs on one notebook ------------------------------------------------------------------
async def test_one_request_per_notebook_across_connections(tmp_path: Path) -> None:
    engine = ScriptedTestEngine([LONG, "No code needed.", "Nor here."], token_delay=0.01)
    store, notebooks = ChatStore(tmp_path / "chats"), NotebookRequests()
    first, first_browser = connection(engine, store, notebooks)
    second, second_browser = connection(engine, store, notebooks)
    await started(engine)
    await first.receive(ask("a"))
    await second.receive(ask("b"))
    (refused,) = second_browser.of("done")
    assert (refused["id"], refused["status"], refused["message"]) == ("b", "error", BUSY_ELSEWHERE)
    assert (refused["code"], refused["params"]) == ("busy_elsewhere", {})
    assert "b" not in second.running
    # Another notebook is not held up.
    second_browser.done.clear()
    await second.receive(ask("c", notebook="other.ipynb"))
    await finish(second_browser)
    assert dones(second_browser, "c")[0]["status"] == "no_code"
    # The notebook is free again once its request ended.
    first.cancel("a")
    await finish(first_browser)
    second_browser.done.clear()
    await second.receive(ask("d"))
    await finish(second_browser)
    assert dones(second_browser, "d")[0]["status"] == "no_code"
    assert all(len(dones(b, i)) == 1 for b, i in [(first_browser, "a"), (second_browser, "b")])


async def test_one_request_per_notebook_within_a_connection(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, [LONG], [], token_delay=0.01)
    await started(engine)
    await session.receive(ask("a"))
    await session.receive(ask("b", notebook="/work.ipynb"))  # the same notebook
    (refused,) = dones(browser, "b")
    assert (refused["status"], refused["message"], refused["code"]) == (
        "error",
        BUSY_HERE,
        "busy_here",
    )
    await session.close()
    assert sorted(d["id"] for d in browser.of("done")) == ["a", "b"]


async def test_requests_without_a_notebook_are_not_limited(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, [LONG], [], token_delay=0.01)
    await started(engine)
    await session.receive(ask("a", notebook=""))
    await session.receive(ask("b", notebook=""))
    assert set(session.running) == {"a", "b"}
    await session.close()
    assert {d["status"] for d in browser.of("done")} == {"cancelled"}


async def test_the_other_connections_hear_of_a_notebooks_request(tmp_path: Path) -> None:
    engine = ScriptedTestEngine(["No code needed."])
    store, notebooks = ChatStore(tmp_path / "chats"), NotebookRequests()
    first, first_browser = connection(engine, store, notebooks)
    second, second_browser = connection(engine, store, notebooks)
    await started(engine)
    prompt = "x" * 300
    await first.receive(ask("a", prompt))
    await finish(first_browser)
    await until(lambda: len(second_browser.of("notebook")) == 2)
    assert second_browser.of("notebook") == [
        {
            "type": "notebook",
            "notebook": "work.ipynb",
            "running": {"id": "a", "mode": "chat", "prompt": "x" * 200},
        },
        {"type": "notebook", "notebook": "work.ipynb", "running": None},
    ]
    assert first_browser.of("notebook") == []  # its own request: it knows
    # A connection that closed hears nothing more.
    await second.close()
    first_browser.done.clear()
    await first.receive(ask("b"))
    await finish(first_browser)
    await asyncio.sleep(0.05)
    assert len(second_browser.of("notebook")) == 2


async def test_a_new_connection_hears_of_each_running_notebook(tmp_path: Path) -> None:
    engine = ScriptedTestEngine([LONG], token_delay=0.01)
    store, notebooks = ChatStore(tmp_path / "chats"), NotebookRequests()
    first, _ = connection(engine, store, notebooks)
    await started(engine)
    await first.receive(ask("a", notebook="one.ipynb"))
    await first.receive(ask("b", notebook="two.ipynb", mode="fix", prompt="", cell=FAILING))
    _, late_browser = connection(engine, store, notebooks)
    await until(lambda: len(late_browser.of("notebook")) == 2)
    running = {m["notebook"]: m["running"] for m in late_browser.of("notebook")}
    assert running == {
        "one.ipynb": {"id": "a", "mode": "chat", "prompt": "print a total"},
        "two.ipynb": {"id": "b", "mode": "fix", "prompt": ""},
    }
    await first.close()


FAILING = {"source": "print(totl)", "error": ERROR_OUTCOME["error"]}


@pytest.mark.parametrize("ending", ["engine-error", "bad-history", "stop", "forced", "outside"])
async def test_the_notebook_is_always_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    stops = ending in ("stop", "forced", "outside")
    # A request that never reaches the model leaves the first reply to the next request.
    replies = [LONG, "No code needed."] if stops else ["No code needed."]
    engine = ScriptedTestEngine(replies, token_delay=0.01)
    store, notebooks = ChatStore(tmp_path / "chats"), NotebookRequests()
    session, browser = connection(engine, store, notebooks)
    session.cancel_grace = 0.1
    await started(engine)
    if ending == "engine-error":
        monkeypatch.setattr(engine, "_status", replace(engine.status, state="loading"))
    if ending == "bad-history":
        monkeypatch.setattr(store, "load", lambda notebook: [1, 2])  # a broken store
    await session.receive(ask("a"))
    assert notebooks.holder("work.ipynb") is not None or browser.of("done")
    if stops:
        await until(lambda: browser.of("token"))
        running = session.running["a"]
        if ending == "stop":
            session.cancel("a")
        elif ending == "forced":
            session.cancel("a")
            session._force_cancel(running)  # as if the grace had passed
        else:
            assert running.task is not None
            running.task.cancel()
    await finish(browser)
    assert len(dones(browser, "a")) == 1
    assert notebooks.holder("work.ipynb") is None
    monkeypatch.undo()
    browser.done.clear()
    await session.receive(ask("again", "and now?"))
    await finish(browser)
    assert dones(browser, "again")[0]["status"] != "error"


async def test_both_tabs_records_are_kept(tmp_path: Path) -> None:
    engine = ScriptedTestEngine(["No code needed."])
    store, notebooks = ChatStore(tmp_path / "chats"), NotebookRequests()
    first, first_browser = connection(engine, store, notebooks)
    second, second_browser = connection(engine, store, notebooks)
    await started(engine)
    await first.receive(ask("from-first"))
    await finish(first_browser)
    await second.receive(ask("from-second"))
    await finish(second_browser)
    saved = store.load("work.ipynb")["requests"]
    assert [r["id"] for r in saved] == ["from-first", "from-second"]


def test_saves_from_two_connections_at_once_keep_both(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chats")
    threads = [
        threading.Thread(
            target=store.save_request,
            args=("n.ipynb", RequestRecord(id=f"r{i}", mode="chat", prompt="hi"), []),
        )
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r["id"] for r in store.load("n.ipynb")["requests"]) == [f"r{i}" for i in range(8)]


async def test_two_websockets_share_the_servers_registry(
    jp_ws_fetch: Any, jp_serverapp: Any
) -> None:
    await wait_for_state(jp_serverapp, "ready")
    first = await jp_ws_fetch("oci", "chat")
    second = await jp_ws_fetch("oci", "chat")
    first.write_message(ask("w1", "say six"))
    await read_until(first, lambda m: m["type"] == "execute")
    seen = await read_until(second, lambda m: m["type"] == "notebook")
    assert seen[-1]["running"]["id"] == "w1"
    second.write_message(ask("w2", "me too"))
    seen = await read_until(second, lambda m: m["type"] == "done")
    assert (seen[-1]["id"], seen[-1]["message"]) == ("w2", BUSY_ELSEWHERE)
    first.write_message(json.dumps({"type": "outcome", "id": "w1", "turn": 1, **OK_OUTCOME}))
    await read_until(first, lambda m: m["type"] == "done")
    seen = await read_until(second, lambda m: m["type"] == "notebook")
    assert seen[-1]["running"] is None
    first.close()
    second.close()
