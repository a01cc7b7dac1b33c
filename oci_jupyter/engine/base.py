"""The engine protocol: what every model host (llama.cpp, vLLM, a remote server) provides.

An engine streams chat completions, cancels them, counts tokens and reports its state. It
never blocks the caller's event loop: loading and inference run in a worker thread, another
process or a remote server. The server keeps exactly one engine.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..texts import Text, not_ready, text
from ..types import GenerationParams, Message

if TYPE_CHECKING:
    from .fim import FimPrompt

log = logging.getLogger(__name__)
PLACE_POLL_SECONDS = 0.25
"""How often a request that waits for the model looks at its place in the queue."""

EngineState = Literal["idle", "loading", "ready", "error", "stopped"]
FinishReason = Literal["stop", "length", "cancelled", "error"]


class ModelError(RuntimeError):
    """The model could not answer a request: the engine failed or is not ready, or the server
    refused or failed the request.

    One idea, one class, whoever meets it: the engines raise it (as :data:`EngineError`),
    the kernel's client of the endpoint raises it with the HTTP status
    (:class:`oci_jupyter.client.ModelRequestError`), the loop's driver ends a request with it
    (:data:`oci_jupyter.driver.ModelFailed` is this class) and ``oci-eval`` fails one problem
    with it. It may be raised with a sentence of :mod:`oci_jupyter.texts` instead of words:
    the loop's end then keeps the sentence's code, for the sidebar to translate."""


EngineError = ModelError
"""The name the engines raise it by."""


class EngineNotReady(ModelError):
    """The engine is loading, failed to load or was stopped; it says so in the one sentence
    of :func:`oci_jupyter.texts.not_ready`."""

    def __init__(self, status: EngineStatus) -> None:
        self.status = status
        super().__init__(status.not_ready())


class EngineBusy(ModelError):
    """The engine cannot do this now (a restart while the model loads): ``said`` why."""

    def __init__(self, said: Text) -> None:
        super().__init__(str(said))
        self.said = said


@dataclass(frozen=True)
class Delta:
    """A piece of generated text."""

    text: str


@dataclass(frozen=True)
class Finish:
    """The last event of every stream."""

    reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int | None = None
    """Of the prompt, tokens the engine did not read again (its prefix cache had them);
    None when the engine does not say."""


StreamEvent = Delta | Finish


@dataclass
class EngineStatus:
    engine: str
    model: str
    device: str
    state: EngineState = "idle"
    detail: str = ""
    """What the engine is doing right now, for people ("assembling model file", ...)."""
    progress: float | None = None
    """0..1 while a long load step can measure itself, else None."""
    error: str | None = None
    context_length: int | None = None
    since: float = field(default_factory=time.time)
    detail_text: Text | None = None
    """``detail`` as a sentence of :mod:`oci_jupyter.texts`, for the panel to translate
    (None: words without a code)."""
    error_text: Text | None = None
    """``error`` likewise (None: an exception's own words, shown as they are)."""

    def not_ready(self) -> Text:
        """Why this engine cannot answer now (:func:`oci_jupyter.texts.not_ready`)."""
        return not_ready(self.state, self.error_text or self.error)

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        for name in ("detail_text", "error_text"):
            said: Text | None = getattr(self, name)
            body[name] = said.json() if said is not None else None
        return body


class Engine(abc.ABC):
    """Base class for model hosts.

    Subclasses implement :meth:`_load` (runs in the background, may raise) and
    :meth:`_generate`. The base class owns the status, the background load and the bookkeeping
    of running requests so that :meth:`cancel` works the same for every engine.

    A loaded engine that dies (vLLM's engine core, llama.cpp's worker thread) reports it with
    :meth:`_died`: the status turns ``error`` and requests fail fast until :meth:`restart`
    loads the model again, in the same server.
    """

    name: str = "engine"
    title: str = "model"
    """The engine's name for people, in messages ("The vLLM engine died: ...")."""

    restart_timeout: float = 30.0
    """Seconds a restart waits for the running requests to end before it frees the model."""

    def __init__(self, *, model: str, device: str) -> None:
        self._status = EngineStatus(engine=self.name, model=model, device=device)
        self._load_task: asyncio.Task[None] | None = None
        self._cancel_events: dict[str, asyncio.Event] = {}

    # ---- state -------------------------------------------------------------------------------
    @property
    def status(self) -> EngineStatus:
        self._notice_death()
        return self._status

    @property
    def ready(self) -> bool:
        self._notice_death()
        return self._status.state == "ready"

    def _notice_death(self) -> None:
        if self._status.state == "ready":
            reason = self._check_alive()
            if reason:
                self._died(reason)

    def _check_alive(self) -> str | None:
        """Why the loaded engine is dead, or None while it lives (cheap: called on every read
        of the status; optional). Lets a death show before a request runs into it."""
        return None

    def _died(self, reason: str) -> None:
        """Report that the loaded engine died: the status turns ``error`` with ``reason`` and
        a hint to restart, and new requests fail fast with :class:`EngineNotReady` (running
        ones fail on their own, with the engine's error). Only a ready engine can die (a
        load, a restart or a shutdown in progress wins). Call it on the event loop's thread."""
        if self._status.state != "ready":
            return
        log.error("%s engine died: %s", self.title, reason)
        self._set_status(
            "error",
            error=text("engine_died_because", engine=self.title, reason=reason),
            detail=text("engine_died"),
            progress=None,
        )

    def _set_status(self, state: EngineState | None = None, **changes: Any) -> None:
        """Change the status. ``detail`` and ``error`` may be a :class:`Text`: the status
        keeps its English (for logs and API clients) and the sentence (for the panel)."""
        if state is not None and state != self._status.state:
            self._status.state = state
            self._status.since = time.time()
        for key, value in changes.items():
            if key in ("detail", "error"):
                setattr(self._status, f"{key}_text", value if isinstance(value, Text) else None)
                value = str(value) if isinstance(value, Text) else value
            setattr(self._status, key, value)

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        """Begin loading in the background and return at once (idempotent)."""
        if self._load_task is None:
            self._set_status("loading", detail=text("engine_starting"), error=None, progress=None)
            self._load_task = asyncio.get_running_loop().create_task(self._run_load())
        return self._load_task

    async def wait_ready(self, timeout: float | None = None) -> EngineStatus:
        """Wait for the load to end (ready or error) and return the status."""
        task = self.start()
        await asyncio.wait_for(asyncio.shield(task), timeout)
        return self._status

    async def _run_load(self) -> None:
        try:
            await self._load()
        except asyncio.CancelledError:
            self._set_status("stopped", detail=text("engine_load_cancelled"), progress=None)
            raise
        except Exception as exc:  # any failure is reported, never raised into Jupyter
            self._set_status(
                "error", error=_describe(exc), detail=text("engine_load_failed"), progress=None
            )
        else:
            self._set_status("ready", detail="", progress=None, error=None)

    def restart(self) -> asyncio.Task[None]:
        """Load the model again, in the background, and return the task (like :meth:`start`).

        Refused with :class:`EngineBusy` while the model loads (or restarts). Otherwise the
        status turns ``loading`` at once (new requests fail fast), running requests are
        cancelled and awaited (up to :attr:`restart_timeout` seconds), what the old load holds
        is released (:meth:`_close`), and the load runs again: ``ready`` or ``error``.
        """
        if self._status.state == "loading":
            raise EngineBusy(text("restart_while_loading"))
        # Not loading: any earlier load task has ended.
        self._set_status(
            "loading", detail=text("engine_restart_stopping"), error=None, progress=None
        )
        self._load_task = asyncio.get_running_loop().create_task(self._run_restart())
        return self._load_task

    async def _run_restart(self) -> None:
        try:
            await self._stop_requests(self.restart_timeout)
            self._set_status(detail=text("engine_restart_releasing"))
            try:
                await self._close()
            except Exception:  # a dead engine may fail to close; its memory goes with it
                log.warning("%s: closing the old engine failed", self.title, exc_info=True)
            self._reset()
        except asyncio.CancelledError:
            self._set_status("stopped", detail=text("engine_restart_cancelled"), progress=None)
            raise
        except Exception as exc:
            self._set_status(
                "error", error=_describe(exc), detail=text("engine_restart_failed"), progress=None
            )
            return
        self._set_status(detail=text("engine_starting"), context_length=None)
        await self._run_load()

    async def _stop_requests(self, timeout: float) -> None:
        """Cancel the running requests and wait until they have ended (or ``timeout``)."""
        for event in self._cancel_events.values():
            event.set()
        deadline = time.monotonic() + timeout
        while self._cancel_events:
            if time.monotonic() > deadline:
                log.warning(
                    "%s: %d requests still running after %.0f s; restarting anyway",
                    self.title,
                    len(self._cancel_events),
                    timeout,
                )
                return
            await asyncio.sleep(0.02)

    async def shutdown(self) -> None:
        for event in self._cancel_events.values():
            event.set()
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._load_task
        await self._close()
        self._set_status("stopped", detail=text("engine_shut_down"))

    # ---- generation --------------------------------------------------------------------------
    async def stream_chat(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        request_id: str,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Stream a chat completion: :class:`Delta` events, then exactly one :class:`Finish`.

        Closing the iterator early, or :meth:`cancel` with the same id, stops generation
        within about one token and frees the engine for the next request.
        """
        stream = self._tracked(
            request_id,
            lambda cancelled: self._generate(list(messages), params, request_id, cancelled),
        )
        try:
            async for event in stream:
                yield event
        finally:
            await stream.aclose()  # now, not when collected: the generation stops at once

    async def stream_fim(
        self, prompt: FimPrompt, params: GenerationParams, request_id: str
    ) -> AsyncGenerator[StreamEvent, None]:
        """Stream the middle between ``prompt.prefix`` and ``prompt.suffix`` (or, with no
        suffix, a continuation of the prefix), with the model's own infilling prompt: like
        :meth:`stream_chat`, :class:`Delta` events then one :class:`Finish`, stopped by
        :meth:`cancel` or by closing the iterator. ``params.priority`` "interactive" (ghost
        text, a person typing) goes before programs but yields to a chat turn."""
        stream = self._tracked(
            request_id, lambda cancelled: self._generate_fim(prompt, params, request_id, cancelled)
        )
        try:
            async for event in stream:
                yield event
        finally:
            await stream.aclose()

    async def _tracked(
        self,
        request_id: str,
        start: Callable[[asyncio.Event], AsyncGenerator[StreamEvent, None]],
    ) -> AsyncGenerator[StreamEvent, None]:
        """Run the engine's generator ``start(cancelled)`` as request ``request_id``: known to
        :meth:`cancel` and a restart while it runs, its own bugs reported as EngineError."""
        if not self.ready:
            raise EngineNotReady(self._status)
        if request_id in self._cancel_events:
            raise EngineError(f"request id {request_id!r} is already running")
        cancelled = asyncio.Event()
        self._cancel_events[request_id] = cancelled
        try:
            events = start(cancelled)
        except BaseException:
            self._cancel_events.pop(request_id, None)
            raise
        try:
            async for event in events:
                yield event
        except (EngineError, asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:
            # An engine's own bug must reach every surface as a failed request (an OpenAI
            # error event, a chat error), not as a stream that just stops.
            log.exception("the %s engine failed on request %s", self.name, request_id)
            raise EngineError(f"The {self.title} engine failed: {_describe(exc)}") from exc
        finally:
            cancelled.set()  # tells a still-running worker to stop (closed iterator)
            # Close the engine's generator now, not when it is garbage-collected, so that its
            # own cleanup (aborting the request) runs before the caller goes on.
            await events.aclose()
            self._cancel_events.pop(request_id, None)

    def cancel(self, request_id: str) -> bool:
        """Stop a running request; returns whether it was running."""
        event = self._cancel_events.get(request_id)
        if event is None:
            return False
        event.set()
        return True

    def supersede(self, request_id: str) -> bool:
        """The next keystroke's infilling request continues this one's prompt: stop it, but
        an engine may first finish reading what the next one shares (llama.cpp does)."""
        return self.cancel(request_id)

    @property
    def running_requests(self) -> list[str]:
        return list(self._cancel_events)

    def waiting_ahead(self, request_id: str) -> int:
        """How many requests go before this one that waits for the model (0: it runs, or the
        engine does not queue; vLLM and remote servers batch instead)."""
        return 0

    async def places(self, request_id: str) -> AsyncGenerator[int, None]:
        """Follow a request's place in the queue: yields how many go before it each time
        that changes (0: its turn). Runs until the caller stops iterating (at the first
        token); for an engine that does not queue it never yields."""
        told = 0
        while True:
            await asyncio.sleep(PLACE_POLL_SECONDS)
            ahead = self.waiting_ahead(request_id)
            if ahead != told:
                told = ahead
                yield ahead

    @property
    def waiting_requests(self) -> int:
        """Requests queued and not yet started."""
        return 0

    @property
    def busy(self) -> bool:
        """The model is working: a request, or (llama.cpp) a background prefill."""
        return bool(self._cancel_events)

    # ---- to implement ------------------------------------------------------------------------
    @abc.abstractmethod
    async def _load(self) -> None:
        """Load the model; update the status's detail/progress while doing so."""

    @abc.abstractmethod
    def _generate(
        self,
        messages: list[Message],
        params: GenerationParams,
        request_id: str,
        cancelled: asyncio.Event,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Yield deltas and one final Finish; stop promptly once ``cancelled`` is set."""

    async def _generate_fim(
        self,
        prompt: FimPrompt,
        params: GenerationParams,
        request_id: str,
        cancelled: asyncio.Event,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Like :meth:`_generate`, for an infilling prompt (optional: engines that cannot
        fill in the middle refuse)."""
        raise EngineError(f"The {self.title} engine cannot fill in the middle")
        yield  # an async generator, like the engines' own  # pragma: no cover

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens of plain text with this model's tokenizer (an estimate where there is none)."""

    @abc.abstractmethod
    def count_chat_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the prompt these messages become (chat template applied)."""

    @property
    @abc.abstractmethod
    def context_length(self) -> int:
        """The model's context window in tokens (valid once ready)."""

    async def _close(self) -> None:  # noqa: B027 - optional hook
        """Release the model (optional)."""

    def _reset(self) -> None:  # noqa: B027 - optional hook
        """After :meth:`_close`, before a restart's load: make ready for :meth:`_load` again
        (optional; may raise to refuse the restart, which then reports an error)."""


def finish_reason(raw: str | None) -> FinishReason:
    """Map an engine's own finish reason onto ours (unknown reasons end normally)."""
    if raw in ("length", "cancelled", "error"):
        return raw  # type: ignore[return-value]
    if raw == "abort":
        return "cancelled"
    return "stop"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
