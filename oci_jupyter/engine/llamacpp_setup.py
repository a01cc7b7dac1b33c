"""Opening the llama.cpp model (a GGUF file, checked; its chat template; the extra CPU buffers
that crash on AMX CPUs) and the knobs llama.cpp reads while it computes: the abort callback
(a stop ends a prompt chunk midway) and the thread counts.

:class:`ModelSetup` is a part of :class:`~.llamacpp.LlamaCppEngine` (a mixin)."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import llama_internals as internals
from .base import EngineError
from .bundled import ModelFile, ModelFileUnavailable, resolve_model_file, verify
from .cpu_quirks import cpu_has_amx, safe_model_params
from .llamacpp_jobs import Job

GGUF_MAGIC = b"GGUF"

ExtraBuffers = Literal["auto", "on", "off"]


class ModelSetup:
    """Open the model; set llama.cpp's abort callback and threads (a part of the engine)."""

    _model_path: Path | None
    _model_sha256: str | None
    _spec: ModelFile
    _cache_dir: Path | None
    _try_hub: bool
    _hub_timeout: float
    _n_ctx: int
    _n_threads: int
    _n_threads_batch: int
    _n_batch: int
    _extra_buffers: ExtraBuffers
    _abort_armed: bool
    _abort_callback: Any
    _abort_null: Any
    _threads_set: tuple[int, int] | None
    if TYPE_CHECKING:  # the engine's

        @property
        def _llm(self) -> Any: ...
        def _should_stop(self) -> bool: ...

        _current: Job | None

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
            raise ModelFileUnavailable(f"model_path {path} does not exist or is not a file")
        with path.open("rb") as handle:
            if handle.read(4) != GGUF_MAGIC:
                raise ModelFileUnavailable(f"{path} is not a GGUF file")
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
        vocab = internals.model_vocab(llm)  # token strings for the template's bos/eos variables
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
            if not self._abort_armed:
                return False
            current = self._current
            return self._should_stop() or (current is not None and current.interrupted)

        self._abort_callback = llama_cpp.ggml_abort_callback(should_abort)
        self._abort_null = ctypes.cast(None, llama_cpp.ggml_abort_callback)

    def _arm_abort(self, armed: bool) -> None:
        import llama_cpp

        self._abort_armed = armed
        callback = self._abort_callback if armed else self._abort_null
        llama_cpp.llama_set_abort_callback(internals.context_handle(self._llm), callback, None)

    def _use_threads(self, decode: int, batch: int) -> None:
        if self._threads_set != (decode, batch):
            import llama_cpp

            llama_cpp.llama_set_n_threads(internals.context_handle(self._llm), decode, batch)
            self._threads_set = (decode, batch)
