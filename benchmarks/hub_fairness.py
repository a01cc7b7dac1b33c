"""Hub fairness: N people chat at once on one shared CPU engine while a program runs.

One llama.cpp engine in this process (the bundled model, default settings), as a shared model
server for a JupyterHub team would host it. A program's request starts first
(``priority="background"``, as oci-eval or any other OpenAI client through `/oci/v1`: a notebook
prompt and a long reply); once it writes its reply, ``--users`` people ask at once, a few
milliseconds apart so that their arrival order is known (each its own notebook: nothing
of one is cached for another). Printed for each person: the wait for the first token, the
whole reply, and the order the engine served them in; for the program: what the people cost
it. The queue serves a person before a program and people first come, first served, so the
first tokens should come in arrival order, each after the replies of those ahead of it, and
the program's reply should give way between two tokens.

    PYTHONPATH=. .venv/bin/python benchmarks/hub_fairness.py [--users 3] [--json out.json]

Bounded by ``--max-seconds`` (280): every benchmark script stays under 5 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from cpu_common import Deadline, banner, notebook, quiet, ready_engine, run

from oci_jupyter.engine import Delta, Finish, GenerationParams


async def person(
    engine: Any, name: str, cells: int, reply_tokens: int, served: list[str]
) -> dict[str, Any]:
    """One person's chat turn; ``served`` gets the name when its first token comes."""
    tag = uuid.uuid4().hex[:6]
    messages = [
        {"role": "user", "content": f"{notebook(tag, cells)}\n\nSummarise the last output."}
    ]
    # Greedy and a fixed length: every person costs the engine about the same.
    params = GenerationParams(max_tokens=reply_tokens, temperature=0.0, priority="interactive")
    asked = time.perf_counter()
    first: float | None = None
    tokens = 0
    async for event in engine.stream_chat(messages, params, f"{name}-{tag}"):
        if isinstance(event, Delta) and first is None:
            first = time.perf_counter()
            served.append(name)
        elif isinstance(event, Finish):
            tokens = event.completion_tokens
    ended = time.perf_counter()
    return {
        "name": name,
        "first_token_s": (first or ended) - asked,
        "reply_s": ended - asked,
        "tokens": tokens,
        "asked_at": asked,
    }


async def program(
    engine: Any, cells: int, reply_tokens: int, replying: asyncio.Event
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    messages = [{"role": "user", "content": f"{notebook(tag, cells)}\n\nExplain each cell."}]
    params = GenerationParams(max_tokens=reply_tokens, temperature=0.0, priority="background")
    started = time.perf_counter()
    tokens = 0
    async for event in engine.stream_chat(messages, params, f"program-{tag}"):
        if isinstance(event, Delta):
            replying.set()
        elif isinstance(event, Finish):
            tokens = event.completion_tokens
    return {"seconds": time.perf_counter() - started, "tokens": tokens}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=3)
    parser.add_argument("--cells", type=int, default=4, help="each person's notebook cells")
    parser.add_argument("--reply-tokens", type=int, default=32, help="each person's reply")
    parser.add_argument("--program-cells", type=int, default=6)
    parser.add_argument("--program-tokens", type=int, default=400)
    parser.add_argument("--stagger", type=float, default=0.05, help="seconds between asks")
    parser.add_argument("--quiet", type=float, default=0.3)
    parser.add_argument("--quiet-timeout", type=float, default=10.0)
    parser.add_argument("--max-seconds", type=float, default=280.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    deadline = Deadline(args.max_seconds)
    banner(f"Hub fairness: {args.users} people chat at once while a program replies")
    engine = await ready_engine()
    quiet(args.quiet, args.quiet_timeout)

    replying = asyncio.Event()
    program_task = asyncio.create_task(
        program(engine, args.program_cells, args.program_tokens, replying)
    )
    await asyncio.wait_for(replying.wait(), deadline.left())
    served: list[str] = []
    people = []
    for index in range(args.users):
        name = f"user{index + 1}"
        people.append(
            asyncio.create_task(person(engine, name, args.cells, args.reply_tokens, served))
        )
        await asyncio.sleep(args.stagger)
    rows = await asyncio.wait_for(asyncio.gather(*people), deadline.left())
    program_running = not program_task.done()
    program_row = await asyncio.wait_for(program_task, max(deadline.left(), 1))
    decode = engine.last_stats
    await engine.shutdown()

    arrival = [row["name"] for row in rows]
    print(
        f"\nasked in the order {', '.join(arrival)}; first tokens in the order {', '.join(served)}"
    )
    for row in rows:
        per_token = row["tokens"] and (row["reply_s"] - row["first_token_s"]) / row["tokens"]
        print(
            f"  {row['name']}: first token after {row['first_token_s']:.1f} s, its reply"
            f" ({row['tokens']} tokens) done after {row['reply_s']:.1f} s"
            f" ({1 / per_token if per_token else 0:.1f} tok/s)"
        )
    print(
        f"  the program ({program_row['tokens']} tokens) was still writing when the people were"
        f" done: {program_running}; it took {program_row['seconds']:.1f} s in all"
    )
    if decode and decode.decode_seconds:
        print(
            f"  the program's decoding: {decode.completion_tokens / decode.decode_seconds:.1f}"
            " tok/s (its last stretch)"
        )
    print(f"FIFO among the people: {served == arrival}")
    print(f"run time {deadline.elapsed():.0f} s")
    if args.json:
        from _harness import write_json

        from oci_jupyter.engine.llamacpp import cpu_model

        write_json(
            args.json,
            {"cpu": cpu_model(), "people": rows, "served": served, "program": program_row},
        )


if __name__ == "__main__":
    run(main)
