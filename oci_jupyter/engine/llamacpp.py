"""llama.cpp on the CPU, through llama-cpp-python, with the bundled Qwen2.5-Coder model.

llama.cpp is not safe to call from several threads at once, and a generation holds the CPU for
seconds. So one worker thread owns the model and serves a queue of requests in order; the event
loop only exchanges small messages with it and is never blocked.

On a CPU, reading the prompt decides the wait. The worker therefore drives llama.cpp itself
rather than through ``create_chat_completion``:

- **Prefix reuse** (:mod:`.kv_cache`): after every request the KV state of the conversation is
  saved (within ``kv_cache_bytes``); a request continues from the saved or live state that
  shares the longest token prefix with its prompt and reads only the rest, so another
  conversation in between does not make the next turn re-read everything.
- **Cancellable prefill**: the prompt is read in chunks of ``n_batch`` tokens, and llama.cpp's
  abort callback checks the stop flag while a chunk computes: Stop ends a long prefill within
  about a tenth of a second, and the next request does not wait behind it.
- **Prompt-lookup decoding**: a reply that copies text of its prompt (a refined cell copies the
  previous code) is drafted from the prompt and checked by the model several tokens per step.
- **Background prefill** (:meth:`LlamaCppEngine.prefill`): while idle, read what the next
  request will start with; it yields to any real request at once.
- **Threads by load**: llama.cpp's threads spin-wait for each other, so the engine uses one
  fewer per core that other processes keep busy (all cores for the prompt, all but one for
  decoding at most); see :meth:`LlamaCppEngine._choose_threads`.

Figures, and the CPU they were measured on: benchmarks/README.md, "CPU".
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import logging
import os
import queue
import random
import threading
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..texts import Text, text
from .base import (
    Delta,
    Engine,
    EngineError,
    EngineNotReady,
    Finish,
    FinishReason,
    GenerationParams,
    Message,
    StreamEvent,
    _describe,
)
from .bundled import DEFAULT_MODEL, ModelFile, ModelUnavailable, resolve_model_file, verify
from .chat_tokens import Segment, prompt_segments, tokenize_segments
from .cpu_quirks import cpu_has_amx, safe_model_params
from .fim import (
    KEEP_MARGIN,
    FimFormat,
    FimPrompt,
    chunk_bounds,
    detect_format,
    prompt_parts,
)
from .kv_cache import PrefixCache, as_tokens, common_prefix, restore_sequence, save_sequence
from .model_guard import ModelGuard, ModelReleased, close_quietly

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"

DEFAULT_KV_CACHE_BYTES = 512 * 1024 * 1024
"""~18,000 tokens of saved conversation state for the bundled model (28.7 KB per token)."""

PromptLookup = Literal["auto", "on", "off"]
ExtraBuffers = Literal["auto", "on", "off"]

_LOOKUP_MAX_PAUSE = 32
"""prompt_lookup "auto": after a draft whose first token the model rejects, no drafts for 2,
4, 8, ... up to this many tokens (a checked batch of 11 tokens costs ~3 single steps on the
CPU); a draft with 2 or more confirmed tokens ends the pause."""

_MIN_SAVED_TOKENS = 16
"""Shorter states are not worth a cache entry (reading them again costs a fraction of a second)."""


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
class _Job:
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
    soft: bool = False
    """Superseded by the next keystroke, which continues this prompt: a stop waits until
    ``keep`` tokens are read (the next request needs them too); a cancel, a disconnect or a
    chat turn stops it at once."""

    def emit(self, item: StreamEvent | BaseException) -> None:
        if self.loop is None or self.events is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
            self.loop.call_soon_threadsafe(self.events.put_nowait, item)


_SHUTDOWN = object()
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


def default_threads() -> int:
    """Decoding threads before the first load reading: all usable cores but one (the engine
    then follows the load, see LlamaCppEngine._choose_threads; a fixed n_threads is kept)."""
    return max(1, usable_cores() - 1)


def default_batch_threads() -> int:
    """Prompt-reading threads before the first load reading: every core."""
    return usable_cores()


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's model name (printed with every benchmark figure)."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or platform.machine()


class CpuMeter:
    """How many cores other processes keep busy, over the last ``interval`` seconds (from
    /proc/stat minus this process's own time), sampled by a small thread while started."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._value: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as stat:
                fields = [int(x) for x in stat.readline().split()[1:9]]
            with open("/proc/self/stat") as own:
                mine = own.read().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            return None
        tick = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields) - fields[3] - fields[4]) / tick  # all but idle and iowait
        return time.monotonic(), busy, (int(mine[11]) + int(mine[12])) / tick

    def start(self) -> None:
        if self._thread is None and self._read() is not None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, name="oci-cpu-meter", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(2 * self.interval)

    def _sample(self) -> None:
        last = self._read()
        while not self._stop.wait(self.interval):
            now = self._read()
            if now is None or last is None:
                return
            wall = now[0] - last[0]
            if wall > 0:
                used = (now[1] - last[1]) - (now[2] - last[2])
                self._value = max(0.0, used / wall)
            last = now

    def others(self) -> float | None:
        """Cores other processes used in the last interval; None before the first sample."""
        return self._value


class LlamaCppEngine(Engine):
    name = "llamacpp"
    title = "llama.cpp"

    def __init__(
        self,
        *,
        model_path: str | None = None,
        model_sha256: str | None = None,
        spec: ModelFile = DEFAULT_MODEL,
        cache_dir: Path | None = None,
        try_hub: bool = True,
        hub_timeout: float = 5.0,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        n_batch: int = 512,
        served_model_name: str | None = None,
        kv_cache_bytes: int = DEFAULT_KV_CACHE_BYTES,
        prompt_lookup: PromptLookup = "auto",
        lookup_tokens: int = 10,
        extra_buffers: ExtraBuffers = "auto",
    ) -> None:
        self._model_path = Path(model_path).expanduser() if model_path else None
        self._model_sha256 = model_sha256
        self._spec = spec
        self._cache_dir = cache_dir
        self._try_hub = try_hub
        self._hub_timeout = hub_timeout
        self._n_ctx = n_ctx
        self._fixed_threads = n_threads or None
        self._fixed_batch_threads = n_threads_batch or None
        self._n_threads = n_threads or default_threads()
        self._n_threads_batch = n_threads_batch or default_batch_threads()
        self._meter = CpuMeter()
        self._n_batch = n_batch
        self.prompt_lookup: PromptLookup = prompt_lookup
        """Prompt-lookup decoding: "on", "off" or "auto" (may change between requests)."""
        self._lookup_tokens = max(1, lookup_tokens)
        self._extra_buffers = extra_buffers
        if served_model_name:
            model_name = served_model_name
        elif self._model_path:
            model_name = self._model_path.stem
        else:
            model_name = spec.served_name or spec.filename.removesuffix(".gguf")
        if self._fixed_threads:
            plural = "s" if self._n_threads != 1 else ""
            device = f"cpu ({self._n_threads} thread{plural})"
        else:
            most = max(default_threads(), default_batch_threads())
            device = f"cpu (1-{most} threads, by load)" if most > 1 else "cpu (1 thread)"
        super().__init__(model=model_name, device=device)
        self._guard: ModelGuard[Any] = ModelGuard()
        """The model: the worker computes with it; token counting in other threads holds it,
        and a release waits for them (freeing it under a tokenizer kills the process)."""
        self._formatter: Any = None
        self._prefix_formatter: Any = None
        self._jobs: queue.PriorityQueue[tuple[int, int, object]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._queued: dict[str, tuple[int, int]] = {}
        """Requests waiting for the worker: their place in the queue (rank, arrival)."""
        self._enqueue_lock = threading.Lock()
        self._prefills: dict[object, _Job] = {}
        """Each owner's (a chat connection's) one pending or running background prefill, oldest
        first; a newer one replaces it, and it is dropped when its owner goes."""
        self._closing = False
        self._unfinished = 0
        """Jobs queued or running."""
        self._worker: threading.Thread | None = None
        self._old_worker: threading.Thread | None = None
        """A worker that was still busy when it was told to stop (it frees its model itself)."""
        self._worker_failure: str | None = None
        """Why the worker died outside a request (set by the worker)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._current: _Job | None = None
        self._abort_armed = False
        self._abort_callback: Any = None
        self._abort_null: Any = None
        self._threads_set: tuple[int, int] | None = None
        self.cache = PrefixCache(kv_cache_bytes)
        self.last_stats: RequestStats | None = None
        """How the latest request read its prompt and decoded (set by the worker)."""
        self.warm_stats: RequestStats | None = None
        """The same for the latest background prefill."""
        self.fim_stats: RequestStats | None = None
        """The same for the latest infilling request (ghost text)."""
        self._live_fim = False
        """The live context holds an infilling prompt that is not saved yet."""
        self._fim_format: FimFormat | Literal[False] | None = False
        """The model's infilling markers; False: not read yet."""
        self._fim_jobs: dict[str, _Job] = {}
        """Infilling requests in flight, by id (to supersede them)."""
        self._reading_to = 0
        """Where the prompt chunk being read ends (the worker's, for the stop check)."""
        self.model_file: Path | None = None

    # ---- loading -----------------------------------------------------------------------------
    async def _load(self) -> None:
        loop = self._loop = asyncio.get_running_loop()

        def progress(detail: Text, fraction: float | None) -> None:
            loop.call_soon_threadsafe(self._progress, detail, fraction)

        self.model_file = await asyncio.to_thread(self._find_model_file, progress)
        self._set_status(
            detail=text("engine_loading_llamacpp", file=self.model_file.name), progress=None
        )
        self._llm, self._formatter, self._prefix_formatter = await asyncio.to_thread(
            self._open_model, self.model_file
        )
        self._install_abort_callback()
        self._meter.start()
        self._set_status(context_length=self._n_ctx)
        self._worker = threading.Thread(target=self._serve, name="oci-llamacpp", daemon=True)
        self._worker.start()

    def _progress(self, detail: Text, fraction: float | None) -> None:
        if self.status.state == "loading":
            self._set_status(detail=detail, progress=fraction)

    def _find_model_file(self, progress: Any) -> Path:
        if self._model_path is None:
            return resolve_model_file(
                self._spec,
                cache_dir=self._cache_dir,
                try_hub=self._try_hub,
                hub_timeout=self._hub_timeout,
                progress=progress,
            )
        path = self._model_path
        if not path.is_file():
            raise ModelUnavailable(f"model_path {path} does not exist or is not a file")
        with path.open("rb") as handle:
            if handle.read(4) != GGUF_MAGIC:
                raise ModelUnavailable(f"{path} is not a GGUF file")
        if self._model_sha256:
            spec = ModelFile(path.name, path.stat().st_size, self._model_sha256.lower())
            verify(path, spec, progress)
        elif path.name == self._spec.filename:
            verify(path, self._spec, progress)
        return path

    def use_extra_buffers(self) -> bool:
        """Whether llama.cpp may repack the weights into its extra CPU buffer types.

        "auto" says no on CPUs with AMX: llama-cpp-python 0.3.36's AMX matrix kernels die with a
        general protection fault (``ldtilecfg`` in ggml_backend_amx_mul_mat) at the first
        decode on the Sapphire Rapids machines this project runs on, although AMX itself
        works there. Without them the bundled model reads ~170 prompt tokens/s on 2 cores.
        """
        if self._extra_buffers == "auto":
            return not cpu_has_amx()
        return self._extra_buffers == "on"

    def _open_model(self, path: Path) -> tuple[Any, Any, Any]:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        kwargs: dict[str, Any] = dict(
            model_path=str(path),
            n_ctx=self._n_ctx,
            n_threads=self._n_threads,
            n_threads_batch=self._n_threads_batch,
            n_batch=self._n_batch,
            verbose=False,
        )
        # On AMX CPUs llama.cpp's AMX weight buffers crash the process: see cpu_quirks.
        with safe_model_params(disable_extra_buffers=not self.use_extra_buffers()):
            llm = Llama(**kwargs)
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            llm.close()
            raise EngineError(f"{path.name} has no chat template in its metadata")
        vocab = llm._model  # token strings for the template's bos/eos variables
        eos = vocab.token_get_text(llm.token_eos())
        bos = vocab.token_get_text(llm.token_bos())
        formatter = Jinja2ChatFormatter(
            template=template, eos_token=eos, bos_token=bos, add_generation_prompt=True
        )
        prefix = Jinja2ChatFormatter(
            template=template, eos_token=eos, bos_token=bos, add_generation_prompt=False
        )
        return llm, formatter, prefix

    def _install_abort_callback(self) -> None:
        """llama.cpp calls this between the operations of a computation; True aborts it. It is
        armed only while a prompt is read (each call takes the GIL: not worth it per token)."""
        import llama_cpp

        def should_abort(_data: Any) -> bool:
            return self._abort_armed and self._should_stop()

        self._abort_callback = llama_cpp.ggml_abort_callback(should_abort)
        self._abort_null = ctypes.cast(None, llama_cpp.ggml_abort_callback)

    def _arm_abort(self, armed: bool) -> None:
        import llama_cpp

        self._abort_armed = armed
        callback = self._abort_callback if armed else self._abort_null
        llama_cpp.llama_set_abort_callback(self._llm._ctx.ctx, callback, None)

    def _choose_threads(self) -> None:
        """Threads not fixed by the configuration follow the load of the rest of the machine:
        one fewer per core that other processes (a kernel) keep busy; prompt reading may use
        every core, decoding all but one.

        llama.cpp's threads wait for each other spinning, so one that has to share its core
        stalls them all. Measured on 2 cores (benchmarks/README.md, "CPU"): 2 threads read
        165 prompt tokens/s on an idle machine (1 thread: 92) but 49 next to a busy kernel (1
        thread: 90), and decode 12.6 tok/s idle (1 thread: 7.0) but 2.0 next to a busy kernel
        (1 thread: 6.9). Decoding keeps a core free even when idle: with 2 decoding threads
        Jupyter's p99 latency while 4 replies stream rose from 2.4 to 9.7-13.6 ms (P2 4.3-6.9
        against its goal of 3; 1 thread: 1.16)."""
        if self._fixed_threads and self._fixed_batch_threads:
            return
        others = self._meter.others()
        if others is None:
            return  # not measured (yet): keep the last choice
        free = max(1, int(usable_cores() - others + 0.3))
        if not self._fixed_threads:
            self._n_threads = min(free, default_threads())
        if not self._fixed_batch_threads:
            self._n_threads_batch = min(free, default_batch_threads())

    def _use_threads(self, decode: int, batch: int) -> None:
        if self._threads_set != (decode, batch):
            import llama_cpp

            llama_cpp.llama_set_n_threads(self._llm._ctx.ctx, decode, batch)
            self._threads_set = (decode, batch)

    def _should_stop(self) -> bool:
        job = self._current
        if job is None:
            return False
        if job.stop.is_set():
            # A superseded keystroke reads on up to ``keep``: the next one needs it too.
            return not (job.soft and self._reading_to <= job.keep)
        return job.warm and bool(self._queued)  # a request waits: yield to it

    # ---- the worker thread -------------------------------------------------------------------
    def _serve(self) -> None:
        failure: EngineError | None = None
        try:
            while True:
                job = self._next_job()
                if job is None:
                    return
                self._serve_one(job)
        except BaseException as exc:  # the worker itself failed: no request can run any more
            log.error("the llama.cpp worker died", exc_info=True)
            reason = f"its worker thread failed: {_describe(exc)}"
            failure = EngineError(f"The llama.cpp engine died: {reason}")
            with self._enqueue_lock:
                self._closing = True  # refuse new jobs from now on
            self._report_death(reason)
        finally:
            self._drain(failure)
            self._release_model()  # only the worker frees the model it computes with

    def _serve_one(self, job: _Job) -> None:
        """Run ``job`` and account for it; its failure goes to its caller, not the worker."""
        outer = self._current
        self._current = job
        try:
            self._run(job)
        except BaseException as exc:  # reported to the caller; the worker lives on
            log.debug("llama.cpp request failed", exc_info=True)
            job.emit(exc)
        finally:
            self._current = outer
            with self._enqueue_lock:
                self._unfinished -= 1
                if job.warm:
                    self._forget_prefill(job)

    # ---- a program's reply gives way ---------------------------------------------------------
    def _someone_waits(self, job: _Job) -> bool:
        """A person's request or ghost text was queued while this program's reply runs."""
        if job.warm or job.params.priority != "background":
            return False
        with self._enqueue_lock:
            return any(0 <= rank < RANKS["background"] for rank, _ in self._queued.values())

    def _take_waiting(self) -> _Job | None:
        """The first queued job ranked above programs, taken off the queue (else None)."""
        try:
            item = self._jobs.get_nowait()
        except queue.Empty:
            return None
        rank, _, job = item
        if not (0 <= rank < RANKS["background"]) or not isinstance(job, _Job):
            self._jobs.put(item)  # same (rank, arrival): it keeps its place
            return None
        with self._enqueue_lock:
            self._queued.pop(job.request_id, None)
        return job

    def _give_way(self, job: _Job) -> bool:
        """Between two tokens (or two prompt chunks) of a program's reply (oci-eval, the
        OpenAI endpoint), serve the chat turns and ghost text queued meanwhile, then read the
        reply's context back and go on: a person never waits for a long background reply.
        The context is saved in the prefix cache first, so reading it back is a copy (it is
        read again only if the cache dropped it). Returns False when ``job`` was stopped
        meanwhile."""
        llm = self._llm
        context = [int(t) for t in llm.input_ids[: llm.n_tokens]]
        self._remember()
        while (waiting := self._take_waiting()) is not None:
            self._serve_one(waiting)
        if job.stop.is_set():
            return False
        self._read_back(context)
        return True

    def _read_back(self, context: list[int]) -> None:
        """Bring the live context to exactly ``context``: from the cache when it holds it,
        reading what it lacks."""
        llm = self._llm
        if self._live_fim:  # keep the last keystroke's state for the next one
            self._live_fim = False
            self._remember()
        keep = self._restore_prefix(context, len(context))
        self._use_threads(self._n_threads, self._n_threads_batch)
        for start, stop in chunk_bounds(keep, len(context), self._n_batch):
            llm.eval(context[start:stop])

    def _forget_prefill(self, job: _Job) -> None:
        """(Under the enqueue lock) a prefill that ended is nobody's pending one any more."""
        for owner, pending in list(self._prefills.items()):
            if pending is job:
                del self._prefills[owner]

    def _next_job(self) -> _Job | None:
        """The next job to run (None: shut down), no longer counted as waiting."""
        _, _, job = self._jobs.get()
        if job is _SHUTDOWN:
            return None
        if not isinstance(job, _Job):
            raise TypeError(f"the llama.cpp job queue holds {job!r}")
        if not job.warm:
            with self._enqueue_lock:
                self._queued.pop(job.request_id, None)
        return job

    def _report_death(self, reason: str) -> None:
        """From the worker thread: tell the event loop that the engine died."""
        self._worker_failure = reason
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                loop.call_soon_threadsafe(self._died, reason)

    def _check_alive(self) -> str | None:
        if self._worker_failure is not None:
            return self._worker_failure
        worker = self._worker
        if worker is not None and not worker.is_alive():
            return "its worker thread stopped"
        return None

    def _drain(self, failure: EngineError | None = None) -> None:
        """End the queued jobs: cancelled (shut down) or failed (the worker died)."""
        while True:
            try:
                _, _, job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if isinstance(job, _Job):
                with self._enqueue_lock:
                    self._queued.pop(job.request_id, None)
                job.emit(failure if failure is not None else Finish("cancelled", 0, 0))
                with self._enqueue_lock:
                    self._unfinished -= 1

    @property
    def _llm(self) -> Any:
        return self._guard.model

    @_llm.setter
    def _llm(self, model: Any) -> None:
        self._guard.set(model)

    def _release_model(self) -> None:
        # No new holder gets the model from here on; the ones counting tokens finish first.
        close_quietly(self._guard.take())

    def _run(self, job: _Job) -> None:
        if job.warm:
            if job.stop.is_set():
                return  # replaced by a newer prefill, or its connection closed
            job.tokens = self._chat_tokens(self._prefix_formatter, job.messages)
            if self.cache.holds(job.tokens) is not None:
                return  # read already
        elif job.fim is not None:
            if job.yields and self._chat_waiting():
                job.soft = False
                job.stop.set()  # queued before this started (_enqueue saw nothing running)
            job.tokens = tokenize_segments(job.fim[: job.fim_head], self._tokenize)
            job.keep = max(0, len(job.tokens) - KEEP_MARGIN)
            job.tokens += tokenize_segments(job.fim[job.fim_head :], self._tokenize)
        else:
            job.tokens = self.prompt_tokens(job.messages)
        stats = RequestStats(prompt_tokens=len(job.tokens), warm=job.warm)
        if job.warm:
            self.warm_stats = stats
        elif job.fim is not None:
            self.fim_stats = stats
        else:
            self.last_stats = stats
        if job.fim is None and self._live_fim:
            # The context holds ghost text's prompt: keep it for the next keystroke before
            # this request reads over it (saved once here, not after every keystroke).
            self._live_fim = False
            self._remember()
        if job.stop.is_set():  # cancelled while it waited in the queue
            stats.reason = "cancelled"
            job.emit(Finish("cancelled", len(job.tokens), 0))
            return
        if len(job.tokens) >= self._n_ctx:
            raise EngineError(
                f"the prompt has {len(job.tokens)} tokens, more than the context window "
                f"of {self._n_ctx}"
            )
        reason: FinishReason = "cancelled"
        try:
            if self._prefill(job, stats):
                reason = "stop" if job.warm else self._decode(job, stats)
        finally:
            stats.reason = reason
            if job.fim is None:
                self._remember()
            else:
                self._live_fim = True
        if not job.warm:
            job.emit(Finish(reason, len(job.tokens), stats.completion_tokens, stats.cached_tokens))

    # ---- reading the prompt ------------------------------------------------------------------
    def _prefill(self, job: _Job, stats: RequestStats) -> bool:
        """Bring the context to all of the prompt but its last token (the decoder reads that
        one: its logits start the reply); a background prefill reads all of it. Returns False
        when stopped."""
        llm = self._llm
        tokens = job.tokens
        started = time.perf_counter()
        end = len(tokens) if job.warm else len(tokens) - 1
        keep = self._restore_prefix(tokens, end, stats)
        stats.cached_tokens = keep
        if keep > 0:
            self.cache.stats.hits += 1
        else:
            self.cache.stats.misses += 1
        self._choose_threads()
        self._use_threads(self._n_threads, self._n_threads_batch)
        self._arm_abort(True)
        try:
            split = job.keep if job.fim is not None else 0
            for start, stop in chunk_bounds(keep, end, self._n_batch, split):
                self._reading_to = stop
                if self._should_stop():
                    return False
                if self._someone_waits(job):
                    self._arm_abort(False)
                    if not self._give_way(job):
                        return False
                    self._arm_abort(True)
                chunk = tokens[start:stop]
                try:
                    llm.eval(chunk)
                except RuntimeError:
                    if not self._should_stop():
                        raise
                    # Aborted mid-chunk: llama.cpp dropped that chunk's cells; so do we.
                    llm._ctx.kv_cache_seq_rm(0, llm.n_tokens, -1)
                    return False
                stats.evaluated_tokens += len(chunk)
                self._choose_threads()  # something may have started computing meanwhile
                self._use_threads(self._n_threads, self._n_threads_batch)
            return not self._should_stop()
        finally:
            self._arm_abort(False)
            stats.prefill_seconds = time.perf_counter() - started

    def _restore_prefix(
        self, tokens: list[int], end: int, stats: RequestStats | None = None
    ) -> int:
        """Bring the live context to the longest beginning of ``tokens[:end]`` it or a saved
        state holds (restoring that state); returns how many tokens it holds."""
        llm = self._llm
        live = common_prefix(llm.input_ids[: llm.n_tokens], tokens)
        saved, shared = self.cache.find(tokens)
        if saved is not None and shared > live:
            llm._ctx.kv_cache_seq_rm(0, -1, -1)
            llm.n_tokens = 0
            if restore_sequence(llm._ctx.ctx, saved.data, saved.nbytes):
                llm.input_ids[: len(saved.tokens)] = saved.tokens
                llm.n_tokens = len(saved.tokens)
                saved.touch()
                live = shared
                if stats is not None:
                    stats.restored = True
                self.cache.stats.restores += 1
            else:  # refused (should not happen with the same model): read everything
                log.warning("llama.cpp refused a saved state; reading the prompt again")
                llm._ctx.kv_cache_seq_rm(0, -1, -1)
                live = 0
        keep = min(live, end)
        llm._ctx.kv_cache_seq_rm(0, keep, -1)
        llm.n_tokens = keep
        return keep

    def _remember(self) -> None:
        """Save the live state into the cache (unless it holds it already)."""
        llm = self._llm
        n = int(llm.n_tokens)
        if n < _MIN_SAVED_TOKENS or self.cache.budget_bytes <= 0:
            return
        tokens = llm.input_ids[:n]
        held = self.cache.holds(tokens)
        if held is not None:
            held.touch()
            return
        saved = save_sequence(llm._ctx.ctx)
        if saved is not None:
            self.cache.add(tokens, *saved)

    # ---- decoding ----------------------------------------------------------------------------
    def _decode(self, job: _Job, stats: RequestStats) -> FinishReason:
        llm = self._llm
        p = job.params
        started = time.perf_counter()
        # Drafts are checked in batches of up to lookup_tokens + 1: with the prompt threads
        # (all cores) those batches collapse as soon as anything else computes (2.5 s instead
        # of 0.4 s for 11 tokens, measured); the decoding threads leave that core free.
        self._choose_threads()
        self._use_threads(self._n_threads, self._n_threads)
        llm.set_seed(p.seed if p.seed is not None else random.randint(0, 2**31 - 1))
        sampler = llm._init_sampler(
            top_k=40,
            top_p=p.top_p,
            min_p=0.05,
            typical_p=1.0,
            temp=p.temperature,
            repeat_penalty=1.0,
        )
        out = _TextOut(
            piece=lambda token: llm.detokenize([token]),
            stops=[*p.stop, self._formatter.eos_token],
            emit=lambda text: job.emit(Delta(text)),
        )
        room_left = self._n_ctx - len(job.tokens)
        limit = min(p.max_tokens, room_left) if p.max_tokens > 0 else room_left
        is_eog = self._end_check(job)
        drafter = self._drafter() if self.wants_lookup(job.messages) else None
        pending = job.tokens[-1]
        generated = 0
        pause = resume_at = 0  # "auto": no drafts before token resume_at
        reason: FinishReason = "length"
        try:
            checked = time.monotonic()
            while generated < limit:
                if job.stop.is_set():
                    reason = "cancelled"
                    break
                if self._someone_waits(job):
                    if not self._give_way(job):
                        reason = "cancelled"
                        break
                    self._use_threads(self._n_threads, self._n_threads)
                if time.monotonic() - checked >= 1.0:  # a kernel may have started computing
                    checked = time.monotonic()
                    self._choose_threads()
                    self._use_threads(self._n_threads, self._n_threads)
                base = int(llm.n_tokens)
                room = min(self._n_ctx - base - 1, limit - generated - 1)
                # No draft for the first token: a batch would delay the first text (TTFT).
                draft: list[int] = []
                if drafter is not None and generated and generated >= resume_at:
                    draft = drafter(llm.input_ids[:base], pending, room)
                self._eval([pending, *draft], all_logits=bool(draft))
                stats.drafted_tokens += len(draft)
                done = False
                i = 0
                for i in range(len(draft) + 1):
                    token = int(sampler.sample(llm._ctx, i if draft else -1))
                    if is_eog(token):
                        reason, done = "stop", True
                        break
                    generated += 1
                    if out.add(token):
                        reason, done = "stop", True
                        break
                    if generated >= limit:
                        reason, done = "length", True
                        break
                    if job.stop.is_set():  # within a token, drafts or not
                        reason, done = "cancelled", True
                        break
                    if i < len(draft) and token == draft[i]:
                        continue  # confirmed: the drafted token is already in the context
                    pending = token
                    break
                stats.accepted_tokens += min(i, len(draft))
                valid = base + i + 1  # pending + the confirmed drafts
                if valid < llm.n_tokens:
                    llm._ctx.kv_cache_seq_rm(0, valid, -1)
                    llm.n_tokens = valid
                if done:
                    break
                if draft and self.prompt_lookup == "auto":
                    # A draft the model rejected at once: the reply is not copying right now;
                    # pause drafting, twice as long after each miss in a row.
                    if i == 0:
                        pause = min(_LOOKUP_MAX_PAUSE, max(2, pause * 2))
                        resume_at = generated + pause
                    elif i >= 2:
                        pause = 0
            if reason != "cancelled" and not out.stopped:
                out.finish()
        finally:
            stats.completion_tokens = generated
            stats.decode_seconds = time.perf_counter() - started
            sampler.close()
        return reason

    def _eog_check(self) -> Callable[[int], bool]:
        import llama_cpp

        vocab = self._llm._model.vocab
        return lambda token: bool(llama_cpp.llama_vocab_is_eog(vocab, token))

    def _eval(self, tokens: list[int], *, all_logits: bool) -> None:
        llm = self._llm
        if not all_logits:
            llm.eval(tokens)
            return
        base = int(llm.n_tokens)
        llm._ctx.kv_cache_seq_rm(0, base, -1)
        llm._batch.set_batch(batch=tokens, n_past=base, logits_all=True)
        llm._ctx.decode(llm._batch)
        llm.input_ids[base : base + len(tokens)] = tokens
        llm.n_tokens = base + len(tokens)

    def _drafter(self) -> Callable[[Any, int, int], list[int]] | None:
        return _PromptLookup(self._lookup_tokens)

    def wants_lookup(self, messages: Sequence[Message]) -> bool:
        """Whether a reply to these messages is drafted from its prompt. "auto": when the
        prompt holds code outside the system prompt (a refinement or a next step copies the
        previous reply's code, a fix rewrites the failed cell); measured, first replies lose
        (0.86x) and those win (3.05x refinements, 1.13x fixes; benchmarks/README.md)."""
        if self.prompt_lookup != "auto":
            return self.prompt_lookup == "on"
        return any("```" in m.get("content", "") for m in messages if m.get("role") != "system")

    # ---- generation --------------------------------------------------------------------------
    def _enqueue(self, job: _Job) -> None:
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
            if rank == RANKS["interactive"] and current is not None and current.yields:
                current.soft = False
                current.stop.set()  # a chat turn waits: ghost text gives way at once

    async def _generate(
        self,
        messages: list[Message],
        params: GenerationParams,
        request_id: str,
        cancelled: asyncio.Event,
    ) -> AsyncGenerator[StreamEvent, None]:
        loop = asyncio.get_running_loop()
        job = _Job(messages, params, loop, asyncio.Queue(), request_id=request_id)
        events = self._relay(job, cancelled)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

    async def _generate_fim(
        self,
        prompt: FimPrompt,
        params: GenerationParams,
        request_id: str,
        cancelled: asyncio.Event,
    ) -> AsyncGenerator[StreamEvent, None]:
        segments, head = prompt_parts(self.fim_format, prompt)
        job = _Job(
            [],
            params,
            asyncio.get_running_loop(),
            asyncio.Queue(),
            request_id=request_id,
            fim=segments,
            fim_head=head,
            yields=params.priority == "interactive",
        )
        self._fim_jobs[request_id] = job
        events = self._relay(job, cancelled)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()
            self._fim_jobs.pop(request_id, None)

    def supersede(self, request_id: str) -> bool:
        """Ghost text: the next keystroke's request continues this one's prompt. It stops
        once it has read its prompt up to the cursor (but the last tokens), which the next
        one begins with (so typing never throws away the reading of a notebook's cells); a
        middle being written stops at once."""
        job = self._fim_jobs.get(request_id)
        if job is None:
            return self.cancel(request_id)
        job.soft = True
        return super().cancel(request_id)

    def cancel(self, request_id: str) -> bool:
        job = self._fim_jobs.get(request_id)
        if job is not None:
            job.soft = False  # a cancel or a disconnect stops at once, even a superseded job
        return super().cancel(request_id)

    @property
    def fim_format(self) -> FimFormat | None:
        """The model's infilling markers, read from its vocabulary once (engine/fim.py)."""
        if self._fim_format is False:
            self._fim_format = detect_format(self._is_control)
        return self._fim_format

    def _is_control(self, marker: str) -> bool:
        """Whether ``marker`` is one control token of this model (and not when read as text)."""
        return len(self._tokenize(marker, special=True)) == 1 < len(self._tokenize(marker))

    def _end_check(self, job: _Job) -> Callable[[int], bool]:
        """What ends a reply: an end-of-generation token; for a middle also any infilling
        marker (a model that writes ``<|fim_suffix|>`` has left the hole)."""
        is_eog = self._eog_check()
        fim = self.fim_format if job.fim is not None else None
        if fim is None:
            return is_eog
        ends = {
            self._tokenize(text, special=True)[0]
            for text in fim.stop_texts
            if self._is_control(text)
        }
        return lambda token: token in ends or is_eog(token)

    def _chat_waiting(self) -> bool:
        """A person's request (not ghost text) is queued: ghost text gives way to it."""
        with self._enqueue_lock:
            return any(rank == RANKS["interactive"] for rank, _ in self._queued.values())

    async def _relay(
        self, job: _Job, cancelled: asyncio.Event
    ) -> AsyncGenerator[StreamEvent, None]:
        """Queue ``job`` for the worker and pass on its events until its Finish."""
        loop = asyncio.get_running_loop()

        async def relay_cancel() -> None:
            await cancelled.wait()
            job.stop.set()

        relay = loop.create_task(relay_cancel())
        try:
            self._enqueue(job)
            while True:
                item = await job.events.get()  # type: ignore[union-attr]
                if isinstance(item, BaseException):
                    if isinstance(item, EngineError):
                        raise item
                    raise EngineError(f"llama.cpp failed: {item}") from item
                yield item
                if isinstance(item, Finish):
                    return
        finally:
            job.stop.set()
            relay.cancel()

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
        job = _Job(list(messages), GenerationParams(), None, None, warm=True)
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

    def _tokenize(self, text: str, special: bool = False) -> list[int]:
        """Tokens of ``text``; ``special``: the chat template's markers become control tokens
        (only for the template's own text, never for content). Safe from any thread."""
        try:
            with self._guard.hold() as llm:
                return list(llm.tokenize(text.encode("utf-8"), add_bos=False, special=special))
        except ModelReleased:
            raise EngineNotReady(self.status) from None

    def _chat_tokens(self, formatter: Any, messages: Sequence[Message]) -> list[int]:
        """The chat template applied to ``messages``, its markers as control tokens and every
        message's content as plain text (chat_tokens)."""
        if formatter is None:
            raise EngineNotReady(self.status)
        segments = prompt_segments(lambda masked: formatter(messages=masked).prompt, messages)
        return tokenize_segments(segments, self._tokenize)

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The tokens these messages become (chat template and assistant prompt applied)."""
        return self._chat_tokens(self._formatter, messages)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text))

    def count_chat_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.prompt_tokens(messages))

    @property
    def context_length(self) -> int:
        return self._n_ctx

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

    @property
    def settings(self) -> dict[str, Any]:
        """What this engine runs with (for status pages and benchmarks)."""
        return {
            "n_ctx": self._n_ctx,
            "n_threads": self._fixed_threads or "auto",
            "n_threads_batch": self._fixed_batch_threads or "auto",
            "threads_now": [self._n_threads, self._n_threads_batch],
            "n_batch": self._n_batch,
            "prompt_lookup": self.prompt_lookup,
            "extra_buffers": self.use_extra_buffers(),
            "kv_cache": self.cache.describe(),
            "cpu": cpu_model(),
        }

    async def _close(self) -> None:
        self._meter.stop()
        with self._enqueue_lock:
            self._closing = True
            self._jobs.put((SHUTDOWN_RANK, next(self._order), _SHUTDOWN))
        current = self._current
        if current is not None:
            current.stop.set()
        worker = self._worker or self._old_worker
        self._worker = self._old_worker = None
        if worker is not None:
            # The worker frees the model itself once its current step is done: never under it.
            await asyncio.to_thread(worker.join, 30)
            if worker.is_alive():
                log.warning("the llama.cpp worker is still busy; it frees the model when done")
                self._old_worker = worker
            return
        await asyncio.to_thread(self._release_model)  # waits for token counts in flight
        self._drain()

    def _reset(self) -> None:
        old = self._old_worker
        if old is not None and old.is_alive():
            raise EngineError(
                "the previous llama.cpp worker is still finishing a step; restart again shortly"
            )
        self._old_worker = None
        self._worker_failure = None
        self._jobs = queue.PriorityQueue()
        with self._enqueue_lock:
            self._queued.clear()
            self._prefills.clear()
            self._closing = False
            self._unfinished = 0
        self._current = None
        self._abort_armed = False
        self._threads_set = None
        # Saved states belong to the old context; a restart starts clean.
        self.cache = PrefixCache(self.cache.budget_bytes, slack=self.cache.slack)
        self.last_stats = self.warm_stats = self.fim_stats = None
        self._live_fim = False


class _PromptLookup:
    """Drafts for prompt-lookup decoding: what followed the first earlier occurrence of the
    text's last 3 tokens, else of its last 2 (llama-cpp-python's LlamaPromptLookupDecoding
    search, without its fallback to a single token: measured, single-token matches draft
    mostly wrong tokens, 27 of 751 confirmed on first replies, and cost more than they save)."""

    def __init__(self, tokens: int, max_ngram: int = 3, min_ngram: int = 2) -> None:
        self.tokens = tokens
        self.max_ngram = max_ngram
        self.min_ngram = min_ngram

    def __call__(self, context: Any, pending: int, room: int) -> list[int]:
        if room <= 0:
            return []
        ids = np.append(as_tokens(context), np.intc(pending))
        n = len(ids)
        for size in range(min(self.max_ngram, n - 1), self.min_ngram - 1, -1):
            windows = np.lib.stride_tricks.sliding_window_view(ids[:-1], size)
            matches = np.flatnonzero(np.all(windows == ids[-size:], axis=1))
            for start in matches:
                follow = start + size
                draft = ids[follow : min(follow + min(self.tokens, room), n)]
                if len(draft):
                    return [int(t) for t in draft]
        return []


class _TextOut:
    """Sampled tokens to text deltas: whole UTF-8 characters only, cut at a stop string."""

    def __init__(
        self, piece: Callable[[int], bytes], stops: Sequence[str], emit: Callable[[str], None]
    ) -> None:
        self._piece = piece
        self._stops = [s for s in stops if s]
        self._emit = emit
        self._raw = bytearray()
        self._decoded = 0
        self.text = ""
        self._sent = 0
        self.stopped = False

    def add(self, token: int) -> bool:
        """Take one token; True once a stop string ended the text."""
        self._raw += self._piece(token)
        self._decode_complete()
        return self._flush(final=False)

    def finish(self) -> None:
        self.text += bytes(self._raw[self._decoded :]).decode("utf-8", errors="ignore")
        self._decoded = len(self._raw)
        self._flush(final=True)

    def _decode_complete(self) -> None:
        """Decode the complete characters received so far; an incomplete one waits."""
        while self._decoded < len(self._raw):
            chunk = bytes(self._raw[self._decoded :])
            try:
                self.text += chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.text += chunk[: exc.start].decode("utf-8")
                if exc.reason == "unexpected end of data":
                    self._decoded += exc.start
                    return
                self.text += "\ufffd"
                self._decoded += exc.end
                continue
            self._decoded = len(self._raw)

    def _flush(self, *, final: bool) -> bool:
        cut = min((i for i in (self.text.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.text = self.text[:cut]
            self.stopped = True
            final = True
        hold = 0 if final else _partial_stop(self.text, self._stops)
        upto = max(self._sent, len(self.text) - hold)
        if upto > self._sent:
            self._emit(self.text[self._sent : upto])
            self._sent = upto
        return self.stopped


def _partial_stop(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that could begin a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest
