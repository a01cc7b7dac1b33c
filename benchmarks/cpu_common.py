"""Shared pieces of the cpu_* benchmarks: the in-process llama.cpp engine with the bundled
model, time to first token, realistic notebook prompts, the CPU model, the other-load meter,
and a deadline that keeps every script under 5 minutes. Not a test; imports no pytest."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

from _harness import ForeignLoad, bundled_model_path, machine_info, wait_for_quiet  # noqa: E402

from oci_jupyter.engine import Delta, Finish, GenerationParams  # noqa: E402
from oci_jupyter.engine.llamacpp import LlamaCppEngine, RequestStats, cpu_model  # noqa: E402

Messages = list[dict[str, str]]

SYSTEM = (
    "You are a code interpreter in a Jupyter notebook. Answer with one ```python block that "
    "the notebook runs; read its result, then fix it or answer in words."
)


def banner(what: str) -> None:
    info = machine_info()
    print(f"{what}\nCPU: {cpu_model()} ({info['cores']} cores usable), Python {info['python']}")
    print("The machine may be shared: ratios come from interleaved runs in one process.")


class Deadline:
    """Stops a benchmark's rounds before ``seconds`` have passed (every script < 5 min)."""

    def __init__(self, seconds: float) -> None:
        self.start = time.monotonic()
        self.seconds = seconds

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def quiet(threshold: float, timeout: float) -> float:
    """Wait (bounded) for other processes to use less than ``threshold`` cores; their load."""
    _, load = wait_for_quiet([os.getpid()], threshold, timeout)
    return load


async def ready_engine(**kwargs: Any) -> LlamaCppEngine:
    kwargs.setdefault("n_ctx", 8192)
    engine = LlamaCppEngine(model_path=str(bundled_model_path()), **kwargs)
    status = await engine.wait_ready(300)
    if status.state != "ready":
        raise SystemExit(f"the engine did not start: {status.error}")
    return engine


@dataclass
class Timed:
    ttft: float
    """Seconds from the call to the first text."""
    total: float
    text: str
    finish: Finish | None
    stats: RequestStats | None
    other_cpu: float


async def timed(
    engine: LlamaCppEngine, messages: Messages, params: GenerationParams, request_id: str
) -> Timed:
    load = ForeignLoad([os.getpid()]).start()
    start = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    finish: Finish | None = None
    async for event in engine.stream_chat(messages, params, request_id):
        if isinstance(event, Delta):
            if first is None:
                first = time.perf_counter()
            parts.append(event.text)
        else:
            finish = event
    end = time.perf_counter()
    return Timed(
        ttft=(first or end) - start,
        total=end - start,
        text="".join(parts),
        finish=finish,
        stats=engine.last_stats,
        other_cpu=load.stop(),
    )


def notebook(tag: str, cells: int) -> str:
    """A notebook context as the chat sends it: numbered cells with code and output, ~60
    tokens a cell, different for every tag (so that nothing of it is cached already)."""
    parts = []
    for i in range(cells):
        parts.append(
            f"# In[{i + 1}]:\n"
            f"df_{tag}_{i} = load_table('{tag}/part_{i}.csv')\n"
            f"summary_{i} = df_{tag}_{i}.groupby('group_{i % 5}').agg({{'value': 'mean'}})\n"
            f"print(summary_{i}.head({i % 4 + 2}))\n"
            f"# Out[{i + 1}]:\n   group_{i % 5}  value\n0  a  {i * 1.5:.2f}\n1  b  {i * 2.25:.2f}\n"
        )
    return "\n".join(parts)


def run(main: Any) -> None:
    asyncio.run(main())
