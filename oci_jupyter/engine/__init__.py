"""Model hosting: one protocol (base.Engine), three engines (llama.cpp, vLLM, a remote server)."""

from __future__ import annotations

import importlib.util

from .base import (
    Delta,
    Engine,
    EngineError,
    EngineNotReady,
    EngineStatus,
    Finish,
    GenerationParams,
    Message,
    ModelError,
    StreamEvent,
)

ENGINE_NAMES = ("auto", "llamacpp", "vllm", "openai")

__all__ = [
    "ENGINE_NAMES",
    "Delta",
    "Engine",
    "EngineError",
    "EngineNotReady",
    "EngineStatus",
    "Finish",
    "GenerationParams",
    "Message",
    "ModelError",
    "StreamEvent",
    "choose_engine",
]


def choose_engine(requested: str) -> str:
    """Resolve "auto": vLLM when a CUDA GPU and vLLM are both present, else llama.cpp."""
    if requested != "auto":
        return requested
    if importlib.util.find_spec("vllm") is None:
        return "llamacpp"
    from .vllm import cuda_available

    return "vllm" if cuda_available() else "llamacpp"
