"""Ghost text's speed: type into a cell of a 30-cell notebook through ``/oci/v1/completions``
as the browser does, with the real bundled model on llama.cpp.

A keystroke every ``--interval`` seconds (150 ms); each sends the request the browser sends
(the cell around the cursor, the notebook around the cell, the kernel's variables; one key
per page, so the server stops the request before it as it arrives). At the end of a line
the typist pauses: from that last keystroke the script times the first ghost token and the
whole suggestion.

- **cold**: the first request in a notebook nothing of which the model has read (a person
  who clicks into a cell and asks with the shortcut);
- **first line**: the pause after typing the first line into such a notebook (the requests
  superseded while typing read the cells above meanwhile);
- **warm**: the pauses after the next lines.

Also: how long a superseded request took to end after the next keystroke, while typing the
first line of a fresh notebook (a prompt it was reading stops once the lines above the
cursor, which the next request shares, are read) and the next lines (its generation stops
within a token). Prints the CPU, the load and the model's speed with the figures.

    python benchmarks/inline_completion_speed.py --sessions 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._harness import (
    JupyterServer,
    format_table,
    iter_sse_data,
    percentile,
    running_server,
)
from oci_jupyter.engine.llamacpp import cpu_model

CELLS = 30
EDITED = 19
"""The cell typed into (0-based): 19 cells above it, 10 below."""
MAX_TOKENS = 48
STOPS = ["\n\n"]


def notebook_cells(tag: str) -> list[dict[str, str]]:
    """30 cells of a data analysis, different for every tag (nothing cached)."""
    cells = [
        {
            "source": (
                "import pandas as pd\nimport numpy as np\n"
                f"sales_{tag} = pd.read_csv('sales_{tag}.csv')"
            )
        },
        {
            "source": f"sales_{tag}.head()",
            "output": "   region  price  quantity\n0  north  2.5  10\n1  south  3.0  4",
        },
    ]
    for i in range(2, CELLS):
        column = ["price", "quantity", "amount", "discount", "margin"][i % 5]
        cells.append(
            {
                "source": (
                    f"step_{tag}_{i} = sales_{tag}[sales_{tag}['{column}'] > {i}]\n"
                    f"mean_{i} = step_{tag}_{i}.groupby('region')['{column}'].mean()\n"
                    f"print(mean_{i}.round({i % 3}))"
                ),
                "output": f"region\nnorth    {i * 1.5:.2f}\nsouth    {i * 0.75:.2f}"
                if i % 3 == 0
                else "",
            }
        )
    return cells


def lines_to_type(tag: str) -> list[str]:
    return [
        f"by_region_{tag} = sales_{tag}.groupby('region')['amount'].sum()",
        f"best_{tag} = by_region_{tag}.idxmax()",
        f"print(best_{tag}, by_region_{tag}[best_{tag}])",
    ]


def variables(tag: str) -> list[dict[str, str]]:
    return [
        {
            "name": f"sales_{tag}",
            "type": "DataFrame",
            "summary": "1000 rows x 4 columns: region, price, quantity, amount",
        },
        {"name": "np", "type": "module", "summary": "numpy"},
        {"name": "pd", "type": "module", "summary": "pandas"},
    ]


def body(tag: str, cells: list[dict[str, str]], before: str) -> dict[str, Any]:
    return {
        "prompt": before,
        "suffix": "",
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": True,
        "stop": STOPS,
        "stream_options": {"include_usage": True},
        "notebook": {
            "language": "python",
            "cells_before": cells[:EDITED][-40:],
            "cells_after": cells[EDITED + 1 :][:10],
            "variables": variables(tag),
        },
    }


@dataclass
class Timed:
    sent: float
    first: float | None = None
    done: float | None = None
    text: str = ""
    finish: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)

    @property
    def ttft(self) -> float:
        return (self.first or self.done or self.sent) - self.sent

    @property
    def total(self) -> float:
        return (self.done or self.sent) - self.sent


async def send(
    client: httpx.AsyncClient, server: JupyterServer, key: str, payload: dict[str, Any]
) -> Timed:
    timed = Timed(sent=time.perf_counter())
    headers = {**server.headers, "X-OCI-Completion-Key": key}
    async with client.stream(
        "POST", f"{server.base_url}/oci/v1/completions", headers=headers, json=payload
    ) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"HTTP {response.status_code}: {response.text}")
        async for data in iter_sse_data(response.aiter_lines()):
            if data == "[DONE]":
                break
            event = json.loads(data)
            if "error" in event:
                raise RuntimeError(f"in-band error: {event['error']}")
            if event.get("usage"):
                timed.usage = event["usage"]
            for choice in event.get("choices", []):
                if choice.get("text"):
                    timed.first = timed.first or time.perf_counter()
                    timed.text += choice["text"]
                if choice.get("finish_reason"):
                    timed.finish = choice["finish_reason"]
    timed.done = time.perf_counter()
    return timed


@dataclass
class Figures:
    cold: list[Timed] = field(default_factory=list)
    first_line: list[Timed] = field(default_factory=list)
    warm: list[Timed] = field(default_factory=list)
    superseded_first: list[float] = field(default_factory=list)
    """Seconds from the next keystroke's request to a superseded request's end (first line)."""
    superseded_warm: list[float] = field(default_factory=list)
    """The same, on the next lines."""
    keystrokes: int = 0


async def type_line(
    client: httpx.AsyncClient,
    server: JupyterServer,
    key: str,
    tag: str,
    cells: list[dict[str, str]],
    typed_before: str,
    line: str,
    interval: float,
    figures: Figures,
    ends: list[float],
) -> Timed:
    """Type ``line`` after ``typed_before``, a request per keystroke; the last one's timing."""
    previous: asyncio.Task[Timed] | None = None
    for end in range(1, len(line) + 1):
        started = time.perf_counter()
        task = asyncio.ensure_future(
            send(client, server, key, body(tag, cells, typed_before + line[:end]))
        )
        figures.keystrokes += 1
        if previous is not None:
            previous.add_done_callback(_record_end(ends, started))
        previous = task
        await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))
    assert previous is not None
    return await previous


def _record_end(ends: list[float], next_sent: float):  # type: ignore[no-untyped-def]
    def record(task: asyncio.Task[Timed]) -> None:
        if not task.cancelled() and task.exception() is None:
            ends.append(max(0.0, task.result().done - next_sent))  # type: ignore[operator]

    return record


def stats(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{1000 * percentile(values, 50):.0f} / {1000 * percentile(values, 95):.0f}"


async def decode_speed(client: httpx.AsyncClient, server: JupyterServer) -> float:
    payload = {"prompt": "numbers = [1, 2, 3, 4, 5, 6,", "max_tokens": 40, "temperature": 0}
    await client.post(f"{server.base_url}/oci/v1/completions", headers=server.headers, json=payload)
    timed = await send(client, server, "speed", {**payload, "stream": True})
    return 39 / (timed.done - timed.first) if timed.first and timed.done else float("nan")  # type: ignore[operator]


async def run(server: JupyterServer, sessions: int, interval: float) -> tuple[Figures, float]:
    figures = Figures()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        speed = await decode_speed(client, server)
        for session in range(sessions):
            key = secrets.token_hex(8)
            # Cold: a fresh notebook, one request (the shortcut, without typing).
            tag = f"c{session}{secrets.token_hex(2)}"
            cells = notebook_cells(tag)
            figures.cold.append(
                await send(client, server, key, body(tag, cells, f"total_{tag} = sales_{tag}["))
            )
            # A fresh notebook typed into: the first line's pause, then warm ones.
            tag = f"t{session}{secrets.token_hex(2)}"
            cells = notebook_cells(tag)
            typed = ""
            for number, line in enumerate(lines_to_type(tag)):
                ends = figures.superseded_first if number == 0 else figures.superseded_warm
                timed = await type_line(
                    client, server, key, tag, cells, typed, line, interval, figures, ends
                )
                (figures.first_line if number == 0 else figures.warm).append(timed)
                typed += line + "\n"
                ttft, total = 1000 * timed.ttft, 1000 * timed.total
                print(
                    f"session {session + 1} line {number + 1}: first token {ttft:.0f} ms,"
                    f" whole {total:.0f} ms: {timed.text!r}; usage {timed.usage}",
                    flush=True,
                )
                await asyncio.sleep(1.0)  # the typist reads the suggestion
    return figures, speed


def load() -> str:
    return open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.15, help="seconds between keystrokes")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    before = load()
    print(f"CPU: {cpu_model()}; load {before}")
    with running_server({"engine": "llamacpp", "n_ctx": 4096}, timeout=600) as (server, status):
        print(f"model: {status['model']} ({status['device']})")
        figures, speed = asyncio.run(run(server, args.sessions, args.interval))
    after = load()
    rows = [
        [name, len(group), stats([t.ttft for t in group]), stats([t.total for t in group])]
        for name, group in (
            ("cold", figures.cold),
            ("first line", figures.first_line),
            ("warm", figures.warm),
        )
    ]
    print(f"\nCPU {cpu_model()}; decoding {speed:.1f} tok/s; load {before} -> {after}")
    print(format_table(["", "n", "first token p50/p95 ms", "whole p50/p95 ms"], rows))
    for name, ends in (
        ("first line", figures.superseded_first),
        ("next lines", figures.superseded_warm),
    ):
        print(
            f"{name}: a superseded request ended {stats(ends)} ms (p50/p95) after the next"
            f" keystroke (max {1000 * max(ends, default=0):.0f}; {len(ends)} requests)"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "cpu": cpu_model(),
                    "load": [before, after],
                    "decode_tok_s": speed,
                    "interval": args.interval,
                    "cold": [[t.ttft, t.total] for t in figures.cold],
                    "first_line": [[t.ttft, t.total] for t in figures.first_line],
                    "warm": [[t.ttft, t.total] for t in figures.warm],
                    "superseded_first": figures.superseded_first,
                    "superseded_warm": figures.superseded_warm,
                    "keystrokes": figures.keystrokes,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
