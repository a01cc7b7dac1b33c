"""The llama.cpp engine's work queue: one worker thread owns the model and serves jobs in
order of rank, then arrival (a person before ghost text before a program before a background
prefill); the event loop only queues jobs and reads their events.

:class:`JobQueue` is a part of :class:`~.llamacpp.LlamaCppEngine` (a mixin): the queue's
state and the methods that read or change it under its lock."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .base import EngineError, EngineNotReady, Finish, GenerationParams, Message, StreamEvent
from .chat_tokens import Segment


@dataclass
class RequestStats:
    """How one request used the model: what it read, what it reused, how it decoded."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens not read again: reused from the live or a restored saved state."""
    evaluated_tokens: int = 0
    """Prompt tokens the model read for this request."""
    restored: bool = False
    """The prefix came from a saved state of another conversation (not the live one)."""
    prefill_seconds: float = 0.0
    completion_tokens: int = 0
    decode_seconds: float = 0.0
    drafted_tokens: int = 0
    """Prompt-lookup tokens proposed to the model."""
    accepted_tokens: int = 0
    """Proposed tokens the model confirmed (each saves one decoding step)."""
    reason: str = ""
    warm: bool = False
    """A background prefill (:meth:`LlamaCppEngine.prefill`), not a request."""


@dataclass
class Job:
    messages: list[Message]
    params: GenerationParams
    loop: asyncio.AbstractEventLoop | None
    events: asyncio.Queue[StreamEvent | BaseException] | None
    stop: threading.Event = field(default_factory=threading.Event)
    warm: bool = False
    """A background prefill of ``messages`` as a prompt's beginning (no reply)."""
    request_id: str = ""
    tokens: list[int] = field(default_factory=list)
    """The prompt, tokenized by the worker (not on the event loop)."""
    fim: list[Segment] | None = None
    """An infilling prompt (engine/fim.py) instead of ``messages``."""
    fim_head: int = 0
    """How many of the ``fim`` segments run up to the end of the prefix."""
    yields: bool = False
    """Ghost text: it stops when a chat turn is queued (within a token)."""
    keep: int = 0
    """Tokens of the prompt the next keystroke's shares: up to the cursor but the last
    tokens (set by the worker)."""
    interrupted: bool = False
    """A program's job: a person's request or ghost text was queued while it ran, so the
    prompt chunk it reads aborts and it gives way (llamacpp_context)."""
    soft: bool = False
    """Superseded by the next keystroke, which continues this prompt: a stop waits until
    ``keep`` tokens are read (the next request needs them too); a cancel, a disconnect or a
    chat turn stops it at once."""

    def emit(self, item: StreamEvent | BaseException) -> None:
        if self.loop is None or self.events is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
            self.loop.call_soon_threadsafe(self.events.put_nowait, item)


SHUTDOWN = object()


RANKS = {"interactive": 0, "background": 2}
"""The queue's order: a person waiting (chat, fix, %%oci) before ghost text as they type
(which also gives way to a chat turn that comes while it runs), before a program (the OpenAI
endpoint, oci-eval), and all before a background prefill; first come first served within."""


COMPLETION_RANK = 1


WARM_RANK = 3


MAX_PREFILLS = 4
"""Background prefills pending at most, over all connections (each has one at most): more
would keep the engine busy for minutes reading prompts nobody may send."""


SHUTDOWN_RANK = -1


class JobQueue:
    """The queue's state and methods (a part of the engine; the worker takes the jobs)."""

    _jobs: queue.PriorityQueue[tuple[int, int, object]]
    _order: itertools.count[int]
    _queued: dict[str, tuple[int, int]]
    """Requests waiting for the worker: their place in the queue (rank, arrival)."""
    _enqueue_lock: threading.Lock
    _prefills: dict[object, Job]
    """Each owner's (a chat connection's) one pending or running background prefill, oldest
    first; a newer one replaces it, and it is dropped when its owner goes."""
    _closing: bool
    _unfinished: int
    """Jobs queued or running."""
    _current: Job | None
    if TYPE_CHECKING:  # the engine's
        _llm: Any
        status: Any
        ready: bool

    def _init_queue(self) -> None:
        self._jobs = queue.PriorityQueue()
        self._order = itertools.count()
        self._queued = {}
        self._enqueue_lock = threading.Lock()
        self._prefills = {}
        self._closing = False
        self._unfinished = 0
        self._current = None

    def _enqueue(self, job: Job) -> None:
        with self._enqueue_lock:
            if self._closing or self._llm is None:
                raise EngineNotReady(self.status)
            rank = WARM_RANK if job.warm else RANKS[job.params.priority]
            if job.yields:
                rank = COMPLETION_RANK
            place = (rank, next(self._order))
            if not job.warm:
                self._queued[job.request_id] = place
            self._unfinished += 1
            self._jobs.put((*place, job))
            current = self._current
            if (
                0 <= rank < RANKS["background"]
                and current is not None
                and not current.warm
                and current.params.priority == "background"
            ):
                current.interrupted = True  # its prompt chunk aborts: it gives way
            if rank == RANKS["interactive"] and current is not None and current.yields:
                current.soft = False
                current.stop.set()  # a chat turn waits: ghost text gives way at once

    def _next_job(self) -> Job | None:
        """The next job to run (None: shut down), no longer counted as waiting."""
        _, _, job = self._jobs.get()
        if job is SHUTDOWN:
            return None
        if not isinstance(job, Job):
            raise TypeError(f"the llama.cpp job queue holds {job!r}")
        if not job.warm:
            with self._enqueue_lock:
                self._queued.pop(job.request_id, None)
        return job

    def _take_waiting(self) -> Job | None:
        """The first queued job ranked above programs, taken off the queue (else None)."""
        try:
            item = self._jobs.get_nowait()
        except queue.Empty:
            return None
        rank, _, job = item
        if not (0 <= rank < RANKS["background"]) or not isinstance(job, Job):
            self._jobs.put(item)  # same (rank, arrival): it keeps its place
            return None
        with self._enqueue_lock:
            self._queued.pop(job.request_id, None)
        return job

    def _someone_waits(self, job: Job) -> bool:
        """A person's request or ghost text was queued while this program's reply runs."""
        if job.warm or job.params.priority != "background":
            return False
        with self._enqueue_lock:
            return any(0 <= rank < RANKS["background"] for rank, _ in self._queued.values())

    def _chat_waiting(self) -> bool:
        """A person's request (not ghost text) is queued: ghost text gives way to it."""
        with self._enqueue_lock:
            return any(rank == RANKS["interactive"] for rank, _ in self._queued.values())

    def _drain(self, failure: EngineError | None = None) -> None:
        """End the queued jobs: cancelled (shut down) or failed (the worker died)."""
        while True:
            try:
                _, _, job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if isinstance(job, Job):
                with self._enqueue_lock:
                    self._queued.pop(job.request_id, None)
                job.emit(failure if failure is not None else Finish("cancelled", 0, 0))
                with self._enqueue_lock:
                    self._unfinished -= 1

    def _forget_prefill(self, job: Job) -> None:
        """(Under the enqueue lock) a prefill that ended is nobody's pending one any more."""
        for owner, pending in list(self._prefills.items()):
            if pending is job:
                del self._prefills[owner]

    def waiting_ahead(self, request_id: str) -> int:
        """How many requests the worker serves before this queued one (the one it runs now
        included); 0 once it runs, or for a request it does not know."""
        with self._enqueue_lock:
            place = self._queued.get(request_id)
            if place is None:
                return 0
            ahead = sum(1 for other in self._queued.values() if other < place)
        current = self._current
        return ahead + (1 if current is not None and not current.warm else 0)

    @property
    def waiting_requests(self) -> int:
        with self._enqueue_lock:
            return len(self._queued)

    def prefill(self, messages: Sequence[Message], owner: object = None) -> bool:
        """Read ``messages`` in the background, as the start of a later request's prompt.

        The messages are rendered with the chat template and without the assistant prompt;
        a later request whose messages begin with exactly these then reads only the rest.
        The work yields at once to any request (it is aborted, and what it read so far is
        kept). ``owner`` (a chat connection) has one prefill at most: a newer one replaces
        its pending one, and :meth:`drop_prefills` ends it; at most :data:`MAX_PREFILLS` are
        pending in all (the oldest gives way). Returns whether the work was queued (False
        when the engine is not ready).
        """
        if not self.ready or self._llm is None or not messages:
            return False
        job = Job(list(messages), GenerationParams(), None, None, warm=True)
        with self._enqueue_lock:
            replaced = self._prefills.pop(owner, None)
            if replaced is not None:
                replaced.stop.set()
            while len(self._prefills) >= MAX_PREFILLS:
                self._prefills.pop(next(iter(self._prefills))).stop.set()
            self._prefills[owner] = job
        try:
            self._enqueue(job)
        except EngineNotReady:
            self.drop_prefills(owner)
            return False
        return True

    def drop_prefills(self, owner: object = None) -> None:
        """End ``owner``'s background prefill, pending or running (its connection closed)."""
        with self._enqueue_lock:
            job = self._prefills.pop(owner, None)
        if job is not None:
            job.stop.set()

    @property
    def pending_prefills(self) -> int:
        """Background prefills queued or running (at most :data:`MAX_PREFILLS`)."""
        with self._enqueue_lock:
            return sum(1 for job in self._prefills.values() if not job.stop.is_set())

    @property
    def busy(self) -> bool:
        """A request or a background prefill is queued or running."""
        return self._unfinished > 0

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until no request or background prefill is queued or running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.busy:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("the llama.cpp engine is still busy")
            await asyncio.sleep(0.02)
