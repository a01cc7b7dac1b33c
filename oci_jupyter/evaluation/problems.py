"""What every benchmark's problems share: the problem itself, and choosing some by id."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class DataUnavailable(RuntimeError):
    """A benchmark's data file is missing or is not the expected file."""


class UnknownProblem(ValueError):
    """A requested problem id is not in the data set."""


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    """What the model is shown: HumanEval's signature and docstring, MBPP's task text."""
    entry_point: str
    test: str
    """The hidden tests: HumanEval's ``check(candidate)``, MBPP's original asserts."""
    canonical_solution: str = ""
    base_input: list[Any] = field(default_factory=list)
    """MBPP+: the original tests' inputs (argument lists, as JSON keeps them)."""
    plus_input: list[Any] = field(default_factory=list)
    """MBPP+: EvalPlus's added inputs."""
    atol: float = 0.0
    """MBPP+: the tolerance for float outputs."""

    @property
    def number(self) -> int:
        return task_number(self.task_id)

    @property
    def prefix(self) -> str:
        """``HumanEval/``, ``Mbpp/``: the ids' common part."""
        return self.task_id.rsplit("/", 1)[0] + "/"


def read_data(path: Path) -> bytes:
    """A data file's bytes, gunzipped if it is gzip (``.jsonl`` and ``.jsonl.gz`` both do)."""
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError) as exc:
        raise DataUnavailable(f"cannot read {path}: {exc}; pass the file with --data PATH") from exc


def task_number(task_id: str) -> int:
    try:
        return int(task_id.rsplit("/", 1)[-1])
    except ValueError:
        return -1


def normalise_id(text: str, prefix: str = "HumanEval/") -> str:
    """``HumanEval/5``, ``humaneval/5`` and ``5`` all name HumanEval/5 (``Mbpp/2``, ``2``
    name Mbpp/2 with that prefix)."""
    text = text.strip()
    if text.isdigit():
        return f"{prefix}{int(text)}"
    if text.lower().startswith(prefix.lower()):
        return prefix + text[len(prefix) :]
    return text


def select(
    problems: Sequence[Problem], ids: Sequence[str] | None = None, limit: int | None = None
) -> list[Problem]:
    """The problems named by ``ids`` (in that order), else all; then the first ``limit``."""
    chosen = list(problems)
    if ids and problems:
        prefix = problems[0].prefix
        by_id = {p.task_id: p for p in problems}
        wanted = [normalise_id(i, prefix) for i in ids if i.strip()]
        unknown = [i for i in wanted if i not in by_id]
        if unknown:
            first, last = problems[0].task_id, problems[-1].task_id
            raise UnknownProblem(
                f"unknown problem id{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. "
                f"Ids run from {first} to {last} (a bare number works too); "
                "`oci-eval --list` prints them all."
            )
        chosen = [by_id[i] for i in dict.fromkeys(wanted)]
    if limit is not None:
        chosen = chosen[:limit]
    return chosen
