"""What the model reads in an ``edit`` request: the cell to change with its last output or
error, the user's instruction, and after the changed cell ran, its result with the request
for a one-sentence summary of the change.

An edit is about one cell the user already has (``fix`` repairs one that failed; ``chat``
writes new ones): the model gives the whole changed cell, which replaces it, runs, and is
refined if it fails. After a successful run the model says in a sentence what it changed;
that sentence ends the request (the chat shows it as the answer, ``%oci edit`` last).
"""

from __future__ import annotations

from ..types import ExecutionOutcome
from .context import failure_names
from .feedback import EDITED_NOTE, FeedbackMarker, clip, strip_ansi
from .tracebacks import shape_traceback
from .values import values_text

EDIT_CELL_PLACEHOLDER = "(the cell to change, shown below)"
"""The target cell's place in the notebook's context: its source is in the request."""
SUMMARY_ASK = (
    "Say in one sentence what you changed, without a code block. If the result shows that "
    "the change does not do what the user asked, give the full corrected cell in one "
    "```python block instead."
)


def edit_request(
    source: str,
    instruction: str,
    *,
    output: str = "",
    failure: ExecutionOutcome | None = None,
    selection: str = "",
) -> str:
    """The request that asks the model to change ``source`` as the user said. ``output``:
    the cell's last output as text; ``failure``: how its last run failed, if it did;
    ``selection``: the lines the user selected (what the instruction is about)."""
    parts = [
        f"Change this cell as the user asks: {instruction.strip()}",
        f"```python\n{source.rstrip()}\n```",
    ]
    if failure is not None:
        trace = clip(shape_traceback(strip_ansi(failure.traceback)).strip()) or failure.summary()
        before = clip(strip_ansi(output).rstrip())
        shown = f"Output before it failed:\n{before}\n" if before.strip() else ""
        parts.append(f"Its last run failed:\n{shown}{trace}")
    elif output.strip():
        parts.append(f"Its last output:\n{clip(strip_ansi(output).rstrip())}")
    if selection.strip() and selection.strip() != source.strip():
        parts.append(
            "The user selected these lines; the change is about them:\n"
            f"```python\n{selection.rstrip()}\n```"
        )
    parts.append(
        "Keep what the user did not ask to change. Give the full changed cell in one "
        "```python block."
    )
    return "\n\n".join(parts)


def edit_names(source: str, failure: ExecutionOutcome | None = None) -> set[str]:
    """The names whose defining cells the model should see first: those the cell reads
    (and, if its last run failed with a NameError, the missing one), as for a fix."""
    return failure_names(source, failure)


def edit_success_feedback(outcome: ExecutionOutcome, edited: str | None = None) -> str:
    """The user turn after the changed cell ran without errors: its result, then the
    request for the one-sentence summary that ends the edit. ``edited``: the code that ran
    instead of the model's (the user changed the cell before running it)."""
    output = clip(strip_ansi(outcome.output).rstrip())
    if output.strip():
        result = f"{FeedbackMarker} the changed cell ran without errors; its result:\n{output}"
    elif outcome.values:
        result = (
            f"{FeedbackMarker} the changed cell ran without errors and printed nothing. The "
            f"values it assigned:\n{values_text(outcome.values)}"
        )
    else:
        result = f"{FeedbackMarker} the changed cell ran without errors and printed nothing."
    said = f"{result}\n\n{SUMMARY_ASK}"
    if edited is None:
        return said
    return f"{EDITED_NOTE}\n```python\n{edited.rstrip()}\n```\n{said}"


def edit_repeat_success_feedback(where: str) -> str:
    """The user turn for changed code that repeats code which already ran without errors."""
    return (
        f"{FeedbackMarker} not run: this is the same code as {where}, which already ran "
        "without errors; its result is above. Say in one sentence what you changed, without "
        "a code block."
    )


def edit_unchanged_feedback() -> str:
    """The user turn for an answer that hands the cell back as it was: running it would show
    nothing new and change nothing the user asked for."""
    return (
        f"{FeedbackMarker} not run: this is the cell as it was, unchanged. Make the change "
        "the request asks for and give the full changed cell in one ```python block."
    )
