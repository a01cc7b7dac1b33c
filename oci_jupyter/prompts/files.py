"""The data files a request names, previewed for the model.

"What is the mean fare in titanic.csv?" A small model that has not seen the file guesses its
columns (``df['fare']`` for a column named ``Fare``), fails, and guesses again. A person
would open the file first; so does the interpreter: a file that the request names and that
lies in the notebook's folder (where the kernel runs) is shown to the model as its first
lines, its size and its line count, before any code runs. Only files inside that folder, by
the name the request gives, and only their first few kilobytes are read; what they contain
is data, shown as text in a fenced block, never instructions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

DATA_SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".jsonl", ".dat", ".tab")
"""Text data files a preview can show (binary formats such as .xlsx or .parquet cannot be
read as lines; their name alone is no help)."""
MAX_FILES = 3
PREVIEW_LINES = 6
"""The header and five rows: enough to see the columns, their kind and the separator."""
MAX_LINE = 300
MAX_READ = 64 * 1024
MAX_COUNTED = 64 * 1024 * 1024
"""Files up to this size have their lines counted (a fast scan); larger ones only a size."""

_NAME = re.compile(
    r"(?<![\w./-])((?:[\w.-]+/)*[\w.-]+(?:"
    + "|".join(re.escape(s) for s in DATA_SUFFIXES)
    + r"))\b",
    re.IGNORECASE,
)


def named_files(request: str, folder: Path) -> list[Path]:
    """The data files that ``request`` names and that exist inside ``folder`` (in the order
    named, each once, at most :data:`MAX_FILES`)."""
    try:
        root = folder.resolve(strict=True)
    except OSError:
        return []
    found: list[Path] = []
    for match in _NAME.finditer(request):
        candidate = (root / match.group(1)).resolve()
        if not candidate.is_relative_to(root) or candidate in found:
            continue  # never outside the notebook's folder (no ../, no absolute paths)
        if candidate.is_file():
            found.append(candidate)
        if len(found) == MAX_FILES:
            break
    return found


def preview(path: Path, folder: Path) -> str | None:
    """The file's name, size, line count and first lines, as the model reads them."""
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            head = file.read(MAX_READ)
    except OSError:
        return None
    text = head.decode("utf-8", errors="replace")
    lines = text.splitlines()[:PREVIEW_LINES]
    if len(head) == MAX_READ and len(lines) == len(text.splitlines()):
        lines = lines[:-1]  # the last line read may be cut
    shown = [line if len(line) <= MAX_LINE else line[:MAX_LINE] + " …" for line in lines]
    count = _line_count(path, size)
    about = f"{_size(size)}" + (f", {count:,} lines" if count is not None else "")
    name = path.relative_to(folder.resolve()).as_posix()
    body = "\n".join(shown)
    return f"{name} ({about}), its first lines:\n```text\n{body}\n```"


def file_previews(request: str, folder: Path | None) -> list[str]:
    """Previews of the data files ``request`` names in ``folder`` (none without a folder)."""
    if folder is None:
        return []
    previews = (preview(path, folder) for path in named_files(request, folder))
    return [text for text in previews if text]


def _line_count(path: Path, size: int) -> int | None:
    if size > MAX_COUNTED:
        return None
    count = 0
    last = b"\n"
    try:
        with path.open("rb") as file:
            while chunk := file.read(1024 * 1024):
                count += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError:
        return None
    return count + (0 if last == b"\n" else 1)


def _size(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return f"{size} bytes"


def files_section(previews: Sequence[str]) -> str:
    return "Data files the request names (in the notebook's folder):\n" + "\n\n".join(previews)
