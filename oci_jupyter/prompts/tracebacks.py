"""Tracebacks shaped for the model: the frames of the code it wrote, the error, and one line
for the library frames between.

A pandas error is a traceback of 3,000 characters, most of them pandas' own source. Clipped
to its head and tail (the paper's demo clips every output that way), the one line that
matters fell out: which line of the cell failed (``----> 10 df[...] = ...``). Seen in
InfiAgent-DABench runs: the model then rewrote the code around the failing line and left
that line as it was, three attempts in a row. Keeping the user's frames whole and naming the
library frames in one line keeps that line, and shortens the text the model reads. Library
paths are written from the package on (``pandas/core/generic.py``): the folders of this
machine are not the model's business.
"""

from __future__ import annotations

import re

_IPYTHON_FRAME = re.compile(r"^(?:Cell In\s*\[\d+\], line \d+|Input In \[\d+\]|File \S.*)$")
"""A frame's first line in IPython's tracebacks (the kernel's)."""
_PYTHON_FRAME = re.compile(r'^  File "[^"]+", line \d+')
"""A frame's first line in Python's own tracebacks."""
_LIBRARY = re.compile(
    r"[/\\](?:site-packages|dist-packages)[/\\]|[/\\]lib[/\\]python3\.\d+[/\\]|[/\\]Lib[/\\]"
)
"""A path inside installed packages or the standard library."""
_PACKAGE_PATH = re.compile(
    r"(?:[^\s\"]*[/\\](?:site-packages|dist-packages)[/\\]|[^\s\"]*[/\\]lib[/\\]python3\.\d+[/\\])"
)


def _is_frame(line: str) -> bool:
    return bool(_IPYTHON_FRAME.match(line) or _PYTHON_FRAME.match(line))


def _is_frame_body(line: str) -> bool:
    """A frame's source lines: indented, or IPython's arrow at the failing line."""
    return not line or line[0].isspace() or line.startswith("-")


def shape_traceback(text: str) -> str:
    """``text`` (ANSI codes removed) with each run of library frames replaced by one line
    that counts them and names where the error was raised; the user's frames, the error and
    chained tracebacks' messages are kept as they are. A text without frames is returned
    as it is."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _is_frame(line)]
    if not starts:
        return text
    shaped = lines[: starts[0]]
    dropped: list[str] = []  # the library frames' first lines, in a run

    def flush(last: bool) -> None:
        if not dropped:
            return
        where = _PACKAGE_PATH.sub("", dropped[-1].strip())
        count = len(dropped)
        frames = "frame" if count == 1 else "frames"
        shaped.append(f"... [{count} {frames} of library code; the error was raised in {where}]")
        if not last:
            shaped.append("")
        dropped.clear()

    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        body_end = start + 1
        while body_end < end and _is_frame_body(lines[body_end]):
            body_end += 1
        rest = lines[body_end:end]  # an error message, a chained traceback's header
        if _LIBRARY.search(lines[start]):
            dropped.append(lines[start])
            if rest:
                flush(last=True)
                shaped.append("")
        else:
            flush(last=False)
            shaped.extend(lines[start:body_end])
        shaped.extend(rest)
    flush(last=True)
    return "\n".join(shaped)
