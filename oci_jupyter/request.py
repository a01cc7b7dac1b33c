"""One request to the interpreter loop, built the same way for every surface.

A surface knows the user's words, the notebook's context, the remembered conversation, the
mode (``chat``, ``fix`` or ``edit``), a fix's failing cell or an edit's cell and the budgets
the user chose. It puts
them in a :class:`Request`; :func:`prepare` turns that, with what it knows of the model
(:class:`ModelSettings`), into the first prompt, the :class:`~oci_jupyter.loop.RefinementLoop`
and the sampling (:class:`Prepared`), and :meth:`Prepared.remember` says what the
conversation keeps once the loop has ended. The sidebar's
:class:`~oci_jupyter.chat.session.ChatSession`, the ``%%oci`` magic and ``oci-eval
dabench`` build their requests here and do only their own I/O; the loop's rules are in
:mod:`oci_jupyter.loop`.

The server's settings (``c.OCI.read_results`` and ``c.OCI.max_*``, :class:`LoopDefaults`)
are every surface's defaults: a choice the request leaves out (None in :class:`Choices`)
takes the server's, here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from .loop import DEFAULT_BUDGETS, Budgets, LoopMode, RefinementLoop, alternate, bounded
from .prompts import (
    EDIT_CELL_PLACEHOLDER,
    REQUEST_HINT,
    Counter,
    NotebookContext,
    PromptLimits,
    build_messages,
    edit_names,
    edit_request,
    failure_names,
    fix_request,
)
from .prompts.files import file_previews
from .types import ExecutionOutcome, GenerationParams, Message

__all__ = [
    "FAILING_CELL_PLACEHOLDER",
    "MEMORY_CHARS_PER_TOKEN",
    "TOP_P",
    "Choices",
    "EditTarget",
    "FixTarget",
    "LoopDefaults",
    "Memory",
    "ModelSettings",
    "Prepared",
    "Request",
    "prepare",
    "reply_room",
]

FAILING_CELL_PLACEHOLDER = "(the failing cell, shown below)"
TOP_P = 0.95
"""Nucleus sampling of every surface's replies (the sampling temperature is the user's)."""
MEMORY_CHARS_PER_TOKEN = 3
"""A conversation remembered as said is bounded by the model's window times this: more than
any prompt can hold (code and English run ~3-4 characters a token)."""
Memory = Literal["as_sent", "as_said"]
"""What the conversation keeps of a request: ``as_sent``, the prompt's last turn as it was
sent, context included (the chat: its next prompt then begins with this one's, and the engine
reuses what it already read; the store bounds it); ``as_said``, the user's words only,
bounded by the window (``%%oci``: each request reads the kernel's history afresh)."""


@dataclass(frozen=True)
class LoopDefaults:
    """The server's defaults for what a request leaves out: ``c.OCI.read_results`` and
    ``c.OCI.max_attempts/steps/replies`` (``GET /oci/status`` reports them as ``loop``)."""

    read_results: bool = True
    max_attempts: int = DEFAULT_BUDGETS.attempts
    max_steps: int = DEFAULT_BUDGETS.steps
    max_replies: int = DEFAULT_BUDGETS.replies

    @classmethod
    def from_json(cls, data: object) -> LoopDefaults:
        """``/oci/status``'s ``loop`` as a kernel reads it: what an older server leaves out,
        or sends as something else, is the product's default."""
        given: Mapping[str, object] = data if isinstance(data, dict) else {}
        fallback = cls()

        def count(key: str) -> int:
            value = given.get(key)
            return value if isinstance(value, int) and value >= 1 else getattr(fallback, key)

        return cls(
            read_results=bool(given.get("read_results", fallback.read_results)),
            max_attempts=count("max_attempts"),
            max_steps=count("max_steps"),
            max_replies=count("max_replies"),
        )


@dataclass(frozen=True)
class Choices:
    """What the user chose for this one request; None takes the server's default."""

    attempts: int | None = None
    steps: int | None = None
    replies: int | None = None
    read_results: bool | None = None


@dataclass(frozen=True)
class FixTarget:
    """The cell a ``fix`` repairs: its source and how it failed."""

    source: str
    failure: ExecutionOutcome


@dataclass(frozen=True)
class EditTarget:
    """The cell an ``edit`` changes (the user's instruction is the request's words): its
    source, its last output as text, how its last run failed (if it did), and the lines the
    user selected ("" for the whole cell)."""

    source: str
    output: str = ""
    failure: ExecutionOutcome | None = None
    selection: str = ""


@dataclass(frozen=True)
class Request:
    """What a surface knows of one request."""

    words: str
    """The user's words (for a fix: what they added, if anything; for an edit: the
    instruction)."""
    context: NotebookContext = field(default_factory=NotebookContext)
    conversation: Sequence[Message] = ()
    """The remembered conversation, roles alternating (:func:`~oci_jupyter.loop.alternate`)."""
    mode: LoopMode = "chat"
    fix: FixTarget | None = None
    edit: EditTarget | None = None
    choices: Choices = field(default_factory=Choices)
    defaults: LoopDefaults = field(default_factory=LoopDefaults)
    refine_cell: bool = False
    """The first step rewrites the previous request's cell (the chat's "refine")."""
    memory: Memory = "as_sent"

    @property
    def text(self) -> str:
        """What the model is asked: the user's words, the fix of the failing cell with them
        added, or the change of the edit's cell they ask for."""
        if self.edit is not None:
            edit = self.edit
            return edit_request(
                edit.source,
                self.words,
                output=edit.output,
                failure=edit.failure,
                selection=edit.selection,
            )
        if self.fix is None:
            return self.words
        return fix_request(self.fix.source, self.fix.failure, self.words)

    def budgets(self) -> Budgets:
        """The user's budgets, else the server's; a fix and an edit have one step: their
        cell."""
        chose, server = self.choices, self.defaults
        return Budgets(
            attempts=chose.attempts or server.max_attempts,
            steps=1 if self.mode != "chat" else (chose.steps or server.max_steps),
            replies=chose.replies or server.max_replies,
        )

    @property
    def read_results(self) -> bool:
        chose = self.choices.read_results
        return self.defaults.read_results if chose is None else chose

    def model_context(self) -> NotebookContext:
        """The context as the model reads it. A fix's failing cell (an edit's cell) is in
        the request itself: where the context marks it (the chat's active cell) it keeps its
        place, so that the model sees what runs before and after it, but not its source a
        second time; where nothing marks it (the kernel's history of ``%%oci``) cells with
        its source are left out."""
        target = self.fix or self.edit
        if target is None:
            return self.context
        placeholder = FAILING_CELL_PLACEHOLDER if self.fix else EDIT_CELL_PLACEHOLDER
        cells = self.context.cells
        if any(c.active for c in cells):
            cells = [replace(c, source=placeholder, output="") if c.active else c for c in cells]
        else:
            cells = [c for c in cells if c.source != target.source]
        return replace(self.context, cells=cells)

    def needs(self) -> set[str]:
        """The names whose defining cells are ranked first: those a fix's failing cell or an
        edit's cell reads (a NameError's missing name included)."""
        if self.fix is not None:
            return failure_names(self.fix.source, self.fix.failure)
        if self.edit is not None:
            return edit_names(self.edit.source, self.edit.failure)
        return set()

    def known_failures(self) -> tuple[tuple[str, ExecutionOutcome], ...]:
        """Code known to fail before the loop starts: a fix's cell, an edit's cell whose last
        run failed. The first answer may hand it back unchanged: it is not run again."""
        target = self.fix or self.edit
        if target is None or target.failure is None:
            return ()
        return ((target.source, target.failure),)


@dataclass(frozen=True)
class ModelSettings:
    """What a surface knows of the model its request goes to."""

    window: int
    """The model's context, in tokens."""
    count: Counter
    """Token counts of texts, with the model's tokenizer."""
    reply_tokens: int = 1024
    """The longest reply wanted (at most half the window: :func:`reply_room`)."""
    temperature: float = 0.2
    system: str | None = None
    """None: the product's system prompt (benchmarks compare others)."""


def reply_room(wanted: int, window: int) -> int:
    """The tokens a reply may take: what is wanted, at most half the window (the prompt
    keeps the other half)."""
    return min(wanted, window // 2)


@dataclass
class Prepared:
    """A request ready to drive: its first prompt, its loop and its sampling."""

    request: Request
    messages: list[Message]
    loop: RefinementLoop
    params: GenerationParams
    window: int

    def remember(self) -> list[Message]:
        """The conversation after this request (:data:`Memory`): what came before, the
        request, then every reply and result; roles alternating."""
        before = list(self.request.conversation)
        if self.request.memory == "as_said":
            exchange = self.loop.exchange(self.request.text)
            return alternate(bounded([*before, *exchange], self.window * MEMORY_CHARS_PER_TOKEN))
        # A remembered result that ended the last request is already at the head of the
        # prompt that was sent (build_messages joins it there): it is not kept twice.
        if before and before[-1]["role"] == "user":
            before = before[:-1]
        return alternate([*before, *self.loop.exchange(self.messages[-1]["content"])])


def prepare(request: Request, model: ModelSettings, *, folder: Path | None = None) -> Prepared:
    """The first prompt, the loop and the sampling of ``request``. ``folder``: the
    notebook's, where the data files the request names are previewed (None: none are).

    Blocking work (the token counts, parsing the failing cell, the files' first lines): the
    server runs it in a thread. Raises :class:`~oci_jupyter.prompts.PromptTooLong`."""
    text = request.text
    room = reply_room(model.reply_tokens, model.window)
    messages = build_messages(
        text,
        request.model_context(),
        window=model.window,
        count=model.count,
        history=request.conversation,
        limits=PromptLimits(reply_tokens=room),
        # The cells that define what the failing (or changed) cell reads are ranked first.
        needs=request.needs(),
        # A fix and an edit ask for code already.
        hint="" if (request.fix or request.edit) is not None else REQUEST_HINT,
        files=file_previews(text, folder),
        **({"system": model.system} if model.system is not None else {}),
    )
    loop = RefinementLoop(
        messages,
        budgets=request.budgets(),
        mode=request.mode,
        read_results=request.read_results,
        failed_code=request.known_failures(),
        unchanged_code=request.edit.source if request.edit is not None else None,
        refine_cell=request.refine_cell,
    )
    params = GenerationParams(max_tokens=room, temperature=model.temperature, top_p=TOP_P)
    return Prepared(request, messages, loop, params, model.window)
