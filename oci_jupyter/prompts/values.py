"""The values a silent step assigned: what the model reads when its code printed nothing.

A step such as ``result = "east" if ... else "south"`` runs without errors and prints nothing.
With nothing to read, a small model guesses the answer (it said "The result is 'south'" after
code that had computed 'east'). A code interpreter shows the result instead: after a run that
succeeded and printed nothing, each surface looks up the names the code assigned in the kernel
(silently) and the feedback shows their short reprs as the run's result.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

# The lookup runs in the user's kernel, for %%oci and (as text) for the sidebar alike.
from ..kernel_snippets.values_lookup import MAX_REPR, lookup_values, short_repr

__all__ = [
    "MAX_NAMES",
    "MAX_REPR",
    "MAX_VALUES_TEXT",
    "assigned_names",
    "lookup_values",
    "short_repr",
    "values_text",
]

MAX_NAMES = 8
"""Names reported at most: a step assigns a few results; more would crowd the prompt."""
MAX_VALUES_TEXT = 1000


def assigned_names(code: str) -> list[str]:
    """The global names the code assigns, in the order it first assigns them: targets of
    ``=``, ``+=``, annotated assignments, ``for`` and ``with ... as``, also inside top-level
    ``if``/``for``/``try`` blocks (``if a > b: result = "a"``), never inside a function or
    class. Functions, classes and imports are left out (they are not results), so are
    ``_private`` names. Code that does not parse has none."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):  # deep nesting: no analysis
        return []
    found: dict[str, int] = {}

    def visit(statements: Iterable[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, ast.AugAssign | ast.AnnAssign | ast.For | ast.AsyncFor):
                targets = [node.target]
            elif isinstance(node, ast.With | ast.AsyncWith):
                targets = [i.optional_vars for i in node.items if i.optional_vars is not None]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name) and not name.id.startswith("_"):
                        found.setdefault(name.id, name.lineno)
            for field in ("body", "orelse", "finalbody"):
                visit(getattr(node, field, []) or [])
            for handler in getattr(node, "handlers", []) or []:
                visit(handler.body)

    visit(tree.body)
    return sorted(found, key=found.__getitem__)[:MAX_NAMES]


def values_text(values: Iterable[tuple[str, str]]) -> str:
    """The values as the feedback lists them, one ``name = repr`` a line, bounded."""
    lines: list[str] = []
    size = 0
    for name, text in values:
        line = f"{name} = {text[: MAX_REPR + 40]}"
        if size + len(line) > MAX_VALUES_TEXT:
            lines.append("...")
            break
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)
