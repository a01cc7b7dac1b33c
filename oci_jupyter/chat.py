"""The sidebar chat's server side: one :class:`ChatSession` per browser connection drives the
refinement loop; the browser executes the code in the notebook's kernel and reports back.

Protocol (JSON over the websocket ``/oci/chat``; see docs/design.md):

- browser -> server: ``ask``, ``outcome``, ``cancel``
- server -> browser: ``token``, ``turn``, ``execute``, ``done`` (exactly one per request id),
  ``error``
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .engine import Delta, Engine, EngineError, Finish, GenerationParams
from .loop import SKIP_NOTES, Execute, ExecutionOutcome, Finished, Generate, RefinementLoop
from .prompts import (
    CellContext,
    NotebookContext,
    PromptLimits,
    PromptTooLong,
    VariableInfo,
    build_messages,
    failure_names,
    fix_request,
)

log = logging.getLogger(__name__)
FAILING_CELL_PLACEHOLDER = "(the failing cell, shown below)"
Send = Callable[[dict[str, Any]], Awaitable[None]]


# ---- messages from the browser
class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class CellIn(_Strict):
    source: str
    output: str = ""
    label: str = ""
    active: bool = False
    kind: str = "code"


class VariableIn(_Strict):
    name: str
    type: str
    summary: str = ""


class ContextIn(_Strict):
    language: str = "python"
    cells: list[CellIn] = Field(default_factory=list, max_length=5000)
    variables: list[VariableIn] = Field(default_factory=list, max_length=2000)


class ErrorIn(_Strict):
    ename: str = ""
    evalue: str = ""
    traceback: str | list[str] = ""

    def text(self) -> str:
        return "\n".join(self.traceback) if isinstance(self.traceback, list) else self.traceback


class FixCellIn(_Strict):
    source: str
    error: ErrorIn


class Ask(_Strict):
    type: Literal["ask"]
    id: str = Field(min_length=1, max_length=200)
    prompt: str = ""
    notebook: str = ""
    mode: Literal["chat", "fix"] = "chat"
    context: ContextIn = Field(default_factory=ContextIn)
    max_turns: int = Field(default=3, ge=1, le=10)
    time_limit: float = Field(default=60.0, gt=0, le=3600)
    auto_execute: bool = True
    refine_cell: bool = False
    """Refine the cell of the previous request (the human-feedback turn) instead of a new one."""
    cell: FixCellIn | None = None
    review: bool = False
    """The user reviews each rewrite (a diff to accept) before it runs: the wait for the
    outcome then has no deadline, as when the user runs the code by hand."""


class Outcome(_Strict):
    type: Literal["outcome"]
    id: str
    turn: int
    status: Literal["ok", "error", "timeout", "cancelled"]
    output: str = ""
    error: ErrorIn | None = None
    seconds: float = 0.0


class Cancel(_Strict):
    type: Literal["cancel"]
    id: str


# ---- what is kept per notebook
@dataclass
class TurnRecord:
    turn: int
    reply: str = ""
    code: str | None = None
    outcome: dict[str, Any] | None = None
    feedback: str | None = None
    skipped: str | None = None
    """Why the code was not run, as the chat says it ("not run: same as before")."""


@dataclass
class RequestRecord:
    id: str
    mode: str
    prompt: str
    started: float = field(default_factory=time.time)
    turns: list[TurnRecord] = field(default_factory=list)
    status: str = "running"
    message: str = ""


class ChatStore:
    """Per-notebook chat history (what the panel shows) and conversation (what the model
    remembers), as JSON files under Jupyter's data folder; survives reloads and restarts."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Writes read, change and replace a file, from worker threads: one at a time.
        self._lock = threading.Lock()

    def _path(self, notebook: str) -> Path:
        digest = hashlib.sha256(notebook.strip("/").encode()).hexdigest()[:32]
        return self.root / f"{digest}.json"

    def load(self, notebook: str) -> dict[str, Any]:
        try:
            data = json.loads(self._path(notebook).read_text())
        except (OSError, ValueError):
            data = {}
        data.setdefault("notebook", notebook)
        data.setdefault("requests", [])
        data.setdefault("conversation", [])
        return data

    def save_request(
        self, notebook: str, record: RequestRecord, conversation: list[dict[str, str]]
    ) -> None:
        with self._lock:
            data = self.load(notebook)
            requests = [r for r in data["requests"] if r.get("id") != record.id]
            requests.append(asdict(record))
            data["requests"] = requests[-200:]
            data["conversation"] = conversation[-200:]
            self._write(notebook, data)

    def move(self, old: str, new: str) -> int:
        """Re-key after a rename: the notebook's chat, or those of every notebook under a
        renamed folder. A chat already at the new path (of a notebook deleted earlier) is
        replaced. Returns how many chats moved."""
        with self._lock:
            return self._move(old.strip("/"), new.strip("/"))

    def _move(self, old: str, new: str) -> int:
        own = self._path(old)
        # A notebook's own chat is found by its key; a folder's need a look at each chat.
        files = [own] if own.exists() else sorted(self.root.glob("*.json"))
        moved = 0
        for file in files:
            try:
                data = json.loads(file.read_text())
            except (OSError, ValueError):
                continue
            notebook = str(data.get("notebook", ""))
            if notebook == old:
                target = new
            elif notebook.startswith(old + "/"):
                target = new + notebook[len(old) :]
            else:
                continue
            data["notebook"] = target
            self._write(target, data)
            file.unlink(missing_ok=True)
            moved += 1
        return moved

    def clear(self, notebook: str) -> None:
        with self._lock, contextlib.suppress(FileNotFoundError):
            self._path(notebook).unlink()

    def _write(self, notebook: str, data: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(notebook)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(data))
        os.replace(temporary, path)


# ---- one browser connection
@dataclass
class _Running:
    ask: Ask
    task: asyncio.Task[None] | None = None
    outcome: asyncio.Future[Outcome] | None = None
    waiting_turn: int = 0
    cancelled: bool = False
    engine_request: str = ""


class ChatSession:
    def __init__(
        self,
        engine: Engine,
        store: ChatStore,
        send: Send,
        *,
        reply_tokens: int = 1024,
        temperature: float = 0.2,
        outcome_grace: float = 30.0,
    ) -> None:
        self.engine = engine
        self.store = store
        self._send = send
        self.reply_tokens = reply_tokens
        self.temperature = temperature
        self.outcome_grace = outcome_grace
        self.running: dict[str, _Running] = {}
        self.timings: list[dict[str, float]] = []
        """Per executed turn: seconds generating (and to the first token), waiting for the
        browser's run, and spent in the server's own loop work."""

    # ---- inbound ---------------------------------------------------------------------------------
    async def receive(self, raw: str | bytes) -> None:
        try:
            data = json.loads(raw)
            kind = data.get("type") if isinstance(data, dict) else None
        except ValueError:
            return await self._error(None, "messages must be JSON objects")
        parser = {"ask": Ask, "outcome": Outcome, "cancel": Cancel}.get(str(kind))
        if parser is None:
            return await self._error(data.get("id"), f"unknown message type {kind!r}")
        try:
            message = parser.model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            text = f"invalid {kind}: {where}: {first['msg']}"
            await self._error(data.get("id"), text)
            request_id = data.get("id")
            if kind == "ask" and isinstance(request_id, str) and request_id not in self.running:
                # Every request id ends with exactly one done, even one that never started.
                await self._emit(
                    {
                        "type": "done",
                        "id": request_id,
                        "status": "error",
                        "turns": 0,
                        "message": text,
                        "final_code": None,
                    }
                )
            return None
        if isinstance(message, Ask):
            await self._start(message)
        elif isinstance(message, Outcome):
            self._deliver(message)
        else:
            self.cancel(message.id)

    def cancel(self, request_id: str) -> None:
        running = self.running.get(request_id)
        if running is None:
            return
        running.cancelled = True
        if running.engine_request:
            self.engine.cancel(running.engine_request)
        if running.outcome is not None and not running.outcome.done():
            running.outcome.cancel()

    async def close(self) -> None:
        """The browser went away: cancel everything it asked for."""
        for request_id in list(self.running):
            self.cancel(request_id)
        tasks = [r.task for r in self.running.values() if r.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # ---- a request -------------------------------------------------------------------------------
    async def _start(self, ask: Ask) -> None:
        if ask.id in self.running:
            return await self._error(ask.id, f"request {ask.id!r} is already running")
        if ask.mode == "fix" and ask.cell is None:
            return await self._done_early(ask, "error", "a fix needs the failing cell")
        if ask.mode == "chat" and not ask.prompt.strip():
            return await self._done_early(ask, "error", "the request is empty")
        running = _Running(ask)
        self.running[ask.id] = running
        running.task = asyncio.get_running_loop().create_task(self._run(running))

    async def _run(self, running: _Running) -> None:
        ask = running.ask
        request = ask.prompt.strip()
        # A fix: the failing cell's source and how it failed.
        fix = (ask.cell.source, _failure(ask.cell)) if ask.mode == "fix" and ask.cell else None
        if fix is not None:
            request = fix_request(*fix)
            if ask.prompt.strip():
                request += f"\n\nThe user adds: {ask.prompt.strip()}"
        record = RequestRecord(ask.id, ask.mode, ask.prompt.strip() or request)
        # The history is a file: read (and later written) off the event loop.
        stored = (
            await asyncio.to_thread(self.store.load, ask.notebook)
            if ask.notebook
            else {"conversation": []}
        )
        conversation: list[dict[str, str]] = list(stored["conversation"])
        result: Finished | None = None
        loop: RefinementLoop | None = None
        try:
            if not self.engine.ready:
                raise EngineError(_not_ready(self.engine))
            messages, reply_tokens = await self._prompt(request, ask, conversation, fix)
            # A fix's first answer may hand back the failing cell unchanged: not run again.
            failed = (fix,) if fix is not None else ()
            loop = RefinementLoop(messages, max_turns=ask.max_turns, failed_code=failed)
            first_turn_length = len(messages)
            result = await self._drive(running, loop, reply_tokens)
            conversation += [{"role": "user", "content": request}]
            conversation += loop.messages[first_turn_length:]
        except PromptTooLong as exc:
            result = Finished("error", [], f"The request is too long: {exc}")
        except EngineError as exc:
            result = Finished("error", loop.turns if loop else [], str(exc))
        except Exception as exc:  # reported to the browser; the server goes on
            log.exception("oci chat request %s failed", ask.id)
            result = Finished("error", loop.turns if loop else [], f"{type(exc).__name__}: {exc}")
        finally:
            if result is None:  # cancelled from outside (server shutdown)
                result = Finished("cancelled", loop.turns if loop else [], "Cancelled.")
            self.running.pop(ask.id, None)
            record.turns = [
                TurnRecord(
                    t.number,
                    t.reply,
                    t.code,
                    _outcome_json(t.outcome) if t.outcome else None,
                    t.feedback,
                    SKIP_NOTES[t.skipped] if t.skipped else None,
                )
                for t in result.turns
            ]
            record.status, record.message = result.status, result.message
            if ask.notebook:
                try:
                    await asyncio.to_thread(
                        self.store.save_request, ask.notebook, record, conversation
                    )
                except OSError as exc:
                    log.warning("oci: could not save the chat of %s: %s", ask.notebook, exc)
            await self._emit(
                {
                    "type": "done",
                    "id": ask.id,
                    "status": result.status,
                    "turns": len(result.turns),
                    "message": result.message,
                    "final_code": result.final_code,
                }
            )

    async def _prompt(
        self,
        request: str,
        ask: Ask,
        conversation: list[dict[str, str]],
        fix: tuple[str, ExecutionOutcome] | None,
    ) -> tuple[list[dict[str, str]], int]:
        window = self.engine.context_length
        reply_tokens = min(self.reply_tokens, window // 2)
        context = NotebookContext(
            language=ask.context.language,
            cells=[CellContext(**c.model_dump()) for c in ask.context.cells],
            variables=[VariableInfo(**v.model_dump()) for v in ask.context.variables],
        )
        needs: set[str] = set()
        if fix is not None:
            # The failing cell is in the request itself: in the context it keeps its place (the
            # model sees what runs before and after it) but not its source a second time. The
            # cells that define what it reads are ranked first.
            context = NotebookContext(
                language=context.language,
                cells=[
                    replace(c, source=FAILING_CELL_PLACEHOLDER, output="") if c.active else c
                    for c in context.cells
                ],
                variables=context.variables,
            )
            needs = failure_names(*fix)

        def count(texts: list[str]) -> list[int]:
            return [self.engine.count_tokens(t) for t in texts]

        # Tokenising can take a few milliseconds per cell: keep it off the event loop.
        messages = await asyncio.to_thread(
            build_messages,
            request,
            context,
            window=window,
            count=count,
            history=conversation,
            limits=PromptLimits(reply_tokens=reply_tokens),
            needs=needs,
        )
        return messages, reply_tokens

    async def _drive(self, running: _Running, loop: RefinementLoop, reply_tokens: int) -> Finished:
        ask = running.ask
        params = GenerationParams(max_tokens=reply_tokens, temperature=self.temperature, top_p=0.95)
        action: Generate | Execute | Finished = loop.start()
        overhead = generating = first_token = 0.0
        while not isinstance(action, Finished):
            if running.cancelled:
                return loop.cancel()
            if isinstance(action, Generate):
                await self._emit(
                    {"type": "turn", "id": ask.id, "turn": action.turn, "state": "generating"}
                )
                mark = time.perf_counter()
                reply, finish, first_token = await self._generate(
                    running, action, action.params(params)
                )
                generating = time.perf_counter() - mark
                if running.cancelled or (finish is not None and finish.reason == "cancelled"):
                    return loop.cancel()
                started = time.perf_counter()
                replied = action.turn
                action = loop.on_reply(reply)
                overhead += time.perf_counter() - started
                skipped = loop.turns[replied - 1].skipped
                if skipped is not None:
                    # Code that is not run (it calls input(), it already failed): say why.
                    await self._emit(
                        {
                            "type": "turn",
                            "id": ask.id,
                            "turn": replied,
                            "state": "skipped",
                            "evalue": SKIP_NOTES[skipped],
                        }
                    )
            else:
                target = (
                    "replace"
                    if (action.turn > 1 or ask.refine_cell or ask.mode == "fix")
                    else "new"
                )
                started = time.perf_counter()
                await self._emit(
                    {
                        "type": "execute",
                        "id": ask.id,
                        "turn": action.turn,
                        "code": action.code,
                        "target": target,
                        "auto_execute": ask.auto_execute,
                        "time_limit": ask.time_limit,
                    }
                )
                await self._emit(
                    {"type": "turn", "id": ask.id, "turn": action.turn, "state": "executing"}
                )
                overhead += time.perf_counter() - started
                mark = time.perf_counter()
                outcome = await self._wait_outcome(running, action.turn)
                waiting = time.perf_counter() - mark
                if outcome is None:
                    return loop.cancel()
                if outcome.error is not None and outcome.error.ename == "KernelUnavailable":
                    # Nothing can run: more turns would only generate code nobody executes.
                    return loop.stop("error", outcome.error.evalue or "The kernel is unavailable.")
                started = time.perf_counter()
                action = loop.on_outcome(_outcome(outcome))
                state = {
                    "type": "turn",
                    "id": ask.id,
                    "turn": outcome.turn,
                    "state": outcome.status,
                }
                if outcome.error is not None:
                    state["ename"] = outcome.error.ename
                    state["evalue"] = outcome.error.evalue
                await self._emit(state)
                overhead += time.perf_counter() - started
                self.timings.append(
                    {
                        "generate": generating,
                        "first_token": first_token,
                        "execute": waiting,
                        "loop": overhead,
                    }
                )
                overhead = 0.0
        return action

    async def _generate(
        self, running: _Running, action: Generate, params: GenerationParams
    ) -> tuple[str, Finish | None, float]:
        ask = running.ask
        engine_request = f"{ask.id}:{action.turn}"
        running.engine_request = engine_request
        pieces: list[str] = []
        finish: Finish | None = None
        started = time.perf_counter()
        first_token = 0.0
        try:
            async for event in self.engine.stream_chat(action.messages, params, engine_request):
                if isinstance(event, Delta):
                    if not pieces:
                        first_token = time.perf_counter() - started
                    pieces.append(event.text)
                    await self._emit(
                        {"type": "token", "id": ask.id, "turn": action.turn, "text": event.text}
                    )
                else:
                    finish = event
        finally:
            running.engine_request = ""
        return "".join(pieces), finish, first_token

    async def _wait_outcome(self, running: _Running, turn: int) -> Outcome | None:
        running.outcome = asyncio.get_running_loop().create_future()
        running.waiting_turn = turn
        # The browser enforces the time limit (it interrupts the kernel and reports a
        # timeout); the grace covers a browser that vanished without closing the socket.
        ask = running.ask
        limit = ask.time_limit + self.outcome_grace if ask.auto_execute and not ask.review else None
        try:
            return await asyncio.wait_for(running.outcome, limit)
        except asyncio.CancelledError:
            if running.cancelled:
                return None
            raise
        except TimeoutError:
            return Outcome(
                type="outcome",
                id=running.ask.id,
                turn=turn,
                status="timeout",
                output="(the notebook never reported the run's result)",
            )
        finally:
            running.outcome = None

    def _deliver(self, outcome: Outcome) -> None:
        running = self.running.get(outcome.id)
        if running is None or running.outcome is None or running.outcome.done():
            return  # late or duplicate report: nothing waits for it
        if outcome.turn != running.waiting_turn:
            return
        running.outcome.set_result(outcome)

    # ---- outbound --------------------------------------------------------------------------------
    async def _emit(self, message: dict[str, Any]) -> None:
        try:
            await self._send(message)
        except Exception as exc:  # a closed socket: the session is being torn down
            log.debug("oci chat: could not send %s: %s", message.get("type"), exc)

    async def _error(self, request_id: Any, message: str) -> None:
        body: dict[str, Any] = {"type": "error", "message": message}
        if isinstance(request_id, str):
            body["id"] = request_id
        await self._emit(body)

    async def _done_early(self, ask: Ask, status: str, message: str) -> None:
        await self._emit(
            {
                "type": "done",
                "id": ask.id,
                "status": status,
                "turns": 0,
                "message": message,
                "final_code": None,
            }
        )


def _outcome(message: Outcome) -> ExecutionOutcome:
    error = message.error
    return ExecutionOutcome(
        message.status,
        output=message.output,
        ename=error.ename if error else "",
        evalue=error.evalue if error else "",
        traceback=error.text() if error else "",
        seconds=message.seconds,
    )


def _failure(cell: FixCellIn) -> ExecutionOutcome:
    return ExecutionOutcome(
        "error",
        ename=cell.error.ename,
        evalue=cell.error.evalue,
        traceback=cell.error.text(),
    )


def _outcome_json(outcome: ExecutionOutcome) -> dict[str, Any]:
    return {
        "status": outcome.status,
        "output": outcome.output[-2000:],
        "ename": outcome.ename,
        "evalue": outcome.evalue,
        "seconds": outcome.seconds,
    }


def _not_ready(engine: Engine) -> str:
    status = engine.status
    reason = f": {status.error}" if status.error else ""
    return f"The model is {status.state}{reason}"
