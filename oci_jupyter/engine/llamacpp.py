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
  decoding at most); see :func:`.cpu_load.threads_for_load`.
- **A program gives way**: a program's reply (oci-eval, the OpenAI endpoint) pauses between
  two tokens or prompt chunks for a person's request or ghost text queued meanwhile.

The engine is put together from parts, one module each: this one (the engine's API, the
worker's loop and a request's run), :mod:`.llamacpp_jobs` (the queue), :mod:`.llamacpp_context`
(prefill, decoding, giving way: the worker's work on the model's context),
:mod:`.llamacpp_setup` (opening the model, the abort callback, threads), :mod:`.decoding`
(drafts, text out), :mod:`.cpu_load` (cores and load) and :mod:`.llama_internals` (every
private attribute of llama-cpp-python it needs). Only the worker thread computes with the
model; token counting (any thread) holds it through :class:`.model_guard.ModelGuard`.

Figures, and the CPU they were measured on: benchmarks/README.md, "CPU".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any, Literal

from ..texts import Text, text
from .base import (
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
from .bundled import DEFAULT_MODEL, ModelFile
from .chat_tokens import prompt_segments, tokenize_segments
from .cpu_load import CpuMeter, cpu_model, default_batch_threads, default_threads, threads_for_load
from .fim import KEEP_MARGIN, FimFormat, FimPrompt, detect_format, prompt_parts
from .kv_cache import PrefixCache
from .llamacpp_context import ContextWork
from .llamacpp_jobs import SHUTDOWN, SHUTDOWN_RANK, Job, JobQueue, RequestStats
from .llamacpp_setup import ExtraBuffers, ModelSetup
from .model_guard import ModelGuard, ModelReleased, close_quietly

__all__ = ["DEFAULT_KV_CACHE_BYTES", "LlamaCppEngine", "RequestStats", "cpu_model"]

log = logging.getLogger(__name__)

DEFAULT_KV_CACHE_BYTES = 512 * 1024 * 1024
"""~18,000 tokens of saved conversation state for the bundled model (28.7 KB per token)."""

PromptLookup = Literal["auto", "on", "off"]


class LlamaCppEngine(ContextWork, JobQueue, ModelSetup, Engine):
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
        self._init_queue()
        self._worker: threading.Thread | None = None
        self._old_worker: threading.Thread | None = None
        """A worker that was still busy when it was told to stop (it frees its model itself)."""
        self._worker_failure: str | None = None
        """Why the worker died outside a request (set by the worker)."""
        self._loop: asyncio.AbstractEventLoop | None = None
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
        self._fim_jobs: dict[str, Job] = {}
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

    def _choose_threads(self) -> None:
        """Threads not fixed by the configuration follow the load of the rest of the machine
        (:func:`.cpu_load.threads_for_load`)."""
        if self._fixed_threads and self._fixed_batch_threads:
            return
        others = self._meter.others()
        if others is None:
            return  # not measured (yet): keep the last choice
        decode, batch = threads_for_load(others)
        if not self._fixed_threads:
            self._n_threads = decode
        if not self._fixed_batch_threads:
            self._n_threads_batch = batch

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

    def _serve_one(self, job: Job) -> None:
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

    @property
    def _llm(self) -> Any:
        return self._guard.model

    @_llm.setter
    def _llm(self, model: Any) -> None:
        self._guard.set(model)

    def _release_model(self) -> None:
        # No new holder gets the model from here on; the ones counting tokens finish first.
        close_quietly(self._guard.take())

    def _run(self, job: Job) -> None:
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

    # ---- generation --------------------------------------------------------------------------

    async def _generate(
        self,
        messages: list[Message],
        params: GenerationParams,
        request_id: str,
        cancelled: asyncio.Event,
    ) -> AsyncGenerator[StreamEvent, None]:
        loop = asyncio.get_running_loop()
        job = Job(messages, params, loop, asyncio.Queue(), request_id=request_id)
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
        job = Job(
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

    async def _relay(self, job: Job, cancelled: asyncio.Event) -> AsyncGenerator[StreamEvent, None]:
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
            self._jobs.put((SHUTDOWN_RANK, next(self._order), SHUTDOWN))
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
