"""The notebook a DABench question runs in, as the sidebar's browser side handles one: its
folder (the question's CSV file and nothing else), the kernel's variables and values asked
silently (an empty silent cell with a user expression), and a run's output cut as the browser
reports it.
"""

from __future__ import annotations

import ast
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..prompts import VariableInfo
from .dabench import Question
from .kernels import KernelSession

OUTPUT_LIMIT = 4000
"""Characters of a run's output the browser reports (src/notebook.ts ``OUTPUT_LIMIT``), cut
to its head and tail as src/context.ts ``cut`` does."""
VARIABLES_TIMEOUT = 2.0
"""Seconds the kernel has to describe its variables (src/context.ts ``VARIABLES_TIMEOUT_MS``)."""
VARIABLES_EXPRESSION = (
    "__import__('json').dumps([__import__('dataclasses').asdict(v) for v in "
    "__import__('oci_jupyter.kernel_context', fromlist=['describe_variables'])"
    ".describe_variables(globals())])"
)
"""The kernel's variables as JSON (what the ``%%oci`` magic reads of its own namespace)."""


def values_expression(names: Sequence[str]) -> str:
    """The kernel expression for the short reprs of ``names`` (identifiers only)."""
    safe = [name for name in names if name.isidentifier()]
    return (
        "__import__('json').dumps(__import__('oci_jupyter.prompts.values', "
        f"fromlist=['lookup_values']).lookup_values(globals(), {json.dumps(safe)}))"
    )


async def kernel_variables(kernel: KernelSession) -> list[VariableInfo]:
    """The kernel's variables, asked silently (none when the kernel cannot tell)."""
    found = _json_result(await kernel.evaluate(VARIABLES_EXPRESSION, VARIABLES_TIMEOUT))
    if not isinstance(found, list):
        return []
    return [
        VariableInfo(str(v.get("name", "")), str(v.get("type", "")), str(v.get("summary", "")))
        for v in found
        if isinstance(v, dict) and v.get("name")
    ]


async def kernel_values(kernel: KernelSession, names: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``(name, short repr)`` of those of ``names`` the kernel has, asked silently."""
    if not names:
        return ()
    found = _json_result(await kernel.evaluate(values_expression(names), VARIABLES_TIMEOUT))
    if not isinstance(found, list):
        return ()
    return tuple(
        (str(pair[0]), str(pair[1])) for pair in found if isinstance(pair, list) and len(pair) == 2
    )


def _json_result(text: str | None) -> Any:
    """A user expression's text/plain (the repr of a JSON string) as the JSON's value."""
    if not text:
        return None
    try:
        return json.loads(ast.literal_eval(text))
    except (ValueError, SyntaxError, TypeError):
        return None


def browser_cut(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """A run's output as the browser reports it: head and tail with a marker past ``limit``."""
    if len(text) <= limit:
        return text
    keep = (limit - 40) // 2
    return f"{text[:keep]}\n... [{len(text) - 2 * keep} characters omitted] ...\n{text[-keep:]}"


def prepare_folder(question: Question, folder: Path) -> Path:
    """A notebook folder holding a copy of the question's CSV file and nothing else."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    target = folder / question.file_name
    shutil.copyfile(question.csv, target)
    return target


__all__ = [
    "OUTPUT_LIMIT",
    "VARIABLES_EXPRESSION",
    "browser_cut",
    "kernel_values",
    "kernel_variables",
    "prepare_folder",
    "values_expression",
]
