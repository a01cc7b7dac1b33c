"""Questions that need a result read to be answered: before and after the interpreter loop.

Each question is about data in a real kernel (or a computation). It goes through the chat's
server side (ChatSession, the real bundled model on llama.cpp) with a browser stand-in that
runs every ``execute`` in a real ipykernel, as the notebook does, in two set-ups measured in
the same run:

- ``before``: the landed main before the interpreter loop (its system prompt, the request ends
  at the first run without errors, replies not cut at their code block). Its only words are
  those the model wrote around its code, before anything ran;
- ``after``: the product now (the model reads every result and answers in words).

A request counts as answered correctly when the expected value appears in the model's words
(outside code blocks): the final answer after, the words around the code before. Prints the
CPU, the share answered correctly and the wall time per request, with their ratios.

    python benchmarks/interpreter_answers.py [--questions N] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._harness import bundled_model_path
from oci_jupyter.engine.llamacpp import cpu_model
from tests.kernels import ipykernel, outcome_of

# The landed main's system prompt before the interpreter loop (commit 89776b6).
BEFORE_PROMPT = """\
You are OpenCodeInterpreter, a coding assistant inside a Jupyter notebook.
Answer a request with a short explanation and one ```python code block. The code runs in the \
user's kernel, where the notebook's variables already exist and new ones persist; you then see \
its output or its error.
- Print or display what the user should see; end with a check (print or assert) when useful.
- If the result shows an error, explain the cause in a sentence and give the full corrected \
code in one ```python block.
- Never call input(): assign the values directly.
- If the request needs no code, answer without a code block."""


@dataclass(frozen=True)
class Question:
    setup: str
    ask: str
    expected: tuple[str, ...]
    """Any of these (case-insensitive, as a whole word) in the words counts as right."""


QUESTIONS = [
    Question(
        "values = [(i * 37) % 101 for i in range(40)]",
        "How many items in values are greater than 50?",
        (str(sum((i * 37) % 101 > 50 for i in range(40))),),
    ),
    Question(
        "sales = {'north': [12, 40, 7], 'south': [30, 22, 9], 'east': [5, 61, 2]}",
        "Which region has the largest total sales?",
        ("east",),
    ),
    Question(
        "a = [4, 8, 15, 16]\nb = [23, 42, -30]\nc = [9, 9, 9, 9, 9]",
        "Which of the lists a, b and c has the largest sum?",
        ("c",),
    ),
    Question("", "How many numbers from 1 to 1000 are divisible by 7?", ("142",)),
    Question(
        "text = 'the cat and the dog and the bird saw the end of the road'",
        "How many times does the word 'the' appear in text?",
        ("5",),
    ),
    Question(
        "prices = {'pen': 1.2, 'book': 12.5, 'lamp': 23.0, 'mug': 7.75, 'desk': 19.99}",
        "What is the total of all prices?",
        ("64.44",),
    ),
    Question(
        "scores = [71, 88, 92, 65, 79, 84, 90, 58, 77]",
        "What is the median of scores?",
        ("79",),
    ),
    Question("n = 2**31 - 1", "Is n a prime number? Answer yes or no.", ("yes",)),
    Question(
        "cities = [('Oslo', 709000), ('Bergen', 286000), ('Tromso', 77000), ('Bodo', 53000)]",
        "Which city in cities has the smallest population?",
        ("bodo",),
    ),
    Question(
        "temps = [12.5, 14.0, 9.5, 11.0, 15.5, 13.0]",
        "What is the average of temps?",
        ("12.58", "12.6", "12.583"),
    ),
    Question(
        "words = ['kiwi', 'banana', 'fig', 'cherry', 'elderberry', 'date']",
        "Which word in words is the longest?",
        ("elderberry",),
    ),
    Question("", "What is the sum of the squares of the numbers 1 to 20?", ("2870",)),
]

_CODE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)


def words_of(text: str) -> str:
    return _CODE.sub(" ", text)


def correct(words: str, expected: tuple[str, ...]) -> bool:
    """A word expected appears as a word; a number expected appears as a number (to the
    precision written: "12.58" matches 12.583333)."""
    lowered = words.lower().replace(",", "")
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", lowered)]
    for wanted in expected:
        try:
            value = float(wanted)
        except ValueError:
            if re.search(rf"(?<!\w){re.escape(wanted.lower())}(?!\w)", lowered):
                return True
            continue
        places = len(wanted.partition(".")[2])
        if any(abs(round(n, places) - value) < 1e-9 for n in numbers):
            return True
    return False


class KernelBrowser:
    """Runs each ``execute`` in the kernel and reports the outcome, as the notebook does."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.sent: list[dict[str, Any]] = []
        self.session: Any = None
        self.done = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "execute":
            outcome = outcome_of(self.kernel, message)
            self.tasks.append(asyncio.create_task(self.session.receive(json.dumps(outcome))))
        if message["type"] == "done":
            self.done.set()


async def ask_one(engine: Any, kernel: Any, question: Question, mode: str) -> dict[str, Any]:
    from oci_jupyter.chat import ChatSession, ChatStore

    if question.setup:
        kernel.run(question.setup)
    browser = KernelBrowser(kernel)
    with tempfile.TemporaryDirectory() as chats:
        session = ChatSession(
            engine,
            ChatStore(Path(chats)),
            browser.send,
            temperature=0.0,
            system_prompt=BEFORE_PROMPT if mode == "before" else None,
            cut_replies=mode == "after",
        )
        browser.session = session
        cells = [{"source": question.setup, "label": "In [1]"}] if question.setup else []
        ask = {
            "type": "ask",
            "id": "q",
            "prompt": question.ask,
            "notebook": "",
            "context": {"cells": cells},
            "read_results": mode == "after",
        }
        started = time.perf_counter()
        await session.receive(json.dumps(ask))
        await asyncio.wait_for(browser.done.wait(), 900)
        seconds = time.perf_counter() - started
    (done,) = [m for m in browser.sent if m["type"] == "done"]
    replies: dict[int, str] = {}
    for message in browser.sent:
        if message["type"] == "token":
            replies[message["turn"]] = replies.get(message["turn"], "") + message["text"]
    said = done["answer"] if mode == "after" else " ".join(words_of(r) for r in replies.values())
    return {
        "question": question.ask,
        "mode": mode,
        "status": done["status"],
        "replies": done["turns"],
        "steps": done["steps"],
        "seconds": round(seconds, 2),
        "words": said.strip(),
        "correct": correct(said, question.expected),
    }


async def run(count: int) -> list[dict[str, Any]]:
    from oci_jupyter.engine.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(model_path=str(bundled_model_path()), n_ctx=8192)
    status = await engine.wait_ready(300)
    assert status.state == "ready", status
    results: list[dict[str, Any]] = []
    try:
        with ipykernel({**os.environ}) as kernel:
            for question in QUESTIONS[:count]:
                # Interleaved, so that a machine that slows down affects both alike.
                for mode in ("before", "after"):
                    result = await ask_one(engine, kernel, question, mode)
                    results.append(result)
                    mark = "✓" if result["correct"] else "✗"
                    print(
                        f"{mark} {mode:6} {result['seconds']:6.1f} s {result['replies']} replies "
                        f"{question.ask[:50]!r}: {result['words'][:90]!r}",
                        flush=True,
                    )
    finally:
        await engine.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=len(QUESTIONS))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--rescore", type=Path, help="score a saved --json run again")
    args = parser.parse_args()
    if args.rescore:
        record = json.loads(args.rescore.read_text())
        print(f"CPU: {record['cpu']} (rescored from {args.rescore})")
        wanted = {q.ask: q.expected for q in QUESTIONS}
        results = record["results"]
        for result in results:
            result["correct"] = correct(result["words"], wanted[result["question"]])
    else:
        print(f"CPU: {cpu_model()} ({os.cpu_count()} cores)")
        results = asyncio.run(run(args.questions))
    summary: dict[str, dict[str, float]] = {}
    for mode in ("before", "after"):
        rows = [r for r in results if r["mode"] == mode]
        summary[mode] = {
            "correct": sum(r["correct"] for r in rows),
            "questions": len(rows),
            "median_seconds": statistics.median(r["seconds"] for r in rows),
            "mean_seconds": statistics.fmean(r["seconds"] for r in rows),
            "mean_replies": statistics.fmean(r["replies"] for r in rows),
        }
    before, after = summary["before"], summary["after"]
    print()
    for mode, row in summary.items():
        print(
            f"{mode:6}: {row['correct']}/{row['questions']} answered correctly in words; "
            f"{row['median_seconds']:.1f} s median, {row['mean_seconds']:.1f} s mean per "
            f"request; {row['mean_replies']:.2f} replies"
        )
    print(
        f"ratio after/before: time {after['mean_seconds'] / before['mean_seconds']:.2f}x, "
        f"replies {after['mean_replies'] / before['mean_replies']:.2f}x"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"cpu": cpu_model(), "summary": summary, "results": results}, indent=1)
        )


if __name__ == "__main__":
    main()
