"""What the model should know about a kernel's namespace, described cheaply and safely.

The rules are :mod:`.kernel_snippets.describe_variables`, the one file both surfaces run in the
kernel (the sidebar sends its text); this module gives ``%%oci`` its answer as
:class:`~oci_jupyter.prompts.VariableInfo`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .kernel_snippets import describe_variables as _snippet
from .kernel_snippets.describe_variables import MAX_COLUMNS
from .prompts import VariableInfo

__all__ = ["MAX_COLUMNS", "describe", "describe_variables"]


def describe_variables(namespace: Mapping[str, Any], limit: int = 100) -> list[VariableInfo]:
    """The user's variables: data first (frames, arrays, containers), then the rest."""
    return [VariableInfo(**info) for info in _snippet.describe_variables(namespace, limit)]


def describe(name: str, value: Any) -> VariableInfo | None:
    info = _snippet.describe(name, value)
    return None if info is None else VariableInfo(**info)
