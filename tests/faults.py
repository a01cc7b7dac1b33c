"""Fault injection for "Nothing lost": a scripted engine that fails mid-stream, a websocket chat
client that plays the browser and injects a fault at a chosen moment, fuzz strategies for the
websocket and ``/oci/v1``, and :func:`assert_survived`, the check every fault ends with.

Used by tests/test_faults.py; benchmarks/faults.py runs that file and prints the table from
:data:`RESULTS` (one :class:`Survival` per fault injected)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import tempfile
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

import nbformat
from hypothesis import strategies as st
from jupyter_server.serverapp import ServerApp
from tornado.httpclient import HTTPClientError
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError

from oci_jupyter.app import OCIExtension
from oci_jupyter.chat.protocol import MAX_MESSAGE_BYTES, MAX_TEXT
from oci_jupyter.engine import Delta, EngineError, GenerationParams, Message, StreamEvent

from .doubles import ScriptedTestEngine
from .helpers import oci_app, wait_for_state

Json = dict[str, Any]
Predicate = Callable[[Json], bool]
Answer = Callable[[Json], Json | None]
"""What the browser stand-in does with an ``execute``: the outcome fields to send back
(``status``, ``output``, ...), or None to leave it unanswered."""

NAME_ERROR = "```python\nprint(totl)\n```"
FIXED = "```python\ntotal = 6\nprint(total)\n```"
ANSWER = "The total is 6."
LONG = "word " * 400
"""A reply without code: 400 words to stop in the middle of."""
OK_OUTCOME: Json = {"status": "ok", "output": "6\n"}
ERROR_OUTCOME: Json = {
    "status": "error",
    "output": "",
    "error": {
        "ename": "NameError",
        "evalue": "name 'totl' is not defined",
        "traceback": ["\x1b[31mNameError\x1b[0m: name 'totl' is not defined"],
    },
}


def kernel_gone(evalue: str) -> Json:
    """The outcome the notebook sends when the cell cannot run (src/notebook.ts)."""
    return {
        "status": "error",
        "output": "",
        "error": {"ename": "KernelUnavailable", "evalue": evalue, "traceback": []},
    }


KERNEL_RESTARTED = kernel_gone("The kernel restarted before the cell was run.")
KERNEL_DIED = kernel_gone("The kernel died while the code ran.")


# ---- the engine ------------------------------------------------------------------------------
Failure = Literal["engine", "bug", "death"]


class RaisingTestEngine(ScriptedTestEngine):
    """The scripted engine, re-scriptable from a test (:meth:`script`), that can fail after
    ``raise_after`` words of a reply: with an :class:`EngineError` (``"engine"``), with an
    unexpected exception (``"bug"``), or by dying (``"death"``: the status turns ``error``
    until ``POST /oci/restart``, after which it answers again)."""

    name = "raising-test"
    title = "test"

    def __init__(
        self,
        *args: Any,
        raise_after: int | None = None,
        failure: Failure = "engine",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.raise_after = raise_after
        self.failure: Failure = failure
        self.raised = 0

    def script(
        self,
        replies: Sequence[str],
        *,
        token_delay: float = 0.0,
        raise_after: int | None = None,
        failure: Failure = "engine",
    ) -> None:
        """Answer with these replies from now on (the first reply for the next generation)."""
        self.replies = list(replies)
        self.prompts.clear()
        self.params.clear()
        self._token_delay = token_delay
        self.raise_after, self.failure = raise_after, failure

    def _reset(self) -> None:
        self.raise_after = None  # restarted: healthy again

    async def _generate(
        self,
        messages: list[Message],
        params: GenerationParams,
        request_id: str,
        cancelled: asyncio.Event,
    ) -> AsyncGenerator[StreamEvent, None]:
        words = 0
        events = super()._generate(messages, params, request_id, cancelled)
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, Delta):
                    if self.raise_after is not None and words >= self.raise_after:
                        self.raised += 1
                        self._fail()
                    words += 1
                yield event

    def _fail(self) -> NoReturn:
        if self.failure == "bug":
            raise RuntimeError("the test engine has a bug")
        if self.failure == "death":
            self._died("the test engine core exited")
            raise EngineError("The test engine died: the test engine core exited")
        raise EngineError("the test engine failed in the middle of a reply")


# ---- predicates ------------------------------------------------------------------------------
def is_(kind: str, request_id: str | None = None, **fields: Any) -> Predicate:
    """A server message of this type (for this request id, with these field values)."""

    def match(message: Json) -> bool:
        return (
            message.get("type") == kind
            and (request_id is None or message.get("id") == request_id)
            and all(message.get(k) == v for k, v in fields.items())
        )

    return match


def nth(predicate: Predicate, n: int) -> Predicate:
    """The n-th message that matches (a predicate with a memory: use it once)."""
    seen = 0

    def match(message: Json) -> bool:
        nonlocal seen
        seen += predicate(message)
        return seen == n and predicate(message)

    return match


# ---- the browser stand-in --------------------------------------------------------------------
class ChatClient:
    """One browser tab on ``/oci/chat``: records every message, answers each ``execute``
    with the next scripted outcome (or by ``answer``), and fires one-shot triggers (cancel,
    drop the socket, ...) when a chosen message arrives, before answering it."""

    def __init__(
        self,
        ws: WebSocketClientConnection,
        name: str,
        outcomes: Sequence[Json] | Answer | None = None,
    ) -> None:
        self.ws = ws
        self.name = name
        self.received: list[Json] = []
        self.asked: dict[str, str] = {}
        """Request id -> notebook, for every ask sent."""
        self.left = False
        """This side closed or dropped the connection (its dones can no longer arrive)."""
        self.closed = False
        self._script = list(outcomes) if isinstance(outcomes, Sequence) else []
        self._answer = outcomes if callable(outcomes) else None
        self._triggers: list[tuple[Predicate, Callable[[Json], object]]] = []
        self._news = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    # ---- sending ---------------------------------------------------------------------------
    def send(self, message: Json | str | bytes) -> None:
        raw = message if isinstance(message, str | bytes) else json.dumps(message)
        try:
            sent = self.ws.write_message(raw, binary=isinstance(raw, bytes))
        except WebSocketClosedError:
            return
        sent.add_done_callback(lambda f: f.cancelled() or f.exception())

    def ask(
        self, request_id: str, prompt: str = "print a total", notebook: str = "work.ipynb", **f: Any
    ) -> str:
        self.asked[request_id] = notebook
        self.send({"type": "ask", "id": request_id, "prompt": prompt, "notebook": notebook, **f})
        return request_id

    def cancel(self, request_id: str) -> None:
        self.send({"type": "cancel", "id": request_id})

    def progress(self, execute: Json, state: Literal["queued", "running"]) -> None:
        turn = execute["turn"]
        self.send({"type": "progress", "id": execute["id"], "turn": turn, "state": state})

    def outcome(self, execute: Json, **fields: Any) -> None:
        self.send({"type": "outcome", "id": execute["id"], "turn": execute["turn"], **fields})

    # ---- faults at a chosen moment -----------------------------------------------------------
    def when(self, predicate: Predicate, action: Callable[[Json], object]) -> None:
        """Run ``action`` once, on the first message that matches (before it is answered)."""
        self._triggers.append((predicate, action))

    def cancel_on(self, request_id: str, predicate: Predicate) -> None:
        self.when(predicate, lambda _: self.cancel(request_id))

    def drop_on(self, predicate: Predicate) -> None:
        self.when(predicate, lambda _: self._drop())

    def _drop(self) -> None:
        """The network goes away: the TCP connection closes without a websocket close."""
        self.left = True
        stream = getattr(self.ws.protocol, "stream", None)
        if stream is not None:
            stream.close()

    async def drop(self) -> None:
        self._drop()
        await self._ended()

    async def close(self) -> None:
        """The tab closes: a clean websocket close."""
        self.left = True
        self.ws.close()
        await self._ended()

    async def _ended(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), 5)

    # ---- receiving -------------------------------------------------------------------------
    async def _read(self) -> None:
        try:
            while True:
                raw = await self.ws.read_message()
                if raw is None:
                    return
                message = json.loads(raw)
                self.received.append(message)
                for trigger in list(self._triggers):
                    if trigger[0](message):
                        self._triggers.remove(trigger)
                        trigger[1](message)
                if message.get("type") == "execute" and not self.left:
                    self._reply(message)
                self._news.set()
        finally:
            self.closed = True
            self._news.set()

    def _reply(self, execute: Json) -> None:
        if self._answer is not None:
            fields = self._answer(execute)
        else:
            fields = self._script.pop(0) if self._script else None
        if fields is not None:
            self.outcome(execute, **fields)

    async def wait_for(self, predicate: Predicate, timeout: float = 10.0, after: int = 0) -> Json:
        """The first message from index ``after`` on that matches, waiting for it."""
        seen = after
        async with asyncio.timeout(timeout):
            while True:
                for message in self.received[seen:]:
                    if predicate(message):
                        return message
                seen = len(self.received)
                if self.closed:
                    raise AssertionError(f"{self.name}: the socket closed; saw {self.tail()}")
                self._news.clear()
                await self._news.wait()

    async def done(self, request_id: str, timeout: float = 10.0) -> Json:
        return await self.wait_for(is_("done", request_id), timeout)

    def of(self, kind: str, request_id: str | None = None) -> list[Json]:
        return [m for m in self.received if is_(kind, request_id)(m)]

    def dones(self, request_id: str) -> list[Json]:
        return self.of("done", request_id)

    def text(self, request_id: str) -> str:
        return "".join(m["text"] for m in self.of("token", request_id))

    def started(self, request_id: str) -> bool:
        """The request ran (a turn began): it must leave a record."""
        return bool(self.of("turn", request_id))

    def tail(self, count: int = 6) -> list[str]:
        return [json.dumps(m)[:160] for m in self.received[-count:]]


# ---- the server ------------------------------------------------------------------------------
def notebook_json(name: str) -> str:
    """A notebook with the user's own work in it: a source and an output that must survive."""
    cell = nbformat.v4.new_code_cell(
        f"# {name}: the user's own cell\nvalues = [3, 1, 2]\nprint(sorted(values))",
        execution_count=1,
        outputs=[nbformat.v4.new_output("stream", name="stdout", text="[1, 2, 3]\n")],
    )
    return nbformat.writes(nbformat.v4.new_notebook(cells=[cell]))


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.ipynb"))}


@dataclass
class Server:
    """The in-process Jupyter server (pytest-jupyter's) and what a fault test needs of it."""

    fetch: Any
    """pytest-jupyter's ``jp_fetch``."""
    ws_fetch: Any
    """pytest-jupyter's ``jp_ws_fetch``."""
    serverapp: ServerApp
    root: Path
    port: int
    base_url: str
    headers: dict[str, str]
    notebooks: dict[str, bytes] = field(default_factory=dict)
    """The notebook files as they were before the fault."""
    clients: list[ChatClient] = field(default_factory=list)

    @property
    def app(self) -> OCIExtension:
        return oci_app(self.serverapp)

    @property
    def engine(self) -> RaisingTestEngine:
        engine = self.app.engine
        assert isinstance(engine, RaisingTestEngine), engine
        return engine

    @property
    def http_url(self) -> str:
        return f"http://localhost:{self.port}{self.base_url}"

    @property
    def ws_url(self) -> str:
        return f"ws://localhost:{self.port}{self.base_url}oci/chat"

    async def ready(self, notebooks: Iterable[str] = ("work.ipynb",), timeout: float = 30) -> None:
        """Write the user's notebooks, remember them, and wait for the engine."""
        for name in notebooks:
            (self.root / name).write_text(notebook_json(name))
        self.notebooks = snapshot(self.root)
        await wait_for_state(self.serverapp, "ready", timeout=timeout)

    async def connect(
        self, name: str = "tab", outcomes: Sequence[Json] | Answer | None = None
    ) -> ChatClient:
        client = ChatClient(await self.ws_fetch("oci", "chat"), name, outcomes)
        self.clients.append(client)
        return client

    async def request(self, *parts: str, **kwargs: Any) -> tuple[int, bytes]:
        """Status and body, whatever the status."""
        try:
            response = await self.fetch(*parts, **kwargs)
        except HTTPClientError as exc:
            if exc.response is None:
                return exc.code, b""
            response = exc.response
        return response.code, response.body or b""

    async def get(self, *parts: str, **kwargs: Any) -> tuple[int, Any]:
        """Status and JSON body, whatever the status."""
        code, body = await self.request(*parts, **kwargs)
        return code, json.loads(body) if body else None

    async def history(self, notebook: str) -> list[Json]:
        code, body = await self.get("oci", "chat", "history", params={"notebook": notebook})
        assert code == 200, (code, body)
        return list(body["requests"])

    async def running_requests(self) -> int | None:
        code, body = await self.get("oci", "status")
        return int(body["running_requests"]) if code == 200 else None


# ---- the check every fault ends with ---------------------------------------------------------
@dataclass
class Survival:
    """One fault scenario's outcome (a row of benchmarks/faults.py's table)."""

    fault: str
    injected: int
    nodeid: str = ""
    survived: int = 0
    requests: int = 0
    without_done: list[str] = field(default_factory=list)
    duplicate_done: list[str] = field(default_factory=list)
    records_lost: list[str] = field(default_factory=list)
    cells_lost: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (
            self.without_done
            or self.duplicate_done
            or self.records_lost
            or self.cells_lost
            or self.problems
        )

    def describe(self) -> str:
        parts = [f"{self.fault}: {self.survived}/{self.injected} survived"]
        for name in ("without_done", "duplicate_done", "records_lost", "cells_lost", "problems"):
            if getattr(self, name):
                parts.append(f"{name}: {getattr(self, name)}")
        return "\n  ".join(parts)


RESULTS: list[Survival] = []
"""Every check run in this process, in order (benchmarks/faults.py reads it)."""


async def _until(condition: Callable[[], Any], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)


async def assert_survived(
    server: Server,
    fault: str,
    injected: int = 1,
    *,
    cells_lost: Sequence[str] = (),
    probe: Literal["chat", "completion", None] = "chat",
    timeout: float = 5.0,
) -> Survival:
    """After a fault: Jupyter answers ``/api/status``; nothing runs any more (``/oci/status``
    says ``running_requests == 0`` within ``timeout``); every request asked on a connection
    that is still open has exactly one ``done``; every request that started has its record in
    the chat history, with its final status (the ``done``'s, when one arrived); no notebook
    is held by a request; the notebook files are byte-identical; and a fresh connection can
    still chat (``probe``). Records the result in :data:`RESULTS`, then asserts it."""
    started = time.monotonic()
    nodeid = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    survival = Survival(fault, injected, nodeid, cells_lost=list(cells_lost))
    RESULTS.append(survival)
    problems = survival.problems

    code, _ = await server.get("api", "status")
    if code != 200:
        problems.append(f"GET /api/status answered {code}")
    if not await _until(lambda: _no_requests(server), timeout):
        problems.append(f"running_requests is {await server.running_requests()} after {timeout} s")

    clients = list(server.clients)

    def all_done() -> bool:
        return all(
            c.left or c.closed or c.dones(request_id) for c in clients for request_id in c.asked
        )

    await _until(all_done, timeout)
    await asyncio.sleep(0.1)  # a second done would follow the first at once
    notebooks: set[str] = set()
    for client in clients:
        for request_id, notebook in client.asked.items():
            survival.requests += 1
            notebooks.add(notebook)
            label = f"{client.name}/{request_id}"
            dones = client.dones(request_id)
            if len(dones) > 1:
                survival.duplicate_done.append(label)
            elif not dones and not client.left:
                survival.without_done.append(label)
            if client.started(request_id) and notebook:
                records = [r for r in await server.history(notebook) if r["id"] == request_id]
                if len(records) != 1:
                    survival.records_lost.append(f"{label}: {len(records)} records")
                elif records[0]["status"] == "running":
                    survival.records_lost.append(f"{label}: still 'running' on disk")
                elif dones and records[0]["status"] != dones[0]["status"]:
                    survival.records_lost.append(
                        f"{label}: record {records[0]['status']}, done {dones[0]['status']}"
                    )
    for notebook in sorted(notebooks):
        holder = server.app.chat_notebooks.holder(notebook) if notebook else None
        if holder is not None:
            problems.append(f"{notebook} is still held by request {holder[1].id}")
    after = snapshot(server.root)
    for name, content in server.notebooks.items():
        if after.get(name) != content:
            survival.cells_lost.append(f"{name} changed" if name in after else f"{name} deleted")

    if probe is not None and not problems:
        try:
            await _probe(server, probe, sorted(n for n in notebooks if n) or ["work.ipynb"])
        except (AssertionError, TimeoutError) as exc:
            problems.append(f"the server no longer serves a {probe}: {exc!r}")
    if survival.ok:
        survival.survived = injected
    survival.seconds = time.monotonic() - started
    assert survival.ok, survival.describe()
    return survival


def record_survival(
    fault: str, injected: int, problems: Sequence[str], *, requests: int = 0
) -> Survival:
    """For a fault against a server in its own process (the %%oci magic's): the problems
    the test found, recorded in :data:`RESULTS` and asserted."""
    nodeid = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    survival = Survival(fault, injected, nodeid, requests=requests, problems=list(problems))
    RESULTS.append(survival)
    if survival.ok:
        survival.survived = injected
    assert survival.ok, survival.describe()
    return survival


async def _no_requests(server: Server) -> bool:
    return await server.running_requests() == 0


async def _probe(server: Server, kind: str, notebooks: list[str]) -> None:
    if kind == "completion":
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        code, reply = await server.get(
            "oci", "v1", "chat", "completions", method="POST", body=json.dumps(body)
        )
        assert code == 200, (code, reply)
        return
    engine = server.engine
    engine.script([FIXED])
    client = ChatClient(await server.ws_fetch("oci", "chat"), "probe", [OK_OUTCOME] * 10)
    try:
        for index, notebook in enumerate(notebooks):
            request_id = f"probe-{index}"
            client.ask(request_id, notebook=notebook, read_results=False)
            done = await client.done(request_id, timeout=10)
            assert done["status"] == "success", done
    finally:
        await client.close()


# ---- fuzzing ---------------------------------------------------------------------------------
JsonKind = Literal["null", "bool", "int", "float", "str", "list", "object"]
KINDS: tuple[JsonKind, ...] = ("null", "bool", "int", "float", "str", "list", "object")
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
"""Any JSON value."""


def of_kind(kind: JsonKind) -> st.SearchStrategy[Any]:
    return {
        "null": st.none(),
        "bool": st.booleans(),
        "int": st.integers(min_value=-(2**63), max_value=2**63),
        "float": st.floats(allow_nan=False, allow_infinity=False).filter(
            lambda f: not f.is_integer()
        ),
        "str": st.text(max_size=30),
        "list": st.lists(_SCALARS, max_size=3),
        "object": st.dictionaries(st.text(max_size=8), _SCALARS, max_size=3),
    }[kind]


def wrong_type(allowed: Sequence[JsonKind]) -> st.SearchStrategy[Any]:
    """A JSON value of none of the allowed kinds (an int is a float as JSON goes)."""
    if "float" in allowed and "int" not in allowed:
        allowed = (*allowed, "int")
    return st.sampled_from([k for k in KINDS if k not in allowed]).flatmap(of_kind)


def _set(message: Json, path: str, value: Any) -> Json:
    """A copy of message with the value at a dotted path ("context.cells.0.source") set."""
    copy: Any = json.loads(json.dumps(message))
    target = copy
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return dict(copy)


FUZZ_NOTEBOOK = "fuzz.ipynb"
VALID_CHAT: dict[str, Json] = {
    "ask": {
        "type": "ask",
        "id": "fuzz",
        "prompt": "print a total",
        "notebook": FUZZ_NOTEBOOK,
        "mode": "chat",
        "context": {
            "language": "python",
            "cells": [{"source": "x = 1", "output": "", "label": "In [1]", "active": True}],
            "variables": [{"name": "x", "type": "int", "summary": "1"}],
        },
        "max_turns": 2,
        "max_steps": 1,
        "max_replies": 2,
        "read_results": False,
        "time_limit": 5,
        "auto_execute": True,
        "refine_cell": False,
        "review": False,
    },
    "fix": {
        "type": "ask",
        "id": "fuzz-fix",
        "notebook": FUZZ_NOTEBOOK,
        "mode": "fix",
        "cell": {"source": "print(totl)", "error": {"ename": "NameError", "traceback": ["x"]}},
    },
    "edit": {
        "type": "ask",
        "id": "fuzz-edit",
        "prompt": "make it a function",
        "notebook": FUZZ_NOTEBOOK,
        "mode": "edit",
        "cell": {
            "source": "x = 1",
            "output": "",
            "error": {"ename": "NameError", "traceback": ["x"]},
            "selection": "",
        },
        "review": True,
    },
    "outcome": {
        "type": "outcome",
        "id": "fuzz",
        "turn": 1,
        "status": "ok",
        "output": "",
        "error": {"ename": "E", "evalue": "v", "traceback": "t"},
        "seconds": 0.5,
        "source": "x = 1",
    },
    "cancel": {"type": "cancel", "id": "fuzz"},
    "prefill": {"type": "prefill", "notebook": FUZZ_NOTEBOOK, "context": {"cells": []}},
    "progress": {"type": "progress", "id": "fuzz", "turn": 1, "state": "queued"},
}
"""A valid message of each kind the browser sends; the fuzz breaks one field at a time."""
CHAT_FIELDS: dict[str, dict[str, tuple[JsonKind, ...]]] = {
    "ask": {
        "id": ("str",),
        "prompt": ("str",),
        "notebook": ("str",),
        "mode": ("str",),
        "context": ("object",),
        "context.language": ("str",),
        "context.cells": ("list",),
        "context.cells.0": ("object",),
        "context.cells.0.source": ("str",),
        "context.cells.0.output": ("str",),
        "context.cells.0.label": ("str",),
        "context.cells.0.active": ("bool",),
        "context.cells.0.kind": ("str",),
        "context.variables.0.name": ("str",),
        "context.variables.0.type": ("str",),
        "context.variables.0.summary": ("str",),
        "max_turns": ("int",),
        "max_steps": ("int", "null"),
        "max_replies": ("int", "null"),
        "read_results": ("bool", "null"),
        "time_limit": ("float",),
        "auto_execute": ("bool",),
        "refine_cell": ("bool",),
        "review": ("bool",),
    },
    "fix": {
        "cell": ("object", "null"),
        "cell.source": ("str",),
        "cell.error": ("object",),
        "cell.error.ename": ("str",),
        "cell.error.evalue": ("str",),
        "cell.error.traceback": ("str", "list"),
    },
    "edit": {
        "cell": ("object", "null"),
        "cell.source": ("str",),
        "cell.output": ("str",),
        "cell.error": ("object", "null"),
        "cell.error.ename": ("str",),
        "cell.selection": ("str",),
    },
    "outcome": {
        "id": ("str",),
        "turn": ("int",),
        "status": ("str",),
        "output": ("str",),
        "error": ("object", "null"),
        "error.ename": ("str",),
        "error.evalue": ("str",),
        "seconds": ("float",),
        "source": ("str", "null"),
    },
    "cancel": {"id": ("str",)},
    "prefill": {
        "notebook": ("str",),
        "context": ("object",),
        "context.cells": ("list",),
    },
    "progress": {"id": ("str",), "turn": ("int",), "state": ("str",)},
}
"""Every field's JSON kinds, as src/chat/protocol.ts sends them."""
OUT_OF_RANGE: list[tuple[str, str, Any]] = [
    ("ask", "id", ""),
    ("ask", "id", "i" * 201),
    ("ask", "mode", "explain"),
    ("ask", "max_turns", 0),
    ("ask", "max_turns", 11),
    ("ask", "max_steps", 21),
    ("ask", "max_replies", 0),
    ("ask", "time_limit", 0),
    ("ask", "time_limit", -1),
    ("ask", "time_limit", 3601),
    ("ask", "notebook", "n" * 4097),
    ("ask", "context.cells.0.label", "l" * 201),
    ("outcome", "status", "great"),
    ("progress", "state", "paused"),
    ("ask", "type", "Ask"),
]
"""Values of the right type that are still not allowed."""


@st.composite
def chat_messages(draw: st.DrawFn) -> tuple[str, str, Json | str | bytes]:
    """(family, what it is, a message the browser should never send). The "wrong type" and
    "out of range" families are refused with an error; "any json" and "not json" may now and
    then be a valid message that needs no reply (a cancel of nothing, say)."""
    family = draw(st.sampled_from(["wrong type", "out of range", "any json", "not json"]))
    if family == "wrong type":
        kind = draw(st.sampled_from(sorted(CHAT_FIELDS)))
        path = draw(st.sampled_from(sorted(CHAT_FIELDS[kind])))
        value = draw(wrong_type(CHAT_FIELDS[kind][path]))
        return family, f"{kind}.{path} = {value!r}"[:80], _set(VALID_CHAT[kind], path, value)
    if family == "out of range":
        kind, path, value = draw(st.sampled_from(OUT_OF_RANGE))
        return family, f"{kind}.{path} = {value!r}"[:80], _set(VALID_CHAT[kind], path, value)
    if family == "any json":
        value = draw(JSON_VALUES | st.dictionaries(st.just("type"), JSON_VALUES, min_size=1))
        return family, f"json {value!r}"[:80], json.dumps(value)
    raw = draw(st.binary(max_size=40) | st.text(max_size=40).map(lambda t: t + "}"))
    return family, f"raw {raw!r}"[:80], raw


def oversized_ask() -> Json:
    """An ask over the websocket's byte limit (MAX_MESSAGE_BYTES)."""
    return _set(VALID_CHAT["ask"], "prompt", "x" * MAX_MESSAGE_BYTES)


def oversized_chat_messages() -> list[tuple[str, Json]]:
    """Messages over the other limits in oci_jupyter/chat/protocol.py (see
    :func:`oversized_ask` for the byte limit)."""
    ask, outcome = VALID_CHAT["ask"], VALID_CHAT["outcome"]
    many_cells = [{"source": "x"}] * 5001
    return [
        (f"prompt over {MAX_TEXT:,} characters", _set(ask, "prompt", "p" * (MAX_TEXT + 1))),
        ("cell source over the limit", _set(ask, "context.cells.0.source", "s" * (MAX_TEXT + 1))),
        ("5,001 context cells", _set(ask, "context.cells", many_cells)),
        ("outcome output over the limit", _set(outcome, "output", "o" * (MAX_TEXT + 1))),
        ("outcome source over the limit", _set(outcome, "source", "s" * (MAX_TEXT + 1))),
        ("prefill over the byte limit", _set(VALID_CHAT["prefill"], "notebook", "n" * 5_000_000)),
    ]


VALID_COMPLETION: Json = {
    "model": "scripted-test-model",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    "max_tokens": 3,
    "max_completion_tokens": 3,
    "temperature": 0.5,
    "top_p": 0.9,
    "stop": ["\n\n"],
    "stream": False,
    "stream_options": {"include_usage": True},
    "seed": 1,
    "n": 1,
}
COMPLETION_FIELDS: dict[str, tuple[JsonKind, ...]] = {
    "model": ("str", "null"),
    "messages": ("list",),
    "messages.0": ("object",),
    "messages.0.role": ("str",),
    "messages.0.content": ("str", "list"),
    "messages.0.content.0": ("object",),
    "messages.0.content.0.type": ("str",),
    "messages.0.content.0.text": ("str",),
    "max_tokens": ("int", "null"),
    "max_completion_tokens": ("int", "null"),
    "temperature": ("float", "null"),
    "top_p": ("float", "null"),
    "stop": ("str", "list", "null"),
    "stream": ("bool",),
    "stream_options": ("object", "null"),
    "stream_options.include_usage": ("bool",),
    "seed": ("int", "null"),
    "n": ("int",),
}
COMPLETION_OUT_OF_RANGE: list[tuple[str, Any]] = [
    ("messages", []),
    ("messages.0.role", "tool"),
    ("messages.0.content.0.type", "image_url"),
    ("max_tokens", 0),
    ("max_completion_tokens", 10**9),
    ("max_completion_tokens", -1),
    ("temperature", 2.5),
    ("top_p", 0),
    ("top_p", 1.5),
    ("stop", ["a", "b", "c", "d", "e"]),
    ("n", 2),
    ("model", "gpt-4"),
]


@st.composite
def completion_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    """(what it is, a request body ``/oci/v1/chat/completions`` must refuse with a 4xx)."""
    family = draw(st.sampled_from(["wrong type", "out of range", "any json", "not json"]))
    if family == "wrong type":
        path = draw(st.sampled_from(sorted(COMPLETION_FIELDS)))
        value = draw(wrong_type(COMPLETION_FIELDS[path]))
        body: Any = _set(VALID_COMPLETION, path, value)
        what = f"{path} = {value!r}"
    elif family == "out of range":
        path, value = draw(st.sampled_from(COMPLETION_OUT_OF_RANGE))
        body, what = _set(VALID_COMPLETION, path, value), f"{path} = {value!r}"
    elif family == "any json":
        body = draw(JSON_VALUES.filter(lambda v: not isinstance(v, dict) or "messages" not in v))
        what = f"json {body!r}"
    else:
        raw = draw(st.binary(max_size=40) | st.text(max_size=40).map(lambda t: "{" + t))
        return f"raw {raw!r}"[:80], raw if isinstance(raw, bytes) else raw.encode()
    return what[:80], json.dumps(body).encode()


# ---- fuzz runners (blocking clients: run them in a thread while the server serves) ------------
CHAT_FAMILIES_WITH_ERRORS = ("wrong type", "out of range")


class BlockingChat:
    """A blocking websocket client of ``/oci/chat`` (websocket-client), for hypothesis, which
    drives its examples synchronously."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        import websocket

        self.ws = websocket.create_connection(
            url,
            header=[f"{k}: {v}" for k, v in headers.items()],
            timeout=15,
            suppress_origin=True,
        )
        self.exchanges = 0

    def send(self, message: Json | str | bytes) -> None:
        raw = message if isinstance(message, str | bytes) else json.dumps(message)
        if isinstance(raw, bytes):
            self.ws.send_binary(raw)
        else:
            self.ws.send(raw)

    def receive(self) -> Json:
        raw = self.ws.recv()
        assert raw, "the server closed the socket"
        return dict(json.loads(raw))

    def exchange(self, message: Json | str | bytes) -> list[Json]:
        """Send a message, then a marker the server refuses by name: everything before the
        marker's error is the reply to the message, and the marker's error shows that the
        connection still reads what comes next."""
        self.exchanges += 1
        marker = f"marker-{self.exchanges}"
        self.send(message)
        self.send({"type": marker})
        replies: list[Json] = []
        while True:
            reply = self.receive()
            if reply.get("type") == "error" and marker in str(reply.get("message")):
                return replies
            replies.append(reply)

    def converse(self, ask: Json, outcome: Json = OK_OUTCOME) -> Json:
        """A normal request: answer each ``execute`` with ``outcome``; returns the done."""
        self.send(ask)
        while True:
            message = self.receive()
            if message.get("type") == "execute":
                self.send({**outcome, "type": "outcome", "id": ask["id"], "turn": message["turn"]})
            if message.get("type") == "done" and message.get("id") == ask["id"]:
                return message

    def close(self) -> None:
        self.ws.close()


def check_refusal(what: str, message: Json | str | bytes, replies: list[Json], family: str) -> None:
    """The replies to a message the browser should never send: ``error`` messages (at least
    one, unless the message happens to be a valid no-reply message), and exactly one
    ``done`` (status ``error``) for an ``ask`` that names its id, none otherwise."""
    kinds = [r.get("type") for r in replies]
    assert set(kinds) <= {"error", "done"}, (what, replies)
    if family in CHAT_FAMILIES_WITH_ERRORS:
        assert "error" in kinds, (what, replies)
    asked = isinstance(message, dict) and message.get("type") == "ask"
    request_id = message.get("id") if isinstance(message, dict) else None
    dones = [r for r in replies if r.get("type") == "done"]
    if asked and isinstance(request_id, str) and request_id:
        assert [(d["id"], d["status"]) for d in dones] == [(request_id, "error")], (what, replies)
    else:
        assert dones == [], (what, replies)


@functools.cache
def _hypothesis_home() -> None:
    """Hypothesis keeps caches under ./.hypothesis even without a database: keep them in a
    temporary folder instead (unless HYPOTHESIS_STORAGE_DIRECTORY says where)."""
    from hypothesis.configuration import set_hypothesis_home_dir

    if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        set_hypothesis_home_dir(tempfile.mkdtemp(prefix="oci-faults-hypothesis-"))


def fuzz_chat(url: str, headers: dict[str, str], max_examples: int = 40) -> int:
    """Hypothesis's malformed messages on one connection, then the oversized ones; returns
    how many were sent. Raises (with the falsifying example) if a reply is wrong."""
    from hypothesis import HealthCheck, given, settings

    _hypothesis_home()
    chat = BlockingChat(url, headers)
    try:

        @settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(chat_messages())
        def one(case: tuple[str, str, Json | str | bytes]) -> None:
            family, what, message = case
            check_refusal(what, message, chat.exchange(message), family)

        one()
        for what, message in oversized_chat_messages():
            check_refusal(what, message, chat.exchange(message), "out of range")
        # The same connection still chats.
        ask = {"type": "ask", "id": "after-fuzz", "prompt": "print a total"}
        done = chat.converse({**ask, "notebook": FUZZ_NOTEBOOK, "read_results": False})
        assert done["status"] == "success", done
        return chat.exchanges
    finally:
        chat.close()


def fuzz_completions(url: str, headers: dict[str, str], max_examples: int = 40) -> int:
    """Hypothesis's malformed bodies to ``POST /oci/v1/chat/completions``: each must get a
    4xx with an OpenAI error message, never a 5xx. Returns how many were sent."""
    import httpx
    from hypothesis import HealthCheck, given, settings

    _hypothesis_home()
    sent = 0
    with httpx.Client(headers=headers, timeout=15) as client:

        def post(what: str, body: bytes) -> None:
            nonlocal sent
            sent += 1
            response = client.post(url, content=body, headers={"Content-Type": "application/json"})
            assert 400 <= response.status_code < 500, (what, response.status_code, response.text)
            error = response.json()["error"]
            assert isinstance(error["message"], str), (what, error)
            assert error["message"], (what, error)

        @settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(completion_bodies())
        def one(case: tuple[str, bytes]) -> None:
            post(*case)

        one()
        huge = _set(VALID_COMPLETION, "messages.0.content", "x" * 2_000_000)
        post("a body over max_request_bytes", json.dumps(huge).encode())
    return sent
