"""MBPP and MBPP+: the shipped data, the first turn, and the judging of answers.

Judging runs the real judging process (a separate Python process per answer); the slowest
test judges all 399 canonical solutions both ways.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import time
from pathlib import Path

import pytest

from oci_jupyter.evaluation import mbpp
from oci_jupyter.evaluation.benchmarks import get_benchmark
from oci_jupyter.evaluation.judge.differential import close, restore_inputs, same_output
from oci_jupyter.evaluation.judging import Judgement
from oci_jupyter.evaluation.problems import DataUnavailable, Problem, select

PROBLEMS = {p.task_id: p for p in mbpp.load_problems()}
SIMILAR = PROBLEMS["Mbpp/2"]  # similar_elements(t1, t2) -> tuple(set(t1) & set(t2))
NOT_PRIME = PROBLEMS["Mbpp/3"]  # is_not_prime(n)
CIRCUMFERENCE = PROBLEMS["Mbpp/139"]  # circle_circumference(r), floats, atol 1e-4
MBPP = get_benchmark("mbpp")
MBPP_PLUS = get_benchmark("mbppplus")


async def judge(problem: Problem, code: str, time_limit: float = 10.0) -> Judgement:
    return await MBPP.judge(problem, code, time_limit=time_limit)


# ---- the data --------------------------------------------------------------------------------
def test_the_shipped_data_is_the_pinned_file_with_its_notice() -> None:
    assert len(PROBLEMS) == mbpp.PROBLEMS == 399
    assert next(iter(PROBLEMS)) == "Mbpp/2"
    assert list(PROBLEMS)[-1] == "Mbpp/809"
    assert PROBLEMS["Mbpp/793"].plus_input == []  # an empty object in the file
    notice = (mbpp.DATA_FILE.parent / "README.md").read_text()
    for words in ("Apache-2.0", "CC-BY-4.0", mbpp.SHA256, "EvalPlus"):
        assert words in notice


def test_data_from_another_place_is_checked(tmp_path: Path) -> None:
    plain = tmp_path / "MbppPlus.jsonl"
    plain.write_bytes(gzip.decompress(mbpp.DATA_FILE.read_bytes()))
    assert [p.task_id for p in mbpp.load_problems(plain)] == list(PROBLEMS)  # .jsonl works

    changed = tmp_path / "changed.jsonl"
    changed.write_bytes(plain.read_bytes().replace(b"similar_elements", b"similar_element", 1))
    with pytest.raises(DataUnavailable, match=r"sha256 .*--data PATH"):
        mbpp.load_problems(changed)
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(mbpp.DATA_FILE.read_bytes()[:1000])  # a cut-off download
    with pytest.raises(DataUnavailable, match="--data PATH"):
        mbpp.load_problems(broken)
    with pytest.raises(DataUnavailable, match=r"does not exist.*--data PATH"):
        mbpp.load_problems(tmp_path / "nowhere.jsonl")


def test_select_takes_bare_numbers() -> None:
    chosen = select(list(PROBLEMS.values()), ["3", "Mbpp/2", "mbpp/3"])
    assert [p.task_id for p in chosen] == ["Mbpp/3", "Mbpp/2"]
    with pytest.raises(ValueError, match=r"Mbpp/1\b.*--list"):
        select(list(PROBLEMS.values()), ["1"])


# ---- what the model sees ---------------------------------------------------------------------
def test_the_first_turn_shows_the_task_and_one_assert_only() -> None:
    for problem in PROBLEMS.values():
        messages = mbpp.problem_messages(problem)
        assert [m["role"] for m in messages] == ["system", "user"]
        asked = messages[1]["content"]
        asserts = [line for line in problem.test.splitlines() if line.startswith("assert")]
        assert asserts[0] in asked  # the example, as the paper's harness shows it
        for hidden in asserts[1:]:
            if hidden != asserts[0]:
                assert hidden not in asked
        assert mbpp.task_text(problem) in asked
    asked = mbpp.problem_messages(SIMILAR)[1]["content"]
    assert asked.startswith('Here is the given problem and test examples:\n"""\nWrite a')
    assert 'assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)\n"""' in asked
    assert "(1, 2, 3, 4),(5, 4, 3, 7)" not in asked  # the second original assert


# ---- judging ---------------------------------------------------------------------------------
async def test_every_canonical_solution_passes_both_scores() -> None:
    """All 399, as candidates, through the same judging as the model's answers: the MBPP
    asserts and the MBPP+ inputs against the canonical outputs. Two processes at a time."""
    slots = asyncio.Semaphore(max(2, len(os.sched_getaffinity(0))))
    failures: dict[str, dict[str, str]] = {}

    async def one(problem: Problem) -> None:
        async with slots:
            result = await judge(problem, problem.canonical_solution, time_limit=20)
        if not all(v.passed for v in result.verdicts.values()):
            failures[problem.task_id] = {k: v.detail for k, v in result.verdicts.items()}

    started = time.monotonic()
    await asyncio.gather(*(one(p) for p in PROBLEMS.values()))
    print(f"399 canonical solutions judged in {time.monotonic() - started:.1f} s")
    assert failures == {}


async def test_a_wrong_solution_fails_both_with_the_papers_text() -> None:
    union = "def similar_elements(a, b):\n    return tuple(set(a) | set(b))\n"
    result = await judge(SIMILAR, union)
    base, plus = result.verdicts["MBPP"], result.verdicts["MBPP+"]
    assert result.primary == "MBPP"
    assert (base.status, plus.status) == ("failed", "failed")
    assert base.feedback == (
        "The results aren't as expected.\nInput: [(3, 4, 5, 6), (5, 7, 4, 10)]\n"
        "Expected Output: (4, 5)\nActual Output: (3, 4, 5, 6, 7, 10)"
    )
    # MBPP+'s inputs are tuples again (JSON keeps lists), as the canonical solution takes.
    assert plus.feedback.startswith("The results aren't as expected.\nInput: [(3, 4, 5, 6), ")
    assert (await MBPP_PLUS.judge(SIMILAR, union, time_limit=10)).primary == "MBPP+"


async def test_mbpp_plus_is_stricter_than_the_original_asserts() -> None:
    memorised = "def is_not_prime(n):\n    return n in (1, 10, 35)\n"
    result = await judge(NOT_PRIME, memorised)
    assert result.verdicts["MBPP"].passed  # the five original asserts
    plus = result.verdicts["MBPP+"]
    assert plus.status == "failed"
    assert plus.detail.startswith("plus: The results aren't as expected.")
    expected = re.search(r"Expected Output: (\w+)", plus.feedback)
    actual = re.search(r"Actual Output: (\w+)", plus.feedback)
    assert expected
    assert actual
    assert expected.group(1) != actual.group(1)


async def test_floats_are_compared_within_atol() -> None:
    near = "def circle_circumference(r):\n    return 2 * 3.14159265 * r\n"
    assert all(v.passed for v in (await judge(CIRCUMFERENCE, near)).verdicts.values())
    rough = "def circle_circumference(r):\n    return 2 * 3.14 * r\n"
    result = await judge(CIRCUMFERENCE, rough)
    assert result.verdicts["MBPP"].passed  # its asserts allow rel_tol=0.001
    assert result.verdicts["MBPP+"].status == "failed"

    assert close([1.0, (2.0, 3.00000001)], [1.0, (2.0, 3.0)], 1e-6)
    assert not close([1.0, (2.0, 3.1)], [1.0, (2.0, 3.0)], 1e-6)
    assert not close([1.0, 2.0], [1.0, 2.0, 3.0], 1e-6)
    assert close(float("nan"), float("nan"), 1e-6)
    assert same_output("f", 0.30000000000000004, 0.3, 0)  # floats: 1e-6 at least
    assert not same_output("f", 0.3001, 0.3, 0)
    assert not same_output("f", "0.3", 0.3, 1e-4)


async def test_time_outs_exceptions_and_missing_functions() -> None:
    hangs = "def is_not_prime(n):\n    while True:\n        pass\n"
    started = time.monotonic()
    result = await judge(NOT_PRIME, hangs, time_limit=2)
    assert time.monotonic() - started < 20  # 2 s for the asserts, ~1 s for the first input
    for verdict in result.verdicts.values():
        assert verdict.status == "timeout"
        assert verdict.feedback == "Execution timed out."

    raises = "def is_not_prime(n):\n    return 1 / (n - n)\n"
    for verdict in (await judge(NOT_PRIME, raises)).verdicts.values():
        assert verdict.status == "failed"
        assert verdict.feedback.startswith('File "<string>", line 2, in is_not_prime')
        assert verdict.feedback.rstrip().endswith("ZeroDivisionError: division by zero")
        assert "/judge/" not in verdict.feedback  # the judge's own frames are cut

    renamed = "def not_prime(n):\n    return n < 2\n"
    for verdict in (await judge(NOT_PRIME, renamed)).verdicts.values():
        assert verdict.feedback == (
            "Please rename your function to is_not_prime as there is no function named "
            "is_not_prime."
        )

    dies = "import os\n\ndef is_not_prime(n):\n    os._exit(3)\n"
    for verdict in (await judge(NOT_PRIME, dies)).verdicts.values():
        assert verdict.status == "failed"
        assert "exit status 3" in verdict.detail


async def test_the_models_own_tests_are_dropped_before_judging() -> None:
    code = (
        "def is_not_prime(n):\n    return n < 2 or any(n % i == 0 for i in range(2, n))\n\n"
        "assert is_not_prime(4) == False  # a wrong self-test\nprint(is_not_prime(9))\n"
    )
    assert all(v.passed for v in (await judge(NOT_PRIME, code)).verdicts.values())


def test_inputs_get_their_python_types_back() -> None:
    assert restore_inputs("Mbpp/2", [[[1, 2], [3]]]) == [[(1, 2), (3,)]]
    assert restore_inputs("Mbpp/124", [["0", "1j"]]) == [[0.0, 1j]]
    assert restore_inputs("Mbpp/63", [[[[1, 2], [3, 4]]]]) == [[[(1, 2), (3, 4)]]]
    assert restore_inputs("Mbpp/580", [[[1, [2, 3]]]]) == [((1, (2, 3)),)]
    assert restore_inputs("Mbpp/3", [[5]]) == [[5]]
    assert restore_inputs("Mbpp/793", {}) == []


def test_problems_survive_a_json_round_trip_of_their_inputs() -> None:
    """What the judging job carries is JSON: nothing in the inputs is lost on the way."""
    for problem in PROBLEMS.values():
        carried = json.loads(json.dumps([problem.base_input, problem.plus_input]))
        assert carried == [problem.base_input, problem.plus_input]
