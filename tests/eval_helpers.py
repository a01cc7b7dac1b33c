"""What the oci-eval tests share: the benchmarks' problems, the scripted model, kernels kept
out of the user's runtime folder, and the check that no prompt holds a hidden test."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from oci_jupyter.engine import Message
from oci_jupyter.evaluation import humaneval, mbpp
from oci_jupyter.evaluation.problems import Problem

from .doubles import ScriptedTestEngine

HUMANEVAL = {p.task_id: p for p in humaneval.load_problems()}
MBPP = {p.task_id: p for p in mbpp.load_problems()}


@pytest.fixture(autouse=True)
def runtime_dir_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels' connection files go to a temporary folder, not the user's runtime dir.

    Autouse in every test module that imports it (pytest finds fixtures in a module's names).
    """
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))


async def scripted(replies: Sequence[str]) -> ScriptedTestEngine:
    """The test double, ready, to give ``replies`` in turn."""
    engine = ScriptedTestEngine(replies)
    assert (await engine.wait_ready(10)).state == "ready"
    return engine


def hidden_parts(problem: Problem) -> list[str]:
    """What of a problem's tests must never be in a prompt: HumanEval's ``check`` and its
    calls of the candidate; MBPP's asserts but the shown example, and MBPP+'s inputs."""
    if problem.task_id.startswith("HumanEval/"):
        return [problem.test.strip(), "def check(candidate)", "candidate("]
    asserts = [line for line in problem.test.splitlines() if line.startswith("assert")]
    hidden = [a for a in asserts[1:] if a != asserts[0]]  # the first is the shown example
    plus = [json.dumps(args)[1:-1] for args in problem.plus_input if len(json.dumps(args)) > 12]
    return hidden + plus


def assert_no_hidden_tests(prompts: Sequence[Sequence[Message]], *problems: Problem) -> None:
    """Nothing of the hidden tests of ``problems`` is in any message of ``prompts``."""
    assert prompts
    assert all(prompts)
    parts = [part for problem in problems for part in hidden_parts(problem)]
    for messages in prompts:
        for message in messages:
            for part in parts:
                assert part not in message["content"]


def scripted_cli(script: Path, replies: Sequence[str], **engine: object) -> list[str]:
    """``oci-eval`` options for a run on the scripted test double (one worker, no progress
    bar): it gives ``replies`` in turn from ``script``, where it also writes every prompt it
    got (:func:`scripted_prompts`), as a server's engine would across processes."""
    script.write_text(json.dumps({"replies": list(replies)}), encoding="utf-8")
    kwargs = {"script_file": str(script), **engine}
    return [
        "--engine-class",
        "tests.doubles.ScriptedTestEngine",
        "--engine-kwargs",
        json.dumps(kwargs),
        "--workers",
        "1",
        "--no-progress",
    ]


def scripted_prompts(script: Path) -> list[list[Message]]:
    """The prompts a :func:`scripted_cli` run's model was asked, in order."""
    prompts: list[list[Message]] = json.loads(script.read_text(encoding="utf-8")).get("prompts", [])
    return prompts


def reply(code: str) -> str:
    """A model reply that gives ``code`` as its one python block (the scripted engine's turn)."""
    return f"Here is the function.\n```python\n{code.strip()}\n```\n"
