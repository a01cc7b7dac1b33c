"""One turn of a harness's loop, as both harnesses (:mod:`.runner`, :mod:`.dabench_runner`)
drive it: the model asked for a ``Generate``, the kernel run for an ``Execute``, what the
harness saw of each beside what the loop keeps, and the fields of the turn's record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..driver import KernelGone
from ..engine import GenerationParams, Message
from ..loop import Generate, Turn
from .kernels import KernelDied, KernelRun, KernelSession
from .models import ModelFailure, Reply

Ask = Callable[[Sequence[Message], GenerationParams, str], Awaitable[Reply]]
"""A model's ``reply`` (with ``cut`` bound where the harness reads replies as the chat does)."""


@dataclass
class TurnIO:
    """What the harness saw of one turn, beside what the loop keeps."""

    reply: Reply | None = None
    model_error: str | None = None
    recovery: str = ""
    kernel_error: str | None = None
    inspected: list[str] = field(default_factory=list)
    """DABench: the names whose values were looked up after a run that printed nothing."""


def generator(
    ask: Ask, params: GenerationParams, io: dict[int, TurnIO], request: str
) -> Callable[[Generate], Awaitable[str]]:
    """The driver's ``generate``: ``ask`` the model for an action's messages (request id
    ``"{request} turn N"``). A failed request is recorded and fails this problem only."""

    async def generate(action: Generate) -> str:
        turn_io = io.setdefault(action.turn, TurnIO())
        request_id = f"{request} turn {action.turn}"
        try:
            reply = await ask(action.messages, action.params(params), request_id)
        except ModelFailure as exc:
            turn_io.model_error = str(exc)
            raise  # the loop's driver reads it as the model failing (one error class)
        turn_io.reply = reply
        return reply.text

    return generate


async def run_in_kernel(
    kernel: KernelSession, code: str, time_limit: float, turn_io: TurnIO, what: str
) -> KernelRun:
    """Run an action's code; a kernel that dies is recorded and fails this ``what``
    (problem, question), as a lost kernel ends a chat request."""
    try:
        run = await kernel.run(code, time_limit)
    except KernelDied as exc:
        turn_io.recovery, turn_io.kernel_error = "died", str(exc)
        raise KernelGone(f"{exc}: the {what} counts as failed") from exc
    turn_io.recovery = run.recovery
    return run


def turn_fields(turn: Turn, turn_io: TurnIO, output: Callable[[str], str]) -> dict[str, Any]:
    """What every harness records of a turn: the loop's view of it, then the harness's (a
    run's output as ``output`` makes it for the record)."""
    outcome = turn.outcome
    reply = turn_io.reply
    return {
        "reply": turn.reply,
        "code": turn.code,
        "step": turn.step,
        "attempt": turn.attempt,
        "skipped": turn.skipped,
        "outcome": (
            {"status": outcome.status, "ename": outcome.ename, "evalue": outcome.evalue}
            if outcome is not None
            else None
        ),
        "output": output(outcome.output) if outcome is not None else "",
        "feedback": turn.feedback,
        "recovery": turn_io.recovery,
        "kernel_error": turn_io.kernel_error,
        "model_error": turn_io.model_error,
        "tokens": {
            "prompt": reply.prompt_tokens if reply else None,
            "completion": reply.completion_tokens if reply else None,
        },
        "finish_reason": reply.finish_reason if reply else None,
        "seconds": {
            "generate": round(turn.generate_seconds, 3),
            "execute": round(turn.execute_seconds, 3) if outcome is not None else 0.0,
        },
    }


__all__ = ["Ask", "TurnIO", "generator", "run_in_kernel", "turn_fields"]
