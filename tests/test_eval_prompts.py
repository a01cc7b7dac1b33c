"""oci-eval's first-turn prompts: ``--prompt product`` (the default, the product's prompt) and
``--prompt paper`` (the OpenCodeInterpreter paper harness's user turn, word for word).

Scripted replies (the test double) under ``--feedback tests``, so that no kernel is needed:
the prompt is the subject here, not the feedback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from oci_jupyter.evaluation import humaneval, mbpp
from oci_jupyter.evaluation.benchmarks import BENCHMARKS, get_benchmark
from oci_jupyter.evaluation.cli import PROTOCOL_KEYS, build_parser, main
from oci_jupyter.evaluation.kernels import KernelSession
from oci_jupyter.evaluation.prompting import DEFAULT_PROMPT, PROMPTS
from oci_jupyter.evaluation.runner import (
    EngineModel,
    EvalSettings,
    ProtocolMismatch,
    run_evaluation,
    solve,
)
from oci_jupyter.prompts import SYSTEM_PROMPT

from .eval_helpers import (
    HUMANEVAL,
    MBPP,
    assert_no_hidden_tests,
    runtime_dir_in_tmp,  # noqa: F401  (an autouse fixture: importing it turns it on)
    scripted,
)

STRLEN = HUMANEVAL["HumanEval/23"]
SIMILAR = MBPP["Mbpp/2"]
PREAMBLE = (
    "You are an exceptionally intelligent coding assistant that consistently delivers "
    "accurate and reliable responses to user instructions.\n\n@@ Instruction\n"
)
CLOSING = (
    "Please return all completed codes in one code block. \n"
    "This code block should be in the following format:\n"
    "```python\n# Your codes here\n```\n\n@@ Response"
)
STRLEN_RIGHT = "```python\ndef strlen(string: str) -> int:\n    return len(string)\n```"
STRLEN_ZERO = "```python\ndef strlen(string: str) -> int:\n    return 0\n```"


# ---- the paper's first turn --------------------------------------------------------------------
def test_paper_prompt_of_a_humaneval_problem() -> None:
    messages = get_benchmark("humaneval").messages(STRLEN, "paper")
    assert [m["role"] for m in messages] == ["user"]  # no system message, as the harness
    (asked,) = messages
    shown = STRLEN.prompt.strip()
    assert asked["content"] == humaneval.PAPER_REQUEST.format(prompt=shown)
    assert asked["content"] == (
        PREAMBLE + "Here is the given code to do completion:\n```python\n" + shown + "\n```\n"
        "Please continue to complete the function with python programming language. You are "
        "not allowed to modify the given code and do the completion only. \n\n" + CLOSING
    )
    assert "def strlen(string: str) -> int:" in asked["content"]
    assert SYSTEM_PROMPT not in asked["content"]
    assert humaneval.problem_messages(STRLEN, prompt="paper") == messages


@pytest.mark.parametrize("benchmark", ["mbpp", "mbppplus"])
def test_paper_prompt_of_an_mbpp_problem(benchmark: str) -> None:
    messages = get_benchmark(benchmark).messages(SIMILAR, "paper")
    assert [m["role"] for m in messages] == ["user"]
    (asked,) = messages
    # EvalPlus's MBPP+ prompt, as the harness puts it in: the task and the first original
    # assert (the example) in a docstring, and the newline after it.
    shown = (
        '"""\nWrite a function to find the shared elements from the given two lists.\n'
        'assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)\n"""\n'
    )
    assert mbpp.evalplus_prompt(SIMILAR) == shown
    assert asked["content"] == mbpp.PAPER_REQUEST.format(problem=shown)
    assert asked["content"] == (
        PREAMBLE + "Here is the given problem and test examples:\n" + shown + "\n\n"
        "Please use the python programming language to solve this problem.\n"
        "Please make sure that your code includes the functions from the test samples and that "
        "the input and output formats of these functions match the test samples.\n\n" + CLOSING
    )
    assert asked["content"].count("assert ") == 1  # one example; the others stay hidden
    assert "(1, 2, 3, 4),(5, 4, 3, 7)" not in asked["content"]


def test_no_prompt_holds_a_hidden_test() -> None:
    for prompt in PROMPTS:
        for problem in HUMANEVAL.values():
            assert_no_hidden_tests([get_benchmark("humaneval").messages(problem, prompt)], problem)
        for problem in MBPP.values():
            for name in ("mbpp", "mbppplus"):
                assert_no_hidden_tests([get_benchmark(name).messages(problem, prompt)], problem)


# ---- the default stays the product's ----------------------------------------------------------
async def test_the_default_is_the_products_prompt_unchanged(tmp_path: Path) -> None:
    assert DEFAULT_PROMPT == "product"
    assert EvalSettings().prompt == "product"
    assert build_parser().parse_args([]).prompt == "product"
    assert "prompt" in PROTOCOL_KEYS
    system = {"role": "system", "content": f"{SYSTEM_PROMPT}\nThe kernel's language: python."}
    for name in BENCHMARKS:
        bench = get_benchmark(name)
        problem = STRLEN if name == "humaneval" else SIMILAR
        assert bench.messages(problem) == bench.messages(problem, "product")
        assert bench.messages(problem)[0] == system
    assert humaneval.problem_messages(STRLEN)[1] == {
        "role": "user",
        "content": humaneval.TASK_REQUEST.format(prompt=STRLEN.prompt.strip("\n")),
    }
    assert mbpp.problem_messages(SIMILAR)[1] == {
        "role": "user",
        "content": mbpp.TASK_REQUEST.format(problem=mbpp.shown_problem(SIMILAR)),
    }
    with pytest.raises(ValueError, match="unknown prompt"):
        humaneval.problem_messages(STRLEN, prompt="papers")  # type: ignore[arg-type]

    # What the model is sent: the product's messages by default, the paper's on request.
    unused = KernelSession(workdir=tmp_path / "unused")  # never started: the tests judge
    for settings, expected in (
        (EvalSettings(feedback="tests"), humaneval.problem_messages(STRLEN)),
        (EvalSettings(feedback="tests", prompt="paper"), humaneval.paper_messages(STRLEN)),
    ):
        engine = await scripted([STRLEN_RIGHT])
        (record,) = await solve(STRLEN, EngineModel(engine), unused, settings)
        assert record["passed"] is True
        assert engine.prompts == [expected]


async def test_paper_prompt_keeps_the_feedback_turns_of_feedback(tmp_path: Path) -> None:
    """Only the first turn changes: the failed answer and the paper's feedback text follow."""
    engine = await scripted([STRLEN_ZERO, STRLEN_RIGHT])
    unused = KernelSession(workdir=tmp_path / "unused")
    records = await solve(
        STRLEN, EngineModel(engine), unused, EvalSettings(feedback="tests", prompt="paper")
    )
    assert [r["passed"] for r in records] == [False, True]
    first, second = engine.prompts
    assert first == humaneval.paper_messages(STRLEN)
    assert second[:2] == [*first, {"role": "assistant", "content": STRLEN_ZERO}]
    assert second[2]["content"].startswith("Execution result: \nThe results aren't as expected.")
    assert_no_hidden_tests([second], STRLEN)


# ---- the prompt is part of the protocol ---------------------------------------------------------
async def test_resume_refuses_another_prompt(tmp_path: Path) -> None:
    out = tmp_path / "run"
    paper = EvalSettings(workers=1, feedback="tests", prompt="paper")
    summary = await run_evaluation(
        [STRLEN], EngineModel(await scripted([STRLEN_RIGHT])), paper, out, progress=False
    )
    assert json.loads((out / "run.json").read_text())["config"]["prompt"] == "paper"
    assert summary["prompt"] == "paper"
    assert [r["prompt"] for r in summary["pass_at_1_by_turn"]] == ["paper", "paper"]

    unused = await scripted([STRLEN_RIGHT])
    with pytest.raises(ProtocolMismatch, match="--prompt paper, not product"):
        await run_evaluation(
            [STRLEN, HUMANEVAL["HumanEval/53"]],
            EngineModel(unused),
            EvalSettings(workers=1, feedback="tests"),
            out,
            resume=True,
            progress=False,
        )
    assert unused.prompts == []  # refused before anything ran

    # A run recorded before there was a choice had the product's prompt.
    run = json.loads((out / "run.json").read_text())
    del run["config"]["prompt"]
    (out / "run.json").write_text(json.dumps(run))
    with pytest.raises(ProtocolMismatch, match="--prompt product, not paper"):
        await run_evaluation([STRLEN], EngineModel(unused), paper, out, resume=True, progress=False)
    assert unused.prompts == []


def test_cli_records_names_and_keeps_the_prompt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"replies": [STRLEN_ZERO, STRLEN_RIGHT]}))
    out = tmp_path / "cli"
    argv = [
        "humaneval",
        "--prompt",
        "paper",
        "--feedback",
        "tests",
        "--engine-class",
        "tests.doubles.ScriptedTestEngine",
        "--engine-kwargs",
        json.dumps({"script_file": str(script)}),
        "--problems",
        "23",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "--prompt paper, --feedback tests" in captured.err
    prompts: list[Any] = json.loads(script.read_text())["prompts"]
    assert prompts[0] == humaneval.paper_messages(STRLEN)

    table = (out / "summary.md").read_text()
    assert captured.out.strip() == table.strip()
    row = "--prompt paper, HumanEval, --feedback tests, --success first-run |"
    assert f"{row} 0.0 (0/1) | 100.0 (1/1) |" in table
    assert "Prompt: --prompt paper: the OpenCodeInterpreter paper harness's first turn" in table
    saved = json.loads((out / "summary.json").read_text())
    assert saved["prompt"] == "paper"
    assert [r["prompt"] for r in saved["pass_at_1_by_turn"]] == ["paper", "paper"]
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["prompt"] == "paper"
    assert config["system_prompt"].startswith("none")

    assert main([*argv[:1], *argv[3:], "--resume"]) == 2  # the default prompt: product
    assert "prompt 'paper' -> 'product'" in capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    del run["config"]["prompt"]  # as a run recorded before there was a choice
    (out / "run.json").write_text(json.dumps(run))
    assert main([*argv, "--resume"]) == 2
    assert "prompt 'product' -> 'paper'" in capsys.readouterr().err

    assert main(["--summarize", str(out)]) == 0
    assert "--prompt product, HumanEval, --feedback tests" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--prompt", "papers"])
