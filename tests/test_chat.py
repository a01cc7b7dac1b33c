"""The chat session (the server side of the sidebar) with the scripted engine and a
browser stand-in that answers "execute" requests, plus the websocket and history endpoints."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import nbformat
import pytest
from tornado.httpclient import HTTPClientError

from oci_jupyter.chat import ChatSession, ChatStore, RequestRecord
from oci_jupyter.prompts import REQUEST_HINT

from .doubles import ScriptedTestEngine
from .helpers import oci_app, wait_for_state

NAME_ERROR = "```python\nprint(totl)\n```"
FIXED = "```python\ntotal = 6\nprint(total)\n```"
ANSWER = "The total is 6."


class Browser:
    """Collects what the server sends; answers "execute" with scripted outcomes."""

    def __init__(self, outcomes: list[dict[str, Any]] | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.outcomes = list(outcomes or [])
        self.session: ChatSession | None = None
        self.done = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "execute" and self.outcomes:
            outcome = {"type": "outcome", "id": message["id"], "turn": message["turn"]}
            outcome.update(self.outcomes.pop(0))
            assert self.session is not None
            # Answer later, as a real browser would after running the cell.
            self.tasks.append(
                asyncio.get_running_loop().create_task(self.session.receive(json.dumps(outcome)))
            )
        if message["type"] == "done":
            self.done.set()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] == kind]

    def text(self, request_id: str) -> str:
        return "".join(m["text"] for m in self.of("token") if m["id"] == request_id)


def ask(request_id: str = "r1", prompt: str = "print a total", **fields: Any) -> str:
    message = {"type": "ask", "id": request_id, "prompt": prompt, "notebook": "work.ipynb"}
    message.update(fields)
    return json.dumps(message)


ERROR_OUTCOME = {
    "status": "error",
    "output": "",
    "error": {
        "ename": "NameError",
        "evalue": "name 'totl' is not defined",
        "traceback": ["\x1b[31mNameError\x1b[0m: name 'totl' is not defined"],
    },
}
OK_OUTCOME = {"status": "ok", "output": "6\n"}


def make_session(
    tmp_path: Path, replies: list[str], outcomes: list[dict[str, Any]], **engine_kwargs: Any
) -> tuple[ChatSession, Browser, ScriptedTestEngine, ChatStore]:
    engine = ScriptedTestEngine(replies, **engine_kwargs)
    store = ChatStore(tmp_path / "chats")
    browser = Browser(outcomes)
    session = ChatSession(engine, store, browser.send, outcome_grace=0.5)
    browser.session = session
    return session, browser, engine, store


async def started(engine: ScriptedTestEngine) -> None:
    await engine.wait_ready(5)


async def finish(browser: Browser, timeout: float = 10) -> None:
    await asyncio.wait_for(browser.done.wait(), timeout)
    await asyncio.sleep(0)  # let the session's task end after its last send


async def test_two_turns_error_then_fixed(tmp_path: Path) -> None:
    session, browser, engine, store = make_session(
        tmp_path, [NAME_ERROR, FIXED, ANSWER], [ERROR_OUTCOME, OK_OUTCOME]
    )
    await started(engine)
    await session.receive(ask())
    await finish(browser)

    executes = browser.of("execute")
    assert [(e["turn"], e["target"], e["step"], e["attempt"], e["code"]) for e in executes] == [
        (1, "new", 1, 1, "print(totl)\n"),
        (2, "replace", 1, 2, "total = 6\nprint(total)\n"),
    ]
    states = [(m["turn"], m["state"]) for m in browser.of("turn")]
    assert states == [
        (1, "generating"),
        (1, "executing"),
        (1, "error"),
        (2, "generating"),
        (2, "executing"),
        (2, "ok"),
        (3, "generating"),
    ]
    assert browser.of("turn")[2]["ename"] == "NameError"
    assert browser.of("turn")[0]["budgets"] == {"attempts": 3, "steps": 4, "replies": 8}
    (done,) = browser.of("done")
    assert done == {
        "type": "done",
        "id": "r1",
        "status": "success",
        "turns": 3,
        "message": "Answered.",
        "code": "answered",
        "params": {},
        "final_code": "total = 6\nprint(total)\n",
        "answer": ANSWER,
        "steps": 1,
        "budget": None,
    }
    # Tokens of every turn were streamed; each code reply ends at its closing fence.
    assert browser.text("r1") == NAME_ERROR + FIXED + ANSWER
    # The model read the successful run before it answered.
    assert engine.prompts[2][-1]["content"].startswith("Execution result:\n6\n")
    feedback = engine.prompts[1][-1]["content"]
    assert feedback.startswith("Execution result: the code raised an error.")
    assert "NameError: name 'totl' is not defined" in feedback
    assert "\x1b" not in feedback

    saved = store.load("work.ipynb")
    (record,) = saved["requests"]
    assert record["status"] == "success"
    assert record["answer"] == ANSWER
    assert [t["outcome"] and t["outcome"]["status"] for t in record["turns"]] == [
        "error",
        "ok",
        None,
    ]
    # The request is kept as it was sent (context included), so that the next request's
    # prompt begins with this one's.
    assert saved["conversation"][0] == engine.prompts[0][-1]
    assert saved["conversation"][1] == {"role": "assistant", "content": NAME_ERROR}
    assert saved["conversation"][-1] == {"role": "assistant", "content": ANSWER}
    assert len(session.timings) == 2
    assert session.running == {}


async def test_history_feeds_the_next_request(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(
        tmp_path, [FIXED, ANSWER, "Use `sum` instead."], [OK_OUTCOME]
    )
    await started(engine)
    await session.receive(ask("r1", "make a total"))
    await finish(browser)
    browser.done.clear()
    await session.receive(ask("r2", "why?"))
    await finish(browser)
    first, second = engine.prompts[0], engine.prompts[2]
    contents = [m["content"] for m in second]
    assert FIXED in contents
    assert ANSWER in contents
    # The second request's prompt begins with everything the first one sent.
    assert second[: len(first)] == first
    assert second[-1]["content"].endswith(f"why?\n\n{REQUEST_HINT}")
    assert browser.of("done")[-1]["status"] == "no_code"


async def test_context_reaches_the_prompt(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, ["No code needed."], [])
    await started(engine)
    context = {
        "language": "python",
        "cells": [
            {"source": "import pandas as pd", "label": "In [1]"},
            {"source": "df = pd.read_csv('x.csv')", "label": "In [2]", "active": True},
        ],
        "variables": [{"name": "df", "type": "DataFrame", "summary": "shape (3, 2)"}],
    }
    await session.receive(ask(context=context))
    await finish(browser)
    prompt = engine.prompts[0][-1]["content"]
    assert "- df: DataFrame, shape (3, 2)" in prompt
    assert "# In [2]  <- active cell\ndf = pd.read_csv('x.csv')" in prompt
    assert prompt.endswith(f"Request:\nprint a total\n\n{REQUEST_HINT}")


async def test_fix_mode_replaces_the_failing_cell(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, [FIXED], [OK_OUTCOME])
    await started(engine)
    cell = {"source": "print(totl)", "error": ERROR_OUTCOME["error"]}
    await session.receive(ask(mode="fix", prompt="", cell=cell))
    await finish(browser)
    assert browser.of("execute")[0]["target"] == "replace"
    request = engine.prompts[0][-1]["content"]
    assert "This cell failed:\n```python\nprint(totl)\n```" in request
    assert "NameError: name 'totl' is not defined" in request


async def test_fix_mode_ranks_the_cells_the_failing_cell_needs_first(tmp_path: Path) -> None:
    # A small window: only a few cells fit, and they must be the ones the error depends on.
    session, browser, engine, _ = make_session(tmp_path, [FIXED], [OK_OUTCOME], context_length=1300)
    await started(engine)
    filler = " ".join(["padding"] * 60)
    cells = [
        {"source": f"# {filler}\nimport statistics"},
        {"source": f"# {filler}\nraw = [3, 1, 2]"},
        {"source": f"# {filler}\ndef clean(values):\n    return sorted(values)"},
        {"source": f"# {filler}\ndata = clean(raw)"},
        *({"source": f"# {filler} {i}\nnote_{i} = {i}"} for i in range(12)),
        {"source": "print(statistics.mean(data) + offset)", "active": True, "label": "In [9]"},
        {"source": "after = 1"},
    ]
    cell = {
        "source": "print(statistics.mean(data) + offset)",
        "error": {"ename": "NameError", "evalue": "name 'offset' is not defined"},
    }
    await session.receive(ask(mode="fix", prompt="", cell=cell, context={"cells": cells}))
    await finish(browser)
    prompt = engine.prompts[0][-1]["content"]
    for needed in ("import statistics", "raw = [3, 1, 2]", "def clean(values)", "data = clean"):
        assert needed in prompt
    # Far fewer of the twelve filler cells fit than were sent; the failing cell keeps its
    # place, marked, without its source twice.
    assert prompt.count("note_") < 12
    assert "# In [9]  <- active cell\n(the failing cell, shown below)" in prompt
    assert prompt.count("print(statistics.mean(data) + offset)") == 1
    assert prompt.index("data = clean") < prompt.index("<- active cell")


async def test_a_fix_that_hands_back_the_failing_cell_is_not_run(tmp_path: Path) -> None:
    session, browser, engine, store = make_session(
        tmp_path, [NAME_ERROR, FIXED, "`totl` was a typo of `total`."], [OK_OUTCOME]
    )
    await started(engine)
    cell = {"source": "print(totl)\n", "error": ERROR_OUTCOME["error"]}
    await session.receive(ask(mode="fix", prompt="", cell=cell))
    await finish(browser)
    assert [e["turn"] for e in browser.of("execute")] == [2]
    skipped = [t for t in browser.of("turn") if t["state"] == "skipped"]
    assert skipped == [
        {
            "type": "turn",
            "id": "r1",
            "turn": 1,
            "state": "skipped",
            "evalue": "not run: same as before",
            "code": "not_run_repeat",
            "params": {},
            "step": 1,
            "attempt": 1,
        }
    ]
    assert "not run: this is the same code as the cell" in engine.prompts[1][-1]["content"]
    (done,) = browser.of("done")
    assert (done["status"], done["answer"]) == ("success", "`totl` was a typo of `total`.")
    # The reply after the repeat is sampled hotter than the configured 0.2.
    assert [p.temperature for p in engine.params] == [0.2, 0.8, 0.2]
    # The history says why (the chip after a reload).
    turns = store.load("work.ipynb")["requests"][0]["turns"]
    assert [t["skipped"] for t in turns] == ["not run: same as before", None, None]
    assert [t["skipped_code"] for t in turns] == ["not_run_repeat", "", ""]


async def test_fix_under_review_waits_past_the_time_limit(tmp_path: Path) -> None:
    # outcome_grace is 0.5 s and the time limit 0.2 s: without review the server would give
    # up after 0.7 s; the user reading the diff for longer must not end the attempt.
    session, browser, engine, _ = make_session(tmp_path, [FIXED], [])
    await started(engine)
    cell = {"source": "print(totl)", "error": ERROR_OUTCOME["error"]}
    await session.receive(ask(mode="fix", prompt="", cell=cell, time_limit=0.2, review=True))
    while not browser.of("execute"):
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.5)
    assert browser.of("done") == []
    assert len(browser.of("execute")) == 1
    assert [t for t in browser.of("turn") if t["state"] == "timeout"] == []
    execute = browser.of("execute")[0]
    outcome = {"type": "outcome", "id": "r1", "turn": execute["turn"], **OK_OUTCOME}
    await session.receive(json.dumps(outcome))
    await finish(browser)
    assert browser.of("done")[0]["status"] == "success"


async def test_refine_cell_replaces_from_the_first_turn(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, [FIXED], [OK_OUTCOME])
    await started(engine)
    await session.receive(ask(prompt="use a loop instead", refine_cell=True))
    await finish(browser)
    assert browser.of("execute")[0]["target"] == "replace"


async def test_cancel_while_generating(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, ["word " * 500], [], token_delay=0.01)
    await started(engine)
    await session.receive(ask())
    while len(browser.of("token")) < 3:
        await asyncio.sleep(0.01)
    await session.receive(json.dumps({"type": "cancel", "id": "r1"}))
    await finish(browser, timeout=2)
    assert [d["status"] for d in browser.of("done")] == ["cancelled"]
    assert engine.running_requests == []
    assert len(browser.of("token")) < 100


async def test_cancel_while_the_cell_runs(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, [FIXED], [])  # never answers
    await started(engine)
    await session.receive(ask())
    while not browser.of("execute"):
        await asyncio.sleep(0.01)
    await session.receive(json.dumps({"type": "cancel", "id": "r1"}))
    await finish(browser, timeout=2)
    assert [d["status"] for d in browser.of("done")] == ["cancelled"]


async def test_a_browser_that_never_reports_times_out_into_feedback(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, [FIXED, FIXED], [])
    await started(engine)
    await session.receive(ask(time_limit=0.2, max_turns=2))
    await finish(browser, timeout=10)
    assert "never reported" in engine.prompts[1][-1]["content"]
    assert browser.of("done")[0]["status"] == "failed"


async def test_closing_the_connection_cancels_its_requests(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, ["word " * 500], [], token_delay=0.01)
    await started(engine)
    # Two notebooks: one notebook runs one request at a time.
    await session.receive(ask("a", notebook="a.ipynb"))
    await session.receive(ask("b", notebook="b.ipynb"))
    while len(browser.of("token")) < 2:
        await asyncio.sleep(0.01)
    await asyncio.wait_for(session.close(), 3)
    assert sorted(d["id"] for d in browser.of("done")) == ["a", "b"]
    assert {d["status"] for d in browser.of("done")} == {"cancelled"}
    assert engine.running_requests == []


@pytest.mark.parametrize(
    ("raw", "message", "code"),
    [
        ("not json", "JSON", "not_json"),
        ('{"type": "dance"}', "unknown message type", "unknown_type"),
        ('{"type": "ask"}', "invalid ask: id", "invalid_message"),
        ('{"type": "ask", "id": "x", "max_turns": 0}', "max_turns", "invalid_message"),
        (
            '{"type": "outcome", "id": "x", "turn": 1, "status": "great"}',
            "status",
            "invalid_message",
        ),
    ],
)
async def test_bad_messages_get_an_error(tmp_path: Path, raw: str, message: str, code: str) -> None:
    session, browser, engine, _ = make_session(tmp_path, [FIXED], [])
    await started(engine)
    await session.receive(raw)
    (error,) = browser.of("error")
    assert message in error["message"]
    assert error["code"] == code
    assert engine.prompts == []


async def test_an_invalid_ask_with_an_id_still_gets_its_done(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, [FIXED], [])
    await started(engine)
    await session.receive('{"type": "ask", "id": "bad", "max_turns": 99}')
    (error,) = browser.of("error")
    assert "max_turns" in error["message"]
    (done,) = browser.of("done")
    assert done["id"] == "bad"
    assert done["status"] == "error"
    # The done says what the error said.
    assert (done["message"], done["code"], done["params"]) == (
        error["message"],
        "invalid_message",
        error["params"],
    )


async def test_a_kernel_that_is_gone_ends_the_request(tmp_path: Path) -> None:
    gone = {
        "status": "error",
        "error": {"ename": "KernelUnavailable", "evalue": "The notebook has no kernel."},
    }
    session, browser, engine, _ = make_session(tmp_path, [NAME_ERROR, FIXED], [gone])
    await started(engine)
    await session.receive(ask())
    await finish(browser)
    (done,) = browser.of("done")
    assert done["status"] == "error"
    assert done["message"] == "The notebook has no kernel."
    # The browser's own words: it translates its own code for them.
    assert (done["code"], done["params"]) == ("kernel_error", {"error": done["message"]})
    assert len(engine.prompts) == 1  # no second turn for code that cannot run


@pytest.mark.parametrize(
    ("fields", "reason", "code"),
    [
        ({"prompt": "  "}, "empty", "empty_request"),
        ({"mode": "fix", "prompt": ""}, "failing cell", "fix_needs_cell"),
    ],
)
async def test_requests_that_cannot_run_end_with_one_done(
    tmp_path: Path, fields: dict[str, Any], reason: str, code: str
) -> None:
    session, browser, engine, _ = make_session(tmp_path, [FIXED], [])
    await started(engine)
    await session.receive(ask(**fields))
    (done,) = browser.of("done")
    assert done["status"] == "error"
    assert reason in done["message"]
    assert (done["code"], done["params"]) == (code, {})


async def test_engine_not_ready_is_an_error_done(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, [FIXED], [], hold_loading=True)
    engine.start()
    await session.receive(ask())
    await finish(browser)
    (done,) = browser.of("done")
    assert done["status"] == "error"
    assert "loading" in done["message"]
    assert (done["code"], done["params"]) == ("model_loading", {})


async def test_a_duplicate_id_is_refused(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, ["word " * 200], [], token_delay=0.01)
    await started(engine)
    await session.receive(ask())
    await session.receive(ask())
    (error,) = browser.of("error")
    assert "already running" in error["message"]
    assert (error["id"], error["code"], error["params"]) == (
        "r1",
        "already_running",
        {"id": "'r1'"},
    )
    session.cancel("r1")
    await finish(browser)
    assert len(browser.of("done")) == 1


async def test_auto_execute_off_waits_for_the_user(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, [FIXED], [])
    await started(engine)
    await session.receive(ask(auto_execute=False, time_limit=0.1))
    while not browser.of("execute"):
        await asyncio.sleep(0.01)
    assert browser.of("execute")[0]["auto_execute"] is False
    await asyncio.sleep(1.0)  # far past time_limit + grace: still waiting for the user
    assert browser.of("done") == []
    outcome = {"type": "outcome", "id": "r1", "turn": 1, **OK_OUTCOME}
    await session.receive(json.dumps(outcome))
    await finish(browser)
    assert browser.of("done")[0]["status"] == "success"


# ---- through the server -----------------------------------------------------------------------
@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"oci_jupyter": True}},
        "OCI": {
            "engine_class": "tests.doubles.ScriptedTestEngine",
            "engine_kwargs": {"replies": [FIXED]},
            "chat_dir": str(tmp_path / "chats"),
        },
    }


async def read_until(ws: Any, predicate: Callable[[dict[str, Any]], bool]) -> list[dict]:
    seen = []
    while True:
        raw = await asyncio.wait_for(ws.read_message(), 10)
        assert raw is not None, "the socket closed"
        seen.append(json.loads(raw))
        if predicate(seen[-1]):
            return seen


async def test_websocket_chat_and_history(
    jp_ws_fetch: Any, jp_fetch: Any, jp_serverapp: Any
) -> None:
    await wait_for_state(jp_serverapp, "ready")
    ws = await jp_ws_fetch("oci", "chat")
    ws.write_message(ask("w1", "say six"))
    seen = await read_until(ws, lambda m: m["type"] == "execute")
    assert seen[-1]["code"] == "total = 6\nprint(total)\n"
    ws.write_message(json.dumps({"type": "outcome", "id": "w1", "turn": 1, **OK_OUTCOME}))
    seen = await read_until(ws, lambda m: m["type"] == "done")
    assert seen[-1]["status"] == "success"
    ws.close()

    history = json.loads(
        (await jp_fetch("oci", "chat", "history", params={"notebook": "work.ipynb"})).body
    )
    assert [r["id"] for r in history["requests"]] == ["w1"]
    assert history["requests"][0]["prompt"] == "say six"
    await jp_fetch("oci", "chat", "history", method="DELETE", params={"notebook": "work.ipynb"})
    history = json.loads(
        (await jp_fetch("oci", "chat", "history", params={"notebook": "work.ipynb"})).body
    )
    assert history["requests"] == []
    assert oci_app(jp_serverapp).engine.running_requests == []


def test_store_move_follows_a_notebook_and_a_folder(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chats")
    for notebook in ["a.ipynb", "work/b.ipynb", "work/deep/c.ipynb", "workshop/d.ipynb"]:
        record = RequestRecord(id=notebook, mode="chat", prompt=f"about {notebook}")
        store.save_request(notebook, record, [{"role": "user", "content": notebook}])

    assert store.move("a.ipynb", "renamed.ipynb") == 1
    assert store.load("a.ipynb")["requests"] == []
    moved = store.load("renamed.ipynb")
    assert moved["notebook"] == "renamed.ipynb"
    assert [r["prompt"] for r in moved["requests"]] == ["about a.ipynb"]
    assert moved["conversation"] == [{"role": "user", "content": "a.ipynb"}]

    # A folder: everything under it, not a sibling that shares the prefix.
    assert store.move("work", "/project/") == 2
    assert [r["id"] for r in store.load("project/b.ipynb")["requests"]] == ["work/b.ipynb"]
    assert [r["id"] for r in store.load("project/deep/c.ipynb")["requests"]] == [
        "work/deep/c.ipynb"
    ]
    assert store.load("work/b.ipynb")["requests"] == []
    assert [r["id"] for r in store.load("workshop/d.ipynb")["requests"]] == ["workshop/d.ipynb"]
    assert store.move("never-chatted.ipynb", "x.ipynb") == 0
    assert len(list((tmp_path / "chats").glob("*.json"))) == 4


async def test_renaming_a_notebook_through_jupyter_moves_its_chat(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path
) -> None:
    (jp_root_dir / "work.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    store = oci_app(jp_serverapp).chat_store
    store.save_request("work.ipynb", RequestRecord(id="r1", mode="chat", prompt="hi"), [])
    await jp_fetch(
        "api",
        "contents",
        "work.ipynb",
        method="PATCH",
        body=json.dumps({"path": "analysis.ipynb"}),
    )
    async with asyncio.timeout(5):  # the listener runs as a task after the rename
        while not store.load("analysis.ipynb")["requests"]:
            await asyncio.sleep(0.02)
    history = json.loads(
        (await jp_fetch("oci", "chat", "history", params={"notebook": "analysis.ipynb"})).body
    )
    assert [r["id"] for r in history["requests"]] == ["r1"]
    assert store.load("work.ipynb")["requests"] == []


async def test_websocket_needs_a_token(jp_ws_fetch: Any, jp_serverapp: Any) -> None:
    with pytest.raises(HTTPClientError) as caught:
        await jp_ws_fetch("oci", "chat", headers={"Authorization": "token nope"})
    assert caught.value.code == 403


async def test_history_needs_a_notebook(jp_fetch: Any, jp_serverapp: Any) -> None:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("oci", "chat", "history")
    assert caught.value.code == 400


# ---- the interpreter loop through the chat ----------------------------------------------------
STEP_ONE = "```python\nvalues = [3, 18, 7, 25]\nprint(values)\n```"
STEP_TWO = "```python\nprint(sum(v > 10 for v in values))\n```"


async def test_two_steps_then_an_answer(tmp_path: Path) -> None:
    outcomes = [{"status": "ok", "output": "[3, 18, 7, 25]\n"}, {"status": "ok", "output": "2\n"}]
    session, browser, engine, store = make_session(
        tmp_path, [STEP_ONE, STEP_TWO, "Two of them are above 10."], outcomes
    )
    await started(engine)
    await session.receive(ask(prompt="look at values, then count those above 10"))
    await finish(browser)
    executes = browser.of("execute")
    # Step 2 goes into a new cell below step 1's ("next"), not over it.
    assert [(e["target"], e["step"], e["attempt"]) for e in executes] == [
        ("new", 1, 1),
        ("next", 2, 1),
    ]
    (done,) = browser.of("done")
    assert (done["status"], done["steps"], done["answer"]) == (
        "success",
        2,
        "Two of them are above 10.",
    )
    assert engine.prompts[2][-1]["content"].startswith("Execution result:\n2\n")
    (record,) = store.load("work.ipynb")["requests"]
    assert [(t["step"], t["attempt"]) for t in record["turns"]] == [(1, 1), (2, 1), (0, 0)]


async def test_the_step_budget_ends_the_request_and_says_so(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(
        tmp_path, [STEP_ONE, STEP_TWO], [{"status": "ok", "output": "[3, 18, 7, 25]\n"}]
    )
    await started(engine)
    await session.receive(ask(max_steps=1))
    await finish(browser)
    (done,) = browser.of("done")
    assert (done["status"], done["budget"], done["steps"]) == ("success", "steps", 1)
    assert "step budget" in done["message"]
    assert (done["code"], done["params"]) == ("step_budget", {"steps": 1})
    assert len(browser.of("execute")) == 1


async def test_read_results_off_stops_at_the_first_success(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, [FIXED, ANSWER], [OK_OUTCOME])
    await started(engine)
    await session.receive(ask(read_results=False))
    await finish(browser)
    assert browser.of("done")[0]["status"] == "success"
    assert len(engine.prompts) == 1


async def test_the_server_default_for_reading_results_applies(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, [FIXED, ANSWER], [OK_OUTCOME])
    session.defaults = replace(session.defaults, read_results=False)
    await started(engine)
    await session.receive(ask())
    await finish(browser)
    assert len(engine.prompts) == 1


async def test_generation_stops_where_the_code_block_closes(tmp_path: Path) -> None:
    chatty = "Here:\n```python\nprint(6)\n```\nThis prints six, as you can see " + "blah " * 300
    session, browser, engine, _ = make_session(
        tmp_path, [chatty, ANSWER], [OK_OUTCOME], token_delay=0.002
    )
    await started(engine)
    await session.receive(ask())
    await finish(browser)
    streamed = "".join(m["text"] for m in browser.of("token") if m["turn"] == 1)
    assert streamed == "Here:\n```python\nprint(6)\n```"
    assert engine.prompts[1][-2] == {"role": "assistant", "content": streamed}
    assert engine.running_requests == []


async def test_an_interrupted_run_ends_the_request(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(
        tmp_path, [FIXED, ANSWER], [{"status": "cancelled", "output": ""}]
    )
    await started(engine)
    await session.receive(ask())
    await finish(browser)
    assert browser.of("done")[0]["status"] == "cancelled"
    assert len(engine.prompts) == 1  # the model is not asked to go on after a Stop


async def test_histories_alternate_roles_for_strict_templates(tmp_path: Path) -> None:
    from .doubles import StrictTemplateTestEngine

    engine = StrictTemplateTestEngine(
        [FIXED, ANSWER, NAME_ERROR, FIXED, ANSWER, FIXED, FIXED, "Done."], context_length=8192
    )
    store = ChatStore(tmp_path / "chats")
    browser = Browser([OK_OUTCOME, ERROR_OUTCOME, OK_OUTCOME, OK_OUTCOME, OK_OUTCOME])
    session = ChatSession(engine, store, browser.send, outcome_grace=0.5)
    browser.session = session
    await started(engine)
    # Request 1 answers in words, request 2 fixes and answers, request 3 stops at a success
    # (reading off): its memory ends on a result, and request 4 must still alternate.
    for index, fields in enumerate([{}, {}, {"read_results": False}, {}], start=1):
        browser.done.clear()
        await session.receive(ask(f"r{index}", f"request {index}", **fields))
        await finish(browser)
    statuses = [d["status"] for d in browser.of("done")]
    assert statuses == ["success"] * 4
    conversation = store.load("work.ipynb")["conversation"]
    roles = [m["role"] for m in conversation]
    assert all(a != b for a, b in itertools.pairwise(roles))
    # Request 3's last result was joined to request 4's prompt once, not twice.
    assert sum(m["content"].count("Execution result:\n6") for m in conversation) == 4


async def test_a_message_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    from oci_jupyter.chat.protocol import MAX_MESSAGE_BYTES

    session, browser, engine, _ = make_session(tmp_path, [FIXED], [])
    await started(engine)
    await session.receive(ask(prompt="x" * (MAX_MESSAGE_BYTES + 1)))
    assert "bytes" in browser.of("error")[0]["message"]
    await session.receive(ask("r2", read_results=False))  # the connection stays usable
    while not browser.of("execute"):
        await asyncio.sleep(0.01)
    assert browser.of("execute")[0]["id"] == "r2"
    session.cancel("r2")
    await finish(browser)


async def test_concurrent_requests_per_connection_are_capped(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, ["word " * 500], [], token_delay=0.01)
    session.max_running = 2
    await started(engine)
    for name in ("a", "b", "c"):
        await session.receive(ask(name, notebook=f"{name}.ipynb"))
    refused = [d for d in browser.of("done") if d["id"] == "c"]
    assert len(refused) == 1
    assert "at most 2" in refused[0]["message"]
    assert (refused[0]["code"], refused[0]["params"]) == ("too_many_requests", {"count": 2})
    await session.close()
    assert sorted(d["id"] for d in browser.of("done")) == ["a", "b", "c"]


def test_a_corrupted_chat_file_is_set_aside_not_deleted(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chats")
    store.save_request("n.ipynb", RequestRecord(id="r1", mode="chat", prompt="hi"), [])
    (path,) = (tmp_path / "chats").glob("*.json")
    path.write_text("[1, 2, 3]")  # valid JSON, but not a chat record
    assert store.load("n.ipynb")["requests"] == []
    (aside,) = (tmp_path / "chats").glob("*.bak")
    assert aside.read_text() == "[1, 2, 3]"
    store.save_request("n.ipynb", RequestRecord(id="r2", mode="chat", prompt="again"), [])
    assert [r["id"] for r in store.load("n.ipynb")["requests"]] == ["r2"]


# ---- reading the notebook before the user asks --------------------------------------------
class PrefillRecordingTestEngine(ScriptedTestEngine):
    """A scripted engine with the llama.cpp engine's ``prefill``, recording what it is given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prefilled: list[list[dict[str, str]]] = []
        self.owners: list[object] = []
        self.dropped: list[object] = []

    def prefill(self, messages: list[dict[str, str]], owner: object = None) -> bool:
        self.prefilled.append([dict(m) for m in messages])
        self.owners.append(owner)
        return True

    def drop_prefills(self, owner: object = None) -> None:
        self.dropped.append(owner)


async def test_a_prefill_reads_what_the_next_request_begins_with(tmp_path: Path) -> None:
    engine = PrefillRecordingTestEngine([FIXED, ANSWER])
    browser = Browser([OK_OUTCOME])
    session = ChatSession(engine, ChatStore(tmp_path / "chats"), browser.send, outcome_grace=0.5)
    browser.session = session
    await started(engine)
    context = {"cells": [{"source": "data = [1, 2, 3]", "label": "In [1]", "active": True}]}
    prefill = json.dumps({"type": "prefill", "notebook": "work.ipynb", "context": context})
    await session.receive(prefill)
    await session.receive(prefill)  # unchanged: read once
    assert len(engine.prefilled) == 1
    (prefilled,) = engine.prefilled
    assert prefilled[-1]["content"].endswith("Request:\n")
    assert "data = [1, 2, 3]" in prefilled[-1]["content"]
    assert browser.sent == []  # a prefill is never answered

    await session.receive(ask(context=context))
    await finish(browser)
    asked = engine.prompts[0]
    # The request's prompt begins with exactly what was read: only its own words are new.
    assert asked[:-1] == prefilled[:-1]
    assert asked[-1]["content"].startswith(prefilled[-1]["content"])


async def test_no_prefill_while_a_request_runs(tmp_path: Path) -> None:
    engine = PrefillRecordingTestEngine(["word " * 300], token_delay=0.01)
    browser = Browser([])
    session = ChatSession(engine, ChatStore(tmp_path / "chats"), browser.send, outcome_grace=0.5)
    browser.session = session
    await started(engine)
    await session.receive(ask())
    while not browser.of("token"):
        await asyncio.sleep(0.01)
    await session.receive(json.dumps({"type": "prefill", "notebook": "work.ipynb"}))
    assert engine.prefilled == []
    session.cancel("r1")
    await finish(browser)


async def test_a_silent_step_gets_its_assigned_values_back_to_the_model(tmp_path: Path) -> None:
    step = "```python\nsums = {'north': sum(north)}\nbest = max(sums, key=sums.get)\n```"
    silent = {"status": "ok", "output": "", "values": {"sums": "{'north': 62}", "best": "'north'"}}
    session, browser, engine, _ = make_session(
        tmp_path, [step, "The north list has the largest sum."], [silent]
    )
    await started(engine)
    await session.receive(ask(prompt="which list has the largest sum?"))
    await finish(browser)
    (execute,) = browser.of("execute")
    # The browser is told which names to look up if the run prints nothing.
    assert execute["inspect"] == ["sums", "best"]
    feedback = engine.prompts[1][-1]["content"]
    assert "printed nothing" in feedback
    assert "sums = {'north': 62}\nbest = 'north'" in feedback
    (done,) = browser.of("done")
    assert (done["status"], done["answer"]) == ("success", "The north list has the largest sum.")


@pytest.mark.parametrize(
    "values",
    [{"x": "v" * 5000}, {f"n{i}": "1" for i in range(50)}, {"x": 3}],
    ids=["value too long", "too many names", "not text"],
)
async def test_outcome_values_out_of_bounds_are_refused(
    tmp_path: Path, values: dict[str, Any]
) -> None:
    session, browser, engine, _ = make_session(tmp_path, [FIXED], [])
    await started(engine)
    outcome = {"type": "outcome", "id": "r1", "turn": 1, "status": "ok", "values": values}
    await session.receive(json.dumps(outcome))
    (error,) = browser.of("error")
    assert "values" in error["message"]
