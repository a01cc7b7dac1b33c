"""What the model should know about a kernel's namespace, described cheaply and safely.

Only types known to be cheap to inspect get more than their type name: an arbitrary object's
``__repr__`` or ``__len__`` could be slow or have side effects.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

from .prompts import VariableInfo

_HIDDEN = {"In", "Out", "exit", "quit", "get_ipython", "open"}
_SCALARS = (bool, int, float, complex)
_SIZED = (list, tuple, dict, set, frozenset)
MAX_COLUMNS = 25


def describe_variables(namespace: Mapping[str, Any], limit: int = 100) -> list[VariableInfo]:
    """The user's variables: data first (frames, arrays, containers), then the rest."""
    found: list[tuple[int, VariableInfo]] = []
    for name, value in list(namespace.items()):
        if name.startswith("_") or name in _HIDDEN:
            continue
        try:
            if isinstance(value, types.ModuleType):
                continue
            info = describe(name, value)
            rank = _rank(value)
        except Exception:  # proxies whose attribute lookup raises: name and type only
            info, rank = VariableInfo(name, type(value).__name__), 2
        if info is not None:
            found.append((rank, info))
    found.sort(key=lambda item: (item[0], item[1].name))
    return [info for _, info in found[:limit]]


def describe(name: str, value: Any) -> VariableInfo | None:
    kind = type(value)
    module = kind.__module__ or ""
    type_name = kind.__name__
    try:
        if module.startswith("pandas") and type_name == "DataFrame":
            columns = [f"{c} ({t})" for c, t in list(value.dtypes.items())[:MAX_COLUMNS]]
            more = len(value.columns) - len(columns)
            tail = f", ... {more} more" if more > 0 else ""
            shape = f"shape {value.shape}"
            return VariableInfo(name, "DataFrame", f"{shape}, columns: {', '.join(columns)}{tail}")
        if module.startswith("pandas") and type_name == "Series":
            return VariableInfo(name, "Series", f"len {len(value)}, dtype {value.dtype}")
        if module.startswith("numpy") and type_name == "ndarray":
            return VariableInfo(name, "ndarray", f"shape {value.shape}, dtype {value.dtype}")
        # Exact types only: a subclass's own __len__/__repr__ could be slow or have effects.
        if kind in _SCALARS:
            return VariableInfo(name, type_name, f"value {value!r}")
        if kind is str:
            shown = value if len(value) <= 60 else value[:57] + "..."
            return VariableInfo(name, "str", f"len {len(value)}, value {shown!r}")
        if kind in _SIZED:
            return VariableInfo(name, type_name, f"len {len(value)}")
        if isinstance(value, types.FunctionType):
            return VariableInfo(name, "function", f"{name}{_signature(value)}")
        if isinstance(value, type):
            return VariableInfo(name, "class", "")
    except Exception:  # a broken object still gets its type name
        pass
    if callable(value) and module.startswith(("builtins", "IPython")):
        return None
    return VariableInfo(name, f"{module}.{type_name}" if module != "builtins" else type_name)


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
    if isinstance(value, (*_SIZED, str, *_SCALARS)):
        return 1
    if isinstance(value, types.FunctionType | type):
        return 3
    return 2
