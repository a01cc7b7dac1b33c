"""Time to the first token of a chat request, with and without a prefill of its notebook.

A ~1,700-token notebook context goes through the chat's server side (ChatSession, the real
bundled model on llama.cpp): once asked cold, once after the browser's ``prefill`` message
had the engine read the prompt's beginning while idle. Each run uses a notebook not seen
before (nothing is reused across runs). Prints the CPU and the ratio warm/cold.

    python benchmarks/cpu_prefill_ttft.py [--pairs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._harness import bundled_model_path
from oci_jupyter.engine.llamacpp import cpu_model

HELPER = (
    "def f{i}(x):\n"
    "    '''Helper number {i} for the analysis.'''\n"
    "    return [v * {i} + {j} for v in x if v % {k} == 0]\n"
    "result_{i} = f{i}(range(50))"
)


def notebook(tag: str) -> dict[str, Any]:
    cells = [
        {"source": HELPER.format(i=i, j=7 * i, k=i + 2), "label": f"In [{i}]"} for i in range(1, 25)
    ]
    cells[0]["source"] += f"\n# {tag}"  # a notebook of its own: no reuse across runs
    return {"cells": cells}


async def time_to_first_token(engine: Any, tag: str, prefill: bool) -> tuple[float, Any]:
    from oci_jupyter.chat import ChatSession, ChatStore

    first = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "token":
            first.set()

    with tempfile.TemporaryDirectory() as chats:
        session = ChatSession(engine, ChatStore(Path(chats)), send, temperature=0.0)
        context = notebook(tag)
        if prefill:
            await session.receive(
                json.dumps({"type": "prefill", "notebook": "n.ipynb", "context": context})
            )
            await asyncio.sleep(0.2)
            while engine.busy:  # the user is still typing
                await asyncio.sleep(0.1)
        ask = {
            "type": "ask",
            "id": "a",
            "prompt": "what does f3 return for [6]?",
            "notebook": "n.ipynb",
            "context": context,
            "auto_execute": False,
        }
        started = time.perf_counter()
        await session.receive(json.dumps(ask))
        await asyncio.wait_for(first.wait(), 600)
        seconds = time.perf_counter() - started
        await session.close()
    return seconds, engine.last_stats


async def main(pairs: int) -> None:
    from oci_jupyter.engine.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(model_path=str(bundled_model_path()), n_ctx=8192)
    await engine.wait_ready(300)
    try:
        for index in range(pairs):
            cold, _ = await time_to_first_token(engine, f"cold-{index}", prefill=False)
            warm, stats = await time_to_first_token(engine, f"warm-{index}", prefill=True)
            print(
                f"first token: cold {cold:.2f} s, after a prefill {warm:.2f} s, ratio "
                f"{warm / cold:.3f} ({stats.prompt_tokens} prompt tokens, "
                f"{stats.cached_tokens} already read)"
            )
    finally:
        await engine.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2)
    print(f"CPU: {cpu_model()}")
    asyncio.run(main(parser.parse_args().pairs))
