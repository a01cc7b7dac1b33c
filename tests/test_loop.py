"""The interpreter loop as a sans-IO state machine: fed replies and outcomes, it says what next.

No model, kernel or event loop: ``ScriptedModel`` answers with replies given in advance and
``ScriptedRunner`` returns outcomes, so every rule of the loop is checked deterministically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

import pytest

from oci_jupyter.loop import (
    REPEAT_TEMPERATURE,
    Budgets,
    Execute,
    ExecutionOutcome,
    Finished,
    Generate,
    LoopError,
    RefinementLoop,
    alternate,
    bounded,
)
from oci_jupyter.prompts import (
    READ_HINT,
    FeedbackMarker,
    input_feedback,
    repeat_success_feedback,
)
from oci_jupyter.types import GenerationParams, Message

SYSTEM: Message = {"role": "system", "content": "You are a test system prompt."}
REQUEST: Message = {"role": "user", "content": "Compute 2 + 2."}
OK = ExecutionOutcome("ok", output="4\n")
OK_FEEDBACK = f"{FeedbackMarker}\n4\n\n{READ_HINT}"
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
ANSWER = "2 + 2 is 4, as the output shows."


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
        self.asked: list[Generate] = []

    def __call__(self, action: Generate) -> str:
        self.asked.append(action)
        self.prompts.append([dict(m) for m in action.messages])
        assert self.replies, "the loop asked for more replies than were scripted"
        return self.replies.pop(0)


class ScriptedRunner:
    """Returns the next scripted outcome for each Execute and records what it was asked."""

    def __init__(self, outcomes: Sequence[ExecutionOutcome]) -> None:
        self.outcomes = list(outcomes)
        self.actions: list[Execute] = []

    @property
    def codes(self) -> list[str]:
        return [a.code for a in self.actions]

    def __call__(self, action: Execute) -> ExecutionOutcome:
        self.actions.append(action)
        assert self.outcomes, "the loop ran more code than outcomes were scripted"
        return self.outcomes.pop(0)


def check_alternating(messages: Sequence[Message]) -> None:
    """Raise unless the messages start with the user and strictly alternate user/assistant."""
    if not messages:
        return
    if messages[0]["role"] != "user":
        raise AssertionError(f"starts with {messages[0]['role']}: {messages!r}")
    for before, after in pairwise(messages):
        if after["role"] not in ("user", "assistant"):
            raise AssertionError(f"unexpected role {after['role']!r}")
        if before["role"] == after["role"]:
            raise AssertionError(f"two {after['role']} turns in a row: {messages!r}")


def test_the_checker_catches_two_turns_of_one_role() -> None:
    check_alternating([REQUEST, {"role": "assistant", "content": "a"}, REQUEST])
    with pytest.raises(AssertionError, match="two user turns"):
        check_alternating([REQUEST, REQUEST])
    with pytest.raises(AssertionError, match="starts with assistant"):
        check_alternating([{"role": "assistant", "content": "a"}, REQUEST])
    with pytest.raises(AssertionError, match="starts with system"):
        check_alternating([SYSTEM, REQUEST])


def drive(
    loop: RefinementLoop,
    model: Callable[[Generate], str],
    runner: Callable[[Execute], ExecutionOutcome],
    clock: FakeClock | None = None,
    generate_seconds: float = 0.0,
    execute_seconds: float = 0.0,
) -> Finished:
    """The driver of the module docstring, with a clock that moves while work happens.

    Every run's memory is checked to alternate strictly, alone and after another one."""
    action = loop.start()
    count = 0
    while not isinstance(action, Finished):
        count += 1
        assert count < 100, "the loop never finished"
        if isinstance(action, Generate):
            assert action.turn == loop.turn
            reply = model(action)
            if clock:
                clock.advance(generate_seconds)
            action = loop.on_reply(reply)
        else:
            assert isinstance(action, Execute)
            assert action.turn == loop.turn
            outcome = runner(action)
            if clock:
                clock.advance(execute_seconds)
            action = loop.on_outcome(outcome)
    assert loop.finished
    assert loop.result is action
    check_memory(loop)
    return action


def check_memory(loop: RefinementLoop) -> None:
    exchange = loop.exchange("the request")
    assert exchange[0] == {"role": "user", "content": "the request"}
    check_alternating(exchange)
    check_alternating(alternate(exchange))
    # Two requests remembered one after the other still alternate once joined.
    check_alternating(alternate([*exchange, *loop.exchange("the next request")]))
    check_alternating(bounded([*exchange, *exchange], 200))


def new_loop(**kwargs: object) -> RefinementLoop:
    return RefinementLoop([SYSTEM, REQUEST], **kwargs)  # type: ignore[arg-type]


# ---- the basic cycle ---------------------------------------------------------------------------
def test_start_asks_for_a_generation_of_the_given_messages() -> None:
    loop = new_loop()
    action = loop.start()
    assert isinstance(action, Generate)
    assert action.turn == 1
    assert action.messages == [SYSTEM, REQUEST]
    assert not action.after_repeat
    assert loop.state == "generating"
    assert loop.step == 0


def test_reply_with_code_asks_to_execute_the_code_in_step_1() -> None:
    loop = new_loop()
    loop.start()
    action = loop.on_reply(code_reply("print(2 + 2)"))
    assert action == Execute(1, "print(2 + 2)\n", step=1, attempt=1)
    assert isinstance(action, Execute)
    assert not action.refines
    assert loop.state == "executing"
    assert loop.step == 1
    assert (loop.turns[0].step, loop.turns[0].attempt) == (1, 1)


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


def test_defaults() -> None:
    loop = new_loop()
    assert loop.budgets == Budgets(attempts=3, steps=4, replies=8)
    assert loop.mode == "chat"
    assert loop.read_results is True


@pytest.mark.parametrize("name", ["attempts", "steps", "replies"])
def test_budgets_must_be_positive(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Budgets(**{name: 0})  # type: ignore[arg-type]


# ---- success ------------------------------------------------------------------------------------
def test_success_then_an_answer_finishes_with_the_answer() -> None:
    model = ScriptedModel([code_reply("print(2 + 2)"), ANSWER])
    runner = ScriptedRunner([OK])
    loop = new_loop()
    result = drive(loop, model, runner)
    assert result.status == "success"
    assert result.answer == ANSWER
    assert result.message == "Answered."
    assert result.budget is None
    assert runner.codes == ["print(2 + 2)\n"]
    assert len(result.turns) == 2
    assert result.turns[0].outcome is OK
    assert result.turns[0].feedback == OK_FEEDBACK
    # The answer was written after reading the result.
    assert model.prompts[1][-1] == {"role": "user", "content": OK_FEEDBACK}
    answer = result.turns[1]
    assert (answer.code, answer.outcome, answer.step, answer.attempt) == (None, None, 0, 0)
    assert result.final_code == "print(2 + 2)\n"
    assert result.last_outcome is OK
    assert result.steps == 1
    assert result.step_codes() == ["print(2 + 2)\n"]
    assert result.summary() == "answered after 1 step, 2 replies"
    assert loop.messages[-1] == {"role": "assistant", "content": ANSWER}


def test_success_then_code_is_the_next_step_in_a_new_cell() -> None:
    model = ScriptedModel([code_reply("x = 2 + 2\nprint(x)"), code_reply("print(x * 10)"), ANSWER])
    runner = ScriptedRunner([OK, ExecutionOutcome("ok", output="40\n")])
    result = drive(new_loop(), model, runner)
    assert result.status == "success"
    assert result.answer == ANSWER
    first, second = runner.actions
    assert (first.turn, first.step, first.attempt, first.refines) == (1, 1, 1, False)
    assert (second.turn, second.step, second.attempt, second.refines) == (2, 2, 1, False)
    assert [(t.step, t.attempt) for t in result.turns] == [(1, 1), (2, 1), (0, 0)]
    assert result.steps == 2
    assert result.step_codes() == ["x = 2 + 2\nprint(x)\n", "print(x * 10)\n"]
    assert result.summary() == "answered after 2 steps, 3 replies"
    assert model.prompts[2][-1]["content"] == f"{FeedbackMarker}\n40\n\n{READ_HINT}"


def test_error_then_fix_refines_the_same_cell_then_answers() -> None:
    model = ScriptedModel([code_reply("print(1 / 0)"), code_reply("print(1 / 1)"), ANSWER])
    runner = ScriptedRunner([ZERO_DIV, ExecutionOutcome("ok", output="1.0\n")])
    result = drive(new_loop(), model, runner)
    assert result.status == "success"
    assert result.answer == ANSWER
    first, second = runner.actions
    assert (first.step, first.attempt, first.refines) == (1, 1, False)
    assert (second.turn, second.step, second.attempt, second.refines) == (2, 1, 2, True)
    assert runner.codes == ["print(1 / 0)\n", "print(1 / 1)\n"]
    assert result.turns[0].outcome is ZERO_DIV
    assert result.final_code == "print(1 / 1)\n"
    assert result.steps == 1
    # The cell's last code that ran: the fix, not the failing first try.
    assert result.step_codes() == ["print(1 / 1)\n"]
    assert result.summary() == "answered after 1 step, 3 replies"


def test_a_failure_in_a_later_step_refines_that_step() -> None:
    model = ScriptedModel(
        [
            code_reply("x = 4\nprint(x)"),
            code_reply("print(x / 0)"),
            code_reply("print(x / 2)"),
            ANSWER,
        ]
    )
    runner = ScriptedRunner([OK, ZERO_DIV, ExecutionOutcome("ok", output="2.0\n")])
    result = drive(new_loop(), model, runner)
    assert result.status == "success"
    assert [(a.step, a.attempt) for a in runner.actions] == [(1, 1), (2, 1), (2, 2)]
    assert result.step_codes() == ["x = 4\nprint(x)\n", "print(x / 2)\n"]
    assert result.steps == 2


# ---- replies without code ----------------------------------------------------------------------
def test_reply_without_code_on_first_turn_finishes_no_code() -> None:
    reply = "2 + 2 is 4; no code is needed. ```bash\necho 4\n```"
    loop = new_loop()
    loop.start()
    result = loop.on_reply(reply)
    assert isinstance(result, Finished)
    assert result.status == "no_code"
    assert result.answer == reply
    assert result.final_code is None
    assert result.last_outcome is None
    assert result.steps == 0
    assert result.step_codes() == []
    assert result.summary() == "answered without code after 0 steps, 1 reply"
    assert loop.finished
    check_memory(loop)


def test_reply_without_code_after_a_failure_finishes_failed_with_the_explanation() -> None:
    explanation = "The divisor is zero, and the request asks for it; it cannot be computed."
    model = ScriptedModel([code_reply("1 / 0"), explanation])
    result = drive(new_loop(), model, ScriptedRunner([ZERO_DIV]))
    assert result.status == "failed"
    assert result.answer == explanation
    assert result.message == "The model stopped without fixed code."
    assert result.budget is None
    assert len(result.turns) == 2
    assert result.turns[1].code is None
    # The failing code is still reported as the last code tried.
    assert result.final_code == "1 / 0\n"
    assert result.last_outcome is ZERO_DIV
    assert result.summary() == "failed after 1 step, 2 replies"


def test_reply_without_code_after_skipped_input_finishes_failed() -> None:
    model = ScriptedModel([code_reply("n = int(input())"), "Please type the number yourself."])
    result = drive(new_loop(), model, ScriptedRunner([]))
    assert result.status == "failed"
    assert result.answer == "Please type the number yourself."
    assert result.steps == 0


# ---- feedback ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("outcome", "hint"),
    [
        (OK, True),
        (ExecutionOutcome("ok", output=""), False),
        (ZERO_DIV, False),
        (ExecutionOutcome("timeout", output="started\n", time_limit=30), False),
        (ExecutionOutcome("cancelled", output="half\n"), False),
    ],
)
def test_every_outcome_goes_back_to_the_model(outcome: ExecutionOutcome, hint: bool) -> None:
    loop = new_loop()
    loop.start()
    loop.on_reply(code_reply("print(4)"))
    action = loop.on_outcome(outcome)
    feedback = loop.turns[0].feedback
    assert feedback is not None
    assert feedback.startswith(FeedbackMarker)
    assert loop.messages[-1] == {"role": "user", "content": feedback}
    assert (READ_HINT in feedback) is hint
    if isinstance(action, Generate):
        assert action.messages == loop.messages
    else:
        assert outcome.status == "cancelled"


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
    assert READ_HINT not in feedback["content"]
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
    # Words right after a run that printed nothing are not taken for the answer.
    model = ScriptedModel([code_reply("x = 4"), "x is now 4.", code_reply("print(x)"), "It is 4."])
    loop = new_loop()
    outcomes = [ExecutionOutcome("ok", output=""), ExecutionOutcome("ok", output="4\n")]
    result = drive(loop, model, ScriptedRunner(outcomes))
    assert (result.status, result.answer) == ("success", "It is 4.")
    assert result.turns[1].skipped == "unread"
    feedback = result.turns[0].feedback
    assert feedback is not None
    assert feedback.startswith(FeedbackMarker)
    assert "print" in feedback.lower()
    assert "assert" in feedback.lower()
    assert READ_HINT not in feedback
    assert model.prompts[1][-1] == {"role": "user", "content": feedback}


def test_timeout_is_an_error_the_model_can_fix() -> None:
    model = ScriptedModel([code_reply("while True: pass"), code_reply("print(4)"), ANSWER])
    timeout = ExecutionOutcome("timeout", output="started\n", time_limit=30)
    runner = ScriptedRunner([timeout, OK])
    result = drive(new_loop(), model, runner)
    assert result.status == "success"
    content = model.prompts[1][-1]["content"]
    assert content.startswith(FeedbackMarker)
    assert "30 seconds" in content
    assert "started" in content
    assert runner.actions[1].refines


# ---- an interrupted run, cancel, a lost kernel ---------------------------------------------------
def test_an_interrupted_run_ends_the_loop_cancelled() -> None:
    interrupted = ExecutionOutcome("cancelled", output="partial\n")
    loop = new_loop()
    loop.start()
    loop.on_reply(code_reply("import time; time.sleep(100)"))
    result = loop.on_outcome(interrupted)
    assert isinstance(result, Finished)
    assert result.status == "cancelled"
    assert result.message == "The run was interrupted."
    assert result.last_outcome is interrupted
    assert result.summary() == "stopped after 1 step, 1 reply"
    # What it printed before the interrupt stays in the conversation.
    content = loop.messages[-1]["content"]
    assert loop.messages[-1]["role"] == "user"
    assert "interrupted" in content
    assert "KeyboardInterrupt" in content
    assert "partial" in content
    check_memory(loop)


def test_cancel_before_start() -> None:
    loop = new_loop()
    result = loop.cancel()
    assert result.status == "cancelled"
    assert result.message == "Cancelled."
    assert result.turns == []
    assert loop.state == "finished"
    with pytest.raises(LoopError):
        loop.start()
    check_memory(loop)


def test_cancel_while_generating() -> None:
    loop = new_loop()
    loop.start()
    result = loop.cancel("Stopped by the user.")
    assert result.status == "cancelled"
    assert result.message == "Stopped by the user."
    assert len(result.turns) == 1
    with pytest.raises(LoopError):
        loop.on_reply(code_reply("print(1)"))
    check_memory(loop)


def test_cancel_while_executing() -> None:
    loop = new_loop()
    loop.start()
    loop.on_reply(code_reply("print(1)"))
    result = loop.cancel()
    assert result.status == "cancelled"
    assert result.final_code == "print(1)\n"
    assert result.steps == 0  # it never ran to the end
    with pytest.raises(LoopError):
        loop.on_outcome(OK)
    check_memory(loop)


@pytest.mark.parametrize(
    ("replies", "outcomes", "status"),
    [
        ([code_reply("print(4)"), ANSWER], [OK], "success"),
        (["No code here."], [], "no_code"),
        ([code_reply("1 / 0"), "I give up."], [ZERO_DIV], "failed"),
    ],
)
def test_cancel_or_kernel_lost_after_finish_returns_the_same_result(
    replies: list[str], outcomes: list[ExecutionOutcome], status: str
) -> None:
    loop = new_loop()
    result = drive(loop, ScriptedModel(replies), ScriptedRunner(outcomes))
    assert result.status == status
    assert loop.cancel() is result
    assert loop.cancel("again") is result
    assert loop.kernel_lost() is result
    assert loop.result is result


@pytest.mark.parametrize("state", ["new", "generating", "executing"])
def test_a_lost_kernel_ends_the_loop_with_an_error(state: str) -> None:
    loop = new_loop()
    if state != "new":
        loop.start()
    if state == "executing":
        loop.on_reply(code_reply("print(1)"))
    assert loop.state == state
    result = loop.kernel_lost("The kernel died.")
    assert result.status == "error"
    assert result.message == "The kernel died."
    assert loop.state == "finished"
    assert result.summary().startswith("ended with an error after 0 steps")
    assert loop.kernel_lost().message == "The kernel died."
    check_memory(loop)


def test_kernel_lost_has_a_default_message() -> None:
    loop = new_loop()
    loop.start()
    assert loop.kernel_lost().message == "The kernel is gone."


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
    check_memory(loop)


def test_model_error_after_a_failed_turn_keeps_the_earlier_turn() -> None:
    loop = new_loop()
    loop.start()
    loop.on_reply(code_reply("1 / 0"))
    loop.on_outcome(ZERO_DIV)
    result = loop.on_model_error("engine crashed")
    assert result.status == "error"
    assert len(result.turns) == 2
    assert result.last_outcome is ZERO_DIV
    check_memory(loop)


# ---- budgets ------------------------------------------------------------------------------------
def test_attempts_budget_default_is_three_and_the_message_names_it() -> None:
    model = ScriptedModel([code_reply(f"1 / {i}") for i in range(5)])
    runner = ScriptedRunner([ZERO_DIV] * 5)
    loop = new_loop()
    result = drive(loop, model, runner)
    assert result.status == "failed"
    assert result.budget == "attempts"
    assert len(result.turns) == 3
    assert len(runner.codes) == 3
    assert [a.attempt for a in runner.actions] == [1, 2, 3]
    assert result.message == "Still failing after 3 attempts: ZeroDivisionError: division by zero"
    # The last feedback is kept for a follow-up request.
    assert loop.messages[-1]["content"] == result.turns[-1].feedback


@pytest.mark.parametrize("attempts", [1, 2, 5])
def test_attempts_budget_is_configurable(attempts: int) -> None:
    model = ScriptedModel([code_reply(f"1 / {i}") for i in range(10)])
    runner = ScriptedRunner([ZERO_DIV] * 10)
    result = drive(new_loop(budgets=Budgets(attempts=attempts, replies=10)), model, runner)
    assert result.status == "failed"
    assert result.budget == "attempts"
    assert len(result.turns) == attempts
    assert len(model.prompts) == attempts
    assert f"after {attempts} attempt{'s' if attempts > 1 else ''}:" in result.message


def test_attempts_budget_in_a_later_step_names_the_step() -> None:
    model = ScriptedModel([code_reply("print(4)"), code_reply("1 / 0"), code_reply("2 / 0")])
    runner = ScriptedRunner([OK, ZERO_DIV, ZERO_DIV])
    result = drive(new_loop(budgets=Budgets(attempts=2)), model, runner)
    assert result.status == "failed"
    assert result.budget == "attempts"
    assert "after 2 attempts in step 2:" in result.message
    assert result.step_codes() == ["print(4)\n", "2 / 0\n"]


def test_each_step_has_its_own_attempts() -> None:
    replies = [code_reply("1 / 0"), code_reply("print(4)"), code_reply("2 / 0")]
    replies += [code_reply("print(8)"), ANSWER]
    runner = ScriptedRunner([ZERO_DIV, OK, ZERO_DIV, OK])
    result = drive(new_loop(budgets=Budgets(attempts=2)), ScriptedModel(replies), runner)
    assert result.status == "success"
    assert [(a.step, a.attempt) for a in runner.actions] == [(1, 1), (1, 2), (2, 1), (2, 2)]


def test_steps_budget_stops_before_a_step_too_many() -> None:
    replies = [code_reply("print(1)"), code_reply("print(2)"), code_reply("print(3)")]
    runner = ScriptedRunner([OK, OK, OK])
    loop = new_loop(budgets=Budgets(steps=2))
    result = drive(loop, ScriptedModel(replies), runner)
    assert result.status == "success"
    assert result.budget == "steps"
    assert "step budget (2 steps)" in result.message
    assert "the last step ran without errors" in result.message
    assert runner.codes == ["print(1)\n", "print(2)\n"]
    assert result.turns[2].outcome is None
    assert result.steps == 2
    assert result.step_codes() == ["print(1)\n", "print(2)\n"]
    assert loop.messages[-1] == {"role": "assistant", "content": replies[2]}


def test_replies_budget_after_a_success() -> None:
    replies = [code_reply("print(1)"), code_reply("print(2)"), ANSWER]
    runner = ScriptedRunner([OK, OK])
    model = ScriptedModel(replies)
    result = drive(new_loop(budgets=Budgets(replies=2)), model, runner)
    assert result.status == "success"
    assert result.budget == "replies"
    assert result.message == (
        "Stopped at the reply budget (2 replies); the last step ran without errors."
    )
    assert len(model.prompts) == 2
    assert result.answer == ""
    assert result.summary() == "ran after 2 steps, 2 replies"


def test_replies_budget_after_a_failure() -> None:
    model = ScriptedModel([code_reply(f"1 / {i}") for i in range(5)])
    runner = ScriptedRunner([ZERO_DIV] * 5)
    result = drive(new_loop(budgets=Budgets(attempts=5, replies=2)), model, runner)
    assert result.status == "failed"
    assert result.budget == "replies"
    assert result.message == "Stopped at the reply budget (2 replies)."
    assert len(model.prompts) == 2


@pytest.mark.parametrize(
    ("budgets", "replies", "outcomes", "message"),
    [
        (Budgets(steps=1), ["print(1)", "print(2)"], [OK], "(1 step);"),
        (Budgets(replies=1), ["print(1)"], [OK], "(1 reply);"),
        (Budgets(replies=1), ["1 / 0"], [ZERO_DIV], "(1 reply)."),
    ],
)
def test_budget_messages_count_in_the_singular(
    budgets: Budgets, replies: list[str], outcomes: list[ExecutionOutcome], message: str
) -> None:
    model = ScriptedModel([code_reply(r) for r in replies])
    result = drive(new_loop(budgets=budgets), model, ScriptedRunner(outcomes))
    assert message in result.message


def test_skipped_code_costs_a_reply() -> None:
    replies = [code_reply("print(4)"), code_reply("print(4)"), code_reply("x = input()")]
    runner = ScriptedRunner([OK])
    model = ScriptedModel([*replies, ANSWER])
    result = drive(new_loop(budgets=Budgets(replies=3)), model, runner)
    assert result.status == "failed"
    assert result.budget == "replies"
    assert [t.skipped for t in result.turns] == [None, "repeat_ok", "input"]
    assert len(model.prompts) == 3


# ---- repeats ------------------------------------------------------------------------------------
def test_a_step_repeating_a_successful_cell_is_not_run_and_the_model_is_told() -> None:
    replies = [code_reply("print(4)"), code_reply("print(4)  \n\n"), code_reply("print(5)")]
    runner = ScriptedRunner([OK, ExecutionOutcome("ok", output="5\n")])
    model = ScriptedModel([*replies, ANSWER])
    result = drive(new_loop(), model, runner)
    assert result.status == "success"
    assert runner.codes == ["print(4)\n", "print(5)\n"]
    repeat = result.turns[1]
    assert repeat.skipped == "repeat_ok"
    assert repeat.outcome is None
    assert (repeat.step, repeat.attempt) == (1, 1)
    assert repeat.feedback == repeat_success_feedback("step 1")
    assert "already ran without errors" in repeat.feedback
    assert model.prompts[2][-1] == {"role": "user", "content": repeat.feedback}
    # Nothing new ran: the step did not advance, and the next code is step 2.
    assert (runner.actions[1].step, runner.actions[1].attempt) == (2, 1)
    assert not model.asked[2].after_repeat
    assert result.steps == 2


def test_repeating_an_earlier_successful_step_names_it() -> None:
    replies = [code_reply("print(4)"), code_reply("print(5)"), code_reply("print(4)"), ANSWER]
    runner = ScriptedRunner([OK, ExecutionOutcome("ok", output="5\n")])
    result = drive(new_loop(), ScriptedModel(replies), runner)
    assert result.status == "success"
    assert result.turns[2].skipped == "repeat_ok"
    assert result.turns[2].step == 2
    assert "same code as step 1," in (result.turns[2].feedback or "")


def test_code_that_already_failed_is_not_run_again_and_the_model_is_told() -> None:
    model = ScriptedModel(
        [
            code_reply("print(1 / 0)"),
            code_reply("print(1 / 0)  \n\n"),  # the same but for whitespace
            code_reply("print(1 / 1)"),
            ANSWER,
        ]
    )
    runner = ScriptedRunner([ZERO_DIV, ExecutionOutcome("ok", output="1.0\n")])
    result = drive(new_loop(), model, runner)
    assert result.status == "success"
    assert runner.codes == ["print(1 / 0)\n", "print(1 / 1)\n"]
    repeat = result.turns[1]
    assert repeat.skipped == "repeat"
    assert repeat.outcome is None
    assert (repeat.step, repeat.attempt) == (1, 2)
    assert repeat.feedback is not None
    assert repeat.feedback.startswith(
        f"{FeedbackMarker} not run: this is the same code as attempt 1"
    )
    assert "ZeroDivisionError: division by zero" in repeat.feedback
    # The third generation read that feedback last, and the fix that ran was attempt 3.
    assert model.prompts[2][-1]["content"] == repeat.feedback
    assert runner.actions[1].attempt == 3


def test_a_repeat_in_a_later_step_names_that_steps_attempt() -> None:
    replies = [code_reply("print(4)"), code_reply("1 / 0"), code_reply("1 / 0"), "Sorry."]
    result = drive(new_loop(), ScriptedModel(replies), ScriptedRunner([OK, ZERO_DIV]))
    assert result.status == "failed"
    repeat = result.turns[2]
    assert repeat.skipped == "repeat"
    assert (repeat.step, repeat.attempt) == (2, 2)
    # The failed code was the first attempt of step 2 (the request's second reply).
    assert "same code as attempt 1," in (repeat.feedback or "")


def test_a_repeat_of_an_earlier_steps_failed_code_names_that_step() -> None:
    replies = [code_reply("1 / 0"), code_reply("print(4)"), code_reply("1 / 0"), "Sorry."]
    result = drive(new_loop(), ScriptedModel(replies), ScriptedRunner([ZERO_DIV, OK]))
    repeat = result.turns[2]
    assert repeat.skipped == "repeat"
    assert (repeat.step, repeat.attempt) == (2, 1)
    assert "same code as attempt 1 of step 1," in (repeat.feedback or "")
    assert result.status == "failed"


def test_the_reply_after_a_repeat_is_sampled_hotter() -> None:
    loop = new_loop(budgets=Budgets(attempts=4))
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
    assert third.params(GenerationParams(temperature=0.0, top_p=1.0)).top_p == 0.95
    # Only the reply right after the repeat.
    loop.on_reply(code_reply("print(1 / 1)"))
    fourth = loop.on_outcome(ZERO_DIV)
    assert isinstance(fourth, Generate)
    assert not fourth.after_repeat


def test_repeating_the_failing_cell_of_a_fix_is_not_run() -> None:
    cell = "total = prices * 2\n"
    name_error = ExecutionOutcome("error", ename="NameError", evalue="name 'prices' is not defined")
    loop = new_loop(failed_code=((cell, name_error),), mode="fix", budgets=Budgets(attempts=1))
    result = drive(loop, ScriptedModel([code_reply("total = prices * 2")]), ScriptedRunner([]))
    assert result.status == "failed"
    assert result.budget == "attempts"
    assert result.turns[0].skipped == "repeat"
    assert "same code as the cell" in (result.turns[0].feedback or "")
    assert "The model repeated code that failed (NameError" in result.message


def test_code_that_differs_from_failed_code_runs() -> None:
    model = ScriptedModel([code_reply("x = 1 / 0"), code_reply("x = 1 / 0\nprint(x)")])
    runner = ScriptedRunner([ZERO_DIV, ZERO_DIV])
    result = drive(new_loop(budgets=Budgets(attempts=2)), model, runner)
    assert len(runner.codes) == 2
    assert [t.skipped for t in result.turns] == [None, None]


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
    assert not action.after_repeat
    turn = loop.turns[0]
    assert turn.skipped == "input"
    assert turn.outcome is None
    assert (turn.step, turn.attempt) == (1, 1)
    assert turn.feedback == input_feedback()
    assert action.messages[-1] == {"role": "user", "content": input_feedback()}
    assert "assign" in input_feedback().lower()
    assert input_feedback().startswith(FeedbackMarker)
    # The next code is another attempt at the same cell.
    follow = loop.on_reply(code_reply("print(4)"))
    assert follow == Execute(2, "print(4)\n", step=1, attempt=2)


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


def test_input_at_the_last_attempt_finishes_failed() -> None:
    model = ScriptedModel([code_reply("x = input()")])
    result = drive(new_loop(budgets=Budgets(attempts=1)), model, ScriptedRunner([]))
    assert result.status == "failed"
    assert result.budget == "attempts"
    assert "after 1 attempt:" in result.message
    assert "input()" in result.message


# ---- read_results=False -------------------------------------------------------------------------
def test_without_reading_results_the_first_success_ends_the_loop() -> None:
    model = ScriptedModel([code_reply("print(4)")])
    loop = new_loop(read_results=False)
    result = drive(loop, model, ScriptedRunner([OK]))
    assert result.status == "success"
    assert result.message == "The code ran without errors."
    assert result.answer == ""
    assert result.budget is None
    assert len(model.prompts) == 1
    assert result.summary() == "ran after 1 step, 1 reply"
    # The result is still remembered for a follow-up request.
    assert loop.messages[-1] == {"role": "user", "content": OK_FEEDBACK}


def test_without_reading_results_failures_are_still_refined() -> None:
    model = ScriptedModel([code_reply("1 / 0"), code_reply("print(4)")])
    runner = ScriptedRunner([ZERO_DIV, OK])
    result = drive(new_loop(read_results=False), model, runner)
    assert result.status == "success"
    assert [(a.step, a.attempt) for a in runner.actions] == [(1, 1), (1, 2)]
    assert len(result.turns) == 2


# ---- verbatim_feedback (oci-eval --feedback tests) ----------------------------------------------
def test_verbatim_feedback_sends_the_drivers_text_word_for_word() -> None:
    """The driver's text is the next user turn as it is: no "Execution result:" of the loop's,
    no clipping, no hint; the loop still decides the turns (refine, then stop at success)."""
    paper = "Execution result: \nThe results aren't as expected.\nInput: [2]\n" + "x" * 1500
    wrong = ExecutionOutcome("error", output=paper, ename="HiddenTestsFailed", evalue="wrong")
    model = ScriptedModel([code_reply("f = 1"), code_reply("f = 2")])
    runner = ScriptedRunner([wrong, ExecutionOutcome("ok")])
    result = drive(new_loop(read_results=False, verbatim_feedback=True), model, runner)
    assert model.prompts[1][-1] == {"role": "user", "content": paper}
    assert result.turns[0].feedback == paper
    assert result.status == "success"
    assert [(a.step, a.attempt) for a in runner.actions] == [(1, 1), (1, 2)]


def test_without_verbatim_feedback_the_loop_writes_the_turn() -> None:
    model = ScriptedModel([code_reply("1 / 0"), code_reply("print(4)")])
    drive(new_loop(read_results=False), model, ScriptedRunner([ZERO_DIV, OK]))
    told = model.prompts[1][-1]["content"]
    assert told.startswith(f"{FeedbackMarker} the code raised an error.")
    assert "\x1b[" not in told  # the loop's own turn: ANSI stripped


# ---- fix mode -----------------------------------------------------------------------------------
FAILING_CELL = "print(totl)\n"
NAME_ERROR = ExecutionOutcome("error", ename="NameError", evalue="name 'totl' is not defined")


def fix_loop(**kwargs: object) -> RefinementLoop:
    return new_loop(mode="fix", failed_code=((FAILING_CELL, NAME_ERROR),), **kwargs)


def test_fix_reads_the_fixed_cells_output_then_explains() -> None:
    explanation = "The cell misspelled total as totl."
    model = ScriptedModel([code_reply("print(total)"), explanation])
    runner = ScriptedRunner([OK])
    result = drive(fix_loop(), model, runner)
    assert result.status == "success"
    assert result.message == "Fixed."
    assert result.answer == explanation
    assert model.prompts[1][-1] == {"role": "user", "content": OK_FEEDBACK}
    assert runner.actions == [Execute(1, "print(total)\n", step=1, attempt=1)]


def test_fix_code_after_success_refines_the_same_cell() -> None:
    model = ScriptedModel([code_reply("print(total)"), code_reply("print(total * 2)"), "Fixed."])
    runner = ScriptedRunner([OK, ExecutionOutcome("ok", output="8\n")])
    result = drive(fix_loop(), model, runner)
    assert result.status == "success"
    second = runner.actions[1]
    assert (second.step, second.attempt, second.refines) == (1, 2, True)
    assert result.steps == 1
    assert result.step_codes() == ["print(total * 2)\n"]


def test_fix_repeating_its_successful_code_is_not_run() -> None:
    model = ScriptedModel([code_reply("print(total)"), code_reply("print(total)"), "Done."])
    runner = ScriptedRunner([OK])
    result = drive(fix_loop(), model, runner)
    assert result.status == "success"
    assert runner.codes == ["print(total)\n"]
    repeat = result.turns[1]
    assert repeat.skipped == "repeat_ok"
    assert repeat.feedback == repeat_success_feedback("the fixed cell", True)
    assert "without a code block" in repeat.feedback


def test_fix_attempts_budget_after_a_success_ends_success() -> None:
    model = ScriptedModel([code_reply("print(total)"), code_reply("print(total * 2)")])
    result = drive(fix_loop(budgets=Budgets(attempts=1)), model, ScriptedRunner([OK]))
    assert result.status == "success"
    assert result.budget == "attempts"
    assert result.message == "Stopped at the attempt budget (1 attempt in a cell)."


def test_fix_first_reply_without_code_fails() -> None:
    result = drive(fix_loop(), ScriptedModel(["The cell looks fine to me."]), ScriptedRunner([]))
    assert result.status == "failed"
    assert result.answer == "The cell looks fine to me."


def test_fix_failure_then_no_code_fails() -> None:
    model = ScriptedModel([code_reply("print(totall)"), "I cannot find the variable."])
    result = drive(fix_loop(), model, ScriptedRunner([NAME_ERROR]))
    assert result.status == "failed"
    assert result.answer == "I cannot find the variable."


def test_fix_repeat_of_an_earlier_attempt_names_the_fixed_cell_attempt() -> None:
    replies = [code_reply("print(totall)"), code_reply("print(totall)"), code_reply("print(1)")]
    runner = ScriptedRunner([NAME_ERROR, OK])
    result = drive(fix_loop(), ScriptedModel([*replies, "Fixed."]), runner)
    assert result.status == "success"
    assert result.turns[1].skipped == "repeat"
    assert "same code as attempt 1," in (result.turns[1].feedback or "")


# ---- order -------------------------------------------------------------------------------------
def test_methods_called_out_of_order_raise_loop_error() -> None:
    loop = new_loop(read_results=False)
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
    replies = [code_reply("1 / 0"), code_reply("x = input()"), code_reply("print(4)"), ANSWER]
    model = ScriptedModel(replies)
    runner = ScriptedRunner([ZERO_DIV, OK])
    result = drive(
        new_loop(clock=clock), model, runner, clock, generate_seconds=2.0, execute_seconds=0.5
    )
    assert result.status == "success"
    first, second, third, fourth = result.turns
    assert [t.number for t in result.turns] == [1, 2, 3, 4]
    assert [t.reply for t in result.turns] == replies
    assert [t.code for t in result.turns] == ["1 / 0\n", "x = input()\n", "print(4)\n", None]
    assert [(t.step, t.attempt) for t in result.turns] == [(1, 1), (1, 2), (1, 3), (0, 0)]

    assert first.outcome is ZERO_DIV
    assert first.feedback is not None
    assert "ZeroDivisionError" in first.feedback
    assert (first.generate_seconds, first.execute_seconds) == (2.0, 0.5)

    assert second.skipped == "input"
    assert second.outcome is None
    assert second.feedback == input_feedback()
    assert (second.generate_seconds, second.execute_seconds) == (2.0, 0.0)

    assert third.outcome is OK
    assert third.feedback == OK_FEEDBACK
    assert (third.generate_seconds, third.execute_seconds) == (2.0, 0.5)

    assert fourth.feedback is None
    assert (fourth.generate_seconds, fourth.execute_seconds) == (2.0, 0.0)


def test_execute_seconds_prefers_the_outcomes_own_time() -> None:
    clock = FakeClock()
    loop = new_loop(clock=clock, read_results=False)
    loop.start()
    loop.on_reply(code_reply("print(4)"))
    clock.advance(9.0)
    result = loop.on_outcome(ExecutionOutcome("ok", output="4", seconds=1.5))
    assert isinstance(result, Finished)
    assert result.turns[0].execute_seconds == 1.5


# ---- the conversation --------------------------------------------------------------------------
def test_each_generate_has_the_full_conversation_in_order() -> None:
    replies = [code_reply("1 / 0"), code_reply("x = input()"), code_reply("print(4)"), ANSWER]
    model = ScriptedModel(replies)
    loop = new_loop()
    result = drive(loop, model, ScriptedRunner([ZERO_DIV, OK]))
    assert result.status == "success"
    first, second, third, fourth = model.prompts
    assert first == [SYSTEM, REQUEST]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[:2] == first
    assert second[2] == {"role": "assistant", "content": replies[0]}
    assert second[3]["content"] == result.turns[0].feedback
    assert third[:4] == second
    assert third[4:] == [
        {"role": "assistant", "content": replies[1]},
        {"role": "user", "content": input_feedback()},
    ]
    assert fourth[:6] == third
    assert fourth[6:] == [
        {"role": "assistant", "content": replies[2]},
        {"role": "user", "content": OK_FEEDBACK},
    ]
    # The answer closes the conversation.
    assert loop.messages == [*fourth, {"role": "assistant", "content": ANSWER}]


def test_history_drops_the_system_message() -> None:
    loop = new_loop()
    drive(loop, ScriptedModel([code_reply("print(4)"), ANSWER]), ScriptedRunner([OK]))
    history = loop.history()
    assert all(m["role"] != "system" for m in history)
    assert history == loop.messages[1:]
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[0] == REQUEST


def test_exchange_is_the_request_as_said_then_every_reply_and_result() -> None:
    context_request: Message = {"role": "user", "content": "Cells: ...\n\nRequest:\nAdd."}
    earlier: list[Message] = [
        {"role": "user", "content": "before"},
        {"role": "assistant", "content": "earlier answer"},
    ]
    loop = RefinementLoop([SYSTEM, *earlier, context_request])
    replies = [code_reply("print(4)"), ANSWER]
    drive(loop, ScriptedModel(replies), ScriptedRunner([OK]))
    assert loop.exchange("Add.") == [
        {"role": "user", "content": "Add."},
        {"role": "assistant", "content": replies[0]},
        {"role": "user", "content": OK_FEEDBACK},
        {"role": "assistant", "content": ANSWER},
    ]


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


# ---- memory across requests: every scenario alternates ----------------------------------------
def _scripted(
    replies: list[str], outcomes: list[ExecutionOutcome], **kwargs: object
) -> Callable[[], RefinementLoop]:
    def run() -> RefinementLoop:
        loop = new_loop(**kwargs)
        drive(loop, ScriptedModel(replies), ScriptedRunner(outcomes))
        return loop

    return run


def _stopped_at(state: str, how: str) -> Callable[[], RefinementLoop]:
    def run() -> RefinementLoop:
        loop = new_loop()
        if state != "new":
            loop.start()
        if state in ("executing", "generating 2"):
            loop.on_reply(code_reply("1 / 0"))
        if state == "generating 2":
            loop.on_outcome(ZERO_DIV)
        if how == "cancel":
            loop.cancel()
        elif how == "kernel":
            loop.kernel_lost()
        else:
            loop.on_model_error("no model")
        return loop

    return run


SCENARIOS: dict[str, Callable[[], RefinementLoop]] = {
    "answer": _scripted([code_reply("print(4)"), ANSWER], [OK]),
    "two steps": _scripted([code_reply("print(4)"), code_reply("print(5)"), ANSWER], [OK, OK]),
    "fix then answer": _scripted(
        [code_reply("1 / 0"), code_reply("print(4)"), ANSWER], [ZERO_DIV, OK]
    ),
    "failed": _scripted([code_reply("1 / 0"), "Sorry."], [ZERO_DIV]),
    "no code": _scripted(["Four."], []),
    "attempts": _scripted([code_reply(f"{i} / 0") for i in range(3)], [ZERO_DIV] * 3),
    "steps": _scripted(
        [code_reply("print(1)"), code_reply("print(2)")], [OK], budgets=Budgets(steps=1)
    ),
    "replies": _scripted([code_reply("print(1)")], [OK], budgets=Budgets(replies=1)),
    "repeat ok": _scripted([code_reply("print(4)"), code_reply("print(4)"), ANSWER], [OK]),
    "repeat failed": _scripted(
        [code_reply("1 / 0"), code_reply("1 / 0"), code_reply("print(4)"), ANSWER], [ZERO_DIV, OK]
    ),
    "input": _scripted([code_reply("x = input()"), code_reply("print(4)"), ANSWER], [OK]),
    "interrupted": _scripted([code_reply("print(4)")], [ExecutionOutcome("cancelled")]),
    "first success": _scripted([code_reply("print(4)")], [OK], read_results=False),
    "fix": _scripted(
        [code_reply("print(total)"), "Fixed it."],
        [OK],
        mode="fix",
        failed_code=((FAILING_CELL, NAME_ERROR),),
    ),
    "fix budget": _scripted(
        [code_reply("print(total)"), code_reply("print(1)")],
        [OK],
        mode="fix",
        budgets=Budgets(attempts=1),
    ),
    **{
        f"{how} while {state}": _stopped_at(state, how)
        for state in ("new", "generating", "executing", "generating 2")
        for how in ("cancel", "kernel")
    },
    "model error": _stopped_at("generating", "model"),
    "model error later": _stopped_at("generating 2", "model"),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_memory_alternates_user_and_assistant(scenario: str) -> None:
    loop = SCENARIOS[scenario]()
    assert loop.finished
    exchange = loop.exchange("the request")
    check_alternating(exchange)
    # The exchange alternates already: alternate() has nothing to join or drop.
    assert alternate(exchange) == exchange
    assert exchange[1:] == loop.messages[2:]
    # Two requests in a row: the first's last result and the next request are one user turn.
    again = loop.exchange("again")
    memory = alternate([*exchange, *again])
    check_alternating(memory)
    joined = exchange[-1]["role"] == "user"
    assert len(memory) == len(exchange) + len(again) - joined
    assert memory[len(exchange) - joined]["content"].endswith("again")
    for limit in (0, 10, 100, 400, 10_000):
        check_alternating(bounded(memory, limit))


def test_alternate_joins_turns_of_one_role_and_drops_system_and_a_leading_reply() -> None:
    messages: list[Message] = [
        {"role": "assistant", "content": "orphan"},
        SYSTEM,
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "c"},
        SYSTEM,
        {"role": "assistant", "content": "d"},
        {"role": "user", "content": "e"},
    ]
    assert alternate(messages) == [
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "c\n\nd"},
        {"role": "user", "content": "e"},
    ]
    assert alternate([]) == []
    assert alternate([{"role": "assistant", "content": "x"}]) == []


def test_alternate_does_not_change_its_input() -> None:
    messages: list[Message] = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    alternate(messages)
    assert messages == [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]


def _conversation(count: int) -> list[Message]:
    """user0, assistant1, user2, ...: ten characters each."""
    roles = ("user", "assistant")
    return [{"role": roles[i % 2], "content": f"message{i:03d}"} for i in range(count)]


def test_bounded_keeps_the_newest_messages_that_fit() -> None:
    messages = _conversation(6)  # u0 a1 u2 a3 u4 a5
    assert bounded(messages, 10_000) == messages
    # 30 characters: a5, u4, a3 fit; a3 would lead, so it is dropped.
    assert bounded(messages, 30) == messages[4:]
    assert bounded(messages, 40) == messages[2:]
    assert bounded(messages, 39) == messages[4:]
    assert bounded(messages, 9) == []
    assert bounded([], 100) == []


def test_bounded_starts_with_a_user_turn() -> None:
    messages = _conversation(5)  # u0 a1 u2 a3 u4
    for limit in range(0, 60):
        kept = bounded(messages, limit)
        check_alternating(kept)
        assert kept == [] or kept[0]["role"] == "user"
        assert kept == messages[len(messages) - len(kept) :]
        assert sum(len(m["content"]) for m in kept) <= limit


def test_bounded_alternates_what_it_keeps() -> None:
    messages: list[Message] = [
        {"role": "user", "content": "old"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "result"},
        {"role": "user", "content": "next"},
    ]
    assert bounded(messages, 100) == [
        {"role": "user", "content": "old"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "result\n\nnext"},
    ]
    assert bounded(messages, 10) == [{"role": "user", "content": "result\n\nnext"}]


# ---- answers are checked against what the runs printed -------------------------------------
def test_an_answer_with_a_number_no_run_printed_gets_one_more_look() -> None:
    loop = RefinementLoop([SYSTEM, {"role": "user", "content": "Double the prices, then sum."}])
    loop.start()
    loop.on_reply("```python\ndoubled = [25.0, 26.0]\nprint(doubled)\n```")
    loop.on_outcome(ExecutionOutcome("ok", output="[25.0, 26.0]\n"))
    again = loop.on_reply("The sum of doubled is 157.8.")  # worked out in its head: wrong
    assert isinstance(again, Generate)
    assert loop.turns[-2].skipped == "unchecked"
    assert "157.8" in again.messages[-1]["content"]
    assert (
        "never" not in again.messages[-1]["content"].lower()
        or "head" in again.messages[-1]["content"]
    )
    run = loop.on_reply("```python\nprint(sum(doubled))\n```")
    assert isinstance(run, Execute)
    assert (run.step, run.attempt) == (2, 1)
    loop.on_outcome(ExecutionOutcome("ok", output="51.0\n"))
    done = loop.on_reply("The sum is 51.0.")
    assert isinstance(done, Finished)
    assert (done.status, done.answer) == ("success", "The sum is 51.0.")


def test_an_answer_from_the_printed_result_or_the_request_ends_the_loop() -> None:
    loop = RefinementLoop([SYSTEM, {"role": "user", "content": "How many above 50 of 40?"}])
    loop.start()
    loop.on_reply("```python\nprint(17)\n```")
    loop.on_outcome(ExecutionOutcome("ok", output="17\n"))
    done = loop.on_reply("17 of the 40 values are above 50 (a rounded 17.0).")
    assert isinstance(done, Finished)
    assert done.status == "success"


def test_the_number_check_happens_once_per_request() -> None:
    loop = RefinementLoop([SYSTEM, REQUEST])
    loop.start()
    loop.on_reply(code_reply("print(2 + 2)"))
    loop.on_outcome(OK)
    assert isinstance(loop.on_reply("It is 123.4."), Generate)
    done = loop.on_reply("It is still 123.4.")
    assert isinstance(done, Finished)
    assert done.status == "success"


def test_numbers_from_the_code_that_ran_count_as_shown() -> None:
    loop = RefinementLoop([SYSTEM, {"role": "user", "content": "How many are above 10?"}])
    loop.start()
    loop.on_reply("```python\nvalues = [3, 18, 25]\nprint(sum(v > 10 for v in values))\n```")
    loop.on_outcome(ExecutionOutcome("ok", output="2\n"))
    done = loop.on_reply("2 of them: 18 and 25.")
    assert isinstance(done, Finished)
    assert done.status == "success"


def test_an_answer_after_a_run_that_printed_nothing_gets_one_more_look() -> None:
    loop = RefinementLoop([SYSTEM, {"role": "user", "content": "Which list sums most?"}])
    loop.start()
    loop.on_reply("```python\nresult = max(['a', 'b'])\n```")
    loop.on_outcome(ExecutionOutcome("ok", output=""))
    again = loop.on_reply('The result is "south".')  # nothing was printed to read it from
    assert isinstance(again, Generate)
    assert loop.turns[-2].skipped == "unread"
    assert "printed nothing" in again.messages[-1]["content"]
    run = loop.on_reply("```python\nprint(result)\n```")
    assert isinstance(run, Execute)
    loop.on_outcome(ExecutionOutcome("ok", output="b\n"))
    done = loop.on_reply("List b sums most.")
    assert isinstance(done, Finished)
    assert (done.status, done.answer) == ("success", "List b sums most.")


def test_a_fix_that_printed_nothing_may_explain_at_once() -> None:
    loop = RefinementLoop([SYSTEM, REQUEST], mode="fix")
    loop.start()
    loop.on_reply(code_reply("x = 1"))
    loop.on_outcome(ExecutionOutcome("ok", output=""))
    done = loop.on_reply("The name was misspelt.")
    assert isinstance(done, Finished)
    assert done.status == "success"
