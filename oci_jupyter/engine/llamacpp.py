"""llama.cpp on the CPU, through llama-cpp-python, with the bundled Qwen2.5-Coder model.

llama.cpp is not safe to call from several threads at once, and a generation holds the CPU for
seconds. So one worker thread owns the model and serves a queue of requests in order; the event
loop only exchanges small messages with it and is never blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import (
    Delta,
    Engine,
    EngineError,
    Finish,
    GenerationParams,
    Message,
    StreamEvent,
    finish_reason,
)
from .bundled import DEFAULT_MODEL, ModelFile, ModelUnavailable, resolve_model_file, verify

GGUF_MAGIC = b"GGUF"


@dataclass
class _Job:
    messages: list[Message]
    params: GenerationParams
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[StreamEvent | BaseException]
    stop: threading.Event = field(default_factory=threading.Event)

    def emit(self, item: StreamEvent | BaseException) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
            self.loop.call_soon_threadsafe(self.events.put_nowait, item)


_SHUTDOWN = object()


def default_threads() -> int:
    """All usable cores but one. llama.cpp's threads spin on every core they get, so with all
    of them Jupyter's own requests wait for a core and generation collapses (36 -> 11 tok/s
    measured on 2 cores) as soon as the kernel runs anything; one core left free costs ~30 %
    of peak speed on 2 cores and much less on more (benchmarks/README.md, P2)."""
    return max(1, usable_cores() - 1)


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


class LlamaCppEngine(Engine):
    name = "llamacpp"

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
        n_batch: int = 512,
        served_model_name: str | None = None,
    ) -> None:
        self._model_path = Path(model_path).expanduser() if model_path else None
        self._model_sha256 = model_sha256
        self._spec = spec
        self._cache_dir = cache_dir
        self._try_hub = try_hub
        self._hub_timeout = hub_timeout
        self._n_ctx = n_ctx
        self._n_threads = n_threads or default_threads()
        # Reading the prompt is short and decides the time to the first token: it gets every
        # core. Decoding is long: it leaves Jupyter and the kernel a core (default_threads).
        self._n_threads_batch = max(self._n_threads, usable_cores())
        self._n_batch = n_batch
        if served_model_name:
            model_name = served_model_name
        elif self._model_path:
            model_name = self._model_path.stem
        else:
            model_name = spec.served_name or spec.filename.removesuffix(".gguf")
        plural = "s" if self._n_threads != 1 else ""
        super().__init__(model=model_name, device=f"cpu ({self._n_threads} thread{plural})")
        self._llm: Any = None
        self._formatter: Any = None
        self._jobs: queue.Queue[_Job | object] = queue.Queue()
        self._worker: threading.Thread | None = None
        self.model_file: Path | None = None

    # ---- loading -----------------------------------------------------------------------------
    async def _load(self) -> None:
        loop = asyncio.get_running_loop()

        def progress(detail: str, fraction: float | None) -> None:
            loop.call_soon_threadsafe(self._progress, detail, fraction)

        self.model_file = await asyncio.to_thread(self._find_model_file, progress)
        self._set_status(detail=f"loading {self.model_file.name} into llama.cpp", progress=None)
        self._llm, self._formatter = await asyncio.to_thread(self._open_model, self.model_file)
        self._set_status(context_length=self._n_ctx)
        self._worker = threading.Thread(target=self._serve, name="oci-llamacpp", daemon=True)
        self._worker.start()

    def _progress(self, detail: str, fraction: float | None) -> None:
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

    def _open_model(self, path: Path) -> tuple[Any, Any]:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llm = Llama(
            model_path=str(path),
            n_ctx=self._n_ctx,
            n_threads=self._n_threads,
            n_threads_batch=self._n_threads_batch,
            n_batch=self._n_batch,
            verbose=False,
        )
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise EngineError(f"{path.name} has no chat template in its metadata")
        vocab = llm._model  # token strings for the template's bos/eos variables
        formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=vocab.token_get_text(llm.token_eos()),
            bos_token=vocab.token_get_text(llm.token_bos()),
            add_generation_prompt=True,
        )
        return llm, formatter

    # ---- the worker thread -------------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _SHUTDOWN:
                return
            assert isinstance(job, _Job)
            try:
                self._run(job)
            except BaseException as exc:  # reported to the caller; the worker lives on
                job.emit(exc)

    def _run(self, job: _Job) -> None:
        prompt_tokens = self.count_chat_tokens(job.messages)
        if job.stop.is_set():  # cancelled while it waited in the queue
            job.emit(Finish("cancelled", prompt_tokens, 0))
            return
        p = job.params
        stream = self._llm.create_chat_completion(
            messages=job.messages,
            stream=True,
            max_tokens=p.max_tokens,
            temperature=p.temperature,
            top_p=p.top_p,
            stop=list(p.stop) or None,
            seed=p.seed,
        )
        parts: list[str] = []
        reason = "stop"
        try:
            for chunk in stream:
                choice = chunk["choices"][0]
                text = choice.get("delta", {}).get("content")
                if text:
                    parts.append(text)
                    job.emit(Delta(text))
                if choice.get("finish_reason"):
                    reason = choice["finish_reason"]
                if job.stop.is_set():
                    reason = "cancelled"
                    break
        finally:
            stream.close()  # frees llama.cpp's state for the next request
        completion = self.count_tokens("".join(parts)) if parts else 0
        job.emit(Finish(finish_reason(reason), prompt_tokens, completion))

    # ---- generation --------------------------------------------------------------------------
    async def _generate(
        self,
        messages: list[Message],
        params: GenerationParams,
        request_id: str,
        cancelled: asyncio.Event,
    ) -> AsyncGenerator[StreamEvent, None]:
        loop = asyncio.get_running_loop()
        job = _Job(messages, params, loop, asyncio.Queue())

        async def relay_cancel() -> None:
            await cancelled.wait()
            job.stop.set()

        relay = loop.create_task(relay_cancel())
        self._jobs.put(job)
        try:
            while True:
                item = await job.events.get()
                if isinstance(item, BaseException):
                    raise EngineError(f"llama.cpp failed: {item}") from item
                yield item
                if isinstance(item, Finish):
                    return
        finally:
            job.stop.set()
            relay.cancel()

    def count_tokens(self, text: str) -> int:
        if self._llm is None:
            raise EngineError("the model is not loaded")
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def count_chat_tokens(self, messages: Sequence[Message]) -> int:
        if self._formatter is None:
            raise EngineError("the model is not loaded")
        prompt = self._formatter(messages=list(messages)).prompt
        return self.count_tokens(prompt)

    @property
    def context_length(self) -> int:
        return self._n_ctx

    async def _close(self) -> None:
        if self._worker is not None:
            self._jobs.put(_SHUTDOWN)
            await asyncio.to_thread(self._worker.join, 30)
            self._worker = None
        if self._llm is not None:
            with contextlib.suppress(Exception):
                self._llm.close()
            self._llm = None
