"""The server's own words (oci_jupyter.texts): every code renders its English from one
template, and tests/server_texts.json, which src/__tests__/server-texts.spec.ts reads too,
holds the English of every code, so the sidebar's table cannot drift from this one.
The codes reach the browser in ``done`` and ``error``, in a ``skipped`` turn (and its
history record), in ``GET /oci/status`` and in the refusal of ``POST /oci/restart``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from oci_jupyter.chat import RequestRecord, protocol
from oci_jupyter.chat.protocol import InvalidMessage, parse_client_message
from oci_jupyter.chat.store import TurnRecord
from oci_jupyter.engine.base import EngineBusy
from oci_jupyter.loop import SKIP_NOTES, SKIP_TEXTS, Budgets, Finished, RefinementLoop, Turn
from oci_jupyter.texts import TEMPLATES, Plural, Text, text
from oci_jupyter.types import ExecutionOutcome

from .doubles import DyingTestEngine, ScriptedTestEngine

SAMPLES = json.loads((Path(__file__).parent / "server_texts.json").read_text(encoding="utf-8"))


def from_json(code: Any, params: dict[str, Any]) -> Text:
    """A sample's sentence (a nested one is ``{"code", "params"}``)."""
    return Text(
        code,
        {
            name: from_json(value["code"], value["params"]) if isinstance(value, dict) else value
            for name, value in params.items()
        },
    )


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s["code"])
def test_every_sample_renders_its_english(sample: dict[str, Any]) -> None:
    said = from_json(sample["code"], sample["params"])
    assert str(said) == sample["english"]
    assert said.json_params() == sample["params"]


def test_every_code_has_samples_and_every_plural_both_forms() -> None:
    by_code: dict[str, list[dict[str, Any]]] = {}
    for sample in SAMPLES:
        by_code.setdefault(sample["code"], []).append(sample)
    assert set(by_code) == set(TEMPLATES)
    for code, template in TEMPLATES.items():
        if isinstance(template, Plural):
            counts = {s["params"][template.count] for s in by_code[code]}
            assert 1 in counts, code
            assert counts - {1}, code


def test_a_sentence_takes_exactly_its_parameters() -> None:
    with pytest.raises(ValueError, match="steps"):
        text("step_budget")
    with pytest.raises(ValueError, match="extra"):
        text("ran_ok", extra="x")


def test_a_parameter_is_put_in_as_it_is() -> None:
    # Braces in someone else's words are not a template.
    assert str(text("model_error", error="{steps} {0}")) == "{steps} {0}"


# ---- the loop's end ----------------------------------------------------------------------------
def test_the_loop_ends_with_a_code_beside_its_message() -> None:
    loop = RefinementLoop([{"role": "user", "content": "ask"}], budgets=Budgets(attempts=1))
    loop.start()
    loop.on_reply("```python\nname = input()\n```")
    result = loop.result
    assert result is not None
    assert result.message == "Still failing after 1 attempt: The code asks for input()."
    assert (result.code, result.params) == (
        "still_failing",
        {"attempts": 1, "problem": {"code": "asks_input", "params": {}}},
    )


def test_a_failure_in_a_later_step_is_one_sentence() -> None:
    loop = RefinementLoop([{"role": "user", "content": "ask"}], budgets=Budgets(attempts=1))
    loop.start()
    loop.on_reply("```python\nx = 1\n```")
    loop.on_outcome(ExecutionOutcome("ok", output="1\n"))
    loop.on_reply("```python\n1 / 0\n```")
    result = loop.on_outcome(
        ExecutionOutcome("error", ename="ZeroDivisionError", evalue="division by zero")
    )
    assert isinstance(result, Finished)
    assert result.message == (
        "Still failing after 1 attempt in step 2: ZeroDivisionError: division by zero"
    )
    assert (result.code, result.params) == (
        "still_failing_in_step",
        {"attempts": 1, "step": 2, "problem": "ZeroDivisionError: division by zero"},
    )


@pytest.mark.parametrize(
    ("stop", "code", "params", "message"),
    [
        (lambda loop: loop.cancel(), "cancelled", {}, "Cancelled."),
        (lambda loop: loop.cancel("Stop."), "stopped_because", {"reason": "Stop."}, "Stop."),
        (lambda loop: loop.kernel_lost(), "kernel_gone", {}, "The kernel is gone."),
        (
            lambda loop: loop.kernel_lost("The kernel died."),
            "kernel_error",
            {"error": "The kernel died."},
            "The kernel died.",
        ),
        (
            lambda loop: loop.on_model_error("unreachable"),
            "model_error",
            {"error": "unreachable"},
            "unreachable",
        ),
        (lambda loop: loop.on_model_error(text("model_loading")), "model_loading", {}, None),
    ],
)
def test_an_end_from_outside_keeps_a_code(
    stop: Any, code: str, params: dict[str, Any], message: str | None
) -> None:
    loop = RefinementLoop([{"role": "user", "content": "ask"}])
    loop.start()
    result = stop(loop)
    assert (result.code, result.params) == (code, params)
    assert result.message == (message or str(TEMPLATES[code]))


# ---- on the wire ---------------------------------------------------------------------------------
def test_done_sends_the_code_and_params_beside_the_message() -> None:
    said = text("too_many_requests", count=4)
    sent = protocol.done("r1", Finished.said("error", [], said))
    assert sent["message"] == "at most 4 requests can run at once on one connection"
    assert (sent["code"], sent["params"]) == ("too_many_requests", {"count": 4})
    json.dumps(sent)  # JSON-safe


def test_a_done_without_a_code_sends_none() -> None:
    sent = protocol.done("r1", Finished("success", [], "Answered in other words."))
    assert "code" not in sent
    assert "params" not in sent


def test_error_sends_the_code_and_params_beside_the_message() -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse_client_message('{"type": "ask", "id": "x", "max_turns": 0}')
    sent = protocol.error("x", caught.value.said)
    assert sent["message"] == str(caught.value)
    assert sent["message"].startswith("invalid ask: max_turns: ")
    assert sent["code"] == "invalid_message"
    assert sent["params"]["kind"] == "ask"
    assert sent["params"]["field"] == "max_turns"
    assert sent["id"] == "x"


@pytest.mark.parametrize(
    ("raw", "code", "params"),
    [
        ("not json", "not_json", {}),
        ("[1]", "not_json", {}),
        ('{"type": "dance"}', "unknown_type", {"type": "'dance'"}),
    ],
)
def test_refused_messages_have_codes(raw: str, code: str, params: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse_client_message(raw)
    assert (caught.value.said.code, caught.value.said.json_params()) == (code, params)


def test_the_history_keeps_the_code() -> None:
    record = RequestRecord("r1", "chat", "ask")
    record.finish(Finished.said("success", [], text("step_budget", steps=2), budget="steps"))
    assert (
        record.message == "Stopped at the step budget (2 steps); the last step ran without errors."
    )
    assert (record.code, record.params) == ("step_budget", {"steps": 2})


# ---- why a turn's code was not run --------------------------------------------------------------
@pytest.mark.parametrize("reason", list(SKIP_TEXTS))
def test_a_skipped_turn_sends_its_note_with_a_code(reason: Any) -> None:
    sent = protocol.skipped("r1", 2, SKIP_TEXTS[reason], step=1, attempt=2)
    assert sent == {
        "type": "turn",
        "id": "r1",
        "turn": 2,
        "state": "skipped",
        "evalue": SKIP_NOTES[reason],  # the English, as the %%oci magic says it too
        "code": SKIP_TEXTS[reason].code,
        "params": {},
        "step": 1,
        "attempt": 2,
    }
    json.dumps(sent)


def test_the_skip_notes_keep_their_english() -> None:
    assert SKIP_NOTES == {
        "input": "not run: asks for input()",
        "repeat": "not run: same as before",
        "repeat_ok": "not run: already ran",
        "unchanged": "not run: the cell unchanged",
        "unchecked": "not final: states a number no run printed",
        "unread": "not final: the last run printed nothing",
    }


def test_the_history_keeps_the_code_of_a_skipped_turn() -> None:
    turn = Turn(1, "```python\nname = input()\n```", "name = input()", skipped="input", step=1)
    record = TurnRecord.of(turn)
    assert (record.skipped, record.skipped_code, record.skipped_params) == (
        "not run: asks for input()",
        "not_run_input",
        {},
    )
    ran = TurnRecord.of(Turn(2, "x", "x = 1", ExecutionOutcome("ok"), step=1, attempt=2))
    assert (ran.skipped, ran.skipped_code, ran.skipped_params) == (None, "", {})


# ---- the model's status -------------------------------------------------------------------------
async def test_the_status_sends_its_detail_with_a_code() -> None:
    engine = ScriptedTestEngine(fail_load="out of memory")
    await engine.wait_ready(5)
    body = engine.status.to_json()
    assert (body["detail"], body["detail_text"]) == (
        "load failed",
        {"code": "engine_load_failed", "params": {}},
    )
    # The exception's own words: nothing of ours to translate.
    assert (body["error"], body["error_text"]) == ("RuntimeError: out of memory", None)
    json.dumps(body)
    await engine.shutdown()
    body = engine.status.to_json()
    assert (body["detail"], body["detail_text"]) == (
        "shut down",
        {"code": "engine_shut_down", "params": {}},
    )


async def test_words_without_a_code_send_none() -> None:
    engine = ScriptedTestEngine(hold_loading=True)
    engine.start()
    while engine.status.detail != "waiting to be released":  # the double's own words
        await asyncio.sleep(0.01)
    assert engine.status.to_json()["detail_text"] is None
    engine.release.set()
    await engine.wait_ready(5)
    assert (engine.status.detail, engine.status.detail_text) == ("", None)
    await engine.shutdown()


async def test_a_dead_engine_says_why_in_a_sentence() -> None:
    engine = DyingTestEngine()
    await engine.wait_ready(5)
    engine._died("the core exited")
    status = engine.status
    assert status.error == (
        "The test engine died: the core exited; restart the model from the panel."
    )
    assert status.to_json()["detail_text"] == {"code": "engine_died", "params": {}}
    died = text("engine_died_because", engine="test", reason="the core exited").json()
    assert status.to_json()["error_text"] == died
    # A request then fails with that sentence inside its own.
    said = status.not_ready()
    assert said.json() == {"code": "model_failed", "params": {"error": died}}
    assert str(said) == f"The model failed: {status.error}"
    await engine.shutdown()


async def test_a_restart_while_the_model_loads_is_refused_with_a_code() -> None:
    engine = ScriptedTestEngine(hold_loading=True)
    engine.start()
    with pytest.raises(EngineBusy) as caught:
        engine.restart()
    assert caught.value.said == text("restart_while_loading")
    assert str(caught.value) == TEMPLATES["restart_while_loading"]
    engine.release.set()
    await engine.wait_ready(5)
    await engine.shutdown()
