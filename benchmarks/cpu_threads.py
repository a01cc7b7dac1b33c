"""llama.cpp threads on this CPU: decoding and prompt reading, alone and while a kernel computes.

For each thread count (``--threads``: default 1, 2, and 0 = the engine's own choice by load,
LlamaCppEngine._choose_threads) the bundled model, loaded once in this process, reads
``--prompt-tokens`` fresh tokens and decodes ``--decode-tokens`` tokens one at a time, in
interleaved rounds so that the configurations share whatever else the machine is doing. Each
measurement runs twice: on the otherwise idle machine and next to a busy process spinning on
one core (a kernel computing, started a second before). During decoding a thread of this
process wakes every 10 ms and records how late it woke: the Jupyter server's event loop lives
in the same process as the engine, so this is what it feels.

    PYTHONPATH=. .venv/bin/python benchmarks/cpu_threads.py [--rounds 3] [--json out.json]

Prints the CPU model, a table (median over rounds) and the other processes' CPU use (`other
cpu`, cores; the busy helper counts as ours). Bounded: about 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

from _harness import (  # noqa: E402
    ForeignLoad,
    bundled_model_path,
    format_table,
    machine_info,
    percentile,
    write_json,
)

from oci_jupyter.engine.llamacpp import LlamaCppEngine, cpu_model  # noqa: E402


def spin(stop: Any) -> None:  # a kernel computing: one core, flat out
    os.nice(0)
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


class Wakeups:
    """A thread that sleeps 10 ms at a time and records how late it wakes (ms)."""

    def __init__(self) -> None:
        self.late: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            time.sleep(0.01)
            self.late.append((time.perf_counter() - start - 0.01) * 1000)

    def __enter__(self) -> Wakeups:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(
    llm: Any, threads: int, tokens: list[int], decode: int, offset: int, engine: Any = None
) -> dict[str, Any]:
    """``threads`` 0: the engine's choice by load (LlamaCppEngine._choose_threads, the
    default), made before the prompt and again every second while decoding."""
    import llama_cpp

    chosen: list[int] = []

    def pick() -> None:
        n = threads
        if not n:
            engine._choose_threads()
            n = engine._n_threads
        chosen.append(n)
        llama_cpp.llama_set_n_threads(llm._ctx.ctx, n, n)

    pick()
    fresh = [(t + offset) % 150_000 for t in tokens]  # never the same prompt twice
    llm._ctx.kv_cache_seq_rm(0, -1, -1)
    llm.n_tokens = 0
    start = time.perf_counter()
    llm.eval(fresh)
    prompt_s = time.perf_counter() - start
    with Wakeups() as wake:
        start = checked = time.perf_counter()
        for i in range(decode):
            if time.perf_counter() - checked >= 1.0:
                checked = time.perf_counter()
                pick()
            llm.eval([fresh[i % len(fresh)]])
        decode_s = time.perf_counter() - start
    return {
        "chosen_threads": chosen,
        "prompt_tps": len(fresh) / prompt_s,
        "decode_tps": decode / decode_s,
        "wake_p50_ms": percentile(wake.late, 50),
        "wake_p99_ms": percentile(wake.late, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1, 2, 0], help="0: the engine's choice"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompt-tokens", type=int, default=256)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--json")
    args = parser.parse_args()
    began = time.monotonic()
    print(f"CPU: {cpu_model()} ({machine_info()['cores']} cores usable)", flush=True)

    path = bundled_model_path()
    engine = LlamaCppEngine(model_path=str(path), n_ctx=2048, prompt_lookup="off")
    llm, _, _ = engine._open_model(path)
    engine._meter.start()
    text = (Path(__file__).resolve().parent.parent / "oci_jupyter" / "loop.py").read_text()
    tokens = llm.tokenize(text.encode(), add_bos=False)[: args.prompt_tokens]
    measure(llm, max(args.threads), tokens[:32], 4, 0)  # warm-up: pages the weights in

    samples: list[dict[str, Any]] = []
    offset = 1
    for round_no in range(args.rounds):
        for threads in args.threads:
            for busy in (False, True):
                stop = multiprocessing.Event()
                helper = multiprocessing.Process(target=spin, args=(stop,), daemon=True)
                pids = [os.getpid()]
                if busy:
                    helper.start()
                    pids.append(helper.pid or 0)
                    time.sleep(1.0)  # a kernel that is computing already
                load = ForeignLoad(pids).start()
                result = measure(llm, threads, tokens, args.decode_tokens, offset, engine)
                result.update(round=round_no, threads=threads, busy=busy, other_cpu=load.stop())
                offset += 7919
                if busy:
                    stop.set()
                    helper.join()
                samples.append(result)
                print(
                    f"  round {round_no} threads {threads or 'auto'} "
                    f"({'/'.join(map(str, result['chosen_threads']))}) "
                    f"{'busy' if busy else 'idle'}: "
                    f"prompt {result['prompt_tps']:.1f} tok/s, decode "
                    f"{result['decode_tps']:.1f} tok/s, wake-up p99 "
                    f"{result['wake_p99_ms']:.1f} ms, other cpu {result['other_cpu']:.2f}",
                    flush=True,
                )
    engine._meter.stop()
    llm.close()

    rows = []
    for threads in args.threads:
        for busy in (False, True):
            group = [s for s in samples if s["threads"] == threads and s["busy"] == busy]
            rows.append(
                [
                    threads or "auto",
                    "kernel busy" if busy else "idle",
                    f"{statistics.median(s['prompt_tps'] for s in group):.1f}",
                    f"{statistics.median(s['decode_tps'] for s in group):.1f}",
                    f"{statistics.median(s['wake_p50_ms'] for s in group):.2f}",
                    f"{statistics.median(s['wake_p99_ms'] for s in group):.1f}",
                    f"{statistics.median(s['other_cpu'] for s in group):.2f}",
                ]
            )
    print()
    print(f"CPU: {cpu_model()}")
    print(
        format_table(
            [
                "threads",
                "machine",
                "prompt tok/s",
                "decode tok/s",
                "wake p50 ms",
                "wake p99 ms",
                "other cpu",
            ],
            rows,
        )
    )
    print(f"run time {time.monotonic() - began:.0f} s")
    write_json(args.json, {"cpu": cpu_model(), "machine": machine_info(), "samples": samples})


if __name__ == "__main__":
    main()
