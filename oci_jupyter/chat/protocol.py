"""The chat's wire protocol (JSON over the websocket ``/oci/chat``), every message in one
place: what the browser may send (strictly validated pydantic models, one discriminated
union) and what the server sends (built by the functions below, never by hand elsewhere).
docs/design.md describes the exchange; src/chat/protocol.ts is its TypeScript twin.

- browser -> server: ``ask``, ``outcome``, ``cancel``, ``prefill`` (never answered),
  ``progress`` (where the run of an ``execute`` stands: queued behind the user's cell, running)
- server -> browser: ``token``, ``turn``, ``execute``, ``done`` (exactly one per request id),
  ``error``, ``notebook`` (a notebook's request started or ended on another connection)

The server's own words in ``done`` and ``error`` come twice: ``message`` in English, and
``code`` with ``params``, a sentence of :mod:`oci_jupyter.texts` that the browser translates
(it shows ``message`` for a code it does not know; a ``done`` whose loop ended in someone
else's words, the engine's say, has the code that quotes them). A param is a string, a number
or another sentence (``{"code", "params"}``). A ``skipped`` turn says why its code was not
run the same way: ``evalue`` in English, ``code`` and ``params`` beside it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)

from ..loop import Budgets, Finished, Placement
from ..prompts import CellContext, NotebookContext, VariableInfo
from ..prompts.values import MAX_NAMES
from ..request import Choices, EditTarget, FixTarget, LoopDefaults, Request
from ..texts import Text, text
from ..types import ExecutionOutcome, Message

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Largest websocket message accepted (a notebook's context included)."""
MAX_TEXT = 200_000
"""Longest prompt, cell source or output text accepted, in characters."""
MAX_VALUE = 2_000
"""Longest value repr accepted in an outcome (the browser sends reprlib's short ones)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class CellIn(_Strict):
    source: str = Field(max_length=MAX_TEXT)
    output: str = Field(default="", max_length=MAX_TEXT)
    label: str = Field(default="", max_length=200)
    active: bool = False
    kind: str = Field(default="code", max_length=20)


class VariableIn(_Strict):
    name: str = Field(max_length=500)
    type: str = Field(max_length=500)
    summary: str = Field(default="", max_length=5000)


class ContextIn(_Strict):
    language: str = Field(default="python", max_length=100)
    cells: list[CellIn] = Field(default_factory=list, max_length=5000)
    variables: list[VariableIn] = Field(default_factory=list, max_length=2000)

    def to_context(self) -> NotebookContext:
        return NotebookContext(
            language=self.language,
            cells=[CellContext(**c.model_dump()) for c in self.cells],
            variables=[VariableInfo(**v.model_dump()) for v in self.variables],
        )


class ErrorIn(_Strict):
    ename: str = Field(default="", max_length=1000)
    evalue: str = Field(default="", max_length=MAX_TEXT)
    traceback: str | list[str] = ""

    def text(self) -> str:
        return "\n".join(self.traceback) if isinstance(self.traceback, list) else self.traceback


class FixCellIn(_Strict):
    source: str = Field(max_length=MAX_TEXT)
    error: ErrorIn

    def failure(self) -> ExecutionOutcome:
        return ExecutionOutcome(
            "error",
            ename=self.error.ename,
            evalue=self.error.evalue,
            traceback=self.error.text(),
        )


class EditCellIn(_Strict):
    """The cell an ``edit`` changes: its source, its last output as text ("" for none),
    its error if its last run failed, and the selected lines ("" for the whole cell)."""

    source: str = Field(max_length=MAX_TEXT)
    output: str = Field(default="", max_length=MAX_TEXT)
    error: ErrorIn | None = None
    selection: str = Field(default="", max_length=MAX_TEXT)

    def target(self) -> EditTarget:
        error = self.error
        failure = (
            ExecutionOutcome(
                "error", ename=error.ename, evalue=error.evalue, traceback=error.text()
            )
            if error is not None
            else None
        )
        return EditTarget(self.source, self.output, failure, self.selection)


_FIX_CELL = TypeAdapter(FixCellIn | None)
_EDIT_CELL = TypeAdapter(EditCellIn | None)


class Ask(_Strict):
    type: Literal["ask"]
    id: str = Field(min_length=1, max_length=200)
    prompt: str = Field(default="", max_length=MAX_TEXT)
    notebook: str = Field(default="", max_length=4096)
    mode: Literal["chat", "fix", "edit"] = "chat"
    context: ContextIn = Field(default_factory=ContextIn)
    max_attempts: int | None = Field(default=None, ge=1, le=10)
    """Attempts per cell: the first try and its refinements (default: c.OCI.max_attempts)."""
    max_turns: int | None = Field(default=None, ge=1, le=10)
    """Deprecated: the older name of ``max_attempts`` (which wins when both are sent)."""
    max_steps: int | None = Field(default=None, ge=1, le=20)
    """Cells one request may add (default: c.OCI.max_steps)."""
    max_replies: int | None = Field(default=None, ge=1, le=40)
    """Model replies one request may take (default: c.OCI.max_replies)."""
    read_results: bool | None = None
    """The model reads each successful result (default: c.OCI.read_results)."""
    time_limit: float = Field(default=60.0, gt=0, le=3600)
    auto_execute: bool = True
    refine_cell: bool = False
    """Refine the cell of the previous request (the human-feedback turn) instead of a new one."""
    cell: FixCellIn | EditCellIn | None = None
    """A fix's failing cell (:class:`FixCellIn`), an edit's cell (:class:`EditCellIn`)."""
    review: bool = False
    """The user reviews each rewrite (a diff to accept) before it runs: the wait for the
    outcome then has no deadline, as when the user runs the code by hand."""

    @field_validator("cell", mode="wrap")
    @classmethod
    def _cell_of_its_mode(
        cls, value: object, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> FixCellIn | EditCellIn | None:
        """The cell as its mode reads it (``mode`` is validated first): an edit's need not
        have failed; a fix's must carry its error, exactly as before edits existed. The
        errors keep their place (``cell.source``)."""
        if info.data.get("mode") == "edit":
            return _EDIT_CELL.validate_python(value)
        return _FIX_CELL.validate_python(value)

    def problem(self) -> Text | None:
        """Why this ask cannot start, whatever the server's state: a fix without its cell,
        an edit without its cell or its instruction, a chat without words."""
        if self.mode == "fix" and self.cell is None:
            return text("fix_needs_cell")
        if self.mode == "edit" and self.cell is None:
            return text("edit_needs_cell")
        if self.mode == "edit" and not self.prompt.strip():
            return text("edit_needs_instruction")
        if self.mode == "chat" and not self.prompt.strip():
            return text("empty_request")
        return None

    def choices(self) -> Choices:
        """What the user chose; what the ask leaves out is the server's (:class:`Request`)."""
        return Choices(
            attempts=self.max_attempts or self.max_turns,
            steps=self.max_steps,
            replies=self.max_replies,
            read_results=self.read_results,
        )

    def request(self, conversation: Sequence[Message], defaults: LoopDefaults) -> Request:
        """The request this ask makes, with the notebook's remembered ``conversation``."""
        cell = self.cell
        fix = cell if self.mode == "fix" and isinstance(cell, FixCellIn) else None
        edit = cell if self.mode == "edit" and isinstance(cell, EditCellIn) else None
        return Request(
            words=self.prompt.strip(),
            context=self.context.to_context(),
            conversation=conversation,
            mode=self.mode,
            fix=FixTarget(fix.source, fix.failure()) if fix is not None else None,
            edit=edit.target() if edit is not None else None,
            choices=self.choices(),
            defaults=defaults,
            refine_cell=self.refine_cell,
            memory="as_sent",
        )

    def budgets(self, defaults: LoopDefaults) -> Budgets:
        return self.request([], defaults).budgets()


class Outcome(_Strict):
    type: Literal["outcome"]
    id: str = Field(max_length=200)
    turn: int
    status: Literal["ok", "error", "timeout", "cancelled"]
    output: str = Field(default="", max_length=MAX_TEXT)
    error: ErrorIn | None = None
    seconds: float = 0.0
    source: str | None = Field(default=None, max_length=MAX_TEXT)
    """The source that ran, if the browser knows it (the user may edit the cell first)."""
    values: dict[str, Annotated[str, Field(max_length=MAX_VALUE)]] = Field(
        default_factory=dict, max_length=MAX_NAMES
    )
    """After a run that printed nothing: the short reprs of the names ``execute.inspect``
    asked for that the kernel has."""

    def to_outcome(self) -> ExecutionOutcome:
        error = self.error
        return ExecutionOutcome(
            self.status,
            output=self.output,
            ename=error.ename if error else "",
            evalue=error.evalue if error else "",
            traceback=error.text() if error else "",
            seconds=self.seconds,
            source=self.source,
            values=tuple(self.values.items()),
        )


class Cancel(_Strict):
    type: Literal["cancel"]
    id: str = Field(max_length=200)


class Prefill(_Strict):
    """The notebook the user is about to ask about: the server reads the prompt the next
    ``ask`` would begin with while the engine is idle. Never answered."""

    type: Literal["prefill"]
    notebook: str = Field(default="", max_length=4096)
    context: ContextIn = Field(default_factory=ContextIn)


class Progress(_Strict):
    """Where the run of an ``execute`` stands: ``queued`` while the kernel finishes someone
    else's cell (the wait has no deadline then), ``running`` once it starts (the time limit
    counts from here)."""

    type: Literal["progress"]
    id: str = Field(max_length=200)
    turn: int
    state: Literal["queued", "running"]


AnyClientMessage = Ask | Outcome | Cancel | Prefill | Progress
ClientMessage = Annotated[AnyClientMessage, Field(discriminator="type")]
_CLIENT = TypeAdapter(ClientMessage)


class InvalidMessage(ValueError):
    """A message the browser should not have sent (``said``: what is wrong);
    ``request_id`` if it named one."""

    def __init__(self, said: Text, request_id: str | None, kind: str | None) -> None:
        super().__init__(str(said))
        self.said = said
        self.request_id = request_id
        self.kind = kind


def parse_client_message(raw: str | bytes) -> AnyClientMessage:
    """The browser's message, validated; :class:`InvalidMessage` says what is wrong."""
    try:
        # Parsed even when too big (the transport caps messages at 10 MiB): a refused ask
        # must still name its id, so that it gets its done.
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep ("[" * 200000)
        raise InvalidMessage(text("not_json"), None, None) from None
    if not isinstance(data, dict):
        raise InvalidMessage(text("not_json"), None, None)
    kind = data.get("type")
    request_id = data.get("id") if isinstance(data.get("id"), str) else None
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidMessage(
            text("message_too_big", limit=MAX_MESSAGE_BYTES),
            request_id,
            kind if isinstance(kind, str) else None,
        )
    if kind not in ("ask", "outcome", "cancel", "prefill", "progress"):
        raise InvalidMessage(text("unknown_type", type=repr(kind)), request_id, None)
    try:
        return _CLIENT.validate_python(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"][1:])  # [0] is the union's tag
        said = text("invalid_message", kind=kind, field=where, problem=first["msg"])
        raise InvalidMessage(said, request_id, kind) from None


# ---- server -> browser -----------------------------------------------------------------------
def token(request_id: str, turn: int, text: str) -> dict[str, Any]:
    return {"type": "token", "id": request_id, "turn": turn, "text": text}


TurnState = Literal[
    "generating", "executing", "queued", "skipped", "ok", "error", "timeout", "cancelled"
]
"""``queued``: the turn's cell waits for the kernel to finish another cell."""


def turn_state(request_id: str, turn: int, state: TurnState, **fields: Any) -> dict[str, Any]:
    return {"type": "turn", "id": request_id, "turn": turn, "state": state, **fields}


def skipped(request_id: str, turn: int, why: Text, *, step: int, attempt: int) -> dict[str, Any]:
    """A turn whose code was not run (it calls input(), it already failed), or whose answer
    was not taken as final: ``evalue`` says why in English, ``code``/``params`` the same."""
    return turn_state(
        request_id,
        turn,
        "skipped",
        evalue=str(why),
        **why.json(),
        step=step,
        attempt=attempt,
    )


def execute(
    request_id: str,
    turn: int,
    code: str,
    *,
    target: Placement,
    step: int,
    attempt: int,
    auto_execute: bool,
    time_limit: float,
    inspect: Sequence[str] = (),
) -> dict[str, Any]:
    """``inspect``: the names to look up in the kernel if the run prints nothing (their
    values come back in the outcome's ``values``)."""
    return {
        "type": "execute",
        "id": request_id,
        "turn": turn,
        "code": code,
        "target": target,
        "step": step,
        "attempt": attempt,
        "auto_execute": auto_execute,
        "time_limit": time_limit,
        "inspect": list(inspect),
    }


def done(request_id: str, result: Finished) -> dict[str, Any]:
    """The one ``done`` of a request, from the loop's result (or ``Finished.said`` for a
    request that never started)."""
    return {
        "type": "done",
        "id": request_id,
        "status": result.status,
        "turns": len(result.turns),
        "message": result.message,
        **({"code": result.code, "params": result.params} if result.code else {}),
        "final_code": result.final_code,
        "answer": result.answer,
        "steps": result.steps,
        "budget": result.budget,
    }


def notebook(path: str, running: Ask | None) -> dict[str, Any]:
    """A notebook's request started (``running``) or ended (None), for the other connections:
    their panel shows it and does not start another one there."""
    return {
        "type": "notebook",
        "notebook": path,
        "running": (
            {"id": running.id, "mode": running.mode, "prompt": running.prompt.strip()[:200]}
            if running is not None
            else None
        ),
    }


def error(request_id: str | None, said: Text) -> dict[str, Any]:
    """A message the server could not take (with its id, if it named one)."""
    body: dict[str, Any] = {"type": "error", "message": str(said), **said.json()}
    if request_id is not None:
        body["id"] = request_id
    return body
