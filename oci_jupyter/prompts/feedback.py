"""What the model is told after its code ran (or was not run): the "Execution result:" turns,
clipped as the paper's demo clips them, and the request that starts a fix."""

from __future__ import annotations

import re

from ..types import ExecutionOutcome
from .tracebacks import shape_traceback
from .values import values_text

FeedbackMarker = "Execution result:"
READ_HINT = (
    "If this shows the answer, give it from these values, without code, in the form the "
    "request asks for (its format and rounding; plain words otherwise). If a step of the "
    "request remains, or the value asked for is not printed yet, give the code that computes "
    "and prints it: never work a number out in your head."
)
CLIP_OVER = 1000
CLIP_KEEP = 200
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def clip(text: str, over: int = CLIP_OVER, keep: int = CLIP_KEEP) -> str:
    """Long text -> its head and tail with a marker, as the paper's demo does."""
    if len(text) <= over:
        return text
    omitted = len(text) - 2 * keep
    return f"{text[:keep]}\n... [{omitted} characters omitted] ...\n{text[-keep:]}"


EDITED_NOTE = "The user edited the code before it ran; this is what ran:"


def execution_feedback(outcome: ExecutionOutcome, edited: str | None = None) -> str:
    """The user turn that tells the model what its code did. ``edited``: the code that ran
    instead of the model's (the user changed the cell), shown first so that the model reads
    the result as that code's."""
    result = _result(outcome)
    if edited is None:
        return result
    return f"{EDITED_NOTE}\n```python\n{edited.rstrip()}\n```\n{result}"


def _result(outcome: ExecutionOutcome) -> str:
    output = clip(strip_ansi(outcome.output).rstrip())
    if outcome.status == "ok":
        if not output.strip() and outcome.values:
            # Nothing printed, but the values it computed are the result: the model reads
            # them instead of guessing what they are.
            return (
                f"{FeedbackMarker} the code ran without errors and printed nothing. The values "
                f"it assigned:\n{values_text(outcome.values)}\n\n{READ_HINT}"
            )
        if not output.strip():
            return (
                f"{FeedbackMarker} the code ran without errors but printed nothing. "
                "Print the result, or test it with assert, so that it can be checked."
            )
        return f"{FeedbackMarker}\n{output}\n\n{READ_HINT}"
    before = f"Output before it stopped:\n{output}\n" if output.strip() else ""
    if outcome.status == "timeout":
        limit = f" within {outcome.time_limit:g} seconds" if outcome.time_limit else ""
        return (
            f"{FeedbackMarker} the code did not finish{limit} and was interrupted.\n{before}"
            "Make it faster or do less work, and give the full corrected code."
        )
    if outcome.status == "cancelled":
        return (
            f"{FeedbackMarker} the run was interrupted (KeyboardInterrupt) before it "
            f"finished.\n{before}"
        ).rstrip()
    trace = clip(shape_traceback(strip_ansi(outcome.traceback)).strip())
    if not trace:
        trace = f"{outcome.ename}: {outcome.evalue}" if outcome.evalue else outcome.ename
    return (
        f"{FeedbackMarker} the code raised an error.\n{before}{trace}\n"
        "Fix the code and give the full corrected code in one ```python block."
    )


def fix_request(source: str, outcome: ExecutionOutcome, added: str = "") -> str:
    """The request that asks the model to repair a cell that failed, with what the user
    ``added`` in their own words, if anything."""
    trace = clip(shape_traceback(strip_ansi(outcome.traceback)).strip()) or outcome.summary()
    request = (
        f"This cell failed:\n```python\n{source.rstrip()}\n```\n{trace}\n\n"
        "Find the cause and fix the cell. Give the full corrected cell in one ```python block."
    )
    return f"{request}\n\nThe user adds: {added}" if added else request


def repeat_feedback(where: str, outcome: ExecutionOutcome) -> str:
    """The user turn for code that repeats code which already failed (it is not run again)."""
    return (
        f"{FeedbackMarker} not run: this is the same code as {where}, which failed with "
        f"{outcome.summary()}. Running it again would fail the same way. Find what causes "
        "the error, change that part of the code, and give the full corrected code in one "
        "```python block."
    )


def repeat_success_feedback(where: str, fix: bool = False) -> str:
    """The user turn for a step that repeats code which already ran without errors."""
    then = (
        "Say in a sentence or two what was wrong with the cell and how the fix solves it, "
        "without a code block."
        if fix
        else "Answer the request in plain words from that result, or give the next step's "
        "code if more is needed."
    )
    return (
        f"{FeedbackMarker} not run: this is the same code as {where}, which already ran "
        f"without errors; its result is above. {then}"
    )


def input_feedback() -> str:
    return (
        f"{FeedbackMarker} the code was not run because it calls input(), and nobody can "
        "answer it here. Assign the values directly instead, and give the full code."
    )


def unchecked_feedback(numbers: list[str]) -> str:
    """The user turn for an answer that states numbers no run printed."""
    listed = ", ".join(numbers[:5])
    return (
        f"{FeedbackMarker} not checked: your answer states {listed}, which no run printed. "
        "Do not work numbers out in your head: give the code that computes and prints it, "
        "then answer from the printed result."
    )


def unread_feedback() -> str:
    """The user turn for an answer given after a run that printed nothing."""
    return (
        f"{FeedbackMarker} not checked: the last run printed nothing, so your answer was not "
        "read off a result. Give the code that prints the value the request asks for; then "
        "answer from what it printed."
    )
