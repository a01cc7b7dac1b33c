"""The feedback protocols of ``oci-eval --feedback``.

- ``own`` (the default): the model's code runs in a kernel and that run is the feedback, as
  in a notebook; the hidden tests only judge, after the loop.
- ``tests``: the OpenCodeInterpreter paper's protocol. Each answer is judged by the benchmark's
  hidden tests as soon as it is given; a passing answer ends the problem, a failing one gets
  the paper's feedback as the next user turn. It is an **oracle** protocol: the feedback
  comes from the benchmark's own tests, which a notebook user does not have.

The paper's harness (``evaluation/evaluate/multi_turn/`` of its repository) writes each
feedback turn as ``Execution result: `` and a newline, then the failure: a wrong result as
"The results aren't as expected." with the input, the expected and the actual output; a
time-out as "Execution timed out."; an exception as its traceback; each cut to its first 500
characters (MBPP+ may give two: its base inputs' failure, then its plus inputs').
"""

from __future__ import annotations

from typing import Literal, get_args

from ..types import ExecutionOutcome
from .judge.verdicts import FEEDBACK_LIMIT, TIMED_OUT, missing_function, wrong_result
from .judging import Verdict

FeedbackProtocol = Literal["own", "tests"]
FEEDBACK_PROTOCOLS: tuple[FeedbackProtocol, ...] = get_args(FeedbackProtocol)
DEFAULT_FEEDBACK: FeedbackProtocol = "own"
"""The protocol of runs recorded before there was a choice, and the default: never the
oracle."""

HEADER = "Execution result: \n"
"""How the paper's harness opens a feedback turn (its trailing space included)."""

PROTOCOL_TEXT: dict[str, str] = {
    "own": "the model's own run of its code in a kernel is the feedback (as in a notebook); "
    "the hidden tests only judge",
    "tests": "ORACLE: the benchmark's hidden tests judge every answer and their failure is the "
    "next turn's feedback (the OpenCodeInterpreter paper's protocol; a notebook user has no "
    "such tests, so this measures more than the product can give)",
}


def feedback_turn(verdict: Verdict) -> str:
    """The user turn after a failed answer under ``tests``: the header, then the failure."""
    return HEADER + verdict.feedback


def tests_outcome(verdict: Verdict, time_limit: float) -> ExecutionOutcome:
    """What the loop is told under ``tests``: the answer passed (``ok``: the loop stops) or
    failed, with the whole feedback turn as the output (the loop takes it verbatim)."""
    if verdict.passed:
        return ExecutionOutcome("ok", output="", seconds=verdict.seconds)
    text = feedback_turn(verdict)
    if verdict.status == "timeout":
        return ExecutionOutcome(
            "timeout", output=text, seconds=verdict.seconds, time_limit=time_limit
        )
    return ExecutionOutcome(
        "error",
        output=text,
        ename="HiddenTestsFailed",
        evalue=verdict.detail,
        seconds=verdict.seconds,
    )


__all__ = [
    "DEFAULT_FEEDBACK",
    "FEEDBACK_LIMIT",
    "FEEDBACK_PROTOCOLS",
    "HEADER",
    "PROTOCOL_TEXT",
    "TIMED_OUT",
    "FeedbackProtocol",
    "feedback_turn",
    "missing_function",
    "tests_outcome",
    "wrong_result",
]
