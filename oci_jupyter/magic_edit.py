"""``%oci edit``'s parts: which earlier cell it changes, what the kernel knows of that cell's
last run, and the diff it shows before the changed code runs.

A kernel cannot rewrite a notebook's cell: the magic runs the changed code in the user's
namespace, shows the diff against the cell's source, and offers the changed code as the next
cell (``set_next_input``). What a kernel keeps of an earlier cell: its source (IPython's raw
input history), its value (``Out[N]``, when the cell ended in an expression), and, for the
last cell that failed since ``%load_ext oci_jupyter``, its error. What a cell printed is not
kept by IPython, so the model does not see it.
"""

from __future__ import annotations

import argparse
import difflib
import re
from dataclasses import dataclass
from typing import Any

from IPython.display import display

from .magic_options import UsageError, parse_options
from .request import EditTarget
from .types import ExecutionOutcome

OUTPUT_CHARS = 2000
"""The longest ``Out[N]`` repr sent (the request clips it further, as every output)."""
_APOSTROPHE = re.compile(r"(?<=\w)'(?=\w)")
"""An apostrophe inside a word ("the list's sum"): not a quote for the option parser."""


@dataclass
class Failure:
    """The last cell that failed in this kernel: its number, source and error."""

    number: int
    source: str
    outcome: ExecutionOutcome


def parse_edit(rest: str) -> tuple[int | None, str, argparse.Namespace]:
    """``[N] <instruction> [options]`` -> the cell's number (None: the last cell run), the
    instruction and the options (``--no-exec``, the budgets, the sampling)."""
    options = parse_options(_APOSTROPHE.sub(r"\\'", rest))
    words = list(options.words)
    number = None
    if words and words[0].isdigit():
        number, words = int(words[0]), words[1:]
    return number, " ".join(words).strip(), options


def is_oci_cell(source: str) -> bool:
    return source.lstrip().startswith(("%%oci", "%oci"))


def edit_target(shell: Any, number: int | None, failure: Failure | None) -> tuple[int, EditTarget]:
    """Cell ``number`` of this kernel (None: the last one run before this one that is not an
    ``%oci`` cell) as an edit's target: its source as typed, ``Out[N]`` as its output, and
    its error if it is the last cell that failed. :class:`UsageError` says what is wrong."""
    raw = list(shell.history_manager.input_hist_raw)
    current = len(raw) - 1  # this cell
    if number is None:
        number = next(
            (n for n in range(current - 1, 0, -1) if raw[n].strip() and not is_oci_cell(raw[n])),
            None,
        )
        if number is None:
            raise UsageError("no cell has run before this one in this kernel: nothing to change")
    elif not 1 <= number < current:
        raise UsageError(
            f"there is no In [{number}] to change: the cells run before this one are "
            f"In [1] to In [{current - 1}]"
            if current > 1
            else f"there is no In [{number}] to change: no cell has run before this one"
        )
    source = raw[number]
    if is_oci_cell(source):
        raise UsageError(f"In [{number}] is an %oci cell: give the number of a code cell")
    if not source.strip():
        raise UsageError(f"In [{number}] is empty: nothing to change")
    value = shell.user_ns.get("Out", {}).get(number)
    output = _repr(value) if value is not None else ""
    failed = failure.outcome if failure is not None and failure.number == number else None
    return number, EditTarget(source, output=output, failure=failed)


def diff_text(before: str, after: str, label: str) -> str:
    """The unified diff of the cell's source and the changed code ("" when they are the
    same, whitespace at the ends of the cell aside)."""
    lines = difflib.unified_diff(
        before.rstrip().splitlines(),
        after.rstrip().splitlines(),
        fromfile=label,
        tofile=f"{label}, changed",
        lineterm="",
    )
    return "\n".join(lines)


def show_diff(diff: str) -> None:
    """The diff as text and as a Markdown ``diff`` block (coloured by the notebook). The
    fence is longer than any run of backticks in the diff, so the model's code cannot close
    it: everything inside shows literally, as code."""
    if not diff:
        display({"text/plain": "(no change)", "text/markdown": "*(no change)*"}, raw=True)
        return
    longest = max((len(run) for run in re.findall(r"`+", diff)), default=0)
    fence = "`" * max(3, longest + 1)
    display({"text/plain": diff, "text/markdown": f"{fence}diff\n{diff}\n{fence}"}, raw=True)


def _repr(value: Any) -> str:
    try:
        return repr(value)[:OUTPUT_CHARS]
    except Exception:  # a broken __repr__ of the user's object: no output then
        return ""
