"""Memory: resident memory of the llama.cpp engine with its prefix cache full, against the
budget (``kv_cache_bytes``).

One engine in this process (the bundled model, n_ctx 4096) with ``--budget-mib`` (default
256) of saved states. Distinct ~1,500-token conversations are sent (one token of reply each)
until the cache has evicted ``--evictions`` states; after each the script prints the process's
resident memory (VmRSS), the cache's bytes and entries.

    PYTHONPATH=. .venv/bin/python benchmarks/cpu_memory.py [--budget-mib 256] [--json out.json]

Expected: cache bytes <= budget at every step, and RSS - RSS after the load ≈ cache bytes
(+ the live context, allocated at load). Bounded by ``--max-seconds`` (280).
"""

from __future__ import annotations

import argparse
import uuid

from cpu_common import Deadline, banner, notebook, ready_engine, run, timed

from oci_jupyter.engine import GenerationParams
from oci_jupyter.engine.kv_cache import PrefixCache


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget-mib", type=int, default=256)
    parser.add_argument("--cells", type=int, default=15)
    parser.add_argument("--evictions", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=280.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    deadline = Deadline(args.max_seconds)
    banner("Memory: the prefix cache full, against its budget")
    engine = await ready_engine(n_ctx=4096)
    budget = args.budget_mib * 2**20
    engine.cache = PrefixCache(budget)
    await timed(engine, [{"role": "user", "content": "hi"}], GenerationParams(max_tokens=1), "w")
    base = rss_mib()
    print(f"after the load and one request: RSS {base:.0f} MiB; budget {args.budget_mib} MiB")
    rows = []
    n = 0
    while engine.cache.stats.evictions < args.evictions and deadline.left() > 40:
        messages = [
            {"role": "user", "content": notebook(uuid.uuid4().hex[:6], args.cells) + "\nSum up."}
        ]
        result = await timed(engine, messages, GenerationParams(max_tokens=1), f"m{n}")
        n += 1
        row = {
            "prompt_tokens": result.stats.prompt_tokens if result.stats else None,
            "rss_mib": rss_mib(),
            "cache_mib": engine.cache.nbytes / 2**20,
            "entries": len(engine.cache),
            "evictions": engine.cache.stats.evictions,
        }
        rows.append(row)
        print(
            f"  {n}: {row['prompt_tokens']}-token conversation; cache {row['cache_mib']:.0f} MiB "
            f"in {row['entries']} states ({row['evictions']} evicted); RSS {row['rss_mib']:.0f} "
            f"MiB (+{row['rss_mib'] - base:.0f})",
            flush=True,
        )
    await engine.shutdown()
    worst = max((r["cache_mib"] for r in rows), default=0)
    print(
        f"\nlargest cache {worst:.0f} MiB of {args.budget_mib} MiB budget "
        f"({'within' if worst <= args.budget_mib else 'OVER'}); RSS grew by at most "
        f"{max((r['rss_mib'] for r in rows), default=base) - base:.0f} MiB"
    )
    print(f"run time {deadline.elapsed():.0f} s")
    if args.json:
        from _harness import write_json

        write_json(args.json, {"base_rss_mib": base, "budget_mib": args.budget_mib, "rows": rows})


if __name__ == "__main__":
    run(main)
