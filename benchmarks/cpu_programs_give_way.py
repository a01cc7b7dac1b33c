"""P13: a person's request while a program's long reply runs (oci-eval, the OpenAI endpoint).

One llama.cpp engine in this process (the bundled model, default settings). Each round starts
a program's request (``priority="background"``: a ~2,000-token notebook prompt, a reply of
``--reply-tokens``), and a person asks while it runs: ghost text (a middle of 8 tokens) and a
chat turn (8 tokens), once while the program reads its prompt (``--ask-after`` seconds in) and
once while it writes its reply (after its first token). Measured from the ask: the first ghost
token and the chat's first token; and the program's end, which is what the person would have
waited at least before programs gave way (they were served only after the program's reply);
and what giving way costs the program (its whole time against a round nobody interrupts).

    PYTHONPATH=. .venv/bin/python benchmarks/cpu_programs_give_way.py [--rounds 2] [--json out.json]

Goal (issue 21): ghost text never waits behind a long background request. Bounded by
``--max-seconds`` (600).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

from cpu_common import Deadline, banner, notebook, quiet, ready_engine, run

from oci_jupyter.engine import Delta, Finish, GenerationParams
from oci_jupyter.engine.fim import FimPrompt


async def first_text(stream: Any, start: float) -> float:
    """Seconds from ``start`` to the stream's first text (its end if it has none)."""
    first = None
    async for event in stream:
        if isinstance(event, Delta) and first is None:
            first = time.perf_counter()
    return (first or time.perf_counter()) - start


async def program_round(engine: Any, args: argparse.Namespace, when: str | None) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    messages = [{"role": "user", "content": f"{notebook(tag, args.cells)}\n\nExplain each cell."}]
    params = GenerationParams(max_tokens=args.reply_tokens, temperature=0.0, priority="background")
    started = time.perf_counter()
    replied = asyncio.Event()
    tokens: list[int] = []

    async def program() -> float:
        async for event in engine.stream_chat(messages, params, f"program-{tag}"):
            if isinstance(event, Delta):
                replied.set()
            elif isinstance(event, Finish):
                tokens.append(event.completion_tokens)
        return time.perf_counter()

    task = asyncio.create_task(program())
    row: dict[str, Any] = {"when": when or "nobody asks"}
    if when == "prompt":
        await asyncio.sleep(args.ask_after)
    elif when == "reply":
        await replied.wait()
    if when is not None:
        asked = time.perf_counter()
        row["program_running"] = not task.done()
        hole = FimPrompt(f"def total_{tag}(values):\n    return ", "\n\n\nprint(total([1, 2]))\n")
        ghost_params = GenerationParams(max_tokens=8, temperature=0.0, priority="interactive")
        row["ghost_first"] = await first_text(
            engine.stream_fim(hole, ghost_params, f"ghost-{tag}"), asked
        )
        chat_asked = time.perf_counter()
        chat = [{"role": "user", "content": f"Say hi to {tag}."}]
        row["chat_first"] = await first_text(
            engine.stream_chat(chat, GenerationParams(max_tokens=8), f"chat-{tag}"), chat_asked
        )
        ended = await task
        row["program_end_after_ask"] = ended - asked
    else:
        ended = await task
    row["program_seconds"] = ended - started
    row["program_tokens"] = tokens[0] if tokens else 0
    stats = engine.last_stats
    row["decode_tok_s"] = (
        stats.completion_tokens / stats.decode_seconds if stats and stats.decode_seconds else None
    )
    return row


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cells", type=int, default=21, help="notebook cells (~95 tokens)")
    parser.add_argument("--reply-tokens", type=int, default=160)
    parser.add_argument("--ask-after", type=float, default=1.0)
    parser.add_argument("--quiet", type=float, default=0.3)
    parser.add_argument("--quiet-timeout", type=float, default=10.0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    deadline = Deadline(args.max_seconds)
    banner("P13: a person asks while a program's long reply runs")
    engine = await ready_engine()
    rows = []
    for round_no in range(args.rounds):
        for when in (None, "prompt", "reply"):
            if deadline.left() < 120:
                break
            quiet(args.quiet, args.quiet_timeout)
            row = await program_round(engine, args, when)
            rows.append(row)
            line = f"  round {round_no}, {row['when']}: program {row['program_seconds']:.1f} s"
            line += f" ({row['program_tokens']} tokens, {row['decode_tok_s'] or 0:.1f} tok/s)"
            if when is not None:
                line += (
                    f"; ghost text's first token {row['ghost_first']:.2f} s, the chat's"
                    f" {row['chat_first']:.2f} s after asking; the program ended"
                    f" {row['program_end_after_ask']:.1f} s after the ask"
                )
            print(line, flush=True)
    await engine.shutdown()
    asked = [r for r in rows if "ghost_first" in r]
    alone = [r["program_seconds"] for r in rows if "ghost_first" not in r]
    if asked and alone:
        ghost = statistics.median(r["ghost_first"] for r in asked)
        waited = statistics.median(r["program_end_after_ask"] for r in asked)
        cost = statistics.median(r["program_seconds"] for r in asked) - statistics.median(alone)
        print(
            f"\nghost text's first token {ghost:.2f} s p50 after the ask; before programs gave"
            f" way it came after the program's end, {waited:.1f} s p50 ({waited / ghost:.0f}x);"
            f" what the program's reply took longer: {cost:+.1f} s p50"
        )
    print(f"run time {deadline.elapsed():.0f} s")
    if args.json:
        from _harness import write_json

        from oci_jupyter.engine.llamacpp import cpu_model

        write_json(args.json, {"cpu": cpu_model(), "rows": rows})


if __name__ == "__main__":
    run(main)
