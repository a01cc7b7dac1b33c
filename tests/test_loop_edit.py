"""The loop's ``edit`` mode, sans-IO: a cell changed by instruction.

The request (the cell, its last output or error, the selected lines, the instruction), where
the code goes (the cell itself), refinement of a change that fails, the end on the model's
one-sentence summary after a successful run, and the budgets. The model and the kernel are
scripted (tests/test_loop.py's stand-ins)."""

from __future__ import annotations

from oci_jupyter.loop import Budgets, Execute, ExecutionOutcome, RefinementLoop
from oci_jupyter.prompts import (
    EDIT_CELL_PLACEHOLDER,
    CellContext,
    NotebookContext,
    edit_repeat_success_feedback,
    edit_request,
    edit_success_feedback,
    edit_unchanged_feedback,
    estimate_counter,
)
from oci_jupyter.prompts.edit import SUMMARY_ASK
from oci_jupyter.prompts.feedback import EDITED_NOTE
from oci_jupyter.request import EditTarget, ModelSettings, Request, prepare

from .test_loop import ZERO_DIV, ScriptedModel, ScriptedRunner, code_reply, drive

CELL = "values = [3, 4, 5]\nprint(sum(values))\n"
INSTRUCTION = "make this a function named total"
CHANGED = "def total(values):\n    return sum(values)\n\nprint(total([3, 4, 5]))"
SUMMARY = "Wrapped the sum in a function `total` that takes the list."
RAN = ExecutionOutcome("ok", output="12\n")
SETTINGS = ModelSettings(window=8192, count=estimate_counter)


def edit_loop(target: EditTarget | None = None, **choices: object) -> RefinementLoop:
    request = Request(INSTRUCTION, mode="edit", edit=target or EditTarget(CELL, output="12\n"))
    loop = prepare(request, SETTINGS).loop
    for name, value in choices.items():
        setattr(loop, name, value)
    return loop


# ---- where the code goes, and the end on the summary ------------------------------------------
def test_the_changed_code_replaces_the_cell_runs_and_the_summary_ends_it() -> None:
    model = ScriptedModel([code_reply(CHANGED), SUMMARY])
    runner = ScriptedRunner([RAN])
    loop = edit_loop()
    result = drive(loop, model, runner)
    assert runner.actions == [Execute(1, CHANGED + "\n", step=1, attempt=1)]
    assert loop.placement(runner.actions[0]) == "replace"  # the cell itself, as a fix
    assert result.status == "success"
    assert (result.message, result.code) == ("Changed.", "changed")
    assert result.answer == SUMMARY
    # After the run the model read its result and was asked for one sentence.
    feedback = model.prompts[1][-1]["content"]
    assert feedback == edit_success_feedback(RAN)
    assert feedback.startswith("Execution result: the changed cell ran without errors")
    assert "12" in feedback
    assert feedback.endswith(SUMMARY_ASK)
    assert "Say in one sentence what you changed" in feedback


def test_a_change_that_fails_is_refined_in_the_same_cell() -> None:
    fixed = "def total(values):\n    return sum(values)"
    model = ScriptedModel([code_reply("1 / 0"), code_reply(fixed), SUMMARY])
    runner = ScriptedRunner([ZERO_DIV, ExecutionOutcome("ok", values=(("total", "<fn>"),))])
    loop = edit_loop()
    result = drive(loop, model, runner)
    assert result.status == "success"
    assert [(a.step, a.attempt) for a in runner.actions] == [(1, 1), (1, 2)]
    assert [loop.placement(a) for a in runner.actions] == ["replace", "replace"]
    failure = model.prompts[1][-1]["content"]
    assert failure.startswith("Execution result: the code raised an error.")
    assert "ZeroDivisionError" in failure
    silent = model.prompts[2][-1]["content"]
    assert "printed nothing. The values it assigned:\ntotal = <fn>" in silent
    assert silent.endswith(SUMMARY_ASK)
    assert result.answer == SUMMARY
    assert result.step_codes() == [fixed + "\n"]


def test_code_again_after_success_looks_at_the_same_cell_again() -> None:
    model = ScriptedModel([code_reply(CHANGED), code_reply("print(total([1]))"), SUMMARY])
    runner = ScriptedRunner([RAN, ExecutionOutcome("ok", output="1\n")])
    loop = edit_loop()
    result = drive(loop, model, runner)
    second = runner.actions[1]
    assert (second.step, second.attempt, loop.placement(second)) == (1, 2, "replace")
    assert result.status == "success"
    assert result.steps == 1


def test_repeating_the_code_that_ran_asks_for_the_summary() -> None:
    model = ScriptedModel([code_reply(CHANGED), code_reply(CHANGED), SUMMARY])
    result = drive(edit_loop(), model, ScriptedRunner([RAN]))
    assert result.turns[1].skipped == "repeat_ok"
    assert result.turns[1].feedback == edit_repeat_success_feedback("the changed cell")
    assert result.answer == SUMMARY


def test_an_edit_without_code_changed_nothing() -> None:
    result = drive(edit_loop(), ScriptedModel(["The cell already does that."]), ScriptedRunner([]))
    assert result.status == "failed"
    assert result.answer == "The cell already does that."


def test_a_change_that_keeps_failing_ends_at_the_attempt_budget() -> None:
    model = ScriptedModel([code_reply("1 / 0"), code_reply("2 / 0")])
    loop = edit_loop(budgets=Budgets(attempts=2, steps=1, replies=8))
    result = drive(loop, model, ScriptedRunner([ZERO_DIV, ZERO_DIV]))
    assert result.status == "failed"
    assert result.budget == "attempts"
    assert result.code == "still_failing"


def test_the_reply_budget_ends_an_edit_that_never_summarises() -> None:
    model = ScriptedModel([code_reply(CHANGED), code_reply("print(1)")])
    loop = edit_loop(budgets=Budgets(attempts=3, steps=1, replies=2))
    result = drive(loop, model, ScriptedRunner([RAN, RAN]))
    assert result.status == "success"
    assert result.budget == "replies"


def test_an_edit_has_one_step_and_the_users_attempts() -> None:
    request = Request(INSTRUCTION, mode="edit", edit=EditTarget(CELL))
    assert request.budgets() == Budgets(attempts=3, steps=1, replies=8)


def test_the_cell_handed_back_unchanged_after_it_failed_is_not_run() -> None:
    failing = EditTarget("print(1 / 0)\n", failure=ZERO_DIV)
    model = ScriptedModel([code_reply("print(1 / 0)"), code_reply("print(1 / 1)"), SUMMARY])
    runner = ScriptedRunner([ExecutionOutcome("ok", output="1.0\n")])
    result = drive(edit_loop(failing), model, runner)
    assert result.turns[0].skipped == "repeat"
    assert runner.codes == ["print(1 / 1)\n"]
    assert result.status == "success"


def test_the_cell_handed_back_unchanged_is_not_run_and_the_model_is_told() -> None:
    model = ScriptedModel([code_reply(CELL), code_reply(CHANGED), SUMMARY])
    runner = ScriptedRunner([RAN])
    result = drive(edit_loop(), model, runner)
    assert result.turns[0].skipped == "unchanged"
    assert model.prompts[1][-1]["content"] == edit_unchanged_feedback()
    assert "unchanged" in model.prompts[1][-1]["content"]
    assert runner.codes == [CHANGED + "\n"]  # only the change ran
    assert [(t.step, t.attempt) for t in result.turns[:2]] == [(1, 1), (1, 2)]
    assert result.status == "success"
    assert result.answer == SUMMARY


def test_a_model_that_keeps_the_cell_unchanged_ends_at_the_attempt_budget() -> None:
    model = ScriptedModel([code_reply(CELL), code_reply(CELL + "\n\n")])
    loop = edit_loop(budgets=Budgets(attempts=2, steps=1, replies=8))
    runner = ScriptedRunner([])
    result = drive(loop, model, runner)
    assert runner.codes == []
    assert result.status == "failed"
    assert result.budget == "attempts"
    assert result.message == (
        "Still failing after 2 attempts: The model gave the cell back unchanged."
    )


# ---- the request ---------------------------------------------------------------------------------
def test_the_request_shows_the_cell_its_output_and_the_instruction() -> None:
    said = edit_request(CELL, INSTRUCTION, output="12\n")
    assert said == (
        f"Change this cell as the user asks: {INSTRUCTION}\n\n"
        f"```python\n{CELL.rstrip()}\n```\n\n"
        "Its last output:\n12\n\n"
        "Keep what the user did not ask to change. Give the full changed cell in one "
        "```python block."
    )


def test_the_request_shows_a_shaped_clipped_error_and_the_selected_lines() -> None:
    said = edit_request(
        "x = 1\ny = x / 0\n", "use a safe division", failure=ZERO_DIV, selection="y = x / 0"
    )
    assert "Its last run failed:\n" in said
    assert "ZeroDivisionError: division by zero" in said
    assert "\x1b[" not in said  # ANSI stripped, as in a fix
    assert (
        "The user selected these lines; the change is about them:\n```python\ny = x / 0\n```"
        in (said)
    )
    long = edit_request(CELL, INSTRUCTION, output="n\n" * 2000)
    assert "characters omitted" in long  # clipped like every output
    whole = edit_request(CELL, INSTRUCTION, selection=CELL)
    assert "selected" not in whole  # the whole cell selected: nothing to point at


def test_the_prompt_ranks_what_the_cell_reads_and_shows_it_once() -> None:
    cells = [
        CellContext("raw = [3, 4, 5]", label="In [1]"),
        *(CellContext(f"note_{i} = {i}", label=f"In [{i + 2}]") for i in range(5)),
        CellContext("values = raw\nprint(sum(values))", label="In [7]", active=True),
    ]
    target = EditTarget("values = raw\nprint(sum(values))")
    request = Request(INSTRUCTION, NotebookContext(cells=cells), mode="edit", edit=target)
    assert request.needs() == {"raw", "values"}
    prepared = prepare(request, SETTINGS)
    prompt = prepared.messages[-1]["content"]
    assert f"# In [7]  <- active cell\n{EDIT_CELL_PLACEHOLDER}" in prompt
    assert prompt.count("print(sum(values))") == 1  # in the request only
    assert prompt.index("raw = [3, 4, 5]") < prompt.index("note_4")  # its definition first
    assert prompt.rstrip().endswith("```python block.")  # no chat hint in an edit
    assert prepared.loop.mode == "edit"
    assert prepared.loop.budgets.steps == 1


def test_what_the_user_changed_before_the_run_is_what_the_model_reads() -> None:
    # The browser ran the cell after the user touched the model's code (the review's diff
    # or the cell itself): the summary is asked about what ran.
    mine = "def total(values):\n    return sum(values)  # mine\n"
    model = ScriptedModel([code_reply(CHANGED), SUMMARY])
    result = drive(edit_loop(), model, ScriptedRunner([ExecutionOutcome("ok", source=mine)]))
    feedback = model.prompts[1][-1]["content"]
    assert feedback.startswith(f"{EDITED_NOTE}\n```python\n{mine.rstrip()}\n```\n")
    assert feedback.endswith(SUMMARY_ASK)
    assert result.final_code == mine
    assert result.answer == SUMMARY
