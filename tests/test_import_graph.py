"""The package's imports, read from its source (nothing is imported): no module may import
itself through others, and the product never imports the benchmark harness.

Every import that runs counts, at module level or inside a function: an import inside a
function is still a dependency, only a later one, and a circle through it is still a circle a
reader has to hold in mind. Imports under ``if TYPE_CHECKING:`` never run and are left out
(engine/base.py names engine/fim.py's ``FimPrompt`` there only for its annotations)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "oci_jupyter"
NAME = "oci_jupyter"
HARNESS = f"{NAME}.evaluation"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py") if "labextension" not in p.parts}


def _type_checking_only(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node, without the bodies of ``if TYPE_CHECKING:`` (their ``else`` runs)."""
    nodes: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        nodes.append(node)
        if _type_checking_only(node):
            assert isinstance(node, ast.If)
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return nodes


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports. ``from . import x`` names module ``x``
    when there is one, else the package; ``from .a import f`` names ``a``. Importing
    ``a.b`` also runs ``a``'s ``__init__``, but that is ``a``'s business (its own imports are
    its edges), not this module's choice."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                # ``from . import loop`` imports the module; ``from . import __version__``
                # (or any other name) runs the package's ``__init__``.
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in known else target)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


KNOWN_CIRCLES: list[list[str]] = []


def test_the_graph_is_read() -> None:
    edges = graph()
    assert f"{NAME}.loop" in edges[f"{NAME}.driver"]
    assert f"{NAME}.chat.session" in edges
    # A function-level import counts too.
    assert f"{NAME}.app" in edges[NAME]


def test_no_import_circles() -> None:
    circles = [c for c in _cycles(graph()) if c not in KNOWN_CIRCLES]
    assert circles == [], "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_the_product_never_imports_the_harness() -> None:
    edges = graph()
    product = {n: t for n, t in edges.items() if not (n == HARNESS or n.startswith(HARNESS + "."))}
    offenders = {
        name: sorted(t for t in targets if t == HARNESS or t.startswith(HARNESS + "."))
        for name, targets in product.items()
    }
    assert {n: t for n, t in offenders.items() if t} == {}
