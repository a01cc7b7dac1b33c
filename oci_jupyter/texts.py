"""The server's own words to the user, each sentence written once: a code, its English
template and its parameters.

What the server says to the sidebar reaches it as a :class:`Text` (``code`` and ``params``)
beside the English: the chat's ``done`` and ``error`` (``message``), a ``turn`` whose code
was not run (``evalue``, kept in the history as ``skipped``), and ``GET /oci/status``
(``detail``/``error``, as ``detail_text``/``error_text``) with the refusal of
``POST /oci/restart`` (``text``). The sidebar translates the code (src/chat/texts.ts holds
the same sentences, as ``trans.__``/``trans._n`` calls) and shows the English for a code it
does not know. The ``%%oci`` magic, the logs, the history, OpenAI clients and ``oci-eval``
read the English rendering.

Rules, so that every sentence can be translated whole:

- a template is one whole sentence; a sentence that differs by case is one code per case
  (never an English fragment passed in as a parameter);
- a count that changes the words is a :class:`Plural` (``trans._n`` in the sidebar);
- words that cannot be translated (a kernel's error, an exception's message, an id) are
  parameters, as is another whole sentence of this table (a nested :class:`Text`).

tests/server_texts.json renders every code with sample parameters: the Python tests and the
Jest tests both check their English against it, so the two tables cannot drift apart.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = ["TEMPLATES", "Param", "Plural", "Text", "TextCode", "not_ready", "text"]

TextCode = Literal[
    # how the interpreter loop ended (Finished.message)
    "ran_ok",
    "answered",
    "fixed",
    "changed",
    "no_fixed_code",
    "no_code",
    "interrupted",
    "cancelled",
    "stopped",
    "keyboard_interrupt",
    "stopped_because",
    "kernel_gone",
    "kernel_unavailable",
    "kernel_error",
    "model_error",
    "step_budget",
    "attempt_budget",
    "reply_budget",
    "reply_budget_ran_ok",
    "still_failing",
    "still_failing_in_step",
    "asks_input",
    "repeated_failure",
    "unchanged_cell",
    # a request the chat could not run
    "fix_needs_cell",
    "edit_needs_cell",
    "edit_needs_instruction",
    "empty_request",
    "too_many_requests",
    "busy_here",
    "busy_elsewhere",
    "model_idle",
    "model_loading",
    "model_stopped",
    "model_failed",
    "model_not_ready",
    "prompt_too_long",
    "internal_error",
    # a message the browser should not have sent (``error``)
    "not_json",
    "message_too_big",
    "unknown_type",
    "invalid_message",
    "already_running",
    # why a reply's code was not run, or its answer not taken as final (a ``turn``'s note)
    "not_run_input",
    "not_run_repeat",
    "not_run_already_ran",
    "not_run_unchanged",
    "not_final_unchecked",
    "not_final_unread",
    # what the engine is doing (the status's ``detail``, shown while the model is not ready)
    "engine_starting",
    "engine_verifying",
    "engine_contacting_hub",
    "engine_downloading",
    "engine_assembling",
    "engine_loading_llamacpp",
    "engine_importing_vllm",
    "engine_starting_vllm",
    "engine_reading_config",
    "engine_asking_models",
    "engine_load_cancelled",
    "engine_load_failed",
    "engine_restart_stopping",
    "engine_restart_releasing",
    "engine_restart_cancelled",
    "engine_restart_failed",
    "engine_died",
    "engine_shut_down",
    # why the engine cannot answer (the status's ``error``; a refused restart)
    "engine_died_because",
    "restart_while_loading",
]


@dataclass(frozen=True)
class Plural:
    """A sentence whose words follow a count: ``one`` for 1, ``other`` otherwise (English;
    the sidebar's ``trans._n`` knows each language's forms)."""

    one: str
    other: str
    count: str
    """The parameter holding the count."""


Template: TypeAlias = str | Plural

TEMPLATES: dict[TextCode, Template] = {
    "ran_ok": "The code ran without errors.",
    "answered": "Answered.",
    "fixed": "Fixed.",
    # An edit's cell was changed as asked and ran without errors.
    "changed": "Changed.",
    "no_fixed_code": "The model stopped without fixed code.",
    "no_code": "The model's reply has no code.",
    "interrupted": "The run was interrupted.",
    "cancelled": "Cancelled.",
    "stopped": "Stopped.",
    "keyboard_interrupt": "Interrupted.",
    # Free words of whoever stopped the loop (the %%oci magic says why).
    "stopped_because": "{reason}",
    "kernel_gone": "The kernel is gone.",
    "kernel_unavailable": "The kernel is unavailable.",
    # The kernel's or the browser's own words about why nothing can run.
    "kernel_error": "{error}",
    # The engine's own words (server unreachable, engine crashed).
    "model_error": "{error}",
    "step_budget": Plural(
        "Stopped at the step budget ({steps} step); the last step ran without errors.",
        "Stopped at the step budget ({steps} steps); the last step ran without errors.",
        "steps",
    ),
    "attempt_budget": Plural(
        "Stopped at the attempt budget ({attempts} attempt in a cell).",
        "Stopped at the attempt budget ({attempts} attempts in a cell).",
        "attempts",
    ),
    "reply_budget": Plural(
        "Stopped at the reply budget ({replies} reply).",
        "Stopped at the reply budget ({replies} replies).",
        "replies",
    ),
    "reply_budget_ran_ok": Plural(
        "Stopped at the reply budget ({replies} reply); the last step ran without errors.",
        "Stopped at the reply budget ({replies} replies); the last step ran without errors.",
        "replies",
    ),
    # ``problem``: the last run's error ("ZeroDivisionError: division by zero"), or a
    # sentence of this table (asks_input, repeated_failure).
    "still_failing": Plural(
        "Still failing after {attempts} attempt: {problem}",
        "Still failing after {attempts} attempts: {problem}",
        "attempts",
    ),
    "still_failing_in_step": Plural(
        "Still failing after {attempts} attempt in step {step}: {problem}",
        "Still failing after {attempts} attempts in step {step}: {problem}",
        "attempts",
    ),
    "asks_input": "The code asks for input().",
    "repeated_failure": "The model repeated code that failed ({problem}).",
    "unchanged_cell": "The model gave the cell back unchanged.",
    "fix_needs_cell": "a fix needs the failing cell",
    "edit_needs_cell": "an edit needs the cell to change",
    "edit_needs_instruction": "an edit needs an instruction: say how to change the cell",
    "empty_request": "the request is empty",
    "too_many_requests": Plural(
        "at most {count} request can run at once on one connection",
        "at most {count} requests can run at once on one connection",
        "count",
    ),
    "busy_here": (
        "A request is already running in this notebook: stop it or wait for it to finish."
    ),
    "busy_elsewhere": (
        "A request is already running in this notebook (in another tab or window): "
        "stop it there or wait for it to finish."
    ),
    "model_idle": "The model is idle",
    "model_loading": "The model is loading",
    "model_stopped": "The model is stopped",
    "model_failed": "The model failed: {error}",
    "model_not_ready": "The model is not ready",
    "prompt_too_long": "The request is too long: {error}",
    # An unexpected exception: its type and message.
    "internal_error": "{name}: {error}",
    "not_json": "messages must be JSON objects",
    "message_too_big": "message over {limit} bytes (send less context)",
    # ``type`` and ``id`` come quoted (Python's repr of what the browser sent).
    "unknown_type": "unknown message type {type}",
    "invalid_message": "invalid {kind}: {field}: {problem}",
    "already_running": "request {id} is already running",
    "not_run_input": "not run: asks for input()",
    "not_run_repeat": "not run: same as before",
    "not_run_already_ran": "not run: already ran",
    "not_run_unchanged": "not run: the cell unchanged",
    "not_final_unchecked": "not final: states a number no run printed",
    "not_final_unread": "not final: the last run printed nothing",
    # A status line, not a sentence: what the engine is doing at the moment. ``file`` is a
    # file name, ``url`` a server's address, ``device`` what vLLM runs on ("cpu").
    "engine_starting": "starting",
    "engine_verifying": "verifying {file}",
    "engine_contacting_hub": "contacting the hub for {file}",
    "engine_downloading": "downloading {file}",
    "engine_assembling": "assembling {file}",
    "engine_loading_llamacpp": "loading {file} into llama.cpp",
    "engine_importing_vllm": "importing vLLM",
    "engine_starting_vllm": (
        "starting vLLM on {device}: loading {model}, profiling memory and allocating the KV cache"
    ),
    "engine_reading_config": "reading the tokenizer and model config",
    "engine_asking_models": "asking {url} for its models",
    "engine_load_cancelled": "load cancelled",
    "engine_load_failed": "load failed",
    "engine_restart_stopping": "restarting: stopping running requests",
    "engine_restart_releasing": "restarting: releasing the model",
    "engine_restart_cancelled": "restart cancelled",
    "engine_restart_failed": "restart failed",
    "engine_died": "engine died",
    "engine_shut_down": "shut down",
    # ``engine``: its name ("vLLM", "llama.cpp"); ``reason``: the engine's own words.
    "engine_died_because": (
        "The {engine} engine died: {reason}; restart the model from the panel."
    ),
    "restart_while_loading": (
        "The model is loading; a restart is possible once it is ready or has failed."
    ),
}

Param: TypeAlias = "str | int | Text"
"""A parameter: words or a number to put in as they are, or another whole sentence."""


@dataclass(frozen=True)
class Text:
    """One sentence of :data:`TEMPLATES` with its parameters; ``str()`` is the English."""

    code: TextCode
    params: Mapping[str, Param] = field(default_factory=dict)

    def __post_init__(self) -> None:
        wanted = _fields(TEMPLATES[self.code])
        if set(self.params) != wanted:
            raise ValueError(f"{self.code} takes {sorted(wanted)}, not {sorted(self.params)}")

    def __str__(self) -> str:
        template = TEMPLATES[self.code]
        if isinstance(template, Plural):
            template = template.one if self.params[template.count] == 1 else template.other
        return template.format_map({name: str(value) for name, value in self.params.items()})

    def json_params(self) -> dict[str, Any]:
        """The parameters as JSON (a nested sentence as ``{"code", "params"}``)."""
        return {
            name: value.json() if isinstance(value, Text) else value
            for name, value in self.params.items()
        }

    def json(self) -> dict[str, Any]:
        """``{"code", "params"}``: the sentence for the browser, beside its English."""
        return {"code": self.code, "params": self.json_params()}


def text(code: TextCode, **params: Param) -> Text:
    """``text("step_budget", steps=3)``."""
    return Text(code, params)


def not_ready(state: str, error: Param | None = None) -> Text:
    """Why the model cannot answer, one sentence per engine state: the one wording of the
    chat's ``done``, the endpoint's 503, ``%%oci`` and the engines' ``EngineNotReady``.
    ``error``: why a load failed or the engine died (its sentence, or the exception's own
    words), for the state ``error``."""
    if state == "loading":
        return text("model_loading")
    if state == "idle":
        return text("model_idle")
    if state == "stopped":
        return text("model_stopped")
    if error:
        # The engine's death is a sentence of ours (translated within this one); a failed
        # load is the exception's own words.
        return text("model_failed", error=error)
    return text("model_not_ready")


def _fields(template: Template) -> set[str]:
    forms = (template.one, template.other) if isinstance(template, Plural) else (template,)
    return {name for form in forms for _, name, _, _ in string.Formatter().parse(form) if name}
