"""InfiAgent-DABench: its questions, the check of its data, and what the model is asked.

InfiAgent-DABench (Hu et al., ICML 2024) asks data-analysis questions about CSV files: 257
closed-form questions over 52 files, each with its constraints and the format of its answer
(``@answer_name[value]``, one per sub-answer), graded automatically (:mod:`.dabench_scoring`).

**Its data is licensed CC BY-NC 4.0: none of it is in this package or its repository.** The
harness reads a data folder (``--data PATH``) laid out as the one the project keeps beside
its repository (``../shared/data/dabench``): ``da-dev-questions.jsonl``,
``da-dev-labels.jsonl``, ``tables/<file_name>.csv`` and ``SHA256SUMS``, the sha256 of every
file there. Every file the run reads is checked against ``SHA256SUMS`` first: a file whose
hash differs, or that the sums leave out, is refused. Whether the questions and labels are
the published release (their sha256 as pinned below) is recorded with the run.

The request a question becomes (:func:`request_text`) is the question, its constraints and its
format as the benchmark gives them, with the name of its CSV file, which sits in the kernel's
working folder as it would in a notebook's folder. Nothing here special-cases a question.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .problems import DataUnavailable, UnknownProblem

QUESTIONS_FILE = "da-dev-questions.jsonl"
LABELS_FILE = "da-dev-labels.jsonl"
TABLES = "tables"
SUMS_FILE = "SHA256SUMS"
ID_PREFIX = "DABench/"
LEVELS = ("easy", "medium", "hard")
PUBLISHED_SHA256 = {
    QUESTIONS_FILE: "49ae783b20ecb60449ce1443c524e89f8ca8353a04e05e4d14a055b7a6f06126",
    LABELS_FILE: "83b8fb8133c1794fcb6b42435e9cce124d22f68b71e2eedb37c973e40b5a18c2",
}
"""The closed-form dev set of InfiAgent/InfiAgent (commit d02d18a, ``examples/DA-Agent/data``):
257 questions over 52 CSV files. Hashes only: a run on another data folder is marked so."""
DATA_HINT = (
    "pass the DABench data folder with --data PATH (the folder that holds "
    f"{QUESTIONS_FILE}, {LABELS_FILE}, {TABLES}/ and {SUMS_FILE}; the project keeps it in "
    "../shared/data/dabench beside the repository)"
)

REQUEST_TEMPLATE = """\
{question}

Constraints: {constraints}

Answer format: {format}

The data is in the file `{file_name}` in the current folder. Give the final answer in the \
answer format above."""
"""A question as the user's words in the chat: the benchmark's question, constraints and
format word for word, and where its data is (the CSV sits in the kernel's working folder)."""

QUICK_SIZE = 60
"""Questions in ``--subset quick``."""
QUICK_RULE = (
    f"{QUICK_SIZE} questions stratified by level: each level gets its share of {QUICK_SIZE} "
    "in proportion to its size (rounded), taken evenly spaced through that level's questions "
    "in id order (the k-th of n picks the question at index floor((k + 1/2) * size / n))"
)
SUBSETS = ("quick",)


class DataMismatch(DataUnavailable):
    """A data file is not the one its SHA256SUMS line names (or no line names it)."""


@dataclass(frozen=True)
class Question:
    id: int
    question: str
    concepts: tuple[str, ...]
    constraints: str
    format: str
    file_name: str
    level: str
    labels: tuple[tuple[str, str], ...]
    """``(answer_name, value)`` for each sub-answer, as the labels file gives them (a name
    given twice keeps its last value, as the benchmark's scorer reads them)."""
    csv: Path
    """The question's CSV file in the data folder."""

    @property
    def task_id(self) -> str:
        return f"{ID_PREFIX}{self.id}"

    @property
    def expected(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class DataSet:
    folder: Path
    questions: list[Question]
    sha256: dict[str, str]
    """Of the questions and the labels files."""

    @property
    def published(self) -> bool:
        """Whether the questions and labels are the published release's."""
        return all(self.sha256.get(name) == digest for name, digest in PUBLISHED_SHA256.items())

    def describe(self) -> dict[str, Any]:
        """What ``run.json`` records of the data."""
        return {
            "data": str(self.folder),
            "data_sha256": dict(self.sha256),
            "data_release": (
                "the published InfiAgent-DABench dev set (257 questions)"
                if self.published
                else "not the published release (another questions or labels file)"
            ),
        }


# ---- where the data is ----------------------------------------------------------------------
def repository_root() -> Path:
    """The folder this package sits in (the repository, in a source checkout)."""
    return Path(__file__).resolve().parents[2]


def default_data_folder(cwd: Path | None = None) -> Path | None:
    """``../shared/data/dabench`` beside the repository, else beside the current folder, if
    either exists."""
    here = Path.cwd() if cwd is None else cwd
    for base in (repository_root(), here):
        candidate = (base.parent / "shared" / "data" / "dabench").resolve()
        if candidate.is_dir():
            return candidate
    return None


def find_data(path: Path | None = None) -> Path:
    """The data folder: ``path``, else the default one; a clear error when there is none."""
    if path is None:
        found = default_data_folder()
        if found is None:
            raise DataUnavailable(
                "no DABench data folder: ../shared/data/dabench exists neither beside the "
                f"repository ({repository_root().parent}) nor beside the current folder; "
                + DATA_HINT
            )
        return found
    if not path.is_dir():
        raise DataUnavailable(f"{path} is not a folder; {DATA_HINT}")
    return path


# ---- the data check ---------------------------------------------------------------------------
def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sums(folder: Path) -> dict[str, str]:
    """``SHA256SUMS``: relative path -> sha256 (``sha256sum``'s format, text or binary mode)."""
    path = folder / SUMS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataUnavailable(
            f"{path} cannot be read ({exc.strerror or exc}): the data is checked against it; "
            + DATA_HINT
        ) from exc
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, name = line.partition(" ")
        name = name[1:] if name[:1] in ("*", " ") else name
        if len(digest) != 64 or not name:
            raise DataUnavailable(f"{path}, line {number}: not a sha256sum line: {line[:80]!r}")
        sums[name] = digest.lower()
    return sums


def check_files(folder: Path, names: Iterable[str], sums: dict[str, str]) -> None:
    """Refuse any of ``names`` (paths relative to ``folder``) whose sha256 is not the one
    ``sums`` gives, that ``sums`` leaves out, or that is missing."""
    for name in dict.fromkeys(names):
        path = folder / name
        expected = sums.get(name)
        if expected is None:
            raise DataMismatch(f"{path} is not listed in {folder / SUMS_FILE}: refused")
        if not path.is_file():
            raise DataUnavailable(f"{path} is missing (listed in {SUMS_FILE}); {DATA_HINT}")
        actual = sha256_of(path)
        if actual != expected:
            raise DataMismatch(
                f"{path} has sha256 {actual}, not {expected} as {SUMS_FILE} says: refused "
                "(the data must not change; restore the file)"
            )


# ---- loading ----------------------------------------------------------------------------------
def load(path: Path | None = None) -> DataSet:
    """Every question with its labels, in id order, after the check of every file they use."""
    folder = find_data(path)
    sums = read_sums(folder)
    check_files(folder, [QUESTIONS_FILE, LABELS_FILE], sums)
    raw_questions = _read_jsonl(folder / QUESTIONS_FILE)
    labels: dict[int, list[list[str]]] = {}
    for row in _read_jsonl(folder / LABELS_FILE):
        labels[int(row["id"])] = row["common_answers"]
    questions: list[Question] = []
    for row in raw_questions:
        number = int(row["id"])
        if number not in labels:
            raise DataUnavailable(f"{folder / LABELS_FILE} has no labels for question {number}")
        file_name = str(row["file_name"])
        if Path(file_name).name != file_name or file_name in ("", ".", ".."):
            raise DataUnavailable(f"question {number}: {file_name!r} is not a plain file name")
        questions.append(
            Question(
                id=number,
                question=str(row["question"]),
                concepts=tuple(str(c) for c in row.get("concepts") or ()),
                constraints=str(row.get("constraints") or ""),
                format=str(row["format"]),
                file_name=file_name,
                level=str(row.get("level") or "?"),
                labels=tuple((str(name), str(value)) for name, value in labels[number]),
                csv=folder / TABLES / file_name,
            )
        )
    questions.sort(key=lambda q: q.id)
    check_files(folder, [f"{TABLES}/{q.file_name}" for q in questions], sums)
    digests = {name: sums[name] for name in (QUESTIONS_FILE, LABELS_FILE)}
    return DataSet(folder, questions, digests)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DataUnavailable(f"{path}, line {number}: not JSON ({exc})") from exc
            if not isinstance(row, dict) or "id" not in row:
                raise DataUnavailable(f"{path}, line {number}: not a question's record")
            rows.append(row)
    return rows


# ---- what the model is asked --------------------------------------------------------------------
def request_text(question: Question) -> str:
    """The user's words for ``question`` (:data:`REQUEST_TEMPLATE`)."""
    return REQUEST_TEMPLATE.format(
        question=question.question.strip(),
        constraints=question.constraints.strip(),
        format=question.format.strip(),
        file_name=question.file_name,
    )


# ---- choosing questions -------------------------------------------------------------------------
def quick_subset(questions: Sequence[Question], size: int = QUICK_SIZE) -> list[Question]:
    """:data:`QUICK_RULE`: a deterministic selection stratified by level, in id order."""
    ordered = sorted(questions, key=lambda q: q.id)
    if len(ordered) <= size:
        return ordered
    levels = sorted({q.level for q in ordered}, key=_level_rank)
    shares = _shares([sum(1 for q in ordered if q.level == lv) for lv in levels], size)
    chosen: set[int] = set()
    for level, share in zip(levels, shares, strict=True):
        members = [q for q in ordered if q.level == level]
        for k in range(share):
            chosen.add(members[math.floor((k + 0.5) * len(members) / share)].id)
    return [q for q in ordered if q.id in chosen]


def _level_rank(level: str) -> tuple[int, str]:
    return (LEVELS.index(level) if level in LEVELS else len(LEVELS), level)


def _shares(counts: Sequence[int], size: int) -> list[int]:
    """``size`` split in proportion to ``counts`` (largest remainders, ties to the first)."""
    total = sum(counts)
    exact = [size * c / total for c in counts]
    shares = [math.floor(x) for x in exact]
    order = sorted(range(len(counts)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[: size - sum(shares)]:
        shares[i] += 1
    return [min(s, c) for s, c in zip(shares, counts, strict=True)]


def normalise_id(text: str) -> str:
    """``DABench/5``, ``dabench/5`` and ``5`` all name question 5."""
    text = text.strip()
    if text.lower().startswith(ID_PREFIX.lower()):
        text = text[len(ID_PREFIX) :]
    return f"{ID_PREFIX}{text}"


def select(
    questions: Sequence[Question],
    ids: Sequence[str] | None = None,
    subset: str | None = None,
    limit: int | None = None,
) -> list[Question]:
    """The questions named by ``ids`` (in that order), else ``subset``'s, else all (id order);
    then the first ``limit``."""
    chosen = sorted(questions, key=lambda q: q.id)
    if ids:
        by_id = {q.task_id: q for q in chosen}
        wanted = [normalise_id(i) for i in ids if i.strip()]
        unknown = [i for i in wanted if i not in by_id]
        if unknown:
            raise UnknownProblem(
                f"unknown question id{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. "
                "`oci-eval dabench --list` prints them all (a bare number works too)."
            )
        chosen = [by_id[i] for i in dict.fromkeys(wanted)]
    elif subset is not None:
        if subset not in SUBSETS:
            raise UnknownProblem(f"unknown subset {subset!r}: one of {', '.join(SUBSETS)}")
        chosen = quick_subset(chosen)
    if limit is not None:
        chosen = chosen[:limit]
    return chosen


__all__ = [
    "DATA_HINT",
    "LEVELS",
    "PUBLISHED_SHA256",
    "QUICK_RULE",
    "REQUEST_TEMPLATE",
    "SUBSETS",
    "DataMismatch",
    "DataSet",
    "Question",
    "check_files",
    "default_data_folder",
    "find_data",
    "load",
    "quick_subset",
    "read_sums",
    "request_text",
    "select",
]
