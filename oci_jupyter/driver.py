"""The one driver of the loop: it takes the loop's actions to the model and the kernel and
brings back what happened. The chat session and ``oci-eval`` use :func:`drive` (async), the
``%%oci`` magic :func:`drive_sync` (a kernel's cell runs synchronously). The rules stay in
:mod:`oci_jupyter.loop`; the I/O stays with the surface, behind three callables:

- ``generate(action) -> str``: the model's reply (raise :class:`ModelFailed`, or
  :class:`Stopped` when the user stopped it);
- ``execute(action) -> ExecutionOutcome``: the run (raise :class:`KernelGone` when nothing
  can run, :class:`Stopped` when the user stopped it);
- ``notify(event)``: optional, told of each turn as it ends (to show "not run: ...").

Replies are cut where their first ``python`` block closes (:class:`ReplyCutter`): the code
runs at once, and the model's words about the result come after it has read the result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .engine.base import ModelError
from .loop import Execute, Finished, Generate, RefinementLoop, Turn
from .prompts import code_block_end
from .texts import Text, text
from .types import ExecutionOutcome

ModelFailed = ModelError
"""The model could not answer this reply: the one exception for it
(:class:`oci_jupyter.engine.base.ModelError`), by the name the drivers raise it."""


class KernelGone(Exception):
    """The kernel cannot run anything (dead, shut down, not connected)."""


class Stopped(Exception):
    """The user stopped the request (Stop, Esc, KeyboardInterrupt)."""


# Each of the three may be raised with a sentence of oci_jupyter.texts instead of words, so
# that the loop's end keeps its code (the sidebar translates it).
def _words(exc: Exception) -> str | Text:
    """What the exception says: its sentence as raised, else its words ("" for none)."""
    if exc.args and isinstance(exc.args[0], Text):
        return exc.args[0]
    return str(exc)


@dataclass(frozen=True)
class TurnEnded:
    """A turn's reply or run is over; ``turn`` says what became of it."""

    turn: Turn
    ran: bool


Notify = Callable[[TurnEnded], None]
AsyncNotify = Callable[[TurnEnded], Awaitable[None]]


class ReplyCutter:
    """Collects a streamed reply and says when to stop reading it: just after its first
    complete ``python`` block. ``feed`` returns the part of the piece to show (nothing past
    the closing fence)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.text = ""
        self.done = False

    def feed(self, piece: str) -> str:
        if self.done:
            return ""
        before = len(self.text)
        self.text += piece
        # A block can only close on a piece that brings a fence or the newline after one:
        # other pieces (most of them) skip the scan of the whole reply.
        if self.enabled and ("`" in piece or "\n" in piece):
            end = code_block_end(self.text)
            if end is not None:
                self.text = self.text[:end]
                self.done = True
                return self.text[before:]
        return piece


def drive_sync(
    loop: RefinementLoop,
    generate: Callable[[Generate], str],
    execute: Callable[[Execute], ExecutionOutcome],
    notify: Notify | None = None,
) -> Finished:
    action = loop.start()
    while True:
        if isinstance(action, Finished):
            return action
        try:
            if isinstance(action, Generate):
                try:
                    reply = generate(action)
                except ModelFailed as exc:
                    return loop.on_model_error(_words(exc))
                action = _replied(loop, action, reply, notify)
            else:
                try:
                    outcome = execute(action)
                except KernelGone as exc:
                    return loop.kernel_lost(_words(exc))
                action = _ran(loop, outcome, notify)
        except Stopped as exc:
            return loop.cancel(_words(exc) or text("stopped"))
        except KeyboardInterrupt:
            return loop.cancel(text("keyboard_interrupt"))


async def drive(
    loop: RefinementLoop,
    generate: Callable[[Generate], Awaitable[str]],
    execute: Callable[[Execute], Awaitable[ExecutionOutcome]],
    notify: AsyncNotify | None = None,
) -> Finished:
    """The async twin of :func:`drive_sync`; ``notify`` is awaited before the next action
    goes out, so that what it sends keeps its order with the driver's other messages."""
    ended: list[TurnEnded] = []
    action: Generate | Execute | Finished = loop.start()
    while not isinstance(action, Finished):
        try:
            if isinstance(action, Generate):
                try:
                    reply = await generate(action)
                except ModelFailed as exc:
                    return loop.on_model_error(_words(exc))
                action = _replied(loop, action, reply, ended.append)
            else:
                try:
                    outcome = await execute(action)
                except KernelGone as exc:
                    return loop.kernel_lost(_words(exc))
                action = _ran(loop, outcome, ended.append)
        except Stopped as exc:
            return loop.cancel(_words(exc) or text("stopped"))
        while ended:
            event = ended.pop(0)
            if notify is not None:
                await notify(event)
    return action


def _replied(
    loop: RefinementLoop, action: Generate, reply: str, notify: Notify | None
) -> Generate | Execute | Finished:
    following = loop.on_reply(reply)
    turn = loop.turns[action.turn - 1]
    if notify is not None and not isinstance(following, Execute):
        notify(TurnEnded(turn, ran=False))
    return following


def _ran(
    loop: RefinementLoop, outcome: ExecutionOutcome, notify: Notify | None
) -> Generate | Finished:
    turn = loop.turns[-1]
    following = loop.on_outcome(outcome)
    if notify is not None:
        notify(TurnEnded(turn, ran=True))
    return following
