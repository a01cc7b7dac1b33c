"""The refinement loop as a sans-IO state machine: fed replies and outcomes, it says what next.

No model, kernel or event loop: ``ScriptedModel`` answers with replies given in advance and a
scripted runner returns outcomes, so every rule of the loop is checked deterministically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from oci_jupyter.engine import GenerationParams, Message
from oci_jupyter.loop import (
    REPEAT_TEMPERATURE,
    Execute,
    ExecutionOutcome,
    Finished,
    Generate,
    LoopError,
    RefinementLoop,
)
from oci_jupyter.prompts import FeedbackMarker, input_feedback

SYSTEM: Message = {"role": "system", "content": "You are a test system prompt."}
REQUEST: Message = {"role": "user", "content": "Compute 2 + 2."}
OK = ExecutionOutcome("ok", output="4\n")
ZERO_DIV = ExecutionOutcome(
    "error",
    ename="ZeroDivisionError",
    evalue="division by zero",
    traceback=(
        "\x1b[0;31m---------------------------------------------------------------\x1b[0m\n"
        "\x1b[0;31mZeroDivisionError\x1b[0m    Traceback (most recent call last)\n"
        "Cell \x1b[0;32mIn[1], line 1\x1b[0m\n----> 1 1 / 0\n"
        "\x1b[0;31mZeroDivisionError\x1b[0m: division by zero"
    ),
)


def code_reply(code: str, tag: str = "python") -> str:
    return f"Here is the code.\n```{tag}\n{code}\n```\nIt should work."


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ScriptedModel:
    """Answers each Generate with the next scripted reply and records what it was asked."""

    def __init__(self, replies: Sequence[str]) -> None:
        self.replies = list(replies)
        self.prompts: list[list[Message]] = []

    def __call__(self, messages: list[Message]) -> str:
        self.prompts.append([dict(m) for m in messages])
        assert self.replies, "the loop asked for more replies than were scripted"
        return self.replies.pop(0)


class ScriptedRunner:
    """Returns the next scripted outcome for each Execute and records the code it was given."""

    def __init__(self, outcomes: Sequence[ExecutionOutcome]) -> None:
        self.outcomes = list(outcomes)
        self.codes: list[str] = []

    def __call__(self, code: str) -> ExecutionOutcome:
        self.codes.append(code)
        assert self.outcomes, "the loop ran more code than outcomes were scripted"
        return self.outcomes.pop(0)


def drive(
    loop: RefinementLoop,
    model: Callable[[list[Message]], str],
    runner: Callable[[str], ExecutionOutcome],
    clock: FakeClock | None = None,
    generate_seconds: float = 0.0,
    execute_seconds: float = 0.0,
) -> Finished:
    """The driver of the module docstring, with a clock that moves while work happens."""
    action = loop.start()
    steps = 0
    while not isinstance(action, Finished):
        steps += 1
        assert steps < 100, "the loop never finished"
        if isinstance(action, Generate):
            assert action.turn == loop.turn
            reply = model(action.messages)
            if clock:
                clock.advance(generate_seconds)
            action = loop.on_reply(reply)
        else:
            assert isinstance(action, Execute)
            assert action.turn == loop.turn
            outcome = runner(action.code)
            if clock:
                clock.advance(execute_seconds)
            action = loop.on_outcome(outcome)
    return action


def new_loop(**kwargs: object) -> RefinementLoop:
    return RefinementLoop([SYSTEM, REQUEST], **kwargs)  # type: ignore[arg-type]


# ---- the basic cycle ---------------------------------------------------------------------------
def test_start_asks_for_a_generation_of_the_given_messages() -> None:
    loop = new_loop()
    action = loop.start()
    assert isinstance(action, Generate)
    assert action.turn == 1
    assert action.messages == [SYSTEM, REQUEST]
    assert loop.state == "generating"


def test_reply_with_code_asks_to_execute_the_code() -> None:
    loop = new_loop()
    loop.start()
    action = loop.on_reply(code_reply("print(2 + 2)"))
    assert action == Execute(1, "print(2 + 2)\n")
    assert loop.state == "executing"


def test_success_on_first_turn_finishes_with_success() -> None:
    model = ScriptedModel([code_reply("print(2 + 2)")])
    runner = ScriptedRunner([OK])
    result = drive(new_loop(), model, runner)
    assert result.status == "success"
    assert len(result.turns) == 1
    assert runner.codes == ["print(2 + 2)\n"]
    assert result.final_code == "print(2 + 2)\n"
    assert result.last_outcome is OK
    assert result.turns[0].feedback == f"{FeedbackMarker}\n4"


def test_error_then_fix_succeeds_on_second_turn() -> None:
    model = ScriptedModel([code_reply("print(1 / 0)"), code_reply("print(1 / 1)")])
    runner = ScriptedRunner([ZERO_DIV, ExecutionOutcome("ok", output="1.0\n")])
    result = drive(new_loop(), model, runner)
    assert result.status == "success"
    assert [t.number for t in result.turns] == [1, 2]
    assert runner.codes == ["print(1 / 0)\n", "print(1 / 1)\n"]
    assert result.turns[0].outcome is ZERO_DIV
    assert result.final_code == "print(1 / 1)\n"


def test_the_code_is_the_last_python_block_of_the_reply() -> None:
    reply = (
        "First a draft:\n```python\nx = 1\n```\nInstall with:\n```bash\npip install x\n```\n"
        "Final:\n```py\nx = 2\nprint(x)\n```\nOutput:\n```text\n2\n```\n"
    )
    loop = new_loop()
    loop.start()
    assert loop.on_reply(reply) == Execute(1, "x = 2\nprint(x)\n")


def test_an_unclosed_final_block_is_executed() -> None:
    loop = new_loop()
    loop.start()
    action = loop.on_reply("Sure:\n```python\nprint('cut off by max tokens')")
    assert action == Execute(1, "print('cut off by max tokens')\n")


# ---- replies without code ----------------------------------------------------------------------
def test_reply_without_code_on_first_turn_finishes_no_code() -> None:
    loop = new_loop()
    loop.start()
    result = loop.on_reply("2 + 2 is 4; no code is needed. ```bash\necho 4\n```")
    assert isinstance(result, Finished)
    assert result.status == "no_code"
    assert result.final_code is None
    assert result.last_outcome is None
    assert result.turns[0].reply.startswith("2 + 2 is 4")
    assert loop.finished


def test_reply_without_code_after_a_failure_finishes_failed() -> None:
    model = ScriptedModel([code_reply("1 / 0"), "I cannot fix this, sorry."])
    result = drive(new_loop(), model, ScriptedRunner([ZERO_DIV]))
    assert result.status == "failed"
    assert len(result.turns) == 2
    assert result.turns[1].code is None
    # The failing code is still reported as the last code tried.
    assert result.final_code == "1 / 0\n"
    assert result.last_outcome is ZERO_DIV


def test_reply_without_code_after_skipped_input_finishes_failed() -> None:
    model = ScriptedModel([code_reply("n = int(input())"), "Please type the number yourself."])
    result = drive(new_loop(), model, ScriptedRunner([]))
    assert result.status == "failed"


# ---- feedback ----------------------------------------------------------------------------------
def test_error_feedback_is_the_next_user_turn_with_the_stripped_traceback() -> None:
    loop = new_loop()
    loop.start()
    loop.on_reply(code_reply("1 / 0"))
    action = loop.on_outcome(ZERO_DIV)
    assert isinstance(action, Generate)
    assert action.turn == 2
    feedback = action.messages[-1]
    assert feedback["role"] == "user"
    assert feedback["content"].startswith("Execution result:")
    assert "ZeroDivisionError" in feedback["content"]
    assert "division by zero" in feedback["content"]
    assert "Traceback (most recent call last)" in feedback["content"]
    assert "\x1b" not in feedback["content"]
    assert loop.turns[0].feedback == feedback["content"]


def test_error_without_traceback_names_the_exception_and_message() -> None:
    loop = new_loop()
    loop.start()
    loop.on_reply(code_reply("int('x')"))
    action = loop.on_outcome(
        ExecutionOutcome("error", ename="ValueError", evalue="invalid literal for int()")
    )
    assert isinstance(action, Generate)
    content = action.messages[-1]["content"]
    assert content.startswith(FeedbackMarker)
    assert "ValueError: invalid literal for int()" in content


def test_long_output_is_clipped_in_the_feedback() -> None:
    output = "".join(chr(ord("a") + i % 26) for i in range(5000))
    loop = new_loop()
    loop.start()
    loop.on_reply(code_reply("print(s)"))
    action = loop.on_outcome(ExecutionOutcome("error", output=output, ename="E", evalue="x"))
    assert isinstance(action, Generate)
    content = action.messages[-1]["content"]
    assert output[:200] in content
    assert output[-200:] in content
    assert output[:201] not in content
    assert output[-201:] not in content
    assert "[4600 characters omitted]" in content


def test_empty_output_on_success_gets_a_hint_to_print_or_test() -> None:
    model = ScriptedModel([code_reply("x = 4")])
    loop = new_loop()
    result = drive(loop, model, ScriptedRunner([ExecutionOutcome("ok", output="")]))
    assert result.status == "success"
    feedback = result.turns[0].feedback
    assert feedback is not None
    assert feedback.startswith(FeedbackMarker)
    assert "print" in feedback.lower()
    assert "assert" in feedback.lower()
    # The result stays in the conversation for a follow-up request.
    assert loop.messages[-1] == {"role": "user", "content": feedback}


def test_timeout_is_feedback_that_mentions_the_limit() -> None:
    loop = new_loop()
    loop.start()
    loop.on_reply(code_reply("while True: pass"))
    action = loop.on_outcome(ExecutionOutcome("timeout", output="started\n", time_limit=30))
    assert isinstance(action, Generate)
    content = action.messages[-1]["content"]
    assert content.startswith(FeedbackMarker)
    assert "30 seconds" in content
    assert "started" in content


def test_interrupt_is_feedback_too() -> None:
    loop = new_loop()
    loop.start()
    loop.on_reply(code_reply("import time; time.sleep(100)"))
    action = loop.on_outcome(ExecutionOutcome("cancelled"))
    assert isinstance(action, Generate)
    content = action.messages[-1]["content"]
    assert content.startswith(FeedbackMarker)
    assert "interrupted" in content
    assert "KeyboardInterrupt" in content


# ---- input() -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "code",
    [
        "name = input('Your name: ')\nprint(name)",
        "import builtins\nn = int(builtins.input())",
        "def ask():\n    return input()\n\nprint(ask())",
        "values = [int(x) for x in input().split()]",
        # Not valid Python (an IPython magic): the regex fallback still sees the call.
        "%time n = input ('n? ')",
    ],
)
def test_code_calling_input_is_not_executed(code: str) -> None:
    loop = new_loop()
    loop.start()
    action = loop.on_reply(code_reply(code))
    assert isinstance(action, Generate), "code that calls input() must not be executed"
    assert action.turn == 2
    turn = loop.turns[0]
    assert turn.skipped == "input"
    assert turn.outcome is None
    assert turn.feedback == input_feedback()
    assert action.messages[-1] == {"role": "user", "content": input_feedback()}
    assert "assign" in input_feedback().lower()
    assert input_feedback().startswith(FeedbackMarker)


@pytest.mark.parametrize(
    "code",
    [
        "input_data = [1, 2, 3]\nprint(sum(input_data))",
        "form.input('name')\nwidget.input = 3",
        "print('call input() to ask')  # input() in a comment",
        "from torch import nn\nlayer = nn.Linear(2, 2)\nlayer.input(3)",
        # Not valid Python: the regex fallback must not match these either.
        "%time x = user_input(3)\nself.input(2)",
    ],
)
def test_code_not_calling_input_is_executed(code: str) -> None:
    loop = new_loop()
    loop.start()
    action = loop.on_reply(code_reply(code))
    assert action == Execute(1, code + "\n")
    assert loop.turns[0].skipped is None


def test_input_at_the_last_turn_finishes_failed() -> None:
    model = ScriptedModel([code_reply("x = input()")])
    result = drive(new_loop(max_turns=1), model, ScriptedRunner([]))
    assert result.status == "failed"
    assert "after 1 turn" in result.message
    assert "input()" in result.message


# ---- repeated code -----------------------------------------------------------------------------
def test_code_that_already_failed_is_not_run_again_and_the_model_is_told() -> None:
    model = ScriptedModel(
        [
            code_reply("print(1 / 0)"),
            code_reply("print(1 / 0)  \n\n"),  # the same but for whitespace
            code_reply("print(1 / 1)"),
        ]
    )
    runner = ScriptedRunner([ZERO_DIV, ExecutionOutcome("ok", output="1.0\n")])
    result = drive(new_loop(), model, runner)
    assert result.status == "success"
    assert runner.codes == ["print(1 / 0)\n", "print(1 / 1)\n"]
    repeat = result.turns[1]
    assert repeat.skipped == "repeat"
    assert repeat.outcome is None
    assert repeat.feedback is not None
    assert repeat.feedback.startswith(
        f"{FeedbackMarker} not run: this is the same code as attempt 1"
    )
    assert "ZeroDivisionError: division by zero" in repeat.feedback
    # The third generation read that feedback last.
    assert model.prompts[2][-1]["content"] == repeat.feedback


def test_the_reply_after_a_repeat_is_sampled_hotter() -> None:
    loop = new_loop()
    first = loop.start()
    assert not first.after_repeat
    assert first.params(GenerationParams(temperature=0.2)).temperature == 0.2
    loop.on_reply(code_reply("print(1 / 0)"))
    second = loop.on_outcome(ZERO_DIV)
    assert isinstance(second, Generate)
    assert not second.after_repeat
    third = loop.on_reply(code_reply("print(1 / 0)"))
    assert isinstance(third, Generate)
    assert third.after_repeat
    assert third.params(GenerationParams(temperature=0.0)).temperature == REPEAT_TEMPERATURE
    assert third.params(GenerationParams(temperature=1.1)).temperature == 1.1  # never cooler


def test_repeating_the_failing_cell_of_a_fix_is_not_run() -> None:
    cell = "total = prices * 2\n"
    name_error = ExecutionOutcome("error", ename="NameError", evalue="name 'prices' is not defined")
    loop = new_loop(failed_code=((cell, name_error),), max_turns=1)
    result = drive(loop, ScriptedModel([code_reply("total = prices * 2")]), ScriptedRunner([]))
    assert result.status == "failed"
    assert result.turns[0].skipped == "repeat"
    assert "same code as the cell" in (result.turns[0].feedback or "")
    assert "The model repeated code that failed (NameError" in result.message


def test_code_that_differs_or_succeeded_before_runs() -> None:
    model = ScriptedModel([code_reply("x = 1 / 0"), code_reply("x = 1 / 0\nprint(x)")])
    runner = ScriptedRunner([ZERO_DIV, ZERO_DIV])
    result = drive(new_loop(max_turns=2), model, runner)
    assert len(runner.codes) == 2
    assert [t.skipped for t in result.turns] == [None, None]


# ---- stopping ----------------------------------------------------------------------------------
def test_max_turns_default_is_three_and_the_message_names_the_count() -> None:
    model = ScriptedModel([code_reply(f"1 / {i}") for i in range(5)])
    runner = ScriptedRunner([ZERO_DIV] * 5)
    loop = new_loop()
    assert loop.max_turns == 3
    result = drive(loop, model, runner)
    assert result.status == "failed"
    assert len(result.turns) == 3
    assert len(runner.codes) == 3
    assert "3 turns" in result.message
    assert "ZeroDivisionError" in result.message
    # The last feedback is kept for a follow-up request.
    assert loop.messages[-1]["content"] == result.turns[-1].feedback


@pytest.mark.parametrize("max_turns", [1, 2, 5])
def test_max_turns_is_configurable(max_turns: int) -> None:
    model = ScriptedModel([code_reply("1 / 0")] * 10)
    runner = ScriptedRunner([ZERO_DIV] * 10)
    result = drive(new_loop(max_turns=max_turns), model, runner)
    assert result.status == "failed"
    assert len(result.turns) == max_turns
    assert len(model.prompts) == max_turns
    assert f"after {max_turns} turn{'s' if max_turns > 1 else ''}:" in result.message


def test_max_turns_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_turns"):
        new_loop(max_turns=0)


def test_model_error_finishes_with_status_error() -> None:
    clock = FakeClock()
    loop = new_loop(clock=clock)
    loop.start()
    clock.advance(1.25)
    result = loop.on_model_error("the model server is unreachable")
    assert result.status == "error"
    assert result.message == "the model server is unreachable"
    assert result.turns[0].generate_seconds == pytest.approx(1.25)
    assert loop.finished


def test_model_error_after_a_failed_turn_keeps_the_earlier_turn() -> None:
    loop = new_loop()
    loop.start()
    loop.on_reply(code_reply("1 / 0"))
    loop.on_outcome(ZERO_DIV)
    result = loop.on_model_error("engine crashed")
    assert result.status == "error"
    assert len(result.turns) == 2
    assert result.last_outcome is ZERO_DIV


# ---- cancel ------------------------------------------------------------------------------------
def test_cancel_before_start() -> None:
    loop = new_loop()
    result = loop.cancel()
    assert result.status == "cancelled"
    assert result.turns == []
    with pytest.raises(LoopError):
        loop.start()


def test_cancel_while_generating() -> None:
    loop = new_loop()
    loop.start()
    result = loop.cancel("Stopped by the user.")
    assert result.status == "cancelled"
    assert result.message == "Stopped by the user."
    assert len(result.turns) == 1
    with pytest.raises(LoopError):
        loop.on_reply(code_reply("print(1)"))


def test_cancel_while_executing() -> None:
    loop = new_loop()
    loop.start()
    loop.on_reply(code_reply("print(1)"))
    result = loop.cancel()
    assert result.status == "cancelled"
    assert result.final_code == "print(1)\n"
    with pytest.raises(LoopError):
        loop.on_outcome(OK)


@pytest.mark.parametrize(
    ("replies", "outcomes", "status"),
    [
        ([code_reply("print(4)")], [OK], "success"),
        (["No code here."], [], "no_code"),
        ([code_reply("1 / 0")], [ZERO_DIV], "failed"),
    ],
)
def test_cancel_after_finish_returns_the_same_result(
    replies: list[str], outcomes: list[ExecutionOutcome], status: str
) -> None:
    loop = new_loop(max_turns=1)
    result = drive(loop, ScriptedModel(replies), ScriptedRunner(outcomes))
    assert result.status == status
    assert loop.cancel() is result
    assert loop.cancel("again") is result
    assert loop.result is result


# ---- order -------------------------------------------------------------------------------------
def test_methods_called_out_of_order_raise_loop_error() -> None:
    loop = new_loop()
    with pytest.raises(LoopError):
        loop.on_reply("early")
    with pytest.raises(LoopError):
        loop.on_outcome(OK)
    with pytest.raises(LoopError):
        loop.on_model_error("early")
    loop.start()
    with pytest.raises(LoopError):
        loop.start()
    with pytest.raises(LoopError):
        loop.on_outcome(OK)
    loop.on_reply(code_reply("print(4)"))
    with pytest.raises(LoopError):
        loop.on_reply(code_reply("print(5)"))
    with pytest.raises(LoopError):
        loop.on_model_error("late")
    loop.on_outcome(OK)
    for call in (
        loop.start,
        lambda: loop.on_reply("x"),
        lambda: loop.on_outcome(OK),
        lambda: loop.on_model_error("x"),
    ):
        with pytest.raises(LoopError):
            call()
    # The failed calls changed nothing.
    assert loop.result is not None
    assert loop.result.status == "success"
    assert len(loop.turns) == 1


# ---- turns are reported ------------------------------------------------------------------------
def test_every_turn_is_reported_with_times_from_the_clock() -> None:
    clock = FakeClock()
    replies = [code_reply("1 / 0"), code_reply("x = input()"), code_reply("print(4)")]
    model = ScriptedModel(replies)
    runner = ScriptedRunner([ZERO_DIV, OK])
    result = drive(
        new_loop(clock=clock), model, runner, clock, generate_seconds=2.0, execute_seconds=0.5
    )
    assert result.status == "success"
    first, second, third = result.turns
    assert (first.number, second.number, third.number) == (1, 2, 3)
    assert [t.reply for t in result.turns] == replies
    assert [t.code for t in result.turns] == ["1 / 0\n", "x = input()\n", "print(4)\n"]

    assert first.outcome is ZERO_DIV
    assert first.feedback is not None
    assert "ZeroDivisionError" in first.feedback
    assert (first.generate_seconds, first.execute_seconds) == (2.0, 0.5)

    assert second.skipped == "input"
    assert second.outcome is None
    assert second.feedback == input_feedback()
    assert (second.generate_seconds, second.execute_seconds) == (2.0, 0.0)

    assert third.outcome is OK
    assert third.feedback == f"{FeedbackMarker}\n4"
    assert (third.generate_seconds, third.execute_seconds) == (2.0, 0.5)


def test_execute_seconds_prefers_the_outcomes_own_time() -> None:
    clock = FakeClock()
    loop = new_loop(clock=clock)
    loop.start()
    loop.on_reply(code_reply("print(4)"))
    clock.advance(9.0)
    result = loop.on_outcome(ExecutionOutcome("ok", output="4", seconds=1.5))
    assert isinstance(result, Finished)
    assert result.turns[0].execute_seconds == 1.5


# ---- the conversation --------------------------------------------------------------------------
def test_each_generate_has_the_full_conversation_in_order() -> None:
    replies = [code_reply("1 / 0"), code_reply("x = input()"), code_reply("print(4)")]
    model = ScriptedModel(replies)
    loop = new_loop()
    result = drive(loop, model, ScriptedRunner([ZERO_DIV, OK]))
    assert result.status == "success"
    first, second, third = model.prompts
    assert first == [SYSTEM, REQUEST]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[:2] == first
    assert second[2] == {"role": "assistant", "content": replies[0]}
    assert second[3]["content"] == result.turns[0].feedback
    assert [m["role"] for m in third] == [*(m["role"] for m in second), "assistant", "user"]
    assert third[:4] == second
    assert third[4] == {"role": "assistant", "content": replies[1]}
    assert third[5] == {"role": "user", "content": input_feedback()}
    # After success the last reply and its result close the conversation.
    assert loop.messages == [
        *third,
        {"role": "assistant", "content": replies[2]},
        {"role": "user", "content": result.turns[2].feedback},
    ]


def test_history_drops_the_system_message() -> None:
    model = ScriptedModel([code_reply("print(4)")])
    loop = new_loop()
    drive(loop, model, ScriptedRunner([OK]))
    history = loop.history()
    assert all(m["role"] != "system" for m in history)
    assert history == loop.messages[1:]
    assert [m["role"] for m in history] == ["user", "assistant", "user"]
    assert history[0] == REQUEST


def test_the_callers_messages_are_not_changed() -> None:
    messages: list[Message] = [SYSTEM, REQUEST]
    loop = RefinementLoop(messages)
    drive(loop, ScriptedModel([code_reply("1 / 0"), "give up"]), ScriptedRunner([ZERO_DIV]))
    assert messages == [SYSTEM, REQUEST]
    assert len(loop.messages) == 5


def test_changing_a_generate_message_list_does_not_change_the_loop() -> None:
    loop = new_loop()
    action = loop.start()
    action.messages.append({"role": "user", "content": "injected"})
    action.messages.clear()
    assert loop.messages == [SYSTEM, REQUEST]
    loop.on_reply(code_reply("1 / 0"))
    follow_up = loop.on_outcome(ZERO_DIV)
    assert isinstance(follow_up, Generate)
    assert follow_up.messages[:2] == [SYSTEM, REQUEST]
    assert len(follow_up.messages) == 4


def test_outcome_summary() -> None:
    assert OK.summary() == "ok"
    assert ZERO_DIV.summary() == "ZeroDivisionError: division by zero"
    assert ExecutionOutcome("error", ename="KeyError").summary() == "KeyError"
    assert ExecutionOutcome("timeout").summary() == "timeout"
    assert OK.ok
    assert not ZERO_DIV.ok
