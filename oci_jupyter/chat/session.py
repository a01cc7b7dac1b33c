"""One browser connection's chat: :class:`ChatSession` drives the interpreter loop (through
:func:`oci_jupyter.driver.drive`) for each ``ask``; the browser executes the code in the
notebook's kernel and reports back with an ``outcome``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..driver import KernelGone, ReplyCutter, Stopped, TurnEnded, drive
from ..engine import Delta, Engine, EngineNotReady, Finish, GenerationParams, ModelError
from ..loop import SKIP_TEXTS, Execute, Finished, Generate, RefinementLoop, alternate
from ..prompts import PromptTooLong
from ..prompts.values import assigned_names
from ..request import LoopDefaults, ModelSettings, Prepared, Request, prepare
from ..texts import Text, text
from ..types import ExecutionOutcome, Message
from . import protocol
from .notebooks import NotebookRequests
from .protocol import Ask, Cancel, InvalidMessage, Outcome, Prefill, Progress
from .store import ChatStore, RequestRecord

log = logging.getLogger(__name__)
PREFILL_PROBE = "\x00request\x00"
"""Stands for the user's words while the prompt a request will begin with is built."""
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class _Running:
    ask: Ask
    task: asyncio.Task[None] | None = None
    outcome: asyncio.Future[Outcome] | None = None
    waiting_turn: int = 0
    waiting: Execute | None = None
    queued: bool = False
    """The browser said the turn's cell waits behind another cell: no deadline meanwhile."""
    deadline: asyncio.Timeout | None = None
    """The wait for the outcome, rescheduled when the browser reports progress."""
    cancelled: bool = False
    forced: bool = False
    """Stop did not end the request in time: its task was cancelled."""
    backstop: asyncio.TimerHandle | None = None
    ended: bool = False
    """Its done went out (or is going out): nothing may send another."""
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
        defaults: LoopDefaults | None = None,
        max_running: int = 4,
        system_prompt: str | None = None,
        cut_replies: bool = True,
        notebooks: NotebookRequests | None = None,
        cancel_grace: float = 1.0,
        root_dir: Path | None = None,
    ) -> None:
        self.engine = engine
        self.root_dir = root_dir
        """The server's root folder: a notebook's data files are in its folder under it."""
        self.store = store
        self._send = send
        self.reply_tokens = reply_tokens
        self.temperature = temperature
        self.outcome_grace = outcome_grace
        self.defaults = defaults or LoopDefaults()
        self.max_running = max_running
        self.system_prompt = system_prompt
        """None: the product's (prompts.SYSTEM_PROMPT); benchmarks compare others."""
        self.cut_replies = cut_replies
        """Stop reading a reply where its code block closes (the code runs at once)."""
        self.cancel_grace = cancel_grace
        """Seconds a stopped request has to end by itself before its task is cancelled."""
        self.running: dict[str, _Running] = {}
        self._posts: set[asyncio.Task[None]] = set()
        # Shared by every connection of the server (app.chat_notebooks); one of its own
        # when the session stands alone (tests, benchmarks).
        self.notebooks = notebooks if notebooks is not None else NotebookRequests()
        self.notebooks.subscribe(self, self._post)
        self._last_prefill: int | None = None
        self._closed = False
        self.timings: list[dict[str, float]] = []
        """Per executed turn: seconds generating (and to the first token) and waiting for
        the browser's run."""

    # ---- inbound ---------------------------------------------------------------------------------
    async def receive(self, raw: str | bytes) -> None:
        try:
            message = protocol.parse_client_message(raw)
        except InvalidMessage as exc:
            await self._emit(protocol.error(exc.request_id, exc.said))
            if exc.kind == "ask" and exc.request_id and exc.request_id not in self.running:
                # Every request id ends with exactly one done, even one that never started.
                await self._emit(
                    protocol.done(exc.request_id, Finished.said("error", [], exc.said))
                )
            return
        if isinstance(message, Ask):
            await self._start(message)
        elif isinstance(message, Outcome):
            self._deliver(message)
        elif isinstance(message, Cancel):
            self.cancel(message.id)
        elif isinstance(message, Prefill):
            await self._prefill(message)
        elif isinstance(message, Progress):
            await self._progress(message)

    async def _prefill(self, message: Prefill) -> None:
        """Read, while the engine is idle, what the next request of this notebook will begin
        with: the system prompt, the remembered conversation and the notebook's context, up
        to where the user's words go. The request then reads only its own words."""
        prefill = getattr(self.engine, "prefill", None)
        if prefill is None or not self.engine.ready or self.running:
            return  # an engine without a prefix cache, or busy with a real request
        probe = Ask(type="ask", id="prefill", prompt=PREFILL_PROBE, context=message.context)
        try:
            conversation = await self._conversation(message.notebook)
            prepared = await self._prepare(probe.request(conversation, self.defaults), probe)
        except (PromptTooLong, ModelError, OSError):
            return  # a hint only: the ask itself reports what is wrong
        messages = prepared.messages
        last = messages[-1]["content"]
        cut = last.rfind(PREFILL_PROBE)
        messages[-1] = {"role": "user", "content": last[:cut] if cut >= 0 else last}
        key = hash(tuple((m["role"], m["content"]) for m in messages))
        if key == self._last_prefill or self._closed:
            return
        self._last_prefill = key
        # This connection's one prefill: a newer one replaces it, closing drops it.
        prefill(messages, owner=self)

    async def _progress(self, message: Progress) -> None:
        """The browser's word on the run it was asked for: ``queued`` lifts the deadline of
        the wait (the user's own cell runs first, however long it takes), ``running`` sets it
        again from now. Progress for a turn nobody waits for is ignored."""
        running = self.running.get(message.id)
        if (
            running is None
            or running.outcome is None
            or running.outcome.done()
            or running.waiting_turn != message.turn
        ):
            return
        was_queued, running.queued = running.queued, message.state == "queued"
        if running.deadline is not None:
            running.deadline.reschedule(self._deadline(running))
        action = running.waiting
        where = {"step": action.step, "attempt": action.attempt} if action else {}
        if running.queued and not was_queued:
            await self._emit(protocol.turn_state(message.id, message.turn, "queued", **where))
        elif was_queued and not running.queued:
            await self._emit(protocol.turn_state(message.id, message.turn, "executing", **where))

    def cancel(self, request_id: str) -> None:
        running = self.running.get(request_id)
        if running is None:
            return
        running.cancelled = True
        if running.engine_request:
            self.engine.cancel(running.engine_request)
        if running.outcome is not None and not running.outcome.done():
            running.outcome.cancel()
        task = running.task
        if task is not None and not task.done() and running.backstop is None:
            # The graceful path needs the task to reach a check of the flag: one blocked in a
            # send (a stalled socket) never would. Stop must land anyway.
            running.backstop = asyncio.get_running_loop().call_later(
                self.cancel_grace, self._force_cancel, running
            )

    def _force_cancel(self, running: _Running) -> None:
        task = running.task
        if task is None or task.done() or running.ended:
            return
        log.info("oci chat: request %s did not stop in time; cancelling it", running.ask.id)
        running.forced = True
        task.cancel()

    async def close(self) -> None:
        """The browser went away: cancel everything it asked for."""
        self._closed = True
        self.notebooks.unsubscribe(self)
        drop_prefills = getattr(self.engine, "drop_prefills", None)
        if drop_prefills is not None:
            drop_prefills(self)
        for request_id in list(self.running):
            self.cancel(request_id)
        tasks = [r.task for r in self.running.values() if r.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # ---- a request -------------------------------------------------------------------------------
    async def _start(self, ask: Ask) -> None:
        if ask.id in self.running:
            return await self._emit(
                protocol.error(ask.id, text("already_running", id=repr(ask.id)))
            )
        problem = ask.problem() or self._refusal(ask)  # the ask's own faults come first
        if problem is not None:
            return await self._emit(protocol.done(ask.id, Finished.said("error", [], problem)))
        running = _Running(ask)
        self.running[ask.id] = running
        running.task = asyncio.get_running_loop().create_task(self._run(running))
        # Runs even for a task cancelled before it began (its finally never ran).
        running.task.add_done_callback(lambda _: self._task_ended(running))

    def _refusal(self, ask: Ask) -> Text | None:
        """Why the server cannot start ``ask`` now; else its notebook is claimed for it."""
        if len(self.running) >= self.max_running:
            return text("too_many_requests", count=self.max_running)
        if ask.notebook and not self.notebooks.claim(ask.notebook, self, ask):
            # One kernel, one loop: two requests would run their cells into each other.
            holder = self.notebooks.holder(ask.notebook)
            return text("busy_here" if holder and holder[0] is self else "busy_elsewhere")
        return None

    async def _run(self, running: _Running) -> None:
        ask = running.ask
        # A fix asked without words is recorded as what the model was asked.
        record = RequestRecord(
            ask.id, ask.mode, ask.prompt.strip() or ask.request([], self.defaults).text
        )
        # None: the history could not be read, so nothing may be written over it.
        conversation: list[Message] | None = None
        result: Finished | None = None
        loop: RefinementLoop | None = None
        outside = False
        try:
            conversation = await self._conversation(ask.notebook)
            request = ask.request(conversation, self.defaults)
            if not self.engine.ready:
                raise EngineNotReady(self.engine.status)
            prepared = await self._prepare(request, ask)
            loop = prepared.loop
            result = await self._drive(running, prepared)
            conversation = prepared.remember()
        except PromptTooLong as exc:
            result = Finished.said("error", [], text("prompt_too_long", error=str(exc)))
        except ModelError as exc:
            result = Finished.said("error", loop.turns if loop else [], _model_error(exc))
        except asyncio.CancelledError:
            # Stop's backstop, or the server shutting down: the record and the done still go
            # out, so the cancellation is taken back until they have.
            result = Finished.said("cancelled", loop.turns if loop else [], text("cancelled"))
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            outside = not running.forced
        except Exception as exc:  # reported to the browser; the server goes on
            log.exception("oci chat request %s failed", ask.id)
            result = Finished.said(
                "error",
                loop.turns if loop else [],
                text("internal_error", name=type(exc).__name__, error=str(exc)),
            )
        finally:
            if result is None:  # a BaseException other than a cancellation
                result = Finished.said("cancelled", loop.turns if loop else [], text("cancelled"))
            await self._finish(running, record, result, conversation)
        if outside:
            raise asyncio.CancelledError  # whoever cancelled the task sees it cancelled

    async def _conversation(self, notebook: str) -> list[Message]:
        """The notebook's remembered conversation. The history is a file: read off the event
        loop."""
        if not notebook:
            return []
        stored = await asyncio.to_thread(self.store.load, notebook)
        return alternate(stored["conversation"])

    async def _finish(
        self,
        running: _Running,
        record: RequestRecord,
        result: Finished,
        conversation: list[Message] | None,
    ) -> None:
        """The end of every request, whatever ended it: keep the record, free the notebook,
        send the one done."""
        ask = running.ask
        self._forget(running)
        running.ended = True
        record.finish(result)
        if ask.notebook and conversation is not None:
            try:
                await asyncio.to_thread(self.store.save_request, ask.notebook, record, conversation)
            except Exception as exc:  # the done must go out all the same
                log.warning("oci: could not save the chat of %s: %s", ask.notebook, exc)
        self._release(running)
        await self._emit(protocol.done(ask.id, result))

    def _forget(self, running: _Running) -> None:
        if self.running.get(running.ask.id) is running:
            del self.running[running.ask.id]
        if running.backstop is not None:
            running.backstop.cancel()

    def _release(self, running: _Running) -> None:
        if running.ask.notebook:
            self.notebooks.release(running.ask.notebook, self, running.ask.id)

    def _task_ended(self, running: _Running) -> None:
        """Whatever happened to the task, the request is over: nothing of it stays held."""
        self._forget(running)
        self._release(running)
        if not running.ended:  # cancelled before it began: its done was never sent
            running.ended = True
            cancelled = Finished.said("cancelled", [], text("cancelled"))
            self._post(protocol.done(running.ask.id, cancelled))

    async def _prepare(self, request: Request, ask: Ask) -> Prepared:
        """The request's prompt, loop and sampling (:func:`oci_jupyter.request.prepare`).
        Tokenising, parsing the failing cell and reading the data files take a while: never
        on the event loop."""
        engine = self.engine
        model = ModelSettings(
            window=engine.context_length,
            count=lambda texts: [engine.count_tokens(t) for t in texts],
            reply_tokens=self.reply_tokens,
            temperature=self.temperature,
            system=self.system_prompt,
        )
        folder = self._notebook_folder(ask.notebook)
        return await asyncio.to_thread(prepare, request, model, folder=folder)

    def _notebook_folder(self, notebook: str) -> Path | None:
        """The folder of ``notebook`` (an API path) under the server's root, where its kernel
        runs; None outside the root or without one."""
        if self.root_dir is None or not notebook:
            return None
        root = self.root_dir.resolve()
        folder = (root / notebook).parent.resolve()
        return folder if folder.is_relative_to(root) and folder.is_dir() else None

    async def _drive(self, running: _Running, prepared: Prepared) -> Finished:
        ask, loop, params = running.ask, prepared.loop, prepared.params
        budgets = loop.budgets
        timing: dict[str, float] = {}

        async def generate(action: Generate) -> str:
            if running.cancelled:
                raise Stopped(text("cancelled"))
            await self._emit(
                protocol.turn_state(
                    ask.id,
                    action.turn,
                    "generating",
                    step=loop.step,
                    budgets={
                        "attempts": budgets.attempts,
                        "steps": budgets.steps,
                        "replies": budgets.replies,
                    },
                )
            )
            mark = time.perf_counter()
            reply, finish, first_token = await self._generate(
                running, action, action.params(params)
            )
            timing.update(generate=time.perf_counter() - mark, first_token=first_token)
            if running.cancelled or (finish is not None and finish.reason == "cancelled"):
                raise Stopped(text("cancelled"))
            return reply

        async def execute(action: Execute) -> ExecutionOutcome:
            # The wait exists before the browser is asked: a fast answer or a cancel
            # arriving while "execute" is being sent is not lost.
            running.outcome = asyncio.get_running_loop().create_future()
            running.waiting_turn, running.waiting, running.queued = action.turn, action, False
            await self._emit(
                protocol.execute(
                    ask.id,
                    action.turn,
                    action.code,
                    target=loop.placement(action),
                    step=action.step,
                    attempt=action.attempt,
                    auto_execute=ask.auto_execute,
                    time_limit=ask.time_limit,
                    inspect=assigned_names(action.code),
                )
            )
            await self._emit(
                protocol.turn_state(
                    ask.id, action.turn, "executing", step=action.step, attempt=action.attempt
                )
            )
            mark = time.perf_counter()
            outcome = await self._wait_outcome(running, action.turn)
            self.timings.append({**timing, "execute": time.perf_counter() - mark})
            if outcome is None:
                raise Stopped(text("cancelled"))
            if outcome.error is not None and outcome.error.ename == "KernelUnavailable":
                raise KernelGone(outcome.error.evalue or text("kernel_unavailable"))
            state = protocol.turn_state(
                ask.id, outcome.turn, outcome.status, step=action.step, attempt=action.attempt
            )
            if outcome.error is not None:
                state.update(ename=outcome.error.ename, evalue=outcome.error.evalue)
            await self._emit(state)
            return outcome.to_outcome()

        async def notify(event: TurnEnded) -> None:
            turn = event.turn
            if turn.skipped is not None:
                # Code that is not run (it calls input(), it already failed): say why.
                await self._emit(
                    protocol.skipped(
                        ask.id,
                        turn.number,
                        SKIP_TEXTS[turn.skipped],
                        step=turn.step,
                        attempt=turn.attempt,
                    )
                )

        return await drive(loop, generate, execute, notify)

    async def _generate(
        self, running: _Running, action: Generate, params: GenerationParams
    ) -> tuple[str, Finish | None, float]:
        ask = running.ask
        engine_request = f"{ask.id}:{action.turn}"
        running.engine_request = engine_request
        cutter = ReplyCutter(self.cut_replies)
        finish: Finish | None = None
        started = time.perf_counter()
        first_token = 0.0
        waiting = asyncio.get_running_loop().create_task(
            self._tell_waiting(ask.id, action.turn, engine_request)
        )
        try:
            stream = self.engine.stream_chat(action.messages, params, engine_request)
            async with contextlib.aclosing(stream):
                async for event in stream:
                    waiting.cancel()
                    if isinstance(event, Delta):
                        if not cutter.text:
                            first_token = time.perf_counter() - started
                        shown = cutter.feed(event.text)
                        if shown:
                            await self._emit(protocol.token(ask.id, action.turn, shown))
                        if cutter.done or running.cancelled:
                            break  # the code block closed (run it now), or Stop
                    else:
                        finish = event
        finally:
            waiting.cancel()
            running.engine_request = ""
        return cutter.text, finish, first_token

    async def _tell_waiting(self, request_id: str, turn: int, engine_request: str) -> None:
        """While the reply waits for the model (other requests go first: another notebook's,
        a fix), say how many are ahead; 0 when it is this one's turn."""
        async for ahead in self.engine.places(engine_request):
            await self._emit(protocol.turn_state(request_id, turn, "generating", waiting=ahead))

    def _deadline(self, running: _Running) -> float | None:
        """When the wait for the outcome gives up, from now. The browser enforces the time
        limit (it interrupts the kernel and reports a timeout); the grace covers a browser
        that vanished without closing the socket. No deadline while the user has the cell
        (review, auto-execute off) or while it waits behind another cell."""
        ask = running.ask
        if not ask.auto_execute or ask.review or running.queued:
            return None
        return asyncio.get_running_loop().time() + ask.time_limit + self.outcome_grace

    async def _wait_outcome(self, running: _Running, turn: int) -> Outcome | None:
        future = running.outcome
        assert future is not None
        try:
            if running.cancelled:
                return None
            async with asyncio.timeout_at(self._deadline(running)) as deadline:
                running.deadline = deadline
                return await future
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if running.cancelled and not (task and task.cancelling()):
                return None  # Stop: the future was cancelled, not the task
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
            running.outcome, running.deadline, running.waiting = None, None, None

    def _deliver(self, outcome: Outcome) -> None:
        running = self.running.get(outcome.id)
        if running is None or running.outcome is None or running.outcome.done():
            return  # late or duplicate report: nothing waits for it
        if outcome.turn != running.waiting_turn:
            return
        running.outcome.set_result(outcome)

    # ---- outbound --------------------------------------------------------------------------------
    def _post(self, message: dict[str, Any]) -> None:
        """Send without waiting (told from outside a request: another connection's news)."""
        task = asyncio.get_running_loop().create_task(self._emit(message))
        self._posts.add(task)  # the loop holds tasks only weakly
        task.add_done_callback(self._posts.discard)

    async def _emit(self, message: dict[str, Any]) -> None:
        try:
            await self._send(message)
        except Exception as exc:  # a closed socket: the session is being torn down
            log.debug("oci chat: could not send %s: %s", message.get("type"), exc)


def _model_error(exc: ModelError) -> Text:
    """The model's failure as the chat says it: its sentence (a model not ready says why,
    :func:`oci_jupyter.texts.not_ready`), else the engine's own words."""
    said = exc.args[0] if exc.args else None
    return said if isinstance(said, Text) else text("model_error", error=str(exc))
