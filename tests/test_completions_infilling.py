"""The HumanEval infilling harness: how a middle is read and judged (its tests run in a
separate process), without a model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from oci_jupyter.evaluation.infilling import (
    DEFAULT_DATA,
    Problem,
    Result,
    chat_messages,
    chat_middle,
    exact_first_line,
    first_line,
    hole_messages,
    hole_middle,
    load_problems,
    passes,
    program,
    summary,
)

ADD = Problem(
    task_id="Toy/0/L1",
    prompt="def add(a, b):\n    total = 0\n",
    suffix="    return total\n",
    canonical_solution="    total = a + b\n",
    test="def check(candidate):\n    assert candidate(2, 3) == 5\n",
    entry_point="add",
)
DATA = Path(__file__).resolve().parent.parent / DEFAULT_DATA


def test_the_first_line_as_qwens_harness_reads_it() -> None:
    assert first_line("    total = a + b\n    extra") == "    total = a + b"
    assert first_line("\n    total = a + b") == "    total = a + b"
    assert exact_first_line("  total = a + b  \nmore", "    total = a + b\n")
    assert not exact_first_line("total = b + a", "    total = a + b\n")


def test_a_chat_reply_gives_its_first_code_block() -> None:
    assert chat_middle("Here:\n```python\n    total = a + b\n```\nDone.") == "    total = a + b\n"
    assert chat_middle("    total = a + b") == "    total = a + b"
    user = chat_messages(ADD)[1]["content"]
    assert "##Prefix Code##:\ndef add(a, b):" in user
    assert user.endswith("##Middle Code##:\n")


def test_the_program_passes_or_fails_in_its_own_process() -> None:
    assert asyncio.run(passes(program(ADD, ADD.canonical_solution))) == (True, "")
    ok, why = asyncio.run(passes(program(ADD, "    total = a - b\n")))
    assert not ok
    assert "AssertionError" in why
    ok, why = asyncio.run(passes("while True:\n    pass\n", time_limit=1.0))
    assert (ok, why) == (False, "timed out")


def test_summary_counts_each_score() -> None:
    rows = [
        Result("a", "x", "x", "stop", 1.0, passed=True, passed_first_line=True),
        Result("b", "y", "y", "stop", 3.0, exact_first_line=True),
    ]
    assert summary(rows) == {
        "problems": 2,
        "pass@1": 50.0,
        "pass@1_first_line": 50.0,
        "exact_match_first_line": 50.0,
        "request_errors": 0,
        "seconds_per_problem": 2.0,
    }


@pytest.mark.skipif(not DATA.is_dir(), reason="the humaneval-infilling data is not here")
def test_the_canonical_middles_pass() -> None:
    problems = load_problems(DATA, "single", every=100)
    assert len(problems) == 11

    async def judge() -> list[bool]:
        return [(await passes(program(p, p.canonical_solution)))[0] for p in problems]

    assert all(asyncio.run(judge()))


def test_a_hole_reply_gives_the_middle_even_when_it_rewrites_everything() -> None:
    user = hole_messages(ADD)[1]["content"]
    assert "    total = 0\n<FILL>    return total" in user
    whole = "def add(a, b):\n    total = 0\n    total = a + b\n    return total\n"
    assert hole_middle(whole, ADD.prompt, ADD.suffix) == "    total = a + b\n"
    assert hole_middle("    total = a + b", ADD.prompt, ADD.suffix) == "    total = a + b\n"
