"""The refinement loop of OpenCodeInterpreter, written once, as a sans-IO state machine.

generate -> execute -> feed the result back -> refine. The loop holds no socket, kernel or
model: its driver (the server's chat session, the ``%%oci`` magic, ``oci-eval``) asks it what
to do next and tells it what happened:

    loop = RefinementLoop(messages, max_turns=3)
    action = loop.start()                      # Generate(messages)
    while not isinstance(action, Finished):
        if isinstance(action, Generate):
            action = loop.on_reply(model(action.messages))      # Execute(code) | Finished
        else:
            action = loop.on_outcome(run(action.code))          # Generate | Finished

Rules (from the paper and its demo): the code is the reply's last fenced Python block; a reply
without code ends the loop; an execution outcome becomes the next user turn, beginning
"Execution result:"; the loop ends on success, after ``max_turns`` replies, on a reply without
code, or on cancel. Code that calls ``input()`` is not run: the model is told to assign values.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from .engine import GenerationParams, Message
from .prompts import (
    calls_input,
    execution_feedback,
    extract_code,
    input_feedback,
    repeat_feedback,
    same_code,
)

OutcomeStatus = Literal["ok", "error", "timeout", "cancelled"]
SkipReason = Literal["input", "repeat"]
SKIP_NOTES: dict[SkipReason, str] = {
    "input": "not run: asks for input()",
    "repeat": "not run: same as before",
}
LoopStatus = Literal["success", "failed", "no_code", "cancelled", "error"]


@dataclass(frozen=True)
class ExecutionOutcome:
    """What happened when code ran. ``cancelled`` means the run was interrupted."""

    status: OutcomeStatus
    output: str = ""
    ename: str = ""
    evalue: str = ""
    traceback: str = ""
    seconds: float = 0.0
    time_limit: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def summary(self) -> str:
        if self.status == "ok":
            return "ok"
        if self.status == "error":
            return f"{self.ename}: {self.evalue}" if self.evalue else self.ename
        return self.status


REPEAT_TEMPERATURE = 0.8
"""The sampling temperature at least, for the reply after one that repeated failed code: the
same prompt with greedy or near-greedy decoding tends to give the same code a third time."""


@dataclass(frozen=True)
class Generate:
    """Ask the model for the next reply to these messages."""

    turn: int
    messages: list[Message]
    after_repeat: bool = False
    """The previous reply repeated code that had failed: sample with at least
    :data:`REPEAT_TEMPERATURE` (see :meth:`params`)."""

    def params(self, configured: GenerationParams) -> GenerationParams:
        """The sampling for this reply: the configured one, hotter after a repeat."""
        if not self.after_repeat or configured.temperature >= REPEAT_TEMPERATURE:
            return configured
        return replace(
            configured, temperature=REPEAT_TEMPERATURE, top_p=min(configured.top_p, 0.95)
        )


@dataclass(frozen=True)
class Execute:
    """Run this code in the user's kernel and report an :class:`ExecutionOutcome`."""

    turn: int
    code: str


@dataclass
class Turn:
    """One model reply and what became of its code."""

    number: int
    reply: str = ""
    code: str | None = None
    outcome: ExecutionOutcome | None = None
    feedback: str | None = None
    generate_seconds: float = 0.0
    execute_seconds: float = 0.0
    skipped: SkipReason | None = None
    """Why the code was not run: it called input(), or it repeats code that already failed."""


@dataclass(frozen=True)
class Finished:
    status: LoopStatus
    turns: list[Turn]
    message: str = ""

    @property
    def final_code(self) -> str | None:
        for turn in reversed(self.turns):
            if turn.code is not None:
                return turn.code
        return None

    @property
    def last_outcome(self) -> ExecutionOutcome | None:
        for turn in reversed(self.turns):
            if turn.outcome is not None:
                return turn.outcome
        return None


Action = Generate | Execute | Finished
State = Literal["new", "generating", "executing", "finished"]


class LoopError(RuntimeError):
    """The driver called the loop out of order (a bug in the driver, not the user's input)."""


@dataclass
class RefinementLoop:
    """One request's generate -> execute -> refine cycle.

    ``messages`` is the whole prompt of the first turn (system, context, history, request),
    as built by :mod:`oci_jupyter.prompts`. Each later turn appends the reply and the
    execution feedback to it.

    Code that repeats code which already failed (an earlier turn's, or ``failed_code``: the
    cell a fix starts from) is not run again: it would fail the same way. The model is told
    so instead, which costs a turn but not a run. Small models often answer an error with the
    very code that raised it.
    """

    messages: list[Message]
    max_turns: int = 3
    failed_code: tuple[tuple[str, ExecutionOutcome], ...] = ()
    """Code known to fail before the loop starts, with how it failed (a fix's cell)."""
    clock: Callable[[], float] = time.monotonic
    turns: list[Turn] = field(default_factory=list)
    state: State = "new"
    result: Finished | None = None
    _mark: float = 0.0

    def __post_init__(self) -> None:
        if self.max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self.messages = list(self.messages)

    # ---- driver API ---------------------------------------------------------------------------
    def start(self) -> Generate:
        self._expect("new")
        return self._generate()

    def on_reply(self, reply: str) -> Execute | Finished | Generate:
        """The model's complete reply for the current turn."""
        self._expect("generating")
        turn = self.turns[-1]
        turn.reply = reply
        turn.generate_seconds = self.clock() - self._mark
        self.messages.append({"role": "assistant", "content": reply})
        turn.code = extract_code(reply)
        if turn.code is None:
            status: LoopStatus = "failed" if self._had_failure() else "no_code"
            message = (
                "The model's reply has no code."
                if status == "no_code"
                else "The model stopped without fixed code."
            )
            return self._finish(status, message)
        if calls_input(turn.code):
            turn.skipped = "input"
            turn.feedback = input_feedback()
            return self._continue_or_stop(turn.feedback, "The code asks for input().")
        repeated = self._failed_before(turn.code)
        if repeated is not None:
            where, outcome = repeated
            turn.skipped = "repeat"
            turn.feedback = repeat_feedback(where, outcome)
            return self._continue_or_stop(
                turn.feedback, f"The model repeated code that failed ({outcome.summary()})."
            )
        self.state = "executing"
        self._mark = self.clock()
        return Execute(turn.number, turn.code)

    def on_outcome(self, outcome: ExecutionOutcome) -> Generate | Finished:
        """What happened when the current turn's code ran."""
        self._expect("executing")
        turn = self.turns[-1]
        turn.outcome = outcome
        turn.execute_seconds = outcome.seconds or (self.clock() - self._mark)
        turn.feedback = execution_feedback(outcome)
        if outcome.ok:
            # The result stays in the conversation, so a follow-up request sees it.
            self.messages.append({"role": "user", "content": turn.feedback})
            return self._finish("success", "The code ran without errors.")
        return self._continue_or_stop(turn.feedback, outcome.summary())

    def on_model_error(self, message: str) -> Finished:
        """The model could not answer (engine error, server unreachable)."""
        self._expect("generating")
        self.turns[-1].generate_seconds = self.clock() - self._mark
        return self._finish("error", message)

    def cancel(self, message: str = "Cancelled.") -> Finished:
        return self.stop("cancelled", message)

    def stop(self, status: LoopStatus, message: str) -> Finished:
        """End the loop for a reason outside it (cancel, the kernel is gone)."""
        if self.result is not None:
            return self.result
        return self._finish(status, message)

    # ---- conversation ------------------------------------------------------------------------
    @property
    def turn(self) -> int:
        return len(self.turns)

    @property
    def finished(self) -> bool:
        return self.result is not None

    def history(self) -> list[Message]:
        """The conversation without the system prompt, for memory across requests."""
        return [m for m in self.messages if m["role"] != "system"]

    # ---- internals ---------------------------------------------------------------------------
    def _generate(self) -> Generate:
        repeated = bool(self.turns) and self.turns[-1].skipped == "repeat"
        self.turns.append(Turn(number=len(self.turns) + 1))
        self.state = "generating"
        self._mark = self.clock()
        return Generate(self.turn, list(self.messages), after_repeat=repeated)

    def _continue_or_stop(self, feedback: str, problem: str) -> Generate | Finished:
        self.messages.append({"role": "user", "content": feedback})
        if self.turn >= self.max_turns:
            turns = f"{self.turn} turn" + ("s" if self.turn != 1 else "")
            return self._finish("failed", f"Still failing after {turns}: {problem}")
        return self._generate()

    def _failed_before(self, code: str) -> tuple[str, ExecutionOutcome] | None:
        """Where this code already ran and failed ("attempt 2", "the cell"), if it did."""
        for turn in self.turns[:-1]:
            outcome, earlier = turn.outcome, turn.code
            if outcome is not None and not outcome.ok and earlier and same_code(earlier, code):
                return f"attempt {turn.number}", outcome
        for source, outcome in self.failed_code:
            if same_code(source, code):
                return "the cell", outcome
        return None

    def _had_failure(self) -> bool:
        return any(t.outcome is not None or t.skipped for t in self.turns[:-1])

    def _finish(self, status: LoopStatus, message: str) -> Finished:
        self.state = "finished"
        self.result = Finished(status, list(self.turns), message)
        return self.result

    def _expect(self, state: State) -> None:
        if self.state != state:
            raise LoopError(f"the loop is {self.state}, not {state}")
