"""What the interpreter loop (:mod:`oci_jupyter.loop`) keeps and reports: its budgets, each
turn (a model reply and what became of its code), how a request ended (:class:`Finished`),
and why a turn's code was not run, in words. Data only: the rules that fill it are in
:mod:`oci_jupyter.loop`, which re-exports every name here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .texts import Text, TextCode, text
from .types import ExecutionOutcome

SkipReason = Literal["input", "repeat", "repeat_ok", "unchanged", "unchecked", "unread"]
SKIP_TEXTS: dict[SkipReason, Text] = {
    "input": text("not_run_input"),
    "repeat": text("not_run_repeat"),
    "repeat_ok": text("not_run_already_ran"),
    "unchanged": text("not_run_unchanged"),
    "unchecked": text("not_final_unchecked"),
    "unread": text("not_final_unread"),
}
"""Why a turn's code was not run (or its answer not taken as final), as the chat says it."""
SKIP_NOTES: dict[SkipReason, str] = {reason: str(said) for reason, said in SKIP_TEXTS.items()}
"""The same in English (the ``%%oci`` magic's note)."""
LoopStatus = Literal["success", "failed", "no_code", "cancelled", "error"]
LoopMode = Literal["chat", "fix", "edit"]
"""``chat`` writes new cells; ``fix`` repairs a cell that failed; ``edit`` changes a cell as
the user asks. ``fix`` and ``edit`` have one step, their cell."""
Placement = Literal["new", "next", "replace"]
"""Where an attempt's code goes: a new cell below the active one, a new cell below the previous
step's cell, or the step's own cell rewritten."""
BudgetName = Literal["attempts", "steps", "replies"]


@dataclass(frozen=True)
class Budgets:
    """How far one request may go. Each is shown to the user while the loop runs.

    The defaults here are the product's, written once: ``c.OCI.max_attempts/steps/replies``
    default to them, and every surface takes the server's (:mod:`oci_jupyter.request`)."""

    attempts: int = 3
    """Replies whose code is tried in one cell: the first and its refinements."""
    steps: int = 4
    """Cells per request (``fix`` and ``edit`` have one: the cell being fixed or changed)."""
    replies: int = 8
    """Model replies per request, answers and skipped code included."""

    def __post_init__(self) -> None:
        for name in ("attempts", "steps", "replies"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


DEFAULT_BUDGETS = Budgets()
"""3 attempts per cell, 4 steps, 8 replies."""


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
    """Why the code was not run: it called input(), it repeats code that already failed, or
    it repeats a step that already ran; or why an answer was not taken as final (the chat
    says it with :data:`SKIP_TEXTS`)."""
    step: int = 0
    """The cell this reply's code was for (0: a reply without code)."""
    attempt: int = 0


@dataclass(frozen=True)
class Finished:
    status: LoopStatus
    turns: list[Turn]
    message: str = ""
    """How it ended, in English (what the ``%%oci`` magic, the history and ``oci-eval``
    read); ``code`` and ``params`` say the same for the sidebar to translate."""
    answer: str = ""
    """The model's last words without code: the answer after a success, the explanation
    after a failure or a fix."""
    budget: BudgetName | None = None
    """The budget that ended the loop, if one did."""
    code: TextCode | Literal[""] = ""
    """The :mod:`oci_jupyter.texts` code of ``message`` ("": words without one)."""
    params: dict[str, Any] = field(default_factory=dict)
    """The code's parameters, as JSON."""

    @classmethod
    def said(
        cls,
        status: LoopStatus,
        turns: list[Turn],
        said: Text,
        *,
        answer: str = "",
        budget: BudgetName | None = None,
    ) -> Finished:
        """The end, in the words of one sentence of :mod:`oci_jupyter.texts`."""
        return cls(
            status,
            turns,
            str(said),
            answer=answer,
            budget=budget,
            code=said.code,
            params=said.json_params(),
        )

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

    @property
    def steps(self) -> int:
        """Cells the request ran code in."""
        return len({t.step for t in self.turns if t.outcome is not None})

    def step_codes(self) -> list[str]:
        """Each step's last code that ran, in order (what ``%%oci --insert`` inserts)."""
        codes: dict[int, str] = {}
        for turn in self.turns:
            if turn.outcome is not None and turn.code is not None:
                codes[turn.step] = turn.code
        return [codes[step] for step in sorted(codes)]

    def summary(self) -> str:
        """ "answered after 2 steps, 3 replies": for the end of a request."""
        replies = len(self.turns)
        steps = self.steps
        counts = f"{steps} step{'s' if steps != 1 else ''}, {replies} repl" + (
            "ies" if replies != 1 else "y"
        )
        verb = {
            "success": "answered" if self.answer else "ran",
            "failed": "failed",
            "no_code": "answered without code",
            "cancelled": "stopped",
            "error": "ended with an error",
        }[self.status]
        return f"{verb} after {counts}"
