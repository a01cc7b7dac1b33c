"""Work-arounds for CPU backends of llama.cpp that misbehave on some processors.

On Intel Xeons with AMX (Sapphire Rapids and newer), llama.cpp repacks Q4_K weights into its
AMX "extra" buffer type, and the first inferences then crash the process with a general
protection fault (``ldtilecfg`` in ``ggml_backend_amx_mul_mat``; llama.cpp issue #20824; seen
here with llama-cpp-python 0.3.36 and the bundled Qwen2.5-Coder Q4_K_M, in most runs). A crash
would take the whole Jupyter server with it, so on such a CPU the model is loaded without
extra buffer types (plain CPU buffers; ~170 prompt tokens/s on 2 cores). Elsewhere nothing
changes. ``python -m oci_jupyter.engine.cpu_quirks llama_cpp.server ...`` runs another
llama.cpp program the same way (the tests' OpenAI-compatible server).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

_PATCH_LOCK = threading.Lock()


def cpu_has_amx(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU advertises AMX (the ``amx_int8``/``amx_tile`` flags)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return bool(flags & {"amx_int8", "amx_tile", "amx_bf16"})
    return False


@contextlib.contextmanager
def safe_model_params(disable_extra_buffers: bool | None = None) -> Iterator[bool]:
    """While a ``Llama`` is constructed inside this block, its model is loaded without extra
    buffer types when ``disable_extra_buffers`` (default: on a CPU with AMX). Yields whether
    they were disabled. ``Llama.__init__`` offers no parameter for it, so the library's
    default-params function is wrapped for the duration (under a lock: loads are rare)."""
    disable = cpu_has_amx() if disable_extra_buffers is None else disable_extra_buffers
    if not disable:
        yield False
        return
    import llama_cpp.llama_cpp as native

    with _PATCH_LOCK:
        original = native.llama_model_default_params

        def without_extra_buffers():  # type: ignore[no-untyped-def]
            params = original()
            if hasattr(params, "use_extra_bufts"):
                params.use_extra_bufts = False
            return params

        native.llama_model_default_params = without_extra_buffers
        try:
            yield True
        finally:
            native.llama_model_default_params = original


def main(argv: list[str]) -> None:
    """Run a llama.cpp module (``llama_cpp.server``) with AMX-safe model loading."""
    import runpy
    import sys

    if not argv:
        raise SystemExit("usage: python -m oci_jupyter.engine.cpu_quirks MODULE [ARGS...]")
    with safe_model_params():
        sys.argv = argv
        runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
