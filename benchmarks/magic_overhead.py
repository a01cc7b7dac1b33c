"""Loop overhead per turn of the %%oci magic, outside generation and the code's own run
(goal ≤ 10 ms).

A real Jupyter server hosts the scripted test engine (no model time to drown the figure), a
real ipykernel runs ``%%oci`` requests that take two turns (the first code raises, the second
works). The magic records, per request, its total time and the time spent generating and
executing; the rest, per turn, is the loop's overhead: prompt building (with its /oci/tokenize
round trip), feedback, display updates, bookkeeping. Baseline in the same run: a plain cell's
execute round trip through the same kernel.

    PYTHONPATH=. .venv/bin/python benchmarks/magic_overhead.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.kernels import ipykernel
from tests.servers import jupyter_server

BROKEN = "```python\nvalues = [n * n for n in rnage(1, 6)]\n```"
FIXED = "```python\nvalues = [n * n for n in range(1, 6)]\nprint(sum(values))\n```"
TIMING = (
    "(lambda t: [t.total, t.generate, t.execute, t.turns])("
    "get_ipython().magics_manager.registry['OCIMagics'].last_timing)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.json"
        script.write_text(json.dumps({"replies": [], "prompts": []}))
        oci = {
            "engine_class": "tests.doubles.ScriptedTestEngine",
            "engine_kwargs": {"script_file": str(script)},
        }
        with jupyter_server(Path(tmp), oci) as server, ipykernel(server.kernel_env()) as kernel:
            kernel.run("%load_ext oci_jupyter")
            overheads: list[float] = []
            for _ in range(args.runs + 1):
                replies = [BROKEN, FIXED, "The sum is 55."]
                script.write_text(json.dumps({"replies": replies, "prompts": []}))
                kernel.run("%oci reset")
                run = kernel.run("%%oci --quiet\nsum the squares of 1..5")
                assert "oci: answered" in run.text, run.text
                total, generate, execute, turns = json.loads(kernel.value(TIMING).replace("'", '"'))
                overheads.append((total - generate - execute) / turns)
            overheads = overheads[1:]  # the first run warms up imports and connections
            plain = []
            for _ in range(args.runs):
                started = time.perf_counter()
                kernel.run("values = [n * n for n in range(1, 6)]")
                plain.append(time.perf_counter() - started)

    p50, worst = statistics.median(overheads), max(overheads)
    base = statistics.median(plain)
    print(f"%%oci requests of 2 turns: {args.runs}")
    print(f"loop overhead per turn   p50 {p50 * 1000:6.2f} ms   max {worst * 1000:6.2f} ms")
    print(f"plain cell round trip    p50 {base * 1000:6.2f} ms   (baseline)")
    print(f"ratio overhead/baseline: {p50 / base:.2f}")
    print(f"goal p50 <= 10 ms: {'met' if p50 <= 0.010 else 'MISSED'}")


if __name__ == "__main__":
    main()
