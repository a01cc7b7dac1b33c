"""The driver of the loop: drive() (async) and drive_sync() with scripted generate/execute
callables, and the ReplyCutter that stops reading a reply after its first ```python block.

No model, no kernel: the callables answer from scripts; an exception in a script is raised."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

import pytest

from oci_jupyter.driver import (
    KernelGone,
    ModelFailed,
    ReplyCutter,
    Stopped,
    TurnEnded,
    drive,
    drive_sync,
)
from oci_jupyter.loop import Budgets, Execute, Finished, Generate, RefinementLoop
from oci_jupyter.prompts import READ_HINT, code_block_end, extract_code
from oci_jupyter.types import ExecutionOutcome, Message

MESSAGES: list[Message] = [
    {"role": "system", "content": "system"},
    {"role": "user", "content": "Compute 2 + 2."},
]
OK = ExecutionOutcome("ok", output="4\n")
ERROR = ExecutionOutcome("error", ename="ZeroDivisionError", evalue="division by zero")
ANSWER = "The answer is 4."
Kind = Literal["sync", "async"]
KINDS: tuple[Kind, ...] = ("sync", "async")


def code_reply(code: str) -> str:
    return f"```python\n{code}\n```"


class Script:
    """The scripted model and kernel; entries that are exceptions are raised."""

    def __init__(
        self,
        replies: Sequence[str | BaseException],
        outcomes: Sequence[ExecutionOutcome | BaseException] = (),
    ) -> None:
        self.replies = list(replies)
        self.outcomes = list(outcomes)
        self.generated: list[Generate] = []
        self.executed: list[Execute] = []
        self.events: list[TurnEnded] = []

    def generate(self, action: Generate) -> str:
        self.generated.append(action)
        assert self.replies, "more replies asked for than scripted"
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def execute(self, action: Execute) -> ExecutionOutcome:
        self.executed.append(action)
        assert self.outcomes, "more runs asked for than scripted"
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def agenerate(self, action: Generate) -> str:
        await asyncio.sleep(0)
        return self.generate(action)

    async def aexecute(self, action: Execute) -> ExecutionOutcome:
        await asyncio.sleep(0)
        return self.execute(action)

    def notify(self, event: TurnEnded) -> None:
        self.events.append(event)

    async def anotify(self, event: TurnEnded) -> None:
        await asyncio.sleep(0)
        # Awaited before the next action goes out: no reply after this turn's was asked for.
        assert len(self.generated) == event.turn.number
        self.events.append(event)

    def run(self, kind: Kind, loop: RefinementLoop, notify: bool = True) -> Finished:
        if kind == "sync":
            result = drive_sync(loop, self.generate, self.execute, self.notify if notify else None)
        else:
            told = self.anotify if notify else None
            result = asyncio.run(drive(loop, self.agenerate, self.aexecute, told))
        assert loop.finished
        assert loop.result is result
        return result


def new_loop(**kwargs: object) -> RefinementLoop:
    return RefinementLoop(MESSAGES, **kwargs)  # type: ignore[arg-type]


# ---- drive / drive_sync -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_a_run_then_an_answer(kind: Kind) -> None:
    script = Script([code_reply("print(2 + 2)"), ANSWER], [OK])
    result = script.run(kind, new_loop())
    assert result.status == "success"
    assert result.answer == ANSWER
    assert [a.turn for a in script.generated] == [1, 2]
    assert script.executed == [Execute(1, "print(2 + 2)\n", step=1, attempt=1)]
    # The second reply was asked for with the result.
    assert READ_HINT in script.generated[1].messages[-1]["content"]
    assert [(e.turn.number, e.ran) for e in script.events] == [(1, True), (2, False)]
    assert script.events[0].turn.outcome is OK


@pytest.mark.parametrize("kind", KINDS)
def test_notify_is_called_once_per_turn(kind: Kind) -> None:
    replies = [
        code_reply("1 / 0"),  # runs, fails
        code_reply("x = input()"),  # not run
        code_reply("1 / 0"),  # not run: a repeat
        code_reply("print(4)"),  # runs
        code_reply("print(4)"),  # not run: already ran
        ANSWER,  # no code
    ]
    script = Script(replies, [ERROR, OK])
    result = script.run(kind, new_loop(budgets=Budgets(attempts=5)))
    assert result.status == "success"
    assert [(e.turn.number, e.ran) for e in script.events] == [
        (1, True),
        (2, False),
        (3, False),
        (4, True),
        (5, False),
        (6, False),
    ]
    skipped = [None, "input", "repeat", None, "repeat_ok", None]
    assert [e.turn.skipped for e in script.events] == skipped
    assert [e.turn for e in script.events] == result.turns
    # The hotter sampling is the Generate's to tell: the reply after the repeat.
    assert [a.after_repeat for a in script.generated] == [False] * 3 + [True] + [False] * 2


@pytest.mark.parametrize("kind", KINDS)
def test_without_notify_it_still_runs(kind: Kind) -> None:
    script = Script([code_reply("print(4)"), ANSWER], [OK])
    assert script.run(kind, new_loop(), notify=False).status == "success"
    assert script.events == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_budget_ends_the_drive(kind: Kind) -> None:
    script = Script([code_reply("1 / 0"), code_reply("2 / 0")], [ERROR, ERROR])
    result = script.run(kind, new_loop(budgets=Budgets(attempts=2)))
    assert result.status == "failed"
    assert result.budget == "attempts"
    assert [(e.turn.number, e.ran) for e in script.events] == [(1, True), (2, True)]


@pytest.mark.parametrize("kind", KINDS)
def test_model_failed_ends_with_an_error(kind: Kind) -> None:
    script = Script([code_reply("1 / 0"), ModelFailed("the engine crashed")], [ERROR])
    result = script.run(kind, new_loop())
    assert result.status == "error"
    assert result.message == "the engine crashed"
    assert len(result.turns) == 2
    assert result.last_outcome is ERROR
    assert [e.turn.number for e in script.events] == [1]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("error", "message"),
    [(KernelGone("the kernel died"), "the kernel died"), (KernelGone(), "The kernel is gone.")],
)
def test_kernel_gone_ends_with_an_error_and_its_message(
    kind: Kind, error: KernelGone, message: str
) -> None:
    script = Script([code_reply("print(4)"), "unused"], [error])
    result = script.run(kind, new_loop())
    assert result.status == "error"
    assert result.message == message
    assert len(script.generated) == 1
    assert script.replies == ["unused"]
    assert script.events == []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("error", "message"),
    [(Stopped("Stopped by the user."), "Stopped by the user."), (Stopped(), "Stopped.")],
)
def test_stopped_while_generating_is_cancelled(kind: Kind, error: Stopped, message: str) -> None:
    script = Script([code_reply("1 / 0"), error], [ERROR])
    result = script.run(kind, new_loop())
    assert result.status == "cancelled"
    assert result.message == message
    assert len(result.turns) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_stopped_while_executing_is_cancelled(kind: Kind) -> None:
    script = Script([code_reply("print(4)")], [Stopped("Stop.")])
    result = script.run(kind, new_loop())
    assert result.status == "cancelled"
    assert result.message == "Stop."
    assert result.final_code == "print(4)\n"
    assert result.last_outcome is None


@pytest.mark.parametrize("kind", KINDS)
def test_an_interrupted_run_is_cancelled(kind: Kind) -> None:
    script = Script([code_reply("print(4)")], [ExecutionOutcome("cancelled")])
    result = script.run(kind, new_loop())
    assert result.status == "cancelled"
    assert [(e.turn.number, e.ran) for e in script.events] == [(1, True)]


@pytest.mark.parametrize("where", ["generate", "execute"])
def test_keyboard_interrupt_in_drive_sync_is_cancelled(where: str) -> None:
    if where == "generate":
        script = Script([KeyboardInterrupt()])
    else:
        script = Script([code_reply("print(4)")], [KeyboardInterrupt()])
    loop = new_loop()
    result = drive_sync(loop, script.generate, script.execute, script.notify)
    assert result.status == "cancelled"
    assert result.message == "Interrupted."
    assert loop.result is result
    assert script.events == []


@pytest.mark.parametrize("kind", KINDS)
def test_read_results_off_stops_at_the_first_success(kind: Kind) -> None:
    script = Script([code_reply("1 / 0"), code_reply("print(4)"), "unused"], [ERROR, OK])
    result = script.run(kind, new_loop(read_results=False))
    assert result.status == "success"
    assert len(script.generated) == 2


# ---- ReplyCutter --------------------------------------------------------------------------------
CODE_PART = "Let me compute it.\n```python\nprint(2 + 2)\n```"
REPLY = CODE_PART + "\nThis prints 4.\n```python\nprint('more')\n```\n"


def feed_all(cutter: ReplyCutter, pieces: Sequence[str]) -> str:
    """Feed pieces as a stream would, stopping when the cutter says so; what it showed."""
    shown = ""
    for piece in pieces:
        shown += cutter.feed(piece)
        if cutter.done:
            break
    return shown


def test_a_reply_fed_char_by_char_is_cut_right_after_the_first_closing_fence() -> None:
    cutter = ReplyCutter()
    shown = ""
    for index, char in enumerate(REPLY):
        shown += cutter.feed(char)
        if cutter.done:
            # The newline after the fence told it the fence line was complete.
            assert index == len(CODE_PART)
            break
    assert cutter.done
    assert cutter.text == CODE_PART
    assert shown == CODE_PART
    assert extract_code(cutter.text) == "print(2 + 2)\n"


@pytest.mark.parametrize("first", range(len(REPLY) + 1))
def test_the_cut_is_the_same_wherever_the_pieces_split(first: int) -> None:
    for second in range(first, len(REPLY) + 1, 7):
        cutter = ReplyCutter()
        shown = feed_all(cutter, [REPLY[:first], REPLY[first:second], REPLY[second:]])
        assert cutter.done
        assert cutter.text == CODE_PART
        assert shown == CODE_PART


def test_after_the_cut_nothing_more_is_taken() -> None:
    cutter = ReplyCutter()
    assert cutter.feed(CODE_PART + "\nafter") == CODE_PART
    assert cutter.done
    assert cutter.feed("more text") == ""
    assert cutter.text == CODE_PART


def test_a_closing_fence_at_the_end_waits_for_the_next_character() -> None:
    cutter = ReplyCutter()
    assert cutter.feed(CODE_PART) == CODE_PART
    assert not cutter.done  # "```" could still become "```python" of another block
    assert cutter.feed("\n") == ""
    assert cutter.done
    assert cutter.text == CODE_PART


@pytest.mark.parametrize(
    "reply",
    [
        "Output:\n```\nprint(4)\n```\nThat is all.\n",
        "Run:\n```bash\npip install numpy\n```\nthen import it.\n",
        "```text\n4\n```\n",
        "Unclosed:\n```python\nprint(4)\nprint(5)\n",
        "Inline ``` fences ```python are not blocks\n",
        "```python\nx = '''\n``` not a fence alone\n'''\n",
    ],
)
def test_replies_without_a_complete_python_block_are_not_cut(reply: str) -> None:
    for size in (1, 3, len(reply)):
        cutter = ReplyCutter()
        pieces = [reply[i : i + size] for i in range(0, len(reply), size)]
        shown = feed_all(cutter, pieces)
        assert not cutter.done
        assert cutter.text == reply
        assert shown == reply


def test_an_untagged_block_before_the_code_does_not_cut() -> None:
    reply = "The data:\n```\n1 2 3\n```\nThe code:\n```py\nprint(6)\n```\nIt prints 6.\n"
    cutter = ReplyCutter()
    shown = feed_all(cutter, list(reply))
    assert cutter.done
    assert shown == cutter.text == reply[: reply.index("```\nIt prints")] + "```"
    assert extract_code(cutter.text) == "print(6)\n"


@pytest.mark.parametrize("tag", ["python", "py", "python3", "ipython", "Python", "python title"])
def test_every_python_tag_cuts(tag: str) -> None:
    reply = f"```{tag}\nprint(4)\n```\nmore\n"
    cutter = ReplyCutter()
    feed_all(cutter, list(reply))
    assert cutter.done
    assert cutter.text == f"```{tag}\nprint(4)\n```"
    assert extract_code(cutter.text) == "print(4)\n"


def test_an_indented_block_cuts_after_its_fence() -> None:
    reply = "1. Run this:\n   ```python\n   print(4)\n   ```\n2. Read it.\n"
    cutter = ReplyCutter()
    feed_all(cutter, list(reply))
    assert cutter.done
    assert cutter.text == "1. Run this:\n   ```python\n   print(4)\n   ```"
    assert extract_code(cutter.text) == "print(4)\n"


def test_a_disabled_cutter_never_cuts() -> None:
    cutter = ReplyCutter(enabled=False)
    shown = feed_all(cutter, list(REPLY))
    assert not cutter.done
    assert cutter.text == REPLY
    assert shown == REPLY


# ---- code_block_end -----------------------------------------------------------------------------
def test_code_block_end_is_just_past_the_closing_fence() -> None:
    assert code_block_end(REPLY) == len(CODE_PART)
    assert code_block_end(CODE_PART) is None
    assert code_block_end(CODE_PART + "\n") == len(CODE_PART)
    assert code_block_end("no code at all\n") is None
    assert code_block_end("") is None


@pytest.mark.parametrize(
    "reply", ["```python\n```\nrest", "```python\n   \n\n```\nrest", "```python\n\n```\n"]
)
def test_code_block_end_of_an_empty_block_is_none(reply: str) -> None:
    assert code_block_end(reply) is None
    cutter = ReplyCutter()
    feed_all(cutter, list(reply))
    assert not cutter.done


def test_an_empty_block_does_not_hide_the_block_after_it() -> None:
    code = "```python\nprint(4)\n```"
    reply = f"```python\n```\nNow the code:\n{code}\nafter\n"
    assert code_block_end(reply) == reply.index(code) + len(code)
    cutter = ReplyCutter()
    feed_all(cutter, list(reply))
    assert cutter.done
    assert extract_code(cutter.text) == "print(4)\n"
