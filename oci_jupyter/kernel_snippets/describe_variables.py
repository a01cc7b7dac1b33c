"""What the model should know about a kernel's namespace, described cheaply and safely.

Runs in the user's kernel for both surfaces (see the package's docstring): standalone, the
standard library only, Python 3.8 syntax.

Only types known to be cheap to inspect get more than their type name: an arbitrary object's
``__repr__`` or ``__len__`` could be slow or have side effects, so the types are compared
exactly (a ``list`` subclass's own ``__len__`` may count rows in a database). pandas and numpy
objects are recognised by their type's module, so nothing the user has not imported is imported.
"""

from __future__ import annotations

import json
import types
from typing import Any

HIDDEN = {"In", "Out", "exit", "quit", "get_ipython", "open"}
SCALARS = (bool, int, float, complex)
SIZED = (list, tuple, dict, set, frozenset)
MAX_COLUMNS = 25
MAX_SUMMARY = 2000
"""A summary's characters at most: the server refuses a variable's summary over 5,000."""


def describe_variables(namespace: Any, limit: int = 100) -> list[dict[str, str]]:
    """The user's variables as ``{name, type, summary}``: data first (frames, arrays,
    containers, scalars), then other objects, then functions and classes."""
    found: list[tuple[int, dict[str, str]]] = []
    for name, value in list(namespace.items()):
        if name.startswith("_") or name in HIDDEN:
            continue
        try:
            if isinstance(value, types.ModuleType):
                continue
            info = describe(name, value)
            rank = _rank(value)
        except Exception:  # proxies whose attribute lookup raises: name and type only
            info, rank = variable(name, type(value).__name__), 2
        if info is not None:
            found.append((rank, info))
    found.sort(key=lambda item: (item[0], item[1]["name"]))
    return [info for _, info in found[:limit]]


def variable(name: str, type_name: str, summary: str = "") -> dict[str, str]:
    return {"name": name, "type": type_name, "summary": summary[:MAX_SUMMARY]}


def describe(name: str, value: Any) -> dict[str, str] | None:
    """One variable, or None for what is not the user's (builtin and IPython callables)."""
    kind = type(value)
    module = kind.__module__ or ""
    type_name = kind.__name__
    try:
        if module.startswith("pandas") and type_name == "DataFrame":
            columns = [f"{c} ({t})" for c, t in list(value.dtypes.items())[:MAX_COLUMNS]]
            more = len(value.columns) - len(columns)
            tail = f", ... {more} more" if more > 0 else ""
            shape = f"shape {value.shape}"
            return variable(name, "DataFrame", f"{shape}, columns: {', '.join(columns)}{tail}")
        if module.startswith("pandas") and type_name == "Series":
            return variable(name, "Series", f"len {len(value)}, dtype {value.dtype}")
        if module.startswith("numpy") and type_name == "ndarray":
            return variable(name, "ndarray", f"shape {value.shape}, dtype {value.dtype}")
        # Exact types only: a subclass's own __len__/__repr__ could be slow or have effects.
        if kind in SCALARS:
            return variable(name, type_name, f"value {value!r}")
        if kind is str:
            shown = value if len(value) <= 60 else value[:57] + "..."
            return variable(name, "str", f"len {len(value)}, value {shown!r}")
        if kind in SIZED:
            return variable(name, type_name, f"len {len(value)}")
        if isinstance(value, types.FunctionType):
            return variable(name, "function", f"{name}{_signature(value)}")
        if isinstance(value, type):
            return variable(name, "class")
    except Exception:  # a broken object still gets its type name
        pass
    if callable(value) and module.startswith(("builtins", "IPython")):
        return None
    return variable(name, f"{module}.{type_name}" if module not in ("builtins", "") else type_name)


def _signature(function: types.FunctionType) -> str:
    import inspect

    try:
        return str(inspect.signature(function))
    except (TypeError, ValueError):
        return "(...)"


def _rank(value: Any) -> int:
    module = type(value).__module__ or ""
    if module.startswith(("pandas", "numpy")):
        return 0
    if isinstance(value, (*SIZED, str, *SCALARS)):
        return 1
    if isinstance(value, (types.FunctionType, type)):
        return 3
    return 2


class JsonText:
    """A result whose repr is its JSON: a user expression comes back as its repr (text/plain),
    so the JSON arrives as it is, not quoted as a Python string."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def kernel_reply(namespace: Any) -> JsonText:
    """The sidebar's call (src/context.ts ``kernelVariables``): the description as JSON."""
    return JsonText(json.dumps(describe_variables(namespace)))
