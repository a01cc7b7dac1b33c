"""The short reprs of the names a silent step assigned, looked up in the user's kernel.

Runs in the user's kernel for both surfaces (see the package's docstring): standalone, the
standard library only, Python 3.8 syntax. Why the values are read at all:
:mod:`oci_jupyter.prompts.values`.
"""

from __future__ import annotations

import json
import reprlib
from typing import Any

MAX_REPR = 160
"""Characters of one value's repr (reprlib also cuts long lists, dicts and strings)."""


def _repr_rules() -> reprlib.Repr:
    rules = reprlib.Repr()
    rules.maxstring = rules.maxother = MAX_REPR
    rules.maxlist = rules.maxtuple = rules.maxset = rules.maxdict = 12
    rules.maxlevel = 3
    return rules


_RULES = _repr_rules()


def short_repr(value: Any) -> str:
    """A value as the feedback shows it: reprlib's repr, cut."""
    try:
        return _RULES.repr(value)
    except Exception as exc:  # a broken __repr__ of the user's object
        return f"<{type(value).__name__}: repr failed: {type(exc).__name__}>"


def lookup_values(namespace: Any, names: Any) -> tuple[tuple[str, str], ...]:
    """``name = short repr`` for each of ``names`` the namespace holds (``%%oci`` reads its
    shell's namespace directly; the sidebar through ``kernel_reply``)."""
    return tuple((name, short_repr(namespace[name])) for name in names if name in namespace)


class JsonText:
    """A result whose repr is its JSON: a user expression comes back as its repr (text/plain),
    so the JSON arrives as it is, not quoted as a Python string."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def kernel_reply(namespace: Any, names: Any) -> JsonText:
    """The sidebar's call (src/context.ts ``kernelValues``): ``{name: short repr}`` as JSON."""
    return JsonText(json.dumps(dict(lookup_values(namespace, names))))
