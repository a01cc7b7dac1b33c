"""The interpreter loop of OpenCodeInterpreter, written once, as a sans-IO state machine.

generate -> execute -> feed the result back -> read it -> answer, take the next step or fix.
The loop holds no socket, kernel or model: its driver (the server's chat session, the
``%%oci`` magic, ``oci-eval``, all through :mod:`oci_jupyter.driver`) asks it what to do next
and tells it what happened:

    loop = RefinementLoop(messages, budgets=Budgets(attempts=3, steps=4, replies=8))
    action = loop.start()                      # Generate(messages)
    while not isinstance(action, Finished):
        if isinstance(action, Generate):
            action = loop.on_reply(model(action.messages))      # Execute | Generate | Finished
        else:
            action = loop.on_outcome(run(action.code))          # Generate | Finished

The rules, all of them here (from the paper's demo, which goes on while the reply holds code):

- The code is the reply's last fenced Python block. After **every** run its outcome goes back
  to the model as the next user turn, beginning "Execution result:".
- After a successful run a reply without code is the **answer** (``success``, its words in
  :attr:`Finished.answer`); a reply with code is the **next step**, a new cell (``chat``) or
  another look at the same cell (``fix`` and ``edit``, whose cell stays the one being fixed
  or changed). An ``edit``'s successful run is fed back with the request to say in one
  sentence what changed: that sentence is its answer.
- After a failed run a reply with code refines that same cell; a reply without code ends the
  loop ``failed``, its words being the model's explanation. A first reply without code is an
  answer that needed no code (``no_code``).
- Budgets: attempts per cell, steps (cells) per request, model replies per request. The one
  that runs out ends the loop and is named in :attr:`Finished.budget`.
- Code that calls ``input()`` is not run (the model is told to assign values); code that
  repeats code which already failed is not run (it would fail the same way; the model is told
  which attempt and how); a step that repeats a cell that already ran without errors is not
  run again (its result is already above). Each of these costs a reply, not a run.
- An interrupted run (the user's Stop or KeyboardInterrupt) ends the loop ``cancelled``; a
  kernel that is gone ends it ``error``; a time-out is an error the model can fix.
- With ``read_results=False`` the loop stops at the first successful run (the fewest replies,
  for those who want them on a slow CPU); ``oci-eval`` records which rule it used.
- With ``verbatim_feedback=True`` the driver writes the feedback turn itself (the outcome's
  output, word for word): ``oci-eval --feedback tests`` sends the paper's oracle feedback.
- What is remembered for the next request alternates user and assistant strictly
  (:func:`alternate`): some chat templates reject two turns of one role in a row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from .loop_memory import alternate, bounded
from .loop_records import (
    DEFAULT_BUDGETS,
    SKIP_NOTES,
    SKIP_TEXTS,
    BudgetName,
    Budgets,
    Finished,
    LoopMode,
    LoopStatus,
    Placement,
    SkipReason,
    Turn,
)
from .prompts import (
    calls_input,
    edit_repeat_success_feedback,
    edit_success_feedback,
    edit_unchanged_feedback,
    execution_feedback,
    extract_code,
    input_feedback,
    repeat_feedback,
    repeat_success_feedback,
    same_code,
    states_a_value,
    unchecked_feedback,
    ungrounded_numbers,
    unread_feedback,
)
from .texts import Text, text
from .types import ExecutionOutcome, GenerationParams, Message, OutcomeStatus

__all__ = [
    "DEFAULT_BUDGETS",
    "REPEAT_TEMPERATURE",
    "SKIP_NOTES",
    "SKIP_TEXTS",
    "Action",
    "Budgets",
    "Execute",
    "ExecutionOutcome",
    "Finished",
    "Generate",
    "LoopError",
    "LoopMode",
    "LoopStatus",
    "OutcomeStatus",
    "Placement",
    "RefinementLoop",
    "Turn",
    "alternate",
    "bounded",
]

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
    """Run this code in the user's kernel and report an :class:`ExecutionOutcome`.

    ``step`` is the request's cell (1, 2, ...), ``attempt`` the try in that cell: attempt 1
    of step 1 goes where the request says (a new cell, or the cell being refined or fixed),
    attempt 1 of a later step goes into a new cell below the previous step's cell, and a later
    attempt rewrites its step's cell."""

    turn: int
    code: str
    step: int = 1
    attempt: int = 1

    @property
    def refines(self) -> bool:
        """Whether this rewrites the step's cell (an earlier attempt of it failed)."""
        return self.attempt > 1


Action = Generate | Execute | Finished
State = Literal["new", "generating", "executing", "finished"]


class LoopError(RuntimeError):
    """The driver called the loop out of order (a bug in the driver, not the user's input)."""


@dataclass
class _Ran:
    step: int
    code: str
    outcome: ExecutionOutcome
    where: str


@dataclass
class RefinementLoop:
    """One request's generate -> execute -> read -> answer / next step / refine cycle.

    ``messages`` is the whole prompt of the first turn (system, context, history, request),
    as built by :mod:`oci_jupyter.prompts`. Each later turn appends the reply and the
    execution feedback to it.
    """

    messages: list[Message]
    budgets: Budgets = field(default_factory=Budgets)
    mode: LoopMode = "chat"
    read_results: bool = True
    """Go on after a successful run (the model reads it). Off: stop at the first success."""
    verbatim_feedback: bool = False
    """The outcome's ``output`` is the whole feedback turn, as its driver wrote it (``oci-eval
    --feedback tests`` writes the OpenCodeInterpreter paper's text). Off (the notebook): the
    loop writes the "Execution result: ..." turn itself."""
    failed_code: tuple[tuple[str, ExecutionOutcome], ...] = ()
    """Code known to fail before the loop starts, with how it failed (a fix's cell)."""
    unchanged_code: str | None = None
    """An edit's cell as it was: an answer that hands it back unchanged is not run (it would
    change nothing the user asked for) but counts as an attempt."""
    refine_cell: bool = False
    """The first step rewrites the cell the request is about (the previous request's, which
    the user asks to refine) instead of adding one; a ``fix`` always rewrites its cell."""
    clock: Callable[[], float] = time.monotonic
    turns: list[Turn] = field(default_factory=list)
    state: State = "new"
    result: Finished | None = None
    _mark: float = 0.0
    _step: int = 0
    _attempt: int = 0
    _step_ok: bool | None = None
    """The current step's last try: None before it ran, True if it ran without errors."""
    _ran: list[_Ran] = field(default_factory=list)
    _first_length: int = 0
    _checked_answer: bool = False
    _checked_empty: bool = False

    def __post_init__(self) -> None:
        self.messages = list(self.messages)
        self._first_length = len(self.messages)

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
            return self._answer(reply)

        repeated_ok = self._ran_ok_before(turn.code) if self._step_ok else None
        if repeated_ok is not None:
            # Running it again shows nothing new: its result is already in the conversation.
            turn.skipped, turn.step, turn.attempt = "repeat_ok", self._step, self._attempt
            turn.feedback = (
                edit_repeat_success_feedback(repeated_ok)
                if self.mode == "edit"
                else repeat_success_feedback(repeated_ok, self.mode == "fix")
            )
            return self._feed_back(turn.feedback)

        new_step = self._step == 0 or (self._step_ok is True and self.mode == "chat")
        if new_step:
            if self._step >= self.budgets.steps:
                return self._finish(
                    "success", text("step_budget", steps=self.budgets.steps), budget="steps"
                )
            self._step, self._attempt, self._step_ok = self._step + 1, 0, None
        elif self._attempt >= self.budgets.attempts:
            # Another look at a cell that already used its attempts (a fix that ran, say).
            return self._finish(
                "success" if self._step_ok else "failed",
                text("attempt_budget", attempts=self.budgets.attempts),
                budget="attempts",
            )
        self._attempt += 1
        turn.step, turn.attempt = self._step, self._attempt

        if calls_input(turn.code):
            turn.skipped = "input"
            turn.feedback = input_feedback()
            self._step_ok = False
            return self._after_failure(turn.feedback, text("asks_input"))
        repeated = self._failed_before(turn.code)
        if repeated is not None:
            where, outcome = repeated
            turn.skipped = "repeat"
            turn.feedback = repeat_feedback(where, outcome)
            self._step_ok = False
            return self._after_failure(
                turn.feedback, text("repeated_failure", problem=outcome.summary())
            )
        if self.unchanged_code is not None and same_code(self.unchanged_code, turn.code):
            turn.skipped = "unchanged"
            turn.feedback = edit_unchanged_feedback()
            self._step_ok = False
            return self._after_failure(turn.feedback, text("unchanged_cell"))
        self.state = "executing"
        self._mark = self.clock()
        return Execute(turn.number, turn.code, step=self._step, attempt=self._attempt)

    def on_outcome(self, outcome: ExecutionOutcome) -> Generate | Finished:
        """What happened when the current turn's code ran."""
        self._expect("executing")
        turn = self.turns[-1]
        edited = _edited(turn.code, outcome.source)
        if edited is not None:
            # What ran is the turn's code from here on: repeats are told apart by it, and the
            # history and the final code show it.
            turn.code = edited
        turn.outcome = outcome
        turn.execute_seconds = outcome.seconds or (self.clock() - self._mark)
        if self.verbatim_feedback:
            turn.feedback = outcome.output
        elif self.mode == "edit" and outcome.ok:
            # The change ran: the model says what it changed, and that ends the edit.
            turn.feedback = edit_success_feedback(outcome, edited)
        else:
            turn.feedback = execution_feedback(outcome, edited)
        # Every result stays in the conversation: the next reply and a follow-up request see it.
        self.messages.append({"role": "user", "content": turn.feedback})
        where = {"chat": f"step {turn.step}", "fix": "the fixed cell", "edit": "the changed cell"}
        self._ran.append(_Ran(turn.step, turn.code or "", outcome, where[self.mode]))
        if outcome.status == "cancelled":
            self._step_ok = False
            return self._finish("cancelled", text("interrupted"))
        if outcome.ok:
            self._step_ok = True
            if not self.read_results:
                return self._finish("success", text("ran_ok"))
            return self._next_reply()
        self._step_ok = False
        return self._after_failure(turn.feedback, outcome.summary(), appended=True)

    def on_model_error(self, message: str | Text) -> Finished:
        """The model could not answer (engine error, server unreachable): the engine's words,
        or a sentence of :mod:`oci_jupyter.texts`."""
        self._expect("generating")
        self.turns[-1].generate_seconds = self.clock() - self._mark
        return self._finish("error", _said(message, "model_error"))

    def cancel(self, message: str | Text | None = None) -> Finished:
        """Stopped from outside (Stop, Esc): "Cancelled.", or why, in the caller's words."""
        return self.stop("cancelled", _said(message or text("cancelled"), "stopped_because"))

    def kernel_lost(self, message: str | Text | None = None) -> Finished:
        """Nothing can run any more: further replies would only write code nobody runs.
        "The kernel is gone.", or what the kernel or the browser said."""
        return self.stop("error", _said(message or text("kernel_gone"), "kernel_error"))

    def stop(self, status: LoopStatus, message: Text) -> Finished:
        """End the loop for a reason outside it (cancel, the kernel is gone)."""
        if self.result is not None:
            return self.result
        return self._finish(status, message)

    # ---- where the code goes ------------------------------------------------------------------
    def placement(self, action: Execute) -> Placement:
        """Where ``action``'s code goes: a later attempt rewrites its step's cell; the first
        step's first attempt goes into the cell being fixed, changed or refined, else a new
        cell below the active one; a later step's into a new cell below the previous step's."""
        if action.refines or (action.step == 1 and (self.refine_cell or self.mode != "chat")):
            return "replace"
        return "next" if action.step > 1 else "new"

    def next_cell(self) -> tuple[int, int]:
        """The step and attempt the reply being written is for if it holds code (a guess
        while it streams, for a heading; :meth:`on_reply` says for sure)."""
        previous = self.turns[-2] if len(self.turns) >= 2 else None
        if previous is None:
            return 1, 1
        ran_ok = previous.skipped == "repeat_ok" or (
            previous.outcome is not None and previous.outcome.ok
        )
        if ran_ok and self.mode == "chat":
            return self._step + 1, 1
        return max(self._step, 1), previous.attempt + 1

    # ---- conversation ------------------------------------------------------------------------
    @property
    def turn(self) -> int:
        return len(self.turns)

    @property
    def step(self) -> int:
        return self._step

    @property
    def finished(self) -> bool:
        return self.result is not None

    def history(self) -> list[Message]:
        """The conversation without the system prompt."""
        return [m for m in self.messages if m["role"] != "system"]

    def exchange(self, request: str) -> list[Message]:
        """What this request adds to the memory of the conversation: the request as the user
        said it (the next request gets fresh context anyway), then every reply and result."""
        return [{"role": "user", "content": request}, *self.messages[self._first_length :]]

    # ---- internals ---------------------------------------------------------------------------
    def _generate(self) -> Generate:
        repeated = bool(self.turns) and self.turns[-1].skipped == "repeat"
        self.turns.append(Turn(number=len(self.turns) + 1))
        self.state = "generating"
        self._mark = self.clock()
        return Generate(self.turn, list(self.messages), after_repeat=repeated)

    def _next_reply(self) -> Generate | Finished:
        if self.turn >= self.budgets.replies:
            ok = bool(self._step_ok)
            return self._finish(
                "success" if ok else "failed",
                text("reply_budget_ran_ok" if ok else "reply_budget", replies=self.budgets.replies),
                budget="replies",
            )
        return self._generate()

    def _feed_back(self, feedback: str) -> Generate | Finished:
        self.messages.append({"role": "user", "content": feedback})
        return self._next_reply()

    def _after_failure(
        self, feedback: str, problem: str | Text, *, appended: bool = False
    ) -> Generate | Finished:
        """``problem``: the run's error summary, or why the code did not run."""
        if not appended:
            self.messages.append({"role": "user", "content": feedback})
        if self._attempt >= self.budgets.attempts:
            failing = (
                text(
                    "still_failing_in_step",
                    attempts=self._attempt,
                    step=self._step,
                    problem=problem,
                )
                if self._step > 1
                else text("still_failing", attempts=self._attempt, problem=problem)
            )
            return self._finish("failed", failing, budget="attempts")
        return self._next_reply()

    def _answer(self, reply: str) -> Finished | Generate:
        """A reply without code: what it means depends on what came before it."""
        if self._step_ok is True:
            if self._answer_without_result(reply):
                # The last run printed nothing: whatever the words say, they were not read off
                # a result ("The result is 'south'" after code that printed nothing).
                self._checked_empty = True
                return self._another_look("unread", unread_feedback())
            unchecked = self._unchecked_numbers(reply)
            if unchecked:
                # Small models work the last step out in their head ("the sum is 157.8")
                # instead of running it: an answer must come from what the runs printed.
                self._checked_answer = True
                return self._another_look("unchecked", unchecked_feedback(unchecked))
            done = text({"chat": "answered", "fix": "fixed", "edit": "changed"}[self.mode])
            return self._finish("success", done, answer=reply)
        if self._step_ok is False:
            return self._finish("failed", text("no_fixed_code"), answer=reply)
        if self.mode != "chat":  # a fix or an edit without code changed nothing
            return self._finish("failed", text("no_code"), answer=reply)
        return self._finish("no_code", text("no_code"), answer=reply)

    def _another_look(self, why: SkipReason, feedback: str) -> Generate | Finished:
        """The reply is not taken for the answer: the model is told why and asked again."""
        turn = self.turns[-1]
        turn.skipped, turn.feedback = why, feedback
        return self._feed_back(feedback)

    def _answer_without_result(self, answer: str) -> bool:
        """Whether the answer states a value (a number, something quoted) although the
        step's last run printed nothing, so that it was read off nothing. "Made the list."
        after a silent definition is fine. Checked once per request, in ``chat``."""
        if self.mode != "chat" or self._checked_empty or not self._ran:
            return False
        last = self._ran[-1].outcome
        if last.output.strip() or last.values:
            return False
        return states_a_value(answer)

    def _unchecked_numbers(self, answer: str) -> list[str]:
        """The numbers an answer states that appear in none of the request, the code that ran
        and what it printed (checked once per request, in ``chat``)."""
        if self.mode != "chat" or self._checked_answer:
            return []
        request = self.messages[self._first_length - 1]["content"] if self._first_length else ""
        # What the model could read: the request (with the notebook), and each run's code
        # (data it typed in) and output.
        shown = [
            request,
            *(text for r in self._ran for text in (r.code, r.outcome.output)),
            *(text for r in self._ran for _, text in r.outcome.values),
        ]
        return ungrounded_numbers(answer, shown)

    def _failed_before(self, code: str) -> tuple[str, ExecutionOutcome] | None:
        """Where this code already ran and failed ("attempt 2", "attempt 1 of step 2", "the
        cell"), if it did."""
        for turn in self.turns[:-1]:
            outcome, earlier = turn.outcome, turn.code
            if outcome is not None and not outcome.ok and earlier and same_code(earlier, code):
                of_step = f" of step {turn.step}" if turn.step != self._step else ""
                return f"attempt {turn.attempt}{of_step}", outcome
        for source, outcome in self.failed_code:
            if same_code(source, code):
                return "the cell", outcome
        return None

    def _ran_ok_before(self, code: str) -> str | None:
        for ran in self._ran:
            if ran.outcome.ok and same_code(ran.code, code):
                return ran.where
        return None

    def _finish(
        self,
        status: LoopStatus,
        message: Text,
        *,
        answer: str = "",
        budget: BudgetName | None = None,
    ) -> Finished:
        self.state = "finished"
        self.result = Finished.said(status, list(self.turns), message, answer=answer, budget=budget)
        return self.result

    def _expect(self, state: State) -> None:
        if self.state != state:
            raise LoopError(f"the loop is {self.state}, not {state}")


def _edited(asked: str | None, ran: str | None) -> str | None:
    """The code that ran if it is not the code the loop asked to run (None: the same)."""
    if ran is None or (asked is not None and same_code(asked, ran)):
        return None
    return ran


def _said(
    message: str | Text, code: Literal["model_error", "kernel_error", "stopped_because"]
) -> Text:
    """A sentence of :mod:`oci_jupyter.texts` as it is; someone else's words (the engine's,
    the kernel's, the caller's) as the one parameter of ``code``."""
    if isinstance(message, Text):
        return message
    if code == "stopped_because":
        return text(code, reason=message)
    return text(code, error=message)
