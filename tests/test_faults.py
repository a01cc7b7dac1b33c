"""Nothing lost: each fault injected against a real Jupyter server (in-process, with the
scripted engine of tests/faults.py; the %%oci magic's in its own process with a real kernel;
one with the real model). Every test ends with :func:`tests.faults.assert_survived` (or
:func:`tests.faults.record_survival`): Jupyter answers, nothing runs, every request has its
one ``done``, every request that started has its record, and the notebooks are untouched.

The browser's side of these faults (the user's own cell running, the user typing in the
refined cell, a kernel restart) runs in Chromium in ui-tests/tests/nothing-lost.spec.ts;
here the server gets what the browser sends then. ``python benchmarks/faults.py`` runs this
file and prints the table."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oci_jupyter import chat_handlers
from oci_jupyter.chat import ChatSession
from oci_jupyter.chat.protocol import MAX_MESSAGE_BYTES, MAX_TEXT
from oci_jupyter.prompts.feedback import EDITED_NOTE
from oci_jupyter.texts import text

from .faults import (
    ANSWER,
    ERROR_OUTCOME,
    FIXED,
    FUZZ_NOTEBOOK,
    KERNEL_DIED,
    KERNEL_RESTARTED,
    LONG,
    NAME_ERROR,
    OK_OUTCOME,
    ChatClient,
    Json,
    Server,
    assert_survived,
    fuzz_chat,
    fuzz_completions,
    is_,
    nth,
    oversized_ask,
    record_survival,
)
from .helpers import sse_events, wait_for_state
from .kernels import Kernel, ipykernel
from .magic_kernel import Script
from .servers import RunningServer

OUTCOME_GRACE = 0.3
"""Seconds the server waits for an outcome past the time limit (30 by default)."""

BUSY_HERE = str(text("busy_here"))
BUSY_ELSEWHERE = str(text("busy_elsewhere"))


@pytest.fixture
def jp_server_config(tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    oci: dict[str, Any] = {
        "engine_class": "tests.faults.RaisingTestEngine",
        "engine_kwargs": {"replies": [FIXED]},
        "chat_dir": str(tmp_path / "chats"),
    }
    if request.node.get_closest_marker("model"):
        oci = {
            "engine": "llamacpp",
            "model_path": str(request.getfixturevalue("bundled_model")),
            "n_ctx": 4096,
            "chat_dir": str(tmp_path / "chats"),
            "default_temperature": 0.0,
        }
    return {"ServerApp": {"jpserver_extensions": {"oci_jupyter": True}}, "OCI": oci}


@pytest.fixture
def server(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    jp_root_dir: Path,
    jp_http_port: int,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Server:
    # A short grace: a wait that still had its deadline would end within the tests' sleeps.
    monkeypatch.setattr(
        chat_handlers,
        "ChatSession",
        functools.partial(ChatSession, outcome_grace=OUTCOME_GRACE),
    )
    return Server(
        jp_fetch,
        jp_ws_fetch,
        jp_serverapp,
        jp_root_dir,
        jp_http_port,
        jp_base_url,
        dict(jp_auth_header),
    )


def statuses(client: ChatClient, request_id: str) -> list[str]:
    return [m["state"] for m in client.of("turn", request_id)]


# ---- Stop in each state of the loop ----------------------------------------------------------
STOP_STATES = [
    "asked",
    "generating",
    "first token",
    "mid-stream",
    "execute",
    "queued",
    "running",
    "refining",
    "answering",
    "twice",
    "after done",
]


@pytest.mark.parametrize("state", STOP_STATES)
async def test_stop_in_each_state(server: Server, state: str) -> None:
    await server.ready()
    engine = server.engine
    outcomes: list[Json] = []
    fields: dict[str, Any] = {}
    replies = [LONG]
    if state in ("execute", "queued", "running"):
        replies = [FIXED]
        fields["time_limit"] = 0.2  # the deadline would fall within the test
    elif state == "refining":
        replies, outcomes = [NAME_ERROR, LONG], [ERROR_OUTCOME]
    elif state == "answering":
        replies, outcomes = [FIXED, LONG], [OK_OUTCOME]
    elif state == "after done":
        replies, outcomes, fields["read_results"] = [FIXED], [OK_OUTCOME], False
    engine.script(replies, token_delay=0.01)
    client = await server.connect("tab", outcomes)
    request = "r1"
    if state == "generating":
        client.cancel_on(request, is_("turn", request, state="generating"))
    elif state in ("first token", "twice"):
        client.cancel_on(request, is_("token", request))
        if state == "twice":
            client.cancel_on(request, nth(is_("token", request), 2))
    elif state == "mid-stream":
        client.cancel_on(request, nth(is_("token", request), 20))
    elif state == "execute":
        client.cancel_on(request, is_("execute", request))
    elif state == "queued":
        client.when(is_("execute", request), lambda m: client.progress(m, "queued"))
    elif state == "running":
        client.when(is_("execute", request), lambda m: client.progress(m, "running"))
    elif state == "refining":
        client.cancel_on(request, is_("turn", request, turn=2, state="generating"))
    elif state == "answering":
        client.cancel_on(request, is_("token", request, turn=2))
    elif state == "after done":
        client.cancel_on(request, is_("done", request))
    client.ask(request, **fields)
    if state == "asked":
        client.cancel(request)
    if state in ("queued", "running"):
        await client.wait_for(is_("execute", request))
        # Queued: no deadline, however long the user's cell runs (past the time limit and
        # the grace). Running: the time limit counts again, from now.
        await asyncio.sleep(0.8 if state == "queued" else 0.1)
        assert client.dones(request) == []
        assert statuses(client, request)[-1] == ("queued" if state == "queued" else "executing")
        client.cancel(request)
    stopped = time.monotonic()
    done = await client.done(request, timeout=5)
    assert time.monotonic() - stopped < 2.5, "Stop must land within the cancel grace"
    assert done["status"] == ("success" if state == "after done" else "cancelled"), done
    if state in ("first token", "mid-stream", "twice"):
        assert 0 < len(client.of("token", request)) < 100
    if state in ("execute", "queued", "running"):
        # The notebook's report of the run comes late: nothing waits for it any more.
        client.outcome(client.of("execute", request)[0], **OK_OUTCOME)
    await assert_survived(server, f"Stop: {state}")
    assert len(client.dones(request)) == 1


# ---- the engine fails mid-stream -------------------------------------------------------------
@pytest.mark.parametrize("failure", ["engine", "bug", "death"])
async def test_the_engine_raising_mid_stream(server: Server, failure: Any) -> None:
    await server.ready()
    server.engine.script([LONG], token_delay=0.002, raise_after=5, failure=failure)
    client = await server.connect()
    client.ask("r1")
    done = await client.done("r1")
    assert done["status"] == "error", done
    assert client.text("r1") == "word word word word word"
    if failure == "death":
        assert "died" in done["message"]
        code, body = await server.get("oci", "status")
        assert body["state"] == "error"
        code, body = await server.get("oci", "restart", method="POST", body="")
        assert code == 202, body
        await wait_for_state(server.serverapp, "ready", timeout=10)
    elif failure == "bug":
        assert "RuntimeError" in done["message"]
    (record,) = await server.history("work.ipynb")
    assert record["status"] == "error"
    await assert_survived(server, f"engine raises mid-stream ({failure})")


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("failure", ["engine", "bug"])
async def test_the_engine_raising_mid_stream_on_v1(
    server: Server, failure: Any, stream: bool
) -> None:
    await server.ready()
    server.engine.script([LONG], raise_after=5, failure=failure)
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": stream}
    code, reply = await _post_completion(server, body)
    if stream:
        assert code == 200
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in reply if "choices" in e)
        assert text == "word word word word word"
        errors = [e for e in reply if isinstance(e, dict) and "error" in e]
        # In-band, as OpenAI servers do; an engine's own bug too (Engine.stream_chat
        # turns it into an EngineError).
        assert [e["error"]["type"] for e in errors] == ["engine_error"], reply[-3:]
        assert reply[-1] != "[DONE]"
        if failure == "bug":
            assert "RuntimeError" in errors[0]["error"]["message"]
    else:
        assert code == 500, reply
        assert reply["error"]["type"] == "engine_error"
    await assert_survived(server, f"engine raises mid-stream on /oci/v1 ({failure}, {stream=})")


async def _post_completion(server: Server, body: Json) -> tuple[int, Any]:
    """Status and the JSON body, or the server-sent events of a stream."""
    code, raw = await server.request(
        "oci", "v1", "chat", "completions", method="POST", body=json.dumps(body)
    )
    if body.get("stream") and code == 200:
        return code, sse_events(raw.decode())
    return code, json.loads(raw)


# ---- the client goes away --------------------------------------------------------------------
@pytest.mark.parametrize("how", ["close", "drop"])
@pytest.mark.parametrize("moment", ["mid-stream", "mid-run"])
async def test_the_client_going_away_then_coming_back(
    server: Server, moment: str, how: str
) -> None:
    """Closing the tab (a websocket close) or losing the network (the TCP connection drops
    without one), while the model writes or while the cell runs; then a new connection."""
    await server.ready()
    server.engine.script([LONG] if moment == "mid-stream" else [FIXED], token_delay=0.01)
    first = await server.connect("first", [])
    first.ask("r1")
    seen = await first.wait_for(
        nth(is_("token", "r1"), 10) if moment == "mid-stream" else is_("execute", "r1")
    )
    await (first.close() if how == "close" else first.drop())

    app = server.app
    async with asyncio.timeout(5):  # the server notices, stops the request, frees the notebook
        while app.chat_notebooks.holder("work.ipynb") or app.engine.running_requests:
            await asyncio.sleep(0.02)
    again = await server.connect("again", [OK_OUTCOME])
    (record,) = await server.history("work.ipynb")
    assert (record["id"], record["status"]) == ("r1", "cancelled")
    if moment == "mid-run":
        # The old tab's run reports late, on the new connection: nothing waits for it.
        again.outcome(seen, **OK_OUTCOME)
    server.engine.script([FIXED, ANSWER])
    again.ask("r2")
    assert (await again.done("r2"))["status"] == "success"
    assert [r["id"] for r in await server.history("work.ipynb")] == ["r1", "r2"]
    await assert_survived(server, f"client {how}s {moment}, then reconnects")


# ---- malformed messages ----------------------------------------------------------------------
async def test_fuzzed_websocket_messages(server: Server) -> None:
    await server.ready()
    sent = await asyncio.to_thread(fuzz_chat, server.ws_url, server.headers, 40)
    # The server still chats, on a new connection and with the notebook the fuzz named.
    client = await server.connect("after", [OK_OUTCOME])
    client.ask("after", notebook=FUZZ_NOTEBOOK, read_results=False)
    assert (await client.done("after"))["status"] == "success"
    # Only the two normal requests left records: none of the refused ones.
    assert [r["id"] for r in await server.history(FUZZ_NOTEBOOK)] == ["after-fuzz", "after"]
    await assert_survived(server, "malformed websocket messages (fuzzed)", sent)


MALFORMED_REPORTS: list[tuple[str, Any]] = [
    ("turn", "1"),
    ("turn", None),
    ("status", "fine"),
    ("status", 1),
    ("output", ["6"]),
    ("error", "NameError"),
    ("error", {"ename": 1}),
    ("seconds", "fast"),
    ("source", 7),
    ("output", "o" * (MAX_TEXT + 1)),
]


async def test_malformed_reports_while_a_request_waits(server: Server) -> None:
    """The notebook's reports of a waiting request, broken: each is refused, none ends the
    request or starts another; the real report then goes through."""
    await server.ready()
    server.engine.script([FIXED, ANSWER])
    client = await server.connect("tab", [])
    client.ask("r1")
    execute = await client.wait_for(is_("execute", "r1"))
    for name, value in MALFORMED_REPORTS:
        client.outcome(execute, **{**OK_OUTCOME, name: value})
    client.send({"type": "progress", "id": "r1", "turn": execute["turn"], "state": "paused"})
    client.send({"type": "progress", "id": "r1", "turn": "1", "state": "queued"})
    client.send({"type": "ask", "id": "r1", "prompt": "again", "notebook": "work.ipynb"})
    client.send({"type": "outcome", "id": "r1", "turn": 99, **OK_OUTCOME})  # not this turn
    errors = len(MALFORMED_REPORTS) + 3
    async with asyncio.timeout(5):
        while len(client.of("error", "r1")) < errors:
            await asyncio.sleep(0.02)
    assert "already running" in client.of("error", "r1")[-1]["message"]
    assert client.dones("r1") == []
    client.outcome(execute, **OK_OUTCOME)
    assert (await client.done("r1"))["status"] == "success"
    await assert_survived(server, "malformed reports while a request waits", errors + 1)


async def test_an_ask_over_the_byte_limit_gets_its_done(server: Server) -> None:
    await server.ready()
    client = await server.connect()
    client.asked["fuzz"] = FUZZ_NOTEBOOK
    client.send(oversized_ask())
    assert "bytes" in (await client.wait_for(is_("error")))["message"]
    done = await client.done("fuzz")
    assert done["status"] == "error"
    assert "bytes" in done["message"]
    await assert_survived(server, f"an ask over {MAX_MESSAGE_BYTES:,} bytes", timeout=2)


async def test_a_message_over_the_transport_limit(server: Server) -> None:
    """Over tornado's own websocket limit (10 MiB): that connection may close; the others
    and the next one do not notice."""
    await server.ready()
    server.engine.script([FIXED, ANSWER], token_delay=0.01)
    other = await server.connect("other", [OK_OUTCOME])
    other.ask("r1")
    big = await server.connect("big")
    big.send(json.dumps({"type": "ask", "id": "big", "prompt": "x" * (11 * 1024 * 1024)}))
    async with asyncio.timeout(10):
        while not big.closed and not big.of("error"):
            await asyncio.sleep(0.02)
    big.left = True  # its socket is gone: its done cannot arrive
    assert (await other.done("r1"))["status"] == "success"
    await assert_survived(server, "a message over the transport limit")


async def test_fuzzed_openai_requests(server: Server) -> None:
    await server.ready()
    url = server.http_url + "oci/v1/chat/completions"
    sent = await asyncio.to_thread(fuzz_completions, url, server.headers, 40)
    code, reply = await _post_completion(
        server, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    )
    assert code == 200, reply
    await assert_survived(server, "malformed /oci/v1 requests (fuzzed)", sent)


# ---- two tabs, many chats --------------------------------------------------------------------
async def test_two_tabs_on_one_notebook(server: Server) -> None:
    await server.ready()
    server.engine.script([FIXED, ANSWER])
    tab_a = await server.connect("A", [])
    tab_b = await server.connect("B", [OK_OUTCOME])
    tab_a.ask("a1")
    execute = await tab_a.wait_for(is_("execute", "a1"))
    told = await tab_b.wait_for(is_("notebook", notebook="work.ipynb"))
    assert told["running"]["id"] == "a1"
    tab_b.ask("b1", notebook="/work.ipynb")  # the same notebook, spelled otherwise
    refused = await tab_b.done("b1")
    assert (refused["status"], refused["message"]) == ("error", BUSY_ELSEWHERE)
    tab_a.ask("a2")
    assert (await tab_a.done("a2"))["message"] == BUSY_HERE
    late = await server.connect("C")  # a tab opened now hears what runs at once
    assert (await late.wait_for(is_("notebook")))["running"]["id"] == "a1"
    tab_a.outcome(execute, **OK_OUTCOME)
    assert (await tab_a.done("a1"))["status"] == "success"
    await tab_b.wait_for(lambda m: is_("notebook")(m) and m["running"] is None)
    server.engine.script([FIXED, ANSWER])
    tab_b.ask("b2")
    assert (await tab_b.done("b2"))["status"] == "success"
    assert tab_a.of("notebook")[-1] == {
        "type": "notebook",
        "notebook": "work.ipynb",
        "running": None,
    }
    assert [r["id"] for r in await server.history("work.ipynb")] == ["a1", "b2"]
    await assert_survived(server, "two tabs on one notebook", 2)


async def test_twenty_chats_on_five_notebooks(server: Server) -> None:
    notebooks = [f"nb{i}.ipynb" for i in range(5)]
    await server.ready(notebooks)
    server.engine.script([FIXED], token_delay=0.005)
    clients = [await server.connect(f"tab{i}", [OK_OUTCOME] * 40) for i in range(20)]

    async def chat(index: int) -> str:
        client, notebook = clients[index], notebooks[index % 5]
        for attempt in range(1, 40):
            mark = len(client.received)
            request_id = client.ask(f"c{index}-{attempt}", notebook=notebook, read_results=False)
            done = await client.done(request_id, timeout=30)
            if done["status"] == "success":
                return request_id
            assert (done["status"], done["message"]) == ("error", BUSY_ELSEWHERE), done
            # Wait until the notebook is free again, then ask again.
            await client.wait_for(
                lambda m: is_("notebook", notebook=notebook)(m) and m["running"] is None,
                timeout=30,
                after=mark,
            )
        raise AssertionError(f"tab{index} never got its turn")

    succeeded = await asyncio.gather(*(chat(i) for i in range(20)))
    for notebook in notebooks:
        records = await server.history(notebook)
        assert len(records) == 4, records
        assert {r["status"] for r in records} == {"success"}
        assert {r["id"] for r in records} <= set(succeeded)
    await assert_survived(server, "20 concurrent chats on 5 notebooks", 20)


# ---- what the notebook reports (the browser's faults, as the server sees them) --------------
async def test_a_user_cell_running_when_the_chat_asks(server: Server) -> None:
    """The loop's cell waits behind the user's (``queued``) past the time limit and the
    grace; it runs once the user's cell ends (``running``)."""
    await server.ready()
    server.engine.script([FIXED, ANSWER])
    client = await server.connect("tab", [])
    client.ask("r1", time_limit=0.2)
    execute = await client.wait_for(is_("execute", "r1"))
    client.progress(execute, "queued")
    await client.wait_for(is_("turn", "r1", state="queued"))
    await asyncio.sleep(1.0)  # the user's cell runs long
    assert client.dones("r1") == []
    client.progress(execute, "running")
    await client.wait_for(nth(is_("turn", "r1", state="executing"), 2))
    client.outcome(execute, **OK_OUTCOME)
    done = await client.done("r1")
    assert done["status"] == "success", done
    assert statuses(client, "r1") == [
        "generating",
        "executing",
        "queued",
        "executing",
        "ok",
        "generating",
    ]
    await assert_survived(server, "a user cell running when the chat asks")


@pytest.mark.parametrize("waiting", ["executing", "queued"])
async def test_a_kernel_restart_while_the_loop_waits(server: Server, waiting: str) -> None:
    await server.ready()
    server.engine.script([FIXED, ANSWER])
    client = await server.connect("tab", [])
    client.ask("r1")
    execute = await client.wait_for(is_("execute", "r1"))
    if waiting == "queued":
        client.progress(execute, "queued")
        await client.wait_for(is_("turn", "r1", state="queued"))
    client.outcome(execute, **KERNEL_RESTARTED)
    done = await client.done("r1")
    assert (done["status"], done["message"]) == (
        "error",
        "The kernel restarted before the cell was run.",
    )
    assert len(client.of("execute", "r1")) == 1  # no second attempt on a restarted kernel
    (record,) = await server.history("work.ipynb")
    assert record["status"] == "error"
    await assert_survived(server, f"kernel restarted while the loop waits ({waiting})")


async def test_the_kernel_dying_mid_run(server: Server) -> None:
    await server.ready()
    server.engine.script([FIXED, ANSWER])
    client = await server.connect("tab", [])
    client.ask("r1")
    execute = await client.wait_for(is_("execute", "r1"))
    client.progress(execute, "running")
    client.outcome(execute, **KERNEL_DIED)
    done = await client.done("r1")
    assert (done["status"], done["message"]) == ("error", KERNEL_DIED["error"]["evalue"])
    await assert_survived(server, "kernel dies mid-run")


async def test_the_user_editing_the_cell_the_loop_refines(server: Server) -> None:
    """The user types in the loop's cell before it runs: the outcome carries the source that
    ran. The model reads that source, and the history keeps it (the user's words are not
    lost); the next refinement replaces the cell in the browser, where undo brings it back."""
    await server.ready()
    server.engine.script([NAME_ERROR, FIXED, ANSWER])
    edited = "print(totl)  # the user's note\n"
    client = await server.connect("tab", [{**ERROR_OUTCOME, "source": edited}, OK_OUTCOME])
    client.ask("r1")
    done = await client.done("r1")
    assert done["status"] == "success", done
    second = [e["target"] for e in client.of("execute", "r1")]
    assert second == ["new", "replace"]
    feedback = server.engine.prompts[1][-1]["content"]
    assert feedback.startswith(EDITED_NOTE)
    assert "print(totl)  # the user's note" in feedback
    (record,) = await server.history("work.ipynb")
    lost = [] if record["turns"][0]["code"] == edited else ["the user's edit is not in the history"]
    await assert_survived(server, "the user edits the refined cell", cells_lost=lost)


# ---- the %%oci magic in a real kernel, its server in another process ------------------------
def _server_problems(server: RunningServer) -> list[str]:
    """Jupyter answers and nothing runs on the server (within 5 s)."""
    problems = []
    try:
        server.get("api", "status")
    except Exception as exc:
        problems.append(f"GET /api/status failed: {exc!r}")
    deadline = time.monotonic() + 5
    while (running := server.get("oci", "status")["running_requests"]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    if running:
        problems.append(f"running_requests is {running}")
    return problems


def _died(kernel: Kernel, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while kernel.manager.is_alive():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def fresh_kernel(scripted_server: RunningServer) -> Iterator[Kernel]:
    with ipykernel(scripted_server.kernel_env()) as kernel:
        assert kernel.run("%load_ext oci_jupyter").status == "ok"
        yield kernel


def _still_works(server: RunningServer, script: Script) -> list[str]:
    """A new kernel's %%oci gets its answer from the same server."""
    script.set(["```python\nprint(6 * 7)\n```", "42."])
    with ipykernel(server.kernel_env()) as kernel:
        kernel.run("%load_ext oci_jupyter")
        run = kernel.run("%%oci\nsix times seven", timeout=60)
    return [] if run.final_markdown[-1:] == ["42."] else [f"%%oci afterwards: {run.text[-500:]}"]


def test_magic_code_that_kills_the_kernel(
    scripted_server: RunningServer,
    script: Script,
    fresh_kernel: Kernel,
) -> None:
    script.set(["```python\nimport os\nos._exit(1)\n```", "unused"])
    fresh_kernel.start("%%oci\nend it all")
    problems = [] if _died(fresh_kernel) else ["the kernel did not end: the cell hangs"]
    problems += _server_problems(scripted_server)
    problems += _still_works(scripted_server, script)
    record_survival("%%oci: generated code kills the kernel", 1, problems, requests=1)


def test_magic_code_that_exits(
    scripted_server: RunningServer,
    script: Script,
    fresh_kernel: Kernel,
) -> None:
    """``sys.exit()`` in generated code is an error the magic reports (and refines), not
    the kernel's end."""
    script.set(
        ["```python\nimport sys\nsys.exit(3)\n```", "```python\nprint('still here')\n```", "Done."]
    )
    run = fresh_kernel.run("%%oci\nend it", timeout=60)
    problems = []
    if "SystemExit" not in script.prompts[1][-1]["content"]:
        problems.append("the model was not told of the SystemExit")
    if "still here" not in run.text or run.final_markdown[-1] != "Done.":
        problems.append(f"the magic did not carry on: {run.text[-500:]}")
    if fresh_kernel.run("print(1 + 1)").text.strip() != "2":
        problems.append("the kernel is gone")
    problems += _server_problems(scripted_server)
    record_survival("%%oci: generated code calls sys.exit", 1, problems, requests=1)


def test_magic_kernel_dying_mid_stream(
    scripted_server: RunningServer,
    script: Script,
    fresh_kernel: Kernel,
) -> None:
    """The kernel is killed (SIGKILL, as the out-of-memory killer does) while the server
    streams it a reply: the server notices the connection go and stops generating."""
    script.set(["word " * 3000])  # ~6 s at 2 ms a token
    pid = int(fresh_kernel.value("__import__('os').getpid()"))
    fresh_kernel.start("%%oci\nwrite a lot")
    deadline = time.monotonic() + 30
    while not scripted_server.get("oci", "status")["running_requests"]:
        assert time.monotonic() < deadline, "the reply never started streaming"
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    problems = [] if _died(fresh_kernel) else ["the kernel did not end"]
    problems += _server_problems(scripted_server)
    problems += _still_works(scripted_server, script)
    record_survival("%%oci: kernel killed mid-stream", 1, problems, requests=1)


# ---- with the real model -----------------------------------------------------------------
@pytest.mark.model
async def test_real_model_stop_and_drop_mid_stream(server: Server) -> None:
    """llama.cpp's own cancellation: Stop on the first token, then a connection dropped
    mid-stream; the engine is free afterwards."""
    await server.ready(timeout=300)
    tab = await server.connect("tab", [])
    tab.cancel_on("r1", is_("token", "r1"))
    tab.ask("r1", prompt="Write a long poem about the sea.")
    done = await tab.done("r1", timeout=300)
    assert done["status"] == "cancelled"
    dropped = await server.connect("dropped", [])
    dropped.drop_on(nth(is_("token", "r2"), 3))
    dropped.ask("r2", prompt="Write a long poem about the mountains.")
    async with asyncio.timeout(300):
        while not dropped.closed:
            await asyncio.sleep(0.1)
    statuses_on_disk = [r["status"] for r in await server.history("work.ipynb")]
    await assert_survived(
        server, "real model: Stop and drop mid-stream", 2, probe="completion", timeout=30
    )
    assert statuses_on_disk[0] == "cancelled"


# ---- the server never dies or freezes (issue 25) ---------------------------------------------
async def _slowest_status(server: Server, until: asyncio.Future[Any]) -> float:
    """``GET /api/status`` every 50 ms until ``until`` is done: the slowest answer (s)."""
    slowest = 0.0
    while not until.done():
        started = time.monotonic()
        code, _ = await server.get("api", "status")
        assert code == 200
        slowest = max(slowest, time.monotonic() - started)
        await asyncio.sleep(0.05)
    return slowest


async def test_a_fix_of_forty_thousand_open_brackets(server: Server) -> None:
    """Parsing the failing cell once froze the event loop for 54 s (a quadratic pattern)."""
    await server.ready()
    server.engine.script([FIXED, ANSWER])
    client = await server.connect("tab", [OK_OUTCOME] * 3)
    cell = {"source": "\n" * 40_000 + "(", "error": ERROR_OUTCOME["error"]}
    client.ask(
        "fix", prompt="", mode="fix", cell=cell, context={"cells": [{**cell, "active": True}]}
    )
    done = asyncio.ensure_future(client.done("fix", timeout=60))
    slowest = await _slowest_status(server, done)
    finished = await done
    assert finished["status"] == "success", json.dumps(finished)[:600]
    assert slowest < 2, f"/api/status waited {slowest:.1f} s"
    await assert_survived(server, "a fix of 40,000 newlines and '('")


async def test_a_websocket_message_nested_too_deep(server: Server) -> None:
    await server.ready()
    server.engine.script([FIXED, ANSWER])
    client = await server.connect("tab", [OK_OUTCOME] * 3)
    client.send("[" * 200_000)
    error = await client.wait_for(is_("error"))
    assert error["code"] == "not_json"
    client.ask("after")  # the same connection still chats
    assert (await client.done("after"))["status"] == "success"
    await assert_survived(server, "a websocket message nested 200,000 deep")


async def test_tokenize_refuses_deep_nesting_and_too_many_characters(server: Server) -> None:
    await server.ready()
    nested = json.dumps({"texts": ["x"]}).replace('["x"]', "[" * 100_000 + "]" * 100_000)
    code, body = await server.get("oci", "tokenize", method="POST", body=nested)
    assert code == 400, body
    assert body["error"]["code"] == "invalid_json", body
    huge = json.dumps({"texts": ["x" * 300_000, "y" * 300_000]})
    code, body = await server.get("oci", "tokenize", method="POST", body=huge)
    assert code == 400, body
    assert body["error"]["code"] == "too_many_characters", body
    code, body = await server.get(
        "oci", "tokenize", method="POST", body=json.dumps({"texts": ["print(1)"]})
    )
    assert code == 200
    assert len(body["counts"]) == 1
    await assert_survived(server, "/oci/tokenize: nested 100,000 deep; 600,000 characters", 2)


async def test_slow_token_counts_never_hold_the_history(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight slow counts in flight: the chat history and the chat answer as if none were."""
    await server.ready()
    engine = server.engine

    def slow_count(text: str) -> int:
        time.sleep(1.0)
        return len(text) // 4

    monkeypatch.setattr(engine, "count_tokens", slow_count)
    body = json.dumps({"texts": ["x" * 1000]})
    counts = [
        asyncio.ensure_future(server.get("oci", "tokenize", method="POST", body=body))
        for _ in range(8)
    ]
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await server.history("work.ipynb")
    waited = time.monotonic() - started
    for count in counts:
        assert (await count)[0] == 200
    assert waited < 0.5, f"the history waited {waited:.1f} s behind token counting"
    monkeypatch.undo()
    await assert_survived(server, "8 slow /oci/tokenize requests, the history read meanwhile", 8)


@pytest.mark.model
async def test_real_model_restart_while_tokens_are_counted(server: Server) -> None:
    """Restart model while /oci/tokenize and a chat count tokens: llama.cpp freed the model
    under the counting threads and the whole Jupyter process died (a segfault)."""
    await server.ready(timeout=300)
    body = json.dumps({"texts": ["def total(values):\n    return sum(values)\n" * 50] * 20})
    stop = asyncio.Event()
    answered: dict[int, int] = {}

    async def hammer() -> None:
        while not stop.is_set():
            code, _ = await server.get("oci", "tokenize", method="POST", body=body)
            answered[code] = answered.get(code, 0) + 1
            assert code in (200, 503), code

    hammers = [asyncio.ensure_future(hammer()) for _ in range(4)]
    tab = await server.connect("tab", [OK_OUTCOME] * 10)
    restarts = 3
    for round_ in range(restarts):
        tab.ask(f"r{round_}", prompt="Print the sum of 1 to 10.")
        await asyncio.sleep(0.3)
        code, _ = await server.get("oci", "restart", method="POST", body="")
        assert code in (202, 409), code
        await wait_for_state(server.serverapp, "ready", timeout=120)
        await tab.done(f"r{round_}", timeout=300)
    stop.set()
    await asyncio.gather(*hammers)
    assert answered.get(200), answered
    await assert_survived(
        server,
        f"real model: restart x{restarts} while /oci/tokenize and a chat count tokens",
        restarts,
        probe="completion",
        timeout=60,
    )


@pytest.mark.model
async def test_real_model_ten_prefills_and_a_disconnect(server: Server) -> None:
    """Ten background prefills then a closed tab kept the engine busy for 11 minutes."""
    await server.ready(timeout=300)
    tab = await server.connect("tab", [])
    for i in range(10):
        cells = [{"source": f"values_{i}_{j} = list(range({j}))\n" * 40} for j in range(8)]
        tab.send({"type": "prefill", "notebook": "work.ipynb", "context": {"cells": cells}})
    await asyncio.sleep(0.5)
    await tab.drop()
    engine = server.app.engine
    started = time.monotonic()
    async with asyncio.timeout(30):
        while engine.busy:
            await asyncio.sleep(0.05)
    idle_after = time.monotonic() - started
    await assert_survived(
        server,
        f"real model: 10 prefills and a disconnect (idle {idle_after:.1f} s after)",
        10,
        probe="completion",
        timeout=30,
    )


async def test_a_notebook_deleted_with_its_chat(server: Server) -> None:
    """A deleted notebook's chat went on living, and a new notebook at its path inherited it
    (issue 25 §4): Jupyter's delete removes it."""
    await server.ready(["doomed.ipynb"])
    server.engine.script([FIXED, ANSWER])
    client = await server.connect("tab", [OK_OUTCOME])
    client.ask("r1", prompt="password = 'hunter2'; print a total", notebook="doomed.ipynb")
    assert (await client.done("r1"))["status"] == "success"
    assert len(await server.history("doomed.ipynb")) == 1
    code, _ = await server.request("api", "contents", "doomed.ipynb", method="DELETE")
    assert code == 204
    del server.notebooks["doomed.ipynb"]  # deleted on purpose
    client.asked.clear()  # its record went with the notebook
    body = json.dumps({"type": "notebook"})
    code, _ = await server.request("api", "contents", "doomed.ipynb", method="PUT", body=body)
    assert code == 201
    server.notebooks = {k: v for k, v in server.notebooks.items() if k != "doomed.ipynb"}
    assert await server.history("doomed.ipynb") == []
    await assert_survived(server, "a notebook deleted, a new one at its path", probe="chat")
