"""Shared fixtures. Async tests run on pytest-jupyter's event loop (no pytest-asyncio)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = (
    "pytest_jupyter.jupyter_server",
    "tests.magic_kernel",  # the %%oci tests' server, kernel and script
)

# Never reach a hub from the tests; the bundled model comes from the offline mirror/cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def bundled_model() -> Path:
    """The real bundled GGUF (assembled from the pinned mirror packages once, then cached)."""
    from oci_jupyter.engine.bundled import ensure_default_model

    return ensure_default_model()


@pytest.fixture(scope="module")
def llama_engine(bundled_model: Path) -> Iterator[object]:
    """One real llama.cpp engine per test module (loading it costs ~1 s and 1.9 GB)."""
    from oci_jupyter.engine.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(model_path=str(bundled_model), n_ctx=4096)
    loop = asyncio.new_event_loop()
    try:
        status = loop.run_until_complete(engine.wait_ready(300))
        assert status.state == "ready", status
        yield engine
        loop.run_until_complete(engine.shutdown())
    finally:
        loop.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
