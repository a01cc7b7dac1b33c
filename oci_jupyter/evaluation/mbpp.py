"""MBPP and MBPP+: the problems, what the model is asked, and what judges an answer.

The 399 problems are EvalPlus's MBPP+ of 16 November 2023 (the version the OpenCodeInterpreter
paper's MBPP(+) columns are close to), shipped with this package as ``data/MbppPlus.jsonl.gz``
(see ``data/README.md`` for its origin and licenses) and checked by the sha256 of its
uncompressed bytes when it is read; ``--data PATH`` reads another copy of the same file.

Each answer is judged twice, in one separate process (:mod:`.judge`):

- **MBPP**: the problem's original asserts (``assertion``);
- **MBPP+**: differential testing as EvalPlus does it: the answer's outputs on the
  ``base_input`` and the ``plus_input`` lists against the canonical solution's, floats within
  ``atol``, each input with its own time limit.

The model sees the task text with the first of the original asserts as the example, as the
paper's harness shows MBPP problems; the other asserts and the MBPP+ inputs are never in a
prompt.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..engine import Message
from ..prompts import SYSTEM_PROMPT
from .problems import DataUnavailable, Problem, read_data
from .prompting import (
    DEFAULT_PROMPT,
    PAPER_CLOSING,
    PAPER_OPENING,
    PromptChoice,
    check_prompt,
    product_messages,
)

DATA_FILE = Path(__file__).with_name("data") / "MbppPlus.jsonl.gz"
SHA256 = "08405a4e8764a4941cfe0945d25a956355a0454f364ea902c4020a44e7057973"
"""Of the uncompressed MbppPlus.jsonl (EvalPlus, 2023-11-16): the file this harness is for."""
PROBLEMS = 399
ID_PREFIX = "Mbpp/"
MBPP, MBPP_PLUS = "MBPP", "MBPP+"
"""The two scores of every answer (and the names of the judging program's parts)."""

TASK_REQUEST = """\
Here is the given problem and test examples:
{problem}

Please use the python programming language to solve this problem.
Please make sure that your code includes the functions from the test samples and that the \
input and output formats of these functions match the test samples.

Give the complete function, with the imports it needs, in one ```python block. You may add a \
few asserts or prints after the function that test it on the example."""
"""The user turn of every problem: the paper's MBPP instruction (its first two paragraphs),
then the same request as HumanEval's (one block; self-tests allowed, which the ``own``
feedback protocol runs)."""

PAPER_REQUEST = (
    PAPER_OPENING + "Here is the given problem and test examples:\n"
    "{problem}\n"
    "\n"
    "Please use the python programming language to solve this problem.\n"
    "Please make sure that your code includes the functions from the test samples and that "
    "the input and output formats of these functions match the test samples.\n"
    "\n" + PAPER_CLOSING
)
"""``--prompt paper``: the whole (and only) message of the first turn, a user turn, as the
OpenCodeInterpreter paper's harness words it for MBPP and MBPP+: ``build_mbpp_instruction``
in OpenCodeInterpreter/OpenCodeInterpreter, ``evaluation/evaluate/multi_turn/
gen_plus_solution_multiround.py`` (the same in ``evaluation/evaluate/single_turn/
gen_plus_solution_singleround.py``), stripped and given "python" for both language slots, as
the harness does. ``{problem}`` is EvalPlus's MBPP+ ``prompt`` field, not stripped
(:func:`evalplus_prompt`). The trailing space and the missing final newline are the
harness's. It sends no system message."""


def load_problems(path: Path | None = None) -> list[Problem]:
    """All 399 problems, in the data set's order (Mbpp/2 .. Mbpp/809)."""
    source = path or DATA_FILE
    if not source.is_file():
        raise DataUnavailable(
            f"the MBPP+ data file {source} does not exist: pass MbppPlus.jsonl (or .jsonl.gz, "
            "EvalPlus's MBPP+ of 2023-11-16) with --data PATH"
        )
    data = read_data(source)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise DataUnavailable(
            f"{source} is not the MBPP+ file this harness is for: its sha256 is {digest}, "
            f"not {SHA256} (EvalPlus's MbppPlus.jsonl of 2023-11-16, 399 problems); "
            "pass that file with --data PATH"
        )
    problems = []
    for line in data.decode("utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        problems.append(
            Problem(
                task_id=row["task_id"],
                prompt=row["prompt"],
                entry_point=row["entry_point"],
                test=row["assertion"],
                canonical_solution=row["canonical_solution"],
                # Mbpp/793 keeps an empty object for its plus inputs.
                base_input=row["base_input"] if isinstance(row["base_input"], list) else [],
                plus_input=row["plus_input"] if isinstance(row["plus_input"], list) else [],
                atol=float(row.get("atol") or 0),
            )
        )
    return problems


# ---- what the model sees --------------------------------------------------------------------
def task_text(problem: Problem) -> str:
    """The task without the data set's quotes: "Write a function to ..."."""
    return problem.prompt.strip().strip("'\"").strip()


def example_assert(problem: Problem) -> str:
    """The first of the original asserts: the example the model is shown."""
    for line in problem.test.splitlines():
        if line.strip().startswith("assert"):
            return line.strip()
    return ""


def shown_problem(problem: Problem) -> str:
    """The problem as the paper's harness shows it (EvalPlus's later MBPP+ prompts): the task
    and one assert, in a docstring."""
    return f'"""\n{task_text(problem)}\n{example_assert(problem)}\n"""'


def evalplus_prompt(problem: Problem) -> str:
    """The problem as the paper's harness put it into :data:`PAPER_REQUEST`: the ``prompt``
    field of the EvalPlus MBPP+ release it downloads (``MBPP_PLUS_VERSION = "v0.1.0"`` in its
    ``evaluation/evalplus/evalplus/data/mbpp.py``): the task and the first original assert in
    a docstring, with a newline after it, which the harness does not strip."""
    return shown_problem(problem) + "\n"


def problem_messages(
    problem: Problem, system: str = SYSTEM_PROMPT, *, prompt: PromptChoice = DEFAULT_PROMPT
) -> list[Message]:
    """The first turn: the product's own system prompt, then the task with its example;
    with ``prompt="paper"``, the paper harness's turn instead (:func:`paper_messages`)."""
    if check_prompt(prompt) == "paper":
        return paper_messages(problem)
    return product_messages(system, TASK_REQUEST.format(problem=shown_problem(problem)))


def paper_messages(problem: Problem) -> list[Message]:
    """The paper harness's first turn: one user message, no system message. Its example is
    the one assert the product's prompt shows, too; the other asserts and the MBPP+ inputs
    stay hidden."""
    return [{"role": "user", "content": PAPER_REQUEST.format(problem=evalplus_prompt(problem))}]


# ---- what judges an answer ------------------------------------------------------------------
DISPUTED = frozenset({"Mbpp/164", "Mbpp/295"})
"""Problems whose original asserts contradict EvalPlus's canonical solution (the sum of
divisors with or without the number itself): EvalPlus gives them special oracles; MBPP's
asserts accept the canonical solution's output beside the assert's own."""


def judging_parts(problem: Problem, time_limit: float) -> list[dict[str, Any]]:
    """The two parts of the judging job: MBPP's asserts, then MBPP+'s inputs."""
    # EvalPlus runs the prompt with the canonical solution (the prompt is a docstring).
    canonical = problem.prompt + "\n" + problem.canonical_solution
    asserts: dict[str, Any] = {
        "name": MBPP,
        "kind": "asserts",
        "tests": problem.test,
        "time_limit": time_limit,
    }
    if problem.task_id in DISPUTED:
        asserts.update(canonical=canonical, also_canonical=True)
    return [
        asserts,
        {
            "name": MBPP_PLUS,
            "kind": "inputs",
            "task_id": problem.task_id,
            "canonical": canonical,
            "base_input": problem.base_input,
            "plus_input": problem.plus_input,
            "atol": problem.atol,
        },
    ]


__all__ = [
    "DATA_FILE",
    "MBPP",
    "MBPP_PLUS",
    "PAPER_REQUEST",
    "SHA256",
    "evalplus_prompt",
    "judging_parts",
    "load_problems",
    "paper_messages",
    "problem_messages",
    "shown_problem",
]
