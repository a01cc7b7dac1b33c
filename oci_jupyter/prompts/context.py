"""The notebook as the model sees it: cells, variables, and the ranking of cells by relevance,
with the data flow of a failing cell (which cells define what it reads) ranked first."""

from __future__ import annotations

import ast
import builtins
import keyword
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..types import ExecutionOutcome


@dataclass(frozen=True)
class CellContext:
    source: str
    output: str = ""
    label: str = ""
    """How to name the cell to the model, e.g. "In [3]"."""
    active: bool = False
    kind: str = "code"


@dataclass(frozen=True)
class VariableInfo:
    name: str
    type: str
    summary: str = ""

    def line(self) -> str:
        return f"- {self.name}: {self.type}" + (f", {self.summary}" if self.summary else "")


@dataclass(frozen=True)
class NotebookContext:
    language: str = "python"
    cells: Sequence[CellContext] = ()
    variables: Sequence[VariableInfo] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def rank_cells(
    cells: Sequence[CellContext], max_cells: int, needs: Collection[str] = ()
) -> list[int]:
    """Indices of the most relevant cells: the active one, then those above it (nearest first),
    then those below it. Without an active cell, the last cells are the nearest.

    With ``needs`` (the names a failing cell reads), the cells that define them come right
    after the active one: for each name the nearest definition above the cell that needs it,
    then in turn what those definitions need (the root cause of an error often sits a few
    cells up). A name defined only below counts too: notebooks run out of order."""
    if not cells:
        return []
    active = next((i for i, c in enumerate(cells) if c.active), len(cells))
    order = [active] if active < len(cells) else []
    order += list(range(min(active, len(cells)) - 1, -1, -1))
    order += list(range(active + 1, len(cells)))
    if needs:
        first = order[:1] if active < len(cells) else []
        wanted = _definitions(cells, active, needs, max_cells - len(first))
        order = first + wanted + [i for i in order if i not in wanted and i not in first]
    return order[:max_cells]


SEARCH_CELLS = 100
"""How far from the cell that needs a name its definition is looked for, each way."""


def _definitions(
    cells: Sequence[CellContext], position: int, needs: Collection[str], limit: int
) -> list[int]:
    """The cells that define ``needs`` for a cell at ``position``, nearest first, followed
    transitively (breadth first) up to ``limit`` cells."""
    defines: dict[int, set[str]] = {}

    def defined_by(index: int) -> set[str]:
        if index not in defines:
            cell = cells[index]
            defines[index] = defined_names(cell.source) if cell.kind == "code" else set()
        return defines[index]

    found: list[int] = []
    seen_names: set[str] = set()
    queue: list[tuple[str, int]] = [(name, position) for name in sorted(needs)]
    while queue and len(found) < limit:
        name, before = queue.pop(0)
        if name in seen_names:
            continue
        seen_names.add(name)
        # The nearest SEARCH_CELLS on each side: a definition is rarely further away, and
        # parsing costs ~60 µs a cell.
        start = min(before, len(cells))
        above = range(start - 1, max(start - SEARCH_CELLS, 0) - 1, -1)
        below = range(start + 1, min(start + SEARCH_CELLS, len(cells)))
        index = next(
            (
                i
                for i in [*above, *below]
                # The substring test first: most cells never mention the name.
                if i != position and name in cells[i].source and name in defined_by(i)
            ),
            None,
        )
        if index is None or index in found:
            continue
        found.append(index)
        queue += [
            (n, index) for n in sorted(used_names(cells[index].source)) if n not in seen_names
        ]
    return found


# ---- which cells a failing cell depends on -------------------------------------------------------
_IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_]\w*")
_ASSIGNED = re.compile(
    # [ \t], never \s: a pattern that may run across newlines from every line start is
    # quadratic in a cell of many blank lines (the event loop froze on one).
    r"^[ \t]*(?:def|class)[ \t]+([A-Za-z_]\w*)"
    r"|^[ \t]*([A-Za-z_]\w*(?:[ \t]*,[ \t]*[A-Za-z_]\w*)*)"
    r"[ \t]*(?:[-+*/%&|^@]|//|\*\*|<<|>>)?=(?!=)",
    re.MULTILINE,
)
_NOT_DEFINED = re.compile(r"name '([A-Za-z_]\w*)' is not defined")
_BUILTINS = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | {"display", "get_ipython"}


def _python_lines(source: str) -> str:
    """The cell with IPython's magic (``%``), shell (``!``) and help (``name?``) lines blanked:
    they are not Python. Line by line, so linear in the cell's size."""
    return "\n".join(
        ""
        if line.lstrip(" \t").startswith(("%", "!")) or line.rstrip(" \t").endswith("?")
        else line
        for line in source.split("\n")
    )


def _parse(source: str) -> ast.Module | None:
    """The cell as Python, with IPython's magic and shell lines blanked (they are not Python);
    None when it cannot be analysed."""
    if source.lstrip().startswith("%%"):
        return None  # a cell magic: its body is not Python in general
    return parse_python(_python_lines(source))


def parse_python(code: str) -> ast.Module | None:
    """``ast.parse``, or None for code it cannot analyse: a syntax error, and also code nested
    so deep that the parser runs out of stack or memory (an adversarial cell must never
    become an internal error)."""
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def defined_names(source: str) -> set[str]:
    """The global names a cell binds: assignments, imports, functions, classes, loop targets."""
    tree = _parse(source)
    if tree is None:
        # Unparseable: the plain `name = ...`, `def name`, `class name` lines still tell.
        found: set[str] = set()
        for match in _ASSIGNED.finditer(source):
            defined, assigned = match.groups()
            found.update([defined] if defined else (n.strip() for n in assigned.split(",")))
        return found
    names: set[str] = set()
    for node in _top_level(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name != "*":
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.Global):
            names.update(node.names)
    return names


def used_names(source: str) -> set[str]:
    """The names a cell reads that are not builtins (whether or not it also binds them:
    `df = df.dropna()` needs the earlier `df`)."""
    tree = _parse(source)
    if tree is None:
        return set(_IDENTIFIER.findall(_python_lines(source))) - _BUILTINS
    return {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    } - _BUILTINS


def _top_level(tree: ast.Module) -> Iterator[ast.AST]:
    """The nodes of a module outside function and class bodies (whose names are local), but
    with the names of the functions and classes themselves."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            # Decorators and defaults run at the top level; the body does not.
            stack.extend(node.decorator_list)
            continue
        if isinstance(
            node, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp
        ):
            continue
        stack.extend(ast.iter_child_nodes(node))


def failure_names(source: str, outcome: ExecutionOutcome | None = None) -> set[str]:
    """The names to look for in other cells when this cell failed: those it reads, and the one
    a NameError names (it may sit in a called function's body elsewhere)."""
    names = used_names(source)
    if outcome is not None:
        names.update(_NOT_DEFINED.findall(outcome.evalue))
    return names
