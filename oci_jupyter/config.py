"""`c.OCI.*`: the server-side settings, and the engine they describe."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from traitlets import Bool, Dict, Enum, Float, Int, Type, Unicode
from traitlets.config import Configurable

from .engine import ENGINE_NAMES, Engine, choose_engine
from .loop import DEFAULT_BUDGETS

SECRET_ENV = ("OCI_OPENAI_API_KEY",)
"""Variables that hold the server's own secrets (the remote model server's key): the server
reads them once and takes them out of its environment (:func:`keep_secrets_from_kernels`)."""


def keep_secrets_from_kernels() -> list[str]:
    """Remove :data:`SECRET_ENV` from this process's environment; the names removed.

    Kernels and terminals are started with a copy of the server's ``os.environ``: a key the
    hub put there (``c.Spawner.environment``, a Kubernetes Secret as an env var) would
    otherwise be in every user kernel's ``os.environ``, one ``print`` away from a notebook's
    output. Call it after the engine has read the key. It does not hide the key from code
    running as the same OS user (``/proc/<server pid>/environ`` keeps the environment the
    process started with): docs/jupyterhub.md says what does."""
    return [name for name in SECRET_ENV if os.environ.pop(name, None) is not None]


class OCI(Configurable):
    """OpenCodeInterpreter for Jupyter: which model the server hosts, and how."""

    engine = Enum(
        list(ENGINE_NAMES),
        default_value="auto",
        config=True,
        help="""Model host. "auto": vLLM when a CUDA GPU and vLLM are present, else llama.cpp
        with the bundled Qwen2.5-Coder-1.5B-Instruct model. "openai": a remote
        OpenAI-compatible server (see openai_base_url).""",
    )
    engine_class = Type(
        default_value=None,
        klass=Engine,
        allow_none=True,
        config=True,
        help="""Advanced: an Engine subclass to host instead of `engine`, constructed with
        engine_kwargs (for custom hosts and test doubles).""",
    )
    engine_kwargs = Dict(config=True, help="Keyword arguments for engine_class.")

    # llama.cpp
    model_path = Unicode(
        None,
        allow_none=True,
        config=True,
        help="""llama.cpp: a GGUF file to load instead of the bundled model.""",
    )
    model_sha256 = Unicode(
        None, allow_none=True, config=True, help="llama.cpp: verify model_path against this hash."
    )
    served_model_name = Unicode(
        None, allow_none=True, config=True, help="The model id reported by /oci/v1/models."
    )
    hub_download = Bool(
        True,
        config=True,
        help="""llama.cpp: try the official Hugging Face repository before the offline mirror
        when the bundled model is not cached yet (HF_HUB_OFFLINE=1 also disables it).""",
    )
    hub_timeout = Float(
        5.0, config=True, help="Seconds to wait for the hub before using the offline mirror."
    )
    cache_dir = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Folder for model files (default: $OCI_CACHE_DIR or ~/.cache/oci_jupyter/models).",
    )
    n_ctx = Int(8192, config=True, help="llama.cpp: context window in tokens.")
    n_threads = Int(
        0,
        config=True,
        help="""llama.cpp: CPU threads for decoding. 0: all cores but one (so that Jupyter
        stays responsive, P2), and one fewer per core that other processes (a kernel) keep
        busy, checked every second: llama.cpp's threads spin-wait for each other, so a thread
        that shares its core stalls all of them (measured on 2 cores, benchmarks/README.md,
        "CPU": 2 threads decode 12.6 tok/s idle but 2.0 next to a busy kernel; 1 thread 7.0
        and 6.9). On a machine of its own, n_threads = all cores decodes fastest.""",
    )
    n_threads_batch = Int(
        0,
        config=True,
        help="""llama.cpp: CPU threads for reading the prompt. 0: every core, one fewer per
        core other processes keep busy (2 cores: 165 tok/s idle; next to a busy kernel 2
        threads read 49 tok/s, 1 thread 90).""",
    )
    kv_cache_bytes = Int(
        512 * 1024 * 1024,
        config=True,
        help="""llama.cpp: RAM for the saved KV states of recent conversations (default 512 MiB,
        ~18,000 tokens of the bundled model at 28.7 KB per token; 0 disables it). A request
        continues from the saved state sharing the longest prefix with its prompt, so another
        notebook's request in between does not make the next turn re-read everything. Held in
        addition to the live context (n_ctx tokens of KV).""",
    )
    prompt_lookup = Enum(
        ["auto", "on", "off"],
        default_value="auto",
        config=True,
        help="""llama.cpp: prompt-lookup decoding (drafts copied from the prompt, checked
        several tokens per step: a refined cell mostly copies the previous code). "auto":
        wherever it was measured to win (benchmarks/README.md, "Prompt lookup").""",
    )
    llama_extra_buffers = Enum(
        ["auto", "on", "off"],
        default_value="auto",
        config=True,
        help="""llama.cpp: let llama.cpp repack the weights into its extra CPU buffer types
        (AMX, CPU_REPACK). "auto": not on CPUs with AMX, whose llama.cpp kernels crash the
        process on the machines this was measured on.""",
    )

    # vLLM
    vllm_model = Unicode(
        "m-a-p/OpenCodeInterpreter-DS-6.7B",
        config=True,
        help="vLLM: a Hugging Face model id or a local model folder.",
    )
    vllm_dtype = Unicode("auto", config=True, help="vLLM: weights dtype (auto, float16, ...).")
    gpu_memory_utilization = Float(0.9, config=True, help="vLLM: share of GPU memory to use.")
    max_model_len = Int(
        None, allow_none=True, config=True, help="vLLM: context length (default: the model's)."
    )
    tensor_parallel_size = Int(1, config=True, help="vLLM: GPUs to shard the model over.")
    enable_prefix_caching = Bool(True, config=True, help="vLLM: reuse KV cache across turns.")
    vllm_engine_args = Dict(config=True, help="vLLM: further AsyncEngineArgs fields.")

    # a remote OpenAI-compatible server
    openai_base_url = Unicode(
        "", config=True, help="openai: the server's base URL, e.g. http://gpu-host:8000/v1."
    )
    openai_api_key = Unicode(
        "",
        config=True,
        help="""openai: API key (default: $OCI_OPENAI_API_KEY, which the server then removes
        from its environment, so that kernels and terminals do not inherit it).""",
    )
    openai_model = Unicode("", config=True, help="openai: model id (default: the first served).")
    openai_context_length = Int(
        None, allow_none=True, config=True, help="openai: context length if the server hides it."
    )

    chat_dir = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Where chat histories are kept (default: <Jupyter data dir>/oci_jupyter/chats).",
    )

    # the interpreter loop (defaults for requests that do not set their own)
    read_results = Bool(
        True,
        config=True,
        help="""The model reads every result, success included, and then answers in words,
        takes the next step or fixes the code. False: stop at the first run without errors
        (the fewest model replies, for slow CPUs). The sidebar's setting and
        `%%oci --no-read` override it per request.""",
    )
    max_attempts = Int(
        DEFAULT_BUDGETS.attempts,
        config=True,
        help="""Attempts of code per cell (the first + refinements), chat and %%oci. The
        sidebar's setting and `%%oci --attempts` override it per request.""",
    )
    max_steps = Int(
        DEFAULT_BUDGETS.steps, config=True, help="Cells one request may add (chat and %%oci)."
    )
    max_replies = Int(
        DEFAULT_BUDGETS.replies, config=True, help="Model replies one request may take in all."
    )

    # the endpoint
    max_request_bytes = Int(
        1024 * 1024, config=True, help="Largest accepted request body, in bytes (400 above)."
    )
    default_max_tokens = Int(
        1024, config=True, help="Completion length when a request does not set max_tokens."
    )
    default_temperature = Float(
        0.2, config=True, help="Sampling temperature when a request does not set one."
    )

    def create_engine(self) -> Engine:
        if self.engine_class is not None:
            return self.engine_class(**self.engine_kwargs)
        name = choose_engine(self.engine)
        if name == "llamacpp":
            from .engine.llamacpp import LlamaCppEngine

            return LlamaCppEngine(
                model_path=self.model_path,
                model_sha256=self.model_sha256,
                cache_dir=Path(self.cache_dir).expanduser() if self.cache_dir else None,
                try_hub=self.hub_download,
                hub_timeout=self.hub_timeout,
                n_ctx=self.n_ctx,
                n_threads=self.n_threads or None,
                n_threads_batch=self.n_threads_batch or None,
                served_model_name=self.served_model_name,
                kv_cache_bytes=self.kv_cache_bytes,
                prompt_lookup=self.prompt_lookup,
                extra_buffers=self.llama_extra_buffers,
            )
        if name == "vllm":
            from .engine.vllm import VLLMEngine

            return VLLMEngine(
                self.vllm_model,
                served_model_name=self.served_model_name,
                dtype=self.vllm_dtype,
                gpu_memory_utilization=self.gpu_memory_utilization,
                max_model_len=self.max_model_len,
                tensor_parallel_size=self.tensor_parallel_size,
                enable_prefix_caching=self.enable_prefix_caching,
                extra_engine_args=dict(self.vllm_engine_args),
            )
        from .engine.openai import OpenAIEngine

        return OpenAIEngine(
            base_url=self.openai_base_url,
            api_key=self.openai_api_key or os.environ.get("OCI_OPENAI_API_KEY", ""),
            model=self.openai_model,
            context_length=self.openai_context_length,
        )

    def describe(self) -> dict[str, Any]:
        return {"engine": self.engine, "max_request_bytes": self.max_request_bytes}

    def loop_defaults(self) -> dict[str, Any]:
        """The loop's defaults, as /oci/status reports them to the sidebar and %%oci, and as
        the chat applies them (:class:`oci_jupyter.request.LoopDefaults`)."""
        return {
            "read_results": self.read_results,
            "max_attempts": self.max_attempts,
            "max_steps": self.max_steps,
            "max_replies": self.max_replies,
        }
