"""The protocol of an ``oci-eval`` run (HumanEval, MBPP, MBPP+): its settings, what its records
depend on, and the refinement loop each problem gets under them (see :mod:`.runner`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from ..engine import GenerationParams, Message
from ..loop import Budgets, RefinementLoop
from .benchmarks import DEFAULT_BENCHMARK, Benchmark
from .feedback import DEFAULT_FEEDBACK, FEEDBACK_PROTOCOLS, FeedbackProtocol
from .models import generation_params
from .problems import Problem
from .prompting import DEFAULT_PROMPT, PromptChoice, check_prompt

SuccessRule = Literal["first-run", "read"]
SUCCESS_RULES: tuple[SuccessRule, ...] = get_args(SuccessRule)
DEFAULT_SUCCESS: SuccessRule = "first-run"
"""The rule of runs recorded before there was a choice."""
RECORDED_BEFORE: dict[str, Any] = {
    "benchmark": DEFAULT_BENCHMARK,
    "feedback": DEFAULT_FEEDBACK,
    "success": DEFAULT_SUCCESS,
    "prompt": DEFAULT_PROMPT,
    "first_turn": "generated",
}
"""The protocol of a run recorded before these choices existed: HumanEval, own feedback,
first-run, the product's prompt, every first turn generated (not replayed from another run:
``--first-turn-from``, :mod:`.replay`)."""


class ProtocolMismatch(ValueError):
    """``resume`` would mix two protocols in one run's records."""


@dataclass(frozen=True)
class EvalSettings:
    turns: int = 2
    """Replies per problem at most: 2 = the first answer + one execution-feedback turn."""
    success: SuccessRule = DEFAULT_SUCCESS
    """When an answer stands: at its first run without errors, or after the model has read
    that run's output (see the module's docstring)."""
    temperature: float = 0.0
    max_tokens: int = 512
    time_limit: float = 10.0
    """Seconds for each run of the model's code, and for each hidden-test run."""
    workers: int = 1
    seed: int = 0
    benchmark: str = DEFAULT_BENCHMARK
    """``humaneval``, ``mbpp`` or ``mbppplus`` (:mod:`.benchmarks`)."""
    feedback: FeedbackProtocol = DEFAULT_FEEDBACK
    """``own``: the model's own run in a kernel is the feedback; ``tests``: the hidden tests
    judge every answer and their failure is the feedback (the paper's oracle protocol)."""
    prompt: PromptChoice = DEFAULT_PROMPT
    """The first turn: ``product`` (the product's system prompt and our request) or ``paper``
    (the paper harness's user turn, word for word; :mod:`.prompting`)."""

    def protocol(self) -> dict[str, Any]:
        """What a run's records depend on besides the model (``--resume`` keeps it)."""
        return {
            "benchmark": self.benchmark,
            "feedback": self.feedback,
            "success": self.success,
            "prompt": self.prompt,
        }

    def first_turn(self, benchmark: Benchmark, problem: Problem) -> list[Message]:
        """The messages a problem starts with, under this run's ``prompt``."""
        return benchmark.messages(problem, check_prompt(self.prompt))

    def params(self) -> GenerationParams:
        return generation_params(self.max_tokens, self.temperature, self.seed)

    def loop(self, messages: list[Message]) -> RefinementLoop:
        """One problem's loop: ``turns`` replies at most, each code reply a whole answer.

        Under ``read`` a function given again after a successful run is the next step of a
        chat loop (run in the same kernel, judged as that turn's answer), with ``turns``
        steps, so that no reply's code is left unrun by a step budget."""
        if self.success not in SUCCESS_RULES:
            raise ValueError(f"unknown success rule {self.success!r}")
        if self.feedback not in FEEDBACK_PROTOCOLS:
            raise ValueError(f"unknown feedback protocol {self.feedback!r}")
        read = self.success == "read"
        if read and self.feedback == "tests":
            raise ValueError("--success read needs --feedback own: under tests nothing is run")
        budgets = Budgets(attempts=self.turns, steps=self.turns if read else 1, replies=self.turns)
        return RefinementLoop(
            messages,
            budgets,
            mode="chat",
            read_results=read,
            # Under tests the paper's text is the feedback, word for word.
            verbatim_feedback=self.feedback == "tests",
        )


__all__ = [
    "DEFAULT_SUCCESS",
    "RECORDED_BEFORE",
    "SUCCESS_RULES",
    "EvalSettings",
    "ProtocolMismatch",
    "SuccessRule",
]
