"""The verdicts of the judging process and the paper's feedback text for each failure, and
running the candidate: its definitions loaded, its output swallowed, under a time limit.

``feedback`` is the text the OpenCodeInterpreter paper's harness gives the model for a failure
(``oci-eval --feedback tests``): a wrong result as "The results aren't as expected." with the
input and the expected and actual outputs; a time-out as "Execution timed out."; an exception
as its traceback from the candidate's first frame on; each cut to :data:`FEEDBACK_LIMIT`
characters. Standard library only: this runs in the judging process (see :mod:`.`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import signal
import traceback
from collections.abc import Callable, Iterator
from typing import Any

FEEDBACK_LIMIT = 500
"""Characters of feedback per failure, as the paper's harness keeps (its shared buffer)."""
TIMED_OUT = "Execution timed out."
CANDIDATE_FILE = "<string>"
"""The file name the candidate's code is compiled under: a traceback is shown from its first
frame in that file on, as the paper's harness cuts it (its code is ``exec``'d as a string)."""
TEST_FILE = "<test>"


def wrong_result(inputs: Any, expected: Any, actual: Any) -> str:
    """The paper's text for a wrong result (its f-string: str() of each value)."""
    return (
        f"The results aren't as expected.\nInput: {inputs}\n"
        f"Expected Output: {expected}\nActual Output: {actual}"
    )


def missing_function(entry_point: str) -> str:
    return (
        f"Please rename your function to {entry_point} as there is no function named {entry_point}."
    )


class TimedOut(BaseException):
    """The per-input (or per-part) time limit passed. A BaseException, so that candidate code
    catching Exception does not swallow it."""


class WrongResult(Exception):
    def __init__(self, inputs: Any, expected: Any, actual: Any) -> None:
        super().__init__(wrong_result(inputs, expected, actual))
        self.inputs = inputs


class MissingFunction(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise TimedOut()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


@contextlib.contextmanager
def swallowed_io() -> Iterator[None]:
    """The candidate's prints go nowhere: a program that prints a lot must not slow the judge
    or fill a pipe."""
    sink = _Discard()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


# ---- verdicts ----------------------------------------------------------------------------------
def passed() -> dict[str, str]:
    return {"status": "passed", "detail": "", "feedback": ""}


def failure(error: BaseException, limit: float | None = None) -> dict[str, str]:
    """The verdict for what ended a part: a wrong result, a time-out, or an exception."""
    if isinstance(error, TimedOut):
        detail = f"timed out (limit {limit:g} s)" if limit else "timed out"
        return {"status": "timeout", "detail": detail, "feedback": TIMED_OUT}
    if isinstance(error, WrongResult):
        text = str(error)
        return {"status": "failed", "detail": _one_line(text, 200), "feedback": _cut(text)}
    if isinstance(error, MissingFunction):
        return {"status": "failed", "detail": str(error), "feedback": str(error)}
    trace = candidate_traceback(error)
    last = next((line for line in reversed(trace.splitlines()) if line.strip()), "")
    return {"status": "failed", "detail": last.strip()[:300], "feedback": _cut(trace)}


def candidate_traceback(error: BaseException) -> str:
    """The traceback from the candidate's first frame on (the judge's own frames say nothing
    to the model); the whole of it if no frame is the candidate's."""
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return candidate_traceback_text(trace)


def candidate_traceback_text(trace: str) -> str:
    """From the candidate's first frame; failing that (an assert of the tests that is not a
    comparison, e.g. HumanEval/32's ``assert math.fabs(poly(...)) < 1e-4``), from the tests'
    first frame: the judge's own frames (and this machine's paths) never reach the model."""
    for name in (CANDIDATE_FILE, TEST_FILE):
        start = trace.find(f'File "{name}"')
        if start >= 0:
            return trace[start:]
    return trace


def _cut(text: str) -> str:
    return text[:FEEDBACK_LIMIT]


def _one_line(text: str, limit: int) -> str:
    return " / ".join(line for line in text.splitlines() if line.strip())[:limit]


# ---- the candidate ---------------------------------------------------------------------------
def load_candidate(source: str, entry_point: str) -> tuple[dict[str, Any], Callable[..., Any]]:
    namespace: dict[str, Any] = {"__name__": "__candidate__"}
    with swallowed_io():
        exec(compile(source, CANDIDATE_FILE, "exec"), namespace)
    function = namespace.get(entry_point)
    if not callable(function):
        raise MissingFunction(missing_function(entry_point))
    return namespace, function


class Recorder:
    """Stands for the candidate in the tests and keeps the arguments of its last call (as
    they were before the call), for the "Input:" of a wrong result. The candidate's own
    recursive calls go to the function itself, not through here."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.last: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            snapshot: Any = copy.deepcopy(list(args))
        except Exception:
            snapshot = list(args)
        if kwargs:
            snapshot = [*snapshot, kwargs]
        self.last = snapshot
        with swallowed_io():
            return self.function(*args, **kwargs)
