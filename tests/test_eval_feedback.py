"""oci-eval's feedback protocols: ``own`` (the model's run in a kernel) and ``tests`` (the
paper's oracle: the hidden tests' failure, in the paper's words, is the next turn).

Scripted replies (the test double) with the real judging processes and kernels; the last
tests run a few problems of each benchmark on the real bundled model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from oci_jupyter.evaluation.benchmarks import get_benchmark
from oci_jupyter.evaluation.cli import main
from oci_jupyter.evaluation.feedback import HEADER, feedback_turn
from oci_jupyter.evaluation.kernels import KernelSession
from oci_jupyter.evaluation.problems import Problem, select
from oci_jupyter.evaluation.report import passed_at
from oci_jupyter.evaluation.run_folder import RecordStore
from oci_jupyter.evaluation.runner import (
    EngineModel,
    EvalSettings,
    ProtocolMismatch,
    run_evaluation,
    solve,
)
from oci_jupyter.prompts import FeedbackMarker

from .doubles import ScriptedTestEngine
from .eval_helpers import (
    HUMANEVAL,
    MBPP,
    assert_no_hidden_tests,
    reply,
    runtime_dir_in_tmp,  # noqa: F401  (an autouse fixture: importing it turns it on)
    scripted,
)

STRLEN = HUMANEVAL["HumanEval/23"]  # check: '' -> 0, 'x' -> 1, 'asdasnakj' -> 9
NOT_PRIME = MBPP["Mbpp/3"]
SIMILAR = MBPP["Mbpp/2"]


STRLEN_ZERO = reply("def strlen(string: str) -> int:\n    return 0\n\nprint(strlen(''))")
STRLEN_RIGHT = reply("def strlen(string: str) -> int:\n    return len(string)")
PRIME_MEMORISED = reply(  # passes MBPP's five asserts, fails MBPP+'s inputs
    "def is_not_prime(n):\n    return n in (1, 10, 35)\n\nassert is_not_prime(10)"
)
PRIME_RIGHT = reply(
    "import math\n\ndef is_not_prime(n):\n    if n < 2:\n        return True\n"
    "    return any(n % i == 0 for i in range(2, math.isqrt(n) + 1))\n\n"
    "assert is_not_prime(10) == True"
)


async def solve_with(
    problem: Problem, replies: Sequence[str], tmp_path: Path, **settings: Any
) -> tuple[list[dict[str, Any]], ScriptedTestEngine, KernelSession]:
    engine = await scripted(replies)
    kernel = KernelSession(workdir=tmp_path / "kernel")
    records = await solve(problem, EngineModel(engine), kernel, EvalSettings(**settings))
    await kernel.shutdown()
    return records, engine, kernel


# ---- the feedback text of each kind of failure ------------------------------------------------
async def test_humaneval_feedback_for_a_wrong_result_a_time_out_and_an_exception() -> None:
    bench = get_benchmark("humaneval")

    async def told(code: str, time_limit: float = 10) -> str:
        verdict = (await bench.judge(STRLEN, code, time_limit=time_limit, explain=True)).main
        assert not verdict.passed
        return feedback_turn(verdict)

    wrong = await told("def strlen(string):\n    return 0\n")
    assert wrong == (
        "Execution result: \nThe results aren't as expected.\nInput: ['x']\n"
        "Expected Output: 1\nActual Output: 0"
    )
    assert await told("def strlen(string):\n    while True:\n        pass\n", 1.5) == (
        "Execution result: \nExecution timed out."
    )
    crash = await told("def strlen(string):\n    return len(string) + None\n")
    assert crash.startswith(HEADER + 'File "<string>", line ')
    assert ", in strlen\n" in crash
    assert crash.rstrip().endswith(
        "TypeError: unsupported operand type(s) for +: 'int' and 'NoneType'"
    )


async def test_a_failed_assert_that_compares_nothing_shows_no_judge_frames() -> None:
    # HumanEval/32's check asserts `math.fabs(poly(xs, solution)) < 1e-4`: no input/expected
    # to show, so the traceback is the feedback; it starts at the tests, not in the judge.
    bench = get_benchmark("humaneval")
    problem = next(p for p in bench.load() if p.task_id == "HumanEval/32")
    code = "def find_zero(xs: list):\n    return 123.0\n"
    verdict = (await bench.judge(problem, code, time_limit=10, explain=True)).main
    assert not verdict.passed
    text = feedback_turn(verdict)
    assert text.startswith(HEADER + 'File "<test>", line ')
    assert "AssertionError" in text
    assert "/judge/" not in text  # no frame of the judging program
    assert "Traceback (most recent call last)" not in text


async def test_feedback_is_cut_to_500_characters_as_the_paper_cuts_it() -> None:
    huge = "def similar_elements(a, b):\n    return tuple(range(2000))\n"
    judged = await get_benchmark("mbpp").judge(SIMILAR, huge, time_limit=10, explain=True)
    text = judged.main.feedback
    assert len(text) == 500
    assert text.startswith("The results aren't as expected.\nInput: [(3, 4, 5, 6), (5, 7, 4, 10)]")
    assert "Actual Output: (0, 1, 2, 3," in text
    assert feedback_turn(judged.main) == HEADER + text
    # MBPP+: the base inputs' failure, then the plus inputs' (both wrong results), each cut.
    plus = judged.verdicts["MBPP+"].feedback
    first, second = plus.split("\nThe results aren't as expected.", 1)
    assert len(first) == 500
    assert len("The results aren't as expected." + second) == 500


# ---- the tests protocol through the loop -------------------------------------------------------
async def test_tests_protocol_feeds_the_hidden_tests_failure_back(tmp_path: Path) -> None:
    records, engine, kernel = await solve_with(
        STRLEN, [STRLEN_ZERO, STRLEN_RIGHT], tmp_path, feedback="tests"
    )
    assert kernel.alive_pid is None  # nothing ran in a kernel: the tests judged
    paper = (
        "Execution result: \nThe results aren't as expected.\nInput: ['x']\n"
        "Expected Output: 1\nActual Output: 0"
    )
    asked = engine.prompts[1]
    assert asked[-2] == {"role": "assistant", "content": STRLEN_ZERO}
    assert asked[-1] == {"role": "user", "content": paper}  # word for word, no hint
    first, second = records
    assert first["feedback"] == paper
    assert first["outcome"]["status"] == "error"
    assert (first["passed"], second["passed"]) == (False, True)
    assert second["loop_status"] == "success"
    assert [passed_at(records, k) for k in (1, 2)] == [False, True]


async def test_tests_protocol_stops_at_a_passing_answer(tmp_path: Path) -> None:
    records, engine, _ = await solve_with(
        STRLEN, [STRLEN_RIGHT, STRLEN_ZERO], tmp_path, feedback="tests"
    )
    assert len(engine.prompts) == 1
    (record,) = records
    assert record["passed"] is True
    assert record["outcome"]["status"] == "ok"


async def test_the_benchmark_named_gives_the_feedback(tmp_path: Path) -> None:
    """One answer, two benchmarks: MBPP's asserts pass it (no feedback turn); MBPP+'s inputs
    fail it, and their failure is the feedback."""
    as_mbpp, engine, _ = await solve_with(
        NOT_PRIME, [PRIME_MEMORISED, PRIME_RIGHT], tmp_path, feedback="tests", benchmark="mbpp"
    )
    assert len(engine.prompts) == 1
    assert as_mbpp[0]["scores"]["MBPP"]["passed"] is True
    assert as_mbpp[0]["scores"]["MBPP+"]["passed"] is False

    as_plus, engine, _ = await solve_with(
        NOT_PRIME,
        [PRIME_MEMORISED, PRIME_RIGHT],
        tmp_path,
        feedback="tests",
        benchmark="mbppplus",
    )
    told = engine.prompts[1][-1]["content"]
    assert told.startswith("Execution result: \nThe results aren't as expected.\nInput: [")
    assert as_plus[0]["feedback"] == told
    assert as_plus[0]["passed"] is False  # the run's own score: MBPP+
    assert as_plus[1]["passed"] is True
    assert as_plus[1]["scores"] == {
        "MBPP+": {"passed": True, "status": "passed", "detail": ""},
        "MBPP": {"passed": True, "status": "passed", "detail": ""},
    }


async def test_own_protocol_runs_mbpp_answers_in_the_kernel_and_hides_the_tests(
    tmp_path: Path,
) -> None:
    wrong_run = reply("def is_not_prime(n):\n    return n % 2 == 0\n\nassert is_not_prime(35)")
    records, engine, _ = await solve_with(
        NOT_PRIME, [wrong_run, PRIME_RIGHT], tmp_path, benchmark="mbppplus"
    )
    first, second = records
    assert first["outcome"]["status"] == "error"  # its own assert, in the kernel
    assert engine.prompts[1][-1]["content"].startswith(f"{FeedbackMarker} the code raised")
    assert "AssertionError" in engine.prompts[1][-1]["content"]
    assert second["outcome"]["status"] == "ok"
    assert second["scores"]["MBPP+"]["passed"] is True
    assert_no_hidden_tests(engine.prompts, NOT_PRIME)
    for problem in [*MBPP.values(), *HUMANEVAL.values()]:
        bench = get_benchmark("humaneval" if problem.prefix == "HumanEval/" else "mbpp")
        assert_no_hidden_tests([bench.messages(problem)], problem)


# ---- the protocol is recorded; resume does not mix ---------------------------------------------
async def test_resume_refuses_another_feedback_or_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "run"
    settings = EvalSettings(workers=1, feedback="tests", benchmark="mbppplus")
    summary = await run_evaluation(
        [NOT_PRIME], EngineModel(await scripted([PRIME_RIGHT])), settings, out, progress=False
    )
    config = json.loads((out / "run.json").read_text())["config"]
    assert (config["benchmark"], config["feedback"]) == ("mbppplus", "tests")
    assert summary["oracle"] is True
    assert [r["feedback"] for r in summary["pass_at_1_by_turn"]] == ["tests", "tests"]
    assert set(summary["scores"]) == {"MBPP+", "MBPP"}
    for other in (
        EvalSettings(workers=1, feedback="own", benchmark="mbppplus"),
        EvalSettings(workers=1, feedback="tests", benchmark="mbpp"),
    ):
        unused = await scripted([PRIME_RIGHT])
        with pytest.raises(ProtocolMismatch, match="resuming would mix two protocols"):
            await run_evaluation(
                [NOT_PRIME, SIMILAR], EngineModel(unused), other, out, resume=True, progress=False
            )
        assert unused.prompts == []


def test_cli_benchmarks_protocols_and_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mbpp", "--list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 399
    assert listing[0] == "Mbpp/2\tsimilar_elements"

    assert main(["mbppplus", "--data", str(tmp_path / "nowhere.jsonl"), "--list"]) == 2
    assert "--data PATH" in capsys.readouterr().err
    assert main(["--feedback", "tests", "--success", "read"]) == 2
    assert "--success read goes with --feedback own" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["mbpp", "--feedback", "hints"])
    capsys.readouterr()

    out = tmp_path / "cli"
    argv = [
        "mbppplus",
        "--feedback",
        "tests",
        "--engine-class",
        "tests.doubles.ScriptedTestEngine",
        "--engine-kwargs",
        json.dumps({"replies": [PRIME_MEMORISED, PRIME_RIGHT]}),
        "--problems",
        "3",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    table = (out / "summary.md").read_text()
    assert captured.out.strip() == table.strip()
    assert "ORACLE" in captured.err
    assert "**Oracle protocol.**" in table
    assert "| MBPP+ pass@1 (%) | turn 1 | after 1 feedback turn |" in table
    assert "| MBPP pass@1 (%) | turn 1 | after 1 feedback turn |" in table
    assert "MBPP+, --feedback tests, --success first-run | 0.0 (0/1) | 100.0 (1/1) |" in table
    assert "MBPP, --feedback tests, --success first-run | 100.0 (1/1) | 100.0 (1/1) |" in table
    assert "| 63.7 | 72.4 |" in table  # the paper's MBPP+ row
    assert main([*argv, "--resume", "--feedback", "own"]) == 2
    assert "feedback 'tests' -> 'own'" in capsys.readouterr().err
    assert main([*argv[1:], "--resume"]) == 2  # humaneval, the default benchmark
    assert "benchmark 'mbppplus' -> 'humaneval'" in capsys.readouterr().err


# ---- the real model ---------------------------------------------------------------------------
@pytest.mark.model
@pytest.mark.parametrize(
    ("benchmark", "feedback"), [("mbpp", "own"), ("mbppplus", "tests"), ("humaneval", "tests")]
)
async def test_real_model_end_to_end(
    llama_engine: Any, tmp_path: Path, benchmark: str, feedback: str
) -> None:
    """Two problems (--limit 2) of each benchmark on the bundled model, greedy."""
    bench = get_benchmark(benchmark)
    problems = select(bench.load(), None, 2)
    out = tmp_path / benchmark
    summary = await run_evaluation(
        problems,
        EngineModel(llama_engine),
        EvalSettings(turns=2, max_tokens=320, workers=1, benchmark=benchmark, feedback=feedback),
        out,
        progress=False,
        config={"model": llama_engine.status.model},
    )
    records = RecordStore(out).load()
    assert {r["task_id"] for r in records} == {p.task_id for p in problems}
    assert all(r["code"] for r in records if r["turn"] == 1)
    assert all(r["tokens"]["completion"] > 0 for r in records)
    assert all(set(r["scores"]) == set(bench.scores) for r in records)
    for r in records:
        if feedback == "tests" and not r["final"]:  # failed: the paper's text came next
            assert r["feedback"].startswith(HEADER)
            assert r["passed"] is False
        if feedback == "own":
            assert r["outcome"]["status"] in ("ok", "error", "timeout")
    assert summary["feedback"] == feedback
    assert summary["benchmark"] == bench.label
    # Two short problems (similar_elements / is_not_prime; has_close_elements /
    # separate_paren_groups): the 1.5B model solves at least one of each pair.
    assert summary["pass_at_1_by_turn"][-1]["passed"] >= 1
    rows = (out / "summary.md").read_text().count(f"--feedback {feedback}, --success first-run |")
    assert rows == len(bench.scores)  # a row per score, each naming its protocol
