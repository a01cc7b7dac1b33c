"""oci-eval: HumanEval through the refinement loop, with real kernels and hidden tests.

The turn logic runs with the scripted test double (replies given in advance) and real
ipykernels; a last test runs a few problems end to end on the real bundled model.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from oci_jupyter.engine import Message
from oci_jupyter.evaluation.cli import main
from oci_jupyter.evaluation.humaneval import (
    Problem,
    definitions_only,
    hidden_test_program,
    load_problems,
    problem_messages,
    select,
)
from oci_jupyter.evaluation.kernels import KernelSession, run_hidden_tests
from oci_jupyter.evaluation.report import markdown, passed_at, summarize
from oci_jupyter.evaluation.run_folder import RecordStore
from oci_jupyter.evaluation.runner import (
    EngineModel,
    EvalSettings,
    ModelFailure,
    ModelUnavailable,
    ProtocolMismatch,
    Reply,
    run_evaluation,
    solve,
)
from oci_jupyter.evaluation.timed_process import run_script
from oci_jupyter.prompts import READ_HINT, FeedbackMarker

from .conftest import free_port
from .doubles import ScriptedTestEngine
from .eval_helpers import (
    HUMANEVAL,
    assert_no_hidden_tests,
    runtime_dir_in_tmp,  # noqa: F401  (an autouse fixture: importing it turns it on)
    scripted,
)

TRUNCATE = HUMANEVAL["HumanEval/2"]  # truncate_number(number) -> number % 1.0
STRLEN = HUMANEVAL["HumanEval/23"]  # strlen(string) -> len(string)
ADD = HUMANEVAL["HumanEval/53"]  # add(x, y) -> x + y


def reply(code: str) -> str:
    return f"Here is the function.\n```python\n{code.strip()}\n```\nIt passes its examples."


STRLEN_RIGHT = reply(
    "def strlen(string: str) -> int:\n    return len(string)\n\nprint(strlen('abc'))"
)
STRLEN_TYPO = reply(
    "def strlen(string: str) -> int:\n    return len(strng)\n\nprint(strlen('abc'))"
)
TRUNCATE_RIGHT = reply(
    "def truncate_number(number: float) -> float:\n    return number % 1.0\n\n"
    "assert truncate_number(3.5) == 0.5"
)
ADD_RIGHT = reply("def add(x: int, y: int):\n    return x + y\n\nprint(add(2, 3))")
STRLEN_THREE = reply(  # runs without errors, prints the right 3, fails the hidden tests
    "def strlen(string: str) -> int:\n    return 3\n\nprint(strlen('abc'))"
)
IN_WORDS = "strlen('abc') printed 3, the length of 'abc': the function works."


async def solve_one(
    problem: Problem, replies: Sequence[str], tmp_path: Path, **settings: Any
) -> tuple[list[dict[str, Any]], ScriptedTestEngine, KernelSession]:
    engine = await scripted(replies)
    kernel = KernelSession(workdir=tmp_path / "kernel")
    await kernel.start()
    records = await solve(problem, EngineModel(engine), kernel, EvalSettings(**settings))
    return records, engine, kernel


# ---- the turn logic (scripted model, real kernels) ------------------------------------------
async def test_solved_at_turn_one(tmp_path: Path) -> None:
    records, engine, kernel = await solve_one(STRLEN, [STRLEN_RIGHT], tmp_path)
    await kernel.shutdown()
    (record,) = records
    assert record["task_id"] == "HumanEval/23"
    assert record["final"] is True
    assert record["loop_status"] == "success"
    assert record["outcome"]["status"] == "ok"
    assert record["output"] == "3\n"
    assert record["passed"] is True
    assert record["hidden"] == {"status": "passed", "detail": ""}
    assert record["tokens"]["completion"] > 0
    assert passed_at(records, 1)
    assert passed_at(records, 2)  # the loop stopped: turn 1's code stands for turn 2
    assert len(engine.prompts) == 1
    assert_no_hidden_tests(engine.prompts, *HUMANEVAL.values())


async def test_wrong_at_turn_one_fixed_at_turn_two(tmp_path: Path) -> None:
    records, engine, kernel = await solve_one(STRLEN, [STRLEN_TYPO, STRLEN_RIGHT], tmp_path)
    await kernel.shutdown()
    first, second = records
    assert first["outcome"] == {
        "status": "error",
        "ename": "NameError",
        "evalue": "name 'strng' is not defined",
    }
    assert first["passed"] is False
    assert "NameError" in first["hidden"]["detail"]
    assert first["final"] is False
    assert second["final"] is True
    assert second["passed"] is True
    assert second["loop_status"] == "success"
    # The model's second prompt is its first reply and the feedback of its OWN run.
    asked = engine.prompts[1]
    assert asked[-2] == {"role": "assistant", "content": STRLEN_TYPO}
    assert asked[-1]["content"] == first["feedback"]
    assert asked[-1]["content"].startswith(f"{FeedbackMarker} the code raised an error.")
    assert "name 'strng' is not defined" in asked[-1]["content"]
    assert_no_hidden_tests(engine.prompts, *HUMANEVAL.values())

    summary = summarize(records, 2)
    assert [(r["turn"], r["passed"], r["pass_at_1"]) for r in summary["pass_at_1_by_turn"]] == [
        (1, 0, 0.0),
        (2, 1, 100.0),
    ]
    assert summary["fixed_by_feedback"] == ["HumanEval/23"]


async def test_code_that_only_defines_the_function(tmp_path: Path) -> None:
    """No output: the loop's empty-output hint is the turn's feedback, and the run counts as
    the model's success (the loop stops, as it does in the notebook)."""
    quiet = reply("def add(x: int, y: int):\n    return x + y")
    records, _, kernel = await solve_one(ADD, [quiet], tmp_path)
    await kernel.shutdown()
    (record,) = records
    assert record["outcome"]["status"] == "ok"
    assert record["output"] == ""
    assert record["feedback"].startswith(f"{FeedbackMarker} the code ran without errors but")
    assert "printed nothing" in record["feedback"]
    assert record["loop_status"] == "success"
    assert record["passed"] is True


async def test_reply_without_code_fails(tmp_path: Path) -> None:
    records, _, kernel = await solve_one(ADD, ["I would rather not write code today."], tmp_path)
    await kernel.shutdown()
    (record,) = records
    assert record["code"] is None
    assert record["outcome"] is None
    assert record["loop_status"] == "no_code"
    assert record["passed"] is False
    assert record["hidden"]["status"] == "no_code"
    assert not passed_at(records, 2)


async def test_hang_is_interrupted_with_the_limit_in_the_feedback(tmp_path: Path) -> None:
    hangs = reply(
        "def strlen(string: str) -> int:\n    while True:\n        pass\n\nprint(strlen('abc'))"
    )
    records, engine, kernel = await solve_one(
        STRLEN, [hangs, STRLEN_RIGHT], tmp_path, time_limit=2.0
    )
    first, second = records
    assert first["outcome"]["status"] == "timeout"
    assert first["recovery"] == "interrupted"
    assert "did not finish within 2 seconds" in first["feedback"]
    assert engine.prompts[1][-1]["content"] == first["feedback"]
    assert first["hidden"]["status"] == "timeout"  # the hidden tests have the limit too
    assert second["outcome"]["status"] == "ok"  # the same kernel, usable after the interrupt
    assert second["output"] == "3\n"
    assert second["passed"] is True
    run = await kernel.run("print('still here')", 5)
    assert run.outcome.output == "still here\n"
    await kernel.shutdown()


async def test_kernel_deaf_to_interrupts_is_restarted(tmp_path: Path) -> None:
    deaf = reply(
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "def add(x, y):\n    return x + y\n\nwhile True:\n    pass"
    )
    records, _, kernel = await solve_one(ADD, [deaf, ADD_RIGHT], tmp_path, time_limit=1.5)
    first, second = records
    assert first["outcome"]["status"] == "timeout"
    assert first["recovery"] == "restarted"
    assert "within 1.5 seconds" in first["feedback"]
    assert second["outcome"]["status"] == "ok"
    assert second["output"] == "5\n"
    assert kernel.restarts == 1
    await kernel.shutdown()


async def test_kernel_death_fails_the_problem_and_the_next_one_runs(tmp_path: Path) -> None:
    dies = reply("import os\n\ndef add(x, y):\n    return x + y\n\nos._exit(1)")
    engine = await scripted([dies, TRUNCATE_RIGHT])
    out = tmp_path / "run"
    summary = await run_evaluation(
        [ADD, TRUNCATE],
        EngineModel(engine),
        EvalSettings(workers=1),
        out,
        progress=False,
    )
    records = {r["task_id"]: r for r in RecordStore(out).load()}
    died = records["HumanEval/53"]
    assert died["loop_status"] == "kernel_died"
    assert died["recovery"] == "died"
    assert "the kernel died" in died["kernel_error"]
    assert "exit code 1" in died["kernel_error"]
    assert died["passed"] is False
    assert died["hidden"]["status"] == "kernel_died"
    assert died["final"] is True
    assert records["HumanEval/2"]["passed"] is True  # the worker's next kernel worked
    assert summary["pass_at_1_by_turn"][0]["passed"] == 1
    assert summary["loop_status"] == {"kernel_died": 1, "success": 1}
    assert len(engine.prompts) == 2  # no feedback turn after a dead kernel
    assert_no_hidden_tests(engine.prompts, *HUMANEVAL.values())


async def test_resume_skips_finished_problems_and_writes_everything(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = await scripted([STRLEN_RIGHT])
    await run_evaluation([STRLEN], EngineModel(first), EvalSettings(workers=1), out, progress=False)
    assert len(first.prompts) == 1

    again = await scripted([STRLEN_TYPO, STRLEN_RIGHT, ADD_RIGHT])
    summary = await run_evaluation(
        [STRLEN, TRUNCATE, ADD],
        EngineModel(again),
        EvalSettings(workers=2),
        out,
        resume=True,
        progress=False,
        config={"model": "scripted"},
    )
    asked = {p[1]["content"] for p in again.prompts}
    assert not any("def strlen" in text for text in asked)  # finished: not asked again
    assert sum(1 for r in RecordStore(out).load() if r["task_id"] == "HumanEval/23") == 1
    assert summary["problems"] == 3
    assert_no_hidden_tests(again.prompts, *HUMANEVAL.values())

    lines = (out / "records.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    for key in ("task_id", "turn", "code", "outcome", "output", "passed", "tokens", "seconds"):
        assert key in record
    saved = json.loads((out / "summary.json").read_text())
    assert saved["problems"] == 3
    assert [r["turn"] for r in saved["pass_at_1_by_turn"]] == [1, 2]
    assert saved["machine"]["cores"] >= 1
    assert len(json.loads((out / "run.json").read_text())["sessions"]) == 2
    table = (out / "summary.md").read_text()
    assert "| OpenCodeInterpreter-DS-6.7B" in table
    assert "76.2 | 81.1" in table
    assert "wall time" in table
    png = (out / "pass_at_k.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width > 300
    assert height > 200


# ---- the success rule -----------------------------------------------------------------------
async def test_first_run_rule_stops_at_the_first_run_without_errors(tmp_path: Path) -> None:
    records, engine, kernel = await solve_one(
        STRLEN, [STRLEN_THREE, STRLEN_RIGHT], tmp_path, success="first-run"
    )
    await kernel.shutdown()
    (record,) = records  # the run succeeded: no second reply, though the function is wrong
    assert record["outcome"]["status"] == "ok"
    assert record["passed"] is False
    assert record["loop_status"] == "success"
    assert (record["step"], record["attempt"]) == (1, 1)
    assert len(engine.prompts) == 1
    assert not passed_at(records, 2)


async def test_read_rule_shows_the_model_its_own_successful_output(tmp_path: Path) -> None:
    """Under ``read`` the second reply sees the output of the first one's run; a reply in
    words after it is the answer, and the code that ran keeps the problem's pass."""
    records, engine, kernel = await solve_one(
        STRLEN, [STRLEN_RIGHT, IN_WORDS], tmp_path, success="read"
    )
    await kernel.shutdown()
    first, second = records
    assert first["outcome"]["status"] == "ok"
    assert first["passed"] is True
    assert first["final"] is False
    asked = engine.prompts[1]
    assert asked[-2] == {"role": "assistant", "content": STRLEN_RIGHT}
    assert asked[-1] == {"role": "user", "content": first["feedback"]}
    assert asked[-1]["content"] == f"{FeedbackMarker}\n3\n\n{READ_HINT}"
    assert_no_hidden_tests(engine.prompts, *HUMANEVAL.values())

    assert second["code"] is None
    assert second["reply"] == IN_WORDS
    assert second["outcome"] is None
    assert second["hidden"]["status"] == "answer"
    assert "turn 1's code stands (passed)" in second["hidden"]["detail"]
    assert second["passed"] is True
    assert second["final"] is True
    assert second["loop_status"] == "success"
    assert passed_at(records, 1)
    assert passed_at(records, 2)  # answered in words after passing: no regression
    summary = summarize(records, 2, success="read")
    assert [r["passed"] for r in summary["pass_at_1_by_turn"]] == [1, 1]
    assert summary["broken_by_feedback"] == []
    assert summary["hidden_test_results"] == {"passed": 1, "answer": 1}


async def test_read_rule_runs_and_judges_a_function_given_again(tmp_path: Path) -> None:
    """Code after a successful run is run in the same kernel and judged as that turn's
    answer: here the model's second look fixes a function that passed its own run."""
    records, engine, kernel = await solve_one(
        STRLEN, [STRLEN_THREE, STRLEN_RIGHT], tmp_path, success="read"
    )
    await kernel.shutdown()
    first, second = records
    assert first["outcome"]["status"] == "ok"
    assert first["passed"] is False  # its own run passed, the hidden tests did not
    assert engine.prompts[1][-1]["content"].startswith(f"{FeedbackMarker}\n3\n")
    assert second["outcome"]["status"] == "ok"
    assert second["output"] == "3\n"
    assert (second["step"], second["attempt"]) == (2, 1)
    assert second["passed"] is True
    assert second["loop_status"] == "success"
    assert "reply budget" in second["loop_message"]
    assert len(engine.prompts) == 2  # --turns 2: two replies at most
    summary = summarize(records, 2, success="read")
    assert summary["fixed_by_feedback"] == ["HumanEval/23"]


async def test_read_rule_counts_a_worse_function_given_again(tmp_path: Path) -> None:
    """The other way round: a right function replaced by a wrong one after reading its
    output is a regression (the last code stands, not the best)."""
    records, _, kernel = await solve_one(
        STRLEN, [STRLEN_RIGHT, STRLEN_THREE, IN_WORDS], tmp_path, success="read", turns=3
    )
    await kernel.shutdown()
    assert [r["hidden"]["status"] for r in records] == ["passed", "failed", "answer"]
    assert "turn 2's code stands (failed)" in records[2]["hidden"]["detail"]
    assert [passed_at(records, k) for k in (1, 2, 3)] == [True, False, False]
    assert summarize(records, 3)["broken_by_feedback"] == ["HumanEval/23"]


async def test_read_rule_fails_a_reply_in_words_after_a_failed_run(tmp_path: Path) -> None:
    records, _, kernel = await solve_one(
        STRLEN, [STRLEN_TYPO, "I cannot fix this."], tmp_path, success="read"
    )
    await kernel.shutdown()
    first, second = records
    assert first["outcome"]["status"] == "error"
    assert second["hidden"]["status"] == "no_code"
    assert second["passed"] is False
    assert second["loop_status"] == "failed"


def test_an_answer_in_words_stands_for_the_code_before_it() -> None:
    def turn(n: int, code: str | None, status: str, passed: bool) -> dict[str, Any]:
        return {"turn": n, "code": code, "hidden": {"status": status}, "passed": passed}

    # Records written with "passed" false on the words (as a reader might): still passed.
    words = [turn(1, "f()", "passed", True), turn(2, None, "answer", False)]
    assert passed_at(words, 2)
    assert passed_at(words, 5)
    no_code = [turn(1, "f()", "passed", True), turn(2, None, "no_code", False)]
    assert not passed_at(no_code, 2)


class FailingModel:
    """Answers from a list; an exception in the list is raised instead."""

    name = "failing"

    def __init__(self, replies: Sequence[str | Exception]) -> None:
        self.replies = list(replies)
        self.prompts: list[Sequence[Message]] = []

    async def reply(self, messages: Sequence[Message], params: Any, request_id: str) -> Reply:
        self.prompts.append(messages)
        answer = self.replies[len(self.prompts) - 1]
        if isinstance(answer, Exception):
            raise answer
        return Reply(answer, 10, 10)


async def test_a_model_failure_fails_the_problem_and_unavailable_stops(tmp_path: Path) -> None:
    kernel = KernelSession(workdir=tmp_path / "kernel")
    await kernel.start()
    model = FailingModel([STRLEN_TYPO, ModelFailure("the prompt outgrew the context")])
    records = await solve(STRLEN, model, kernel, EvalSettings(success="read"))
    await kernel.shutdown()
    first, second = records
    assert first["outcome"]["status"] == "error"
    assert second["model_error"] == "the prompt outgrew the context"
    assert second["hidden"]["status"] == "model_error"
    assert second["loop_status"] == "error"
    assert second["final"] is True

    gone = FailingModel([ModelUnavailable("the server is gone")])
    unused = KernelSession(workdir=tmp_path / "unused")  # never started: nothing runs
    with pytest.raises(ModelUnavailable, match="the server is gone"):
        await solve(STRLEN, gone, unused, EvalSettings())


async def test_the_rule_is_recorded_and_resume_refuses_another(tmp_path: Path) -> None:
    out = tmp_path / "run"
    engine = await scripted([STRLEN_RIGHT, IN_WORDS])
    settings = EvalSettings(workers=1, success="read")
    summary = await run_evaluation(
        [STRLEN], EngineModel(engine), settings, out, progress=False, config={"model": "m"}
    )
    assert json.loads((out / "run.json").read_text())["config"] == {
        "model": "m",
        "benchmark": "humaneval",
        "feedback": "own",
        "success": "read",
        "prompt": "product",
    }
    saved = json.loads((out / "summary.json").read_text())
    assert saved["success"] == summary["success"] == "read"
    assert [r["success"] for r in saved["pass_at_1_by_turn"]] == ["read", "read"]
    assert [r["passed"] for r in saved["pass_at_1_by_turn"]] == [1, 1]
    assert "100.0 (1/1)" in (out / "summary.md").read_text()
    assert "--success read |" in (out / "summary.md").read_text()

    other = await scripted([ADD_RIGHT])
    with pytest.raises(ProtocolMismatch, match="--success read, not first-run"):
        await run_evaluation(
            [STRLEN, ADD],
            EngineModel(other),
            EvalSettings(workers=1),
            out,
            resume=True,
            progress=False,
        )
    assert other.prompts == []  # refused before anything ran
    assert json.loads((out / "run.json").read_text())["config"]["success"] == "read"
    resumed = await run_evaluation(
        [STRLEN, ADD], EngineModel(other), settings, out, resume=True, progress=False
    )
    assert resumed["problems"] == 2

    # A run recorded before the rule was: first-run.
    old = tmp_path / "old"
    await run_evaluation(
        [ADD],
        EngineModel(await scripted([ADD_RIGHT])),
        EvalSettings(workers=1),
        old,
        progress=False,
    )
    run = json.loads((old / "run.json").read_text())
    assert run["config"]["success"] == "first-run"
    del run["config"]["success"]
    (old / "run.json").write_text(json.dumps(run))
    with pytest.raises(ProtocolMismatch, match="--success first-run, not read"):
        await run_evaluation([ADD], EngineModel(other), settings, old, resume=True, progress=False)


async def test_hidden_tests_run_apart_with_a_limit(tmp_path: Path) -> None:
    right = hidden_test_program(STRLEN, "def strlen(s):\n    return len(s)\n")
    assert (await run_hidden_tests(right, time_limit=10)).passed
    wrong = await run_hidden_tests(
        hidden_test_program(STRLEN, "def strlen(s):\n    return 0\n"), time_limit=10
    )
    assert wrong.status == "failed"
    assert wrong.detail.startswith("AssertionError")
    slow = hidden_test_program(STRLEN, "def strlen(s):\n    while True:\n        pass\n")
    assert (await run_hidden_tests(slow, time_limit=1)).status == "timeout"
    # The prompt's helpers (poly in HumanEval/32) exist for code that leaves them out.
    zero = HUMANEVAL["HumanEval/32"]
    assert (
        await run_hidden_tests(
            hidden_test_program(zero, zero.prompt + zero.canonical_solution), time_limit=10
        )
    ).passed


async def test_a_script_past_its_limit_takes_its_children_with_it(tmp_path: Path) -> None:
    """What the hidden tests and the judge both rely on: the whole process group is killed."""
    script = tmp_path / "spawns.py"
    script.write_text(
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', "
        "\"import time; time.sleep(3); open('late', 'w').close()\"])\n"
        "open('started', 'w').close()\n"
        "time.sleep(60)\n"
    )
    run = await run_script(script, cwd=tmp_path, time_limit=2)
    assert run.timed_out
    assert run.stderr == ""
    assert (tmp_path / "started").exists()
    await asyncio.sleep(3)  # past the moment the child would have written
    assert not (tmp_path / "late").exists()


@pytest.mark.parametrize(
    ("code", "failure"),
    [
        (
            "import sys\n"
            "sys.stderr.buffer.write(b'one\\nValueError: bad \\xff\\n \\n')\nsys.exit(3)",
            "ValueError: bad \ufffd",  # the last line that is not blank; bad bytes replaced
        ),
        ("import sys\nsys.exit(3)", "exit status 3"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "killed by signal 9"),
    ],
)
async def test_a_failed_script_says_why_in_one_line(
    tmp_path: Path, code: str, failure: str
) -> None:
    script = tmp_path / "fails.py"
    script.write_text(code)
    run = await run_script(script, cwd=tmp_path, time_limit=10)
    assert not run.timed_out
    assert run.failure() == failure


# ---- pure parts ------------------------------------------------------------------------------
def test_problem_prompts_never_contain_hidden_tests() -> None:
    assert len(HUMANEVAL) == 164
    assert_no_hidden_tests([problem_messages(p) for p in HUMANEVAL.values()], *HUMANEVAL.values())
    messages = problem_messages(STRLEN)
    assert messages[0]["role"] == "system"
    assert "def strlen(string: str) -> int:" in messages[1]["content"]


def test_definitions_only_drops_the_models_own_tests() -> None:
    code = (
        "import re\n\nLIMIT = 10\nWORD = re.compile('w')\n\n@decorate\ndef f(x):\n"
        "    return x\n\nassert f(1) == 2\nprint(f(3))\nresult = [f(4)]\n"
        "value = int(input())\nfor i in range(3):\n    print(i)\n"
        "if __name__ == '__main__':\n    f(4)\n"
    )
    kept = definitions_only(code)
    assert kept == (
        "import re\n\nLIMIT = 10\n\nWORD = re.compile('w')\n\n@decorate\ndef f(x):\n    return x\n"
    )
    assert definitions_only("def broken(:\n") == "def broken(:\n"


def test_pass_at_turn_k() -> None:
    def turns(*passed: bool) -> list[dict[str, Any]]:
        return [{"turn": i + 1, "passed": p} for i, p in enumerate(passed)]

    assert passed_at(turns(True), 1)
    assert passed_at(turns(True), 3)  # stopped early: turn 1 stands
    assert not passed_at(turns(False, True), 1)
    assert passed_at(turns(False, True), 2)
    assert not passed_at(turns(True, False), 2)  # feedback can break code, too
    assert not passed_at([], 1)


def test_summary_counts_replies_that_repeat_failed_code() -> None:
    def turn(task: str, n: int, code: str, status: str | None, skipped: str | None = None):
        outcome = {"status": status} if status else None
        final = n == 3 or status == "ok"
        return {"task_id": task, "turn": n, "code": code, "outcome": outcome,
                "skipped": skipped, "passed": status == "ok", "final": final}  # fmt: skip

    records = [
        # Run again unchanged (a loop without the repeat rule), then fixed.
        turn("HumanEval/1", 1, "f()\n", "error"),
        turn("HumanEval/1", 2, "f()  \n\n", "error"),
        turn("HumanEval/1", 3, "g()\n", "ok"),
        # Repeated and not run (the repeat rule), then the same again.
        turn("HumanEval/2", 1, "h()\n", "error"),
        turn("HumanEval/2", 2, "h()\n", None, skipped="repeat"),
        turn("HumanEval/2", 3, "h()\n", None, skipped="repeat"),
        # Code that succeeded may come back: not a repeat of a failure.
        turn("HumanEval/3", 1, "k()\n", "ok"),
    ]
    summary = summarize(records, 3)
    assert summary["repeated_failed_code"] == 3
    assert summary["turns_not_run"] == {"repeat": 2}
    assert "replies repeating code that had failed: 3 (turns not run: repeat 2)" in markdown(
        summary
    )


def test_select_problems() -> None:
    problems = load_problems()
    assert [p.task_id for p in select(problems, ["5", "HumanEval/0", "humaneval/5"])] == [
        "HumanEval/5",
        "HumanEval/0",
    ]
    assert len(select(problems, None, 3)) == 3
    with pytest.raises(ValueError, match=r"HumanEval/999.*--list"):
        select(problems, ["HumanEval/999"])


# ---- the command line ------------------------------------------------------------------------
def test_cli_rejects_bad_options(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for argv in (
        ["--engine", "gpt5"],
        ["--workers", "0"],
        ["--turns", "-1"],
        ["--time-limit", "0"],
        ["--temperature", "hot"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    capsys.readouterr()

    assert main(["--problems", "HumanEval/0,HumanEval/400"]) == 2
    error = capsys.readouterr().err
    assert "unknown problem id: HumanEval/400" in error
    assert "--list" in error

    assert main(["--engine", "openai", "--model-path", "x.gguf", "--base-url", "http://h/v1"]) == 2
    assert "--model-path is an option of --engine" in capsys.readouterr().err

    port = free_port()  # nothing listens there
    assert main(["--url", f"http://127.0.0.1:{port}/", "--out", str(tmp_path / "x")]) == 2
    error = capsys.readouterr().err
    assert "Cannot reach the Jupyter server" in error
    assert not (tmp_path / "x").exists()  # nothing started

    assert main(["--list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0] == "HumanEval/0\thas_close_elements"
    assert len(listing) == 164


def test_cli_runs_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    argv = [
        "--engine-class",
        "tests.doubles.ScriptedTestEngine",
        "--engine-kwargs",
        json.dumps({"replies": [STRLEN_RIGHT]}),
        "--problems",
        "23",
        "--workers",
        "1",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "| **This run**: scripted-test-model" in captured.out
    assert "100.0 (1/1)" in captured.out
    assert {p.name for p in out.iterdir()} >= {
        "records.jsonl",
        "summary.json",
        "summary.md",
        "pass_at_k.png",
        "run.json",
    }
    assert main(argv) == 2  # the folder holds a run: --resume or another --out
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0  # nothing left to do
    assert main([*argv, "--resume", "--turns", "3"]) == 2
    assert "turns 2 -> 3" in capsys.readouterr().err
    assert json.loads((out / "run.json").read_text())["config"]["success"] == "first-run"
    assert main([*argv, "--resume", "--success", "read"]) == 2
    assert "success 'first-run' -> 'read'" in capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    del run["config"]["success"]  # as a run recorded before there was a choice
    (out / "run.json").write_text(json.dumps(run))
    assert main([*argv, "--resume", "--success", "read"]) == 2
    assert "success 'first-run' -> 'read'" in capsys.readouterr().err
    assert main([*argv, "--resume", "--success", "first-run"]) == 0
    capsys.readouterr()
    assert main(["--summarize", str(out)]) == 0
    summarized = capsys.readouterr().out
    assert "| turn 1 | after 1 feedback turn |" in summarized
    assert "--success first-run |" in summarized


def test_cli_against_a_running_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--url: the model of a running Jupyter server, through its endpoint."""
    from .servers import jupyter_server

    script = tmp_path / "script.json"
    script.write_text(json.dumps({"replies": [STRLEN_TYPO, STRLEN_RIGHT]}))
    oci = {
        "engine_class": "tests.doubles.ScriptedTestEngine",
        "engine_kwargs": {"script_file": str(script)},
    }
    with jupyter_server(tmp_path, oci) as server:
        out = tmp_path / "endpoint"
        argv = ["--url", server.url, "--problems", "23", "--no-progress", "--out", str(out)]
        assert main([*argv, "--token", "wrong"]) == 2
        assert "403" in capsys.readouterr().err
        assert main([*argv, "--token", server.token]) == 0
    records = RecordStore(out).load()
    assert [r["passed"] for r in records] == [False, True]
    assert records[1]["tokens"]["completion"] > 0
    prompts = json.loads(script.read_text())["prompts"]
    assert len(prompts) == 2
    assert_no_hidden_tests(prompts, *HUMANEVAL.values())


# ---- the real model --------------------------------------------------------------------------
@pytest.mark.model
async def test_real_model_end_to_end(llama_engine: Any, tmp_path: Path) -> None:
    out = tmp_path / "real"
    summary = await run_evaluation(
        [TRUNCATE, STRLEN, ADD],
        EngineModel(llama_engine),
        EvalSettings(turns=2, max_tokens=384, workers=2),
        out,
        progress=False,
        config={"model": llama_engine.status.model},
    )
    records = RecordStore(out).load()
    assert {r["task_id"] for r in records} == {"HumanEval/2", "HumanEval/23", "HumanEval/53"}
    assert all(r["code"] for r in records)
    assert all(r["tokens"]["completion"] > 0 for r in records)
    # Three one-line functions: the 1.5B model gets them right, greedy decoding.
    assert summary["pass_at_1_by_turn"][-1]["passed"] >= 2
    assert (out / "pass_at_k.png").stat().st_size > 1000
    assert (out / "summary.md").stat().st_size > 0
