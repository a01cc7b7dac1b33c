"""Prompt-lookup decoding on the CPU: decode tokens/s of refinement, fix and first replies,
without drafts, with this engine's drafter and with llama-cpp-python's
LlamaPromptLookupDecoding.

One llama.cpp engine in this process (the bundled model, default threads). Each prompt is
read once before it is measured (so prefill is out of the figure: only decoding differs), then
every variant answers it in an order that rotates from prompt to prompt:

- ``off``: one token per step;
- ``on``: the engine's drafter on every reply (the first earlier occurrence of the last 3-,
  else 2-token n-gram, up to 10 drafted tokens, no draft for the first token);
- ``auto``: the engine's default: ``on`` where the prompt holds code outside the system
  prompt (refinements, fixes), and it stops drafting a reply whose drafts are confirmed at
  under 25 % after 40 drafted tokens; first replies: ``off``;
- ``llama-cpp``: llama_cpp.llama_speculative.LlamaPromptLookupDecoding(num_pred_tokens=10),
  its default search (the first occurrence of the last 2-gram, else of the last token).

Decode tokens/s = completion tokens ÷ (first decoding step -> last token), from the engine's
RequestStats. Greedy (temperature 0) unless ``--temperature``; the script checks that every
variant wrote the same text (drafts must not change a greedy reply).

    PYTHONPATH=. .venv/bin/python benchmarks/cpu_prompt_lookup.py [--json out.json]

Goal (issue 12): >= 1.5x on refinement replies. Bounded by ``--max-seconds`` (280).
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import numpy as np
from cpu_common import SYSTEM, Deadline, Messages, banner, quiet, ready_engine, run, timed

from oci_jupyter.engine import GenerationParams

BUGGY = """import pandas as pd
import matplotlib.pyplot as plt

def monthly_totals(df):
    df["month"] = df["date"].dt.to_period("M")
    totals = df.groupby("month")["amount"].sum()
    return totals.sort_index()

sales = pd.DataFrame({
    "date": ["2024-01-05", "2024-01-20", "2024-02-11", "2024-03-02"],
    "amount": [120.0, 80.5, 200.25, 99.9],
})
totals = monthly_totals(sales)
totals.plot(kind="bar", title="Sales per month")
plt.ylabel("amount")
plt.show()
"""

ERROR = (
    "AttributeError: Can only use .dt accessor with datetimelike values\n"
    '  File "<cell>", line 5, in monthly_totals\n'
    '    df["month"] = df["date"].dt.to_period("M")'
)

CLEAN = '''def fib(n):
    """The n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

results = [fib(i) for i in range(10)]
print(results)
'''


def refinement(code: str, error: str, task: str) -> Messages:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": task},
        {"role": "assistant", "content": f"```python\n{code}```"},
        {
            "role": "user",
            "content": f"The code raised:\n{error}\nFix it: reply with the whole corrected cell.",
        },
    ]


def fix(code: str, error: str) -> Messages:
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": f"This cell failed:\n```python\n{code}```\n{error}\n"
            "Rewrite the cell so that it runs.",
        },
    ]


def first(task: str) -> Messages:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task}]


PROMPTS: list[tuple[str, Messages]] = [
    (
        "refinement",
        refinement(BUGGY, ERROR, "Plot the monthly sales totals of this data as a bar chart."),
    ),
    (
        "refinement",
        refinement(
            CLEAN.replace("a + b", "a - b"),
            "AssertionError: fib(10) should be 55, got -34",
            "Print the first ten Fibonacci numbers.",
        ),
    ),
    ("fix", fix(BUGGY, ERROR)),
    (
        "first",
        first("Write a function that returns the n-th prime number, and print the first 10."),
    ),
    ("first", first("Load 'data.csv' with pandas and plot a histogram of its 'age' column.")),
]


class LlamaCppLookup:
    """llama-cpp-python's LlamaPromptLookupDecoding behind the engine's drafter interface."""

    def __init__(self, tokens: int = 10) -> None:
        from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

        self.draft = LlamaPromptLookupDecoding(num_pred_tokens=tokens)

    def __call__(self, context: Any, pending: int, room: int) -> list[int]:
        if room <= 0:
            return []
        ids = np.append(np.asarray(context, dtype=np.intc), np.intc(pending))
        return [int(t) for t in self.draft(ids)[:room]]


VARIANTS = ("off", "on", "auto", "llama-cpp")


def use(engine: Any, variant: str) -> None:
    engine.prompt_lookup = "on" if variant == "llama-cpp" else variant
    engine.__dict__.pop("_drafter", None)  # the engine's own
    if variant == "llama-cpp":
        engine._drafter = LlamaCppLookup


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--kinds", nargs="+", default=["refinement", "fix", "first"])
    parser.add_argument("--quiet", type=float, default=0.3)
    parser.add_argument("--quiet-timeout", type=float, default=5.0)
    parser.add_argument("--max-seconds", type=float, default=280.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    deadline = Deadline(args.max_seconds)
    banner("Prompt-lookup decoding: decode tokens/s by reply kind")
    engine = await ready_engine(n_ctx=4096)
    params = GenerationParams(max_tokens=args.max_tokens, temperature=args.temperature, seed=7)
    rows: list[dict[str, Any]] = []
    prompts = [(kind, messages) for kind, messages in PROMPTS if kind in args.kinds]
    for number, (kind, messages) in enumerate(prompts):
        if deadline.left() < 75:
            print("deadline: stopping early")
            break
        use(engine, "off")
        await timed(engine, messages, GenerationParams(max_tokens=1), f"read-{number}")
        texts: dict[str, str] = {}
        order = VARIANTS[number % 4 :] + VARIANTS[: number % 4]
        for variant in order:
            use(engine, variant)
            quiet(args.quiet, args.quiet_timeout)
            result = await timed(engine, messages, params, f"{variant}-{number}")
            stats = result.stats
            assert stats is not None
            texts[variant] = result.text
            rows.append(
                {
                    "prompt": number,
                    "kind": kind,
                    "variant": variant,
                    "tokens": stats.completion_tokens,
                    "decode_tps": stats.completion_tokens / stats.decode_seconds,
                    "ttft": result.ttft,
                    "drafted": stats.drafted_tokens,
                    "accepted": stats.accepted_tokens,
                    "other_cpu": result.other_cpu,
                }
            )
            r = rows[-1]
            print(
                f"  prompt {number} ({kind}) {variant:9s}: {r['tokens']} tokens, "
                f"{r['decode_tps']:.1f} tok/s, TTFT {r['ttft']:.2f} s, accepted "
                f"{r['accepted']}/{r['drafted']} drafted, other cpu {r['other_cpu']:.2f}",
                flush=True,
            )
        same = len(set(texts.values())) == 1
        if not same:
            print(f"  NOTE: prompt {number}: the variants wrote different text")
    await engine.shutdown()

    print()
    print("kind        variant    decode tok/s (median)  speed-up vs off  accepted/drafted")
    for kind in args.kinds:
        base = [r["decode_tps"] for r in rows if r["kind"] == kind and r["variant"] == "off"]
        if not base:
            continue
        for variant in VARIANTS:
            group = [r for r in rows if r["kind"] == kind and r["variant"] == variant]
            if not group:
                continue
            ratios = [
                r["decode_tps"]
                / next(
                    b["decode_tps"]
                    for b in rows
                    if b["prompt"] == r["prompt"] and b["variant"] == "off"
                )
                for r in group
            ]
            tps = statistics.median(r["decode_tps"] for r in group)
            print(
                f"{kind:11s} {variant:10s} {tps:10.1f}"
                f"  {statistics.median(ratios):15.2f}x"
                f"  {sum(r['accepted'] for r in group)}/{sum(r['drafted'] for r in group)}"
            )
    print(f"run time {deadline.elapsed():.0f} s")
    if args.json:
        from _harness import write_json

        from oci_jupyter.engine.llamacpp import cpu_model

        write_json(args.json, {"cpu": cpu_model(), "rows": rows, "args": vars(args)})


if __name__ == "__main__":
    run(main)
