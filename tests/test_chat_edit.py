"""An ``edit`` over the chat's websocket protocol: the ask, what the server sends back (the
same messages as a fix, the summary as the answer), the refusals of a bad edit ask, and the
conversation going on after it (``refine_cell``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from oci_jupyter.chat.protocol import EditCellIn, FixCellIn, InvalidMessage, parse_client_message

from .test_chat import ERROR_OUTCOME, OK_OUTCOME, ask, finish, make_session, started

CELL = "values = [3, 4, 5]\nprint(sum(values))"
CHANGED = "```python\ndef total(values):\n    return sum(values)\n\nprint(total([3, 4, 5]))\n```"
SUMMARY = "Made the sum a function `total` that takes the list."
EDIT_CELL = {"source": CELL, "output": "12\n"}


def edit(**fields: Any) -> str:
    fields.setdefault("prompt", "make this a function named total")
    return ask(mode="edit", cell=fields.pop("cell", EDIT_CELL), review=True, **fields)


async def test_an_edit_replaces_its_cell_runs_and_ends_on_the_summary(tmp_path: Path) -> None:
    session, browser, engine, store = make_session(tmp_path, [CHANGED, SUMMARY], [OK_OUTCOME])
    await started(engine)
    await session.receive(edit())
    await finish(browser)
    (execute,) = browser.of("execute")
    assert (execute["target"], execute["step"], execute["attempt"]) == ("replace", 1, 1)
    assert execute["code"].startswith("def total(values):")
    (done,) = browser.of("done")
    assert (done["status"], done["message"], done["code"]) == ("success", "Changed.", "changed")
    assert done["answer"] == SUMMARY
    assert done["final_code"] == execute["code"]
    request = engine.prompts[0][-1]["content"]
    assert "Change this cell as the user asks: make this a function named total" in request
    assert f"```python\n{CELL}\n```" in request
    assert "Its last output:\n12" in request
    summary_ask = engine.prompts[1][-1]["content"]
    assert summary_ask.startswith("Execution result: the changed cell ran without errors")
    assert "Say in one sentence what you changed" in summary_ask
    (record,) = store.load("work.ipynb")["requests"]
    assert (record["mode"], record["answer"]) == ("edit", SUMMARY)


async def test_an_edit_that_fails_is_refined_in_its_cell(tmp_path: Path) -> None:
    broken = "```python\ndef total(values):\n    return sum(value)\n\nprint(totl([3]))\n```"
    session, browser, engine, _ = make_session(
        tmp_path, [broken, CHANGED, SUMMARY], [ERROR_OUTCOME, OK_OUTCOME]
    )
    await started(engine)
    error = {"ename": "NameError", "evalue": "name 'valuez' is not defined", "traceback": ""}
    cell = {"source": CELL, "output": "", "error": error, "selection": "print(sum(values))"}
    await session.receive(edit(cell=cell))
    await finish(browser)
    targets = [(e["target"], e["attempt"]) for e in browser.of("execute")]
    assert targets == [("replace", 1), ("replace", 2)]
    assert browser.of("done")[0]["answer"] == SUMMARY
    request = engine.prompts[0][-1]["content"]
    assert "Its last run failed:\nNameError: name 'valuez' is not defined" in request
    assert "The user selected these lines" in request


async def test_the_conversation_goes_on_after_an_edit(tmp_path: Path) -> None:
    labelled = "```python\ndef total(values):\n    '''The sum.'''\n    return sum(values)\n```"
    session, browser, engine, _ = make_session(
        tmp_path, [CHANGED, SUMMARY, labelled, "Added a docstring."], [OK_OUTCOME, OK_OUTCOME]
    )
    await started(engine)
    await session.receive(edit())
    await finish(browser)
    browser.done.clear()
    await session.receive(ask("r2", "also give it a docstring", refine_cell=True))
    await finish(browser)
    follow_up = [e for e in browser.of("execute") if e["id"] == "r2"]
    assert [e["target"] for e in follow_up] == ["replace"]  # the edited cell again
    prompt = engine.prompts[2]
    contents = [m["content"] for m in prompt]
    assert any("Change this cell as the user asks" in c for c in contents)
    assert CHANGED in contents
    assert SUMMARY in contents
    # The edit's prompt is the head of the follow-up's: the engine reuses what it read.
    assert prompt[: len(engine.prompts[0])] == engine.prompts[0]
    assert browser.of("done")[-1]["answer"] == "Added a docstring."


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        ({"cell": None}, "edit_needs_cell", "an edit needs the cell to change"),
        (
            {"prompt": "   "},
            "edit_needs_instruction",
            "an edit needs an instruction: say how to change the cell",
        ),
    ],
)
async def test_an_edit_without_its_cell_or_instruction_is_refused(
    tmp_path: Path, fields: dict[str, Any], code: str, message: str
) -> None:
    session, browser, engine, _ = make_session(tmp_path, [], [])
    await started(engine)
    await session.receive(edit(**fields))
    await finish(browser)
    (done,) = browser.of("done")
    assert (done["status"], done["code"], done["message"]) == ("error", code, message)
    assert engine.prompts == []


async def test_an_edit_cell_without_source_is_an_invalid_message(tmp_path: Path) -> None:
    session, browser, engine, _ = make_session(tmp_path, [], [])
    await started(engine)
    await session.receive(edit(cell={"output": "12"}))
    await finish(browser)
    (error,) = browser.of("error")
    assert error["message"] == "invalid ask: cell.source: Field required"
    assert error["code"] == "invalid_message"
    assert browser.of("done")[0]["status"] == "error"


def test_the_cell_is_read_by_its_mode() -> None:
    edit_ask = parse_client_message(edit())
    assert isinstance(edit_ask.cell, EditCellIn)  # type: ignore[union-attr]
    failing = {"source": "x", "error": {"ename": "E"}}
    fix_ask = parse_client_message(ask(mode="fix", cell=failing))
    assert isinstance(fix_ask.cell, FixCellIn)  # type: ignore[union-attr]
    # A fix's cell still needs its error, as before edits existed.
    with pytest.raises(InvalidMessage) as refused:
        parse_client_message(ask(mode="fix", cell={"source": "x"}))
    assert str(refused.value) == "invalid ask: cell.error: Field required"
    with pytest.raises(InvalidMessage, match=r"cell\.selection"):
        parse_client_message(edit(cell={"source": "x", "selection": 3}))
    raw = json.loads(edit())
    assert raw["review"] is True
