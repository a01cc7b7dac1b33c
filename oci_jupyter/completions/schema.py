"""The OpenAI completions request we accept (``POST /oci/v1/completions``), and the shapes of
what we answer.

As for chat completions (:mod:`oci_jupyter.openai_schema`), validation is strict but unknown
fields are ignored. What a local model cannot honour is refused with a clear 400 rather than
silently ignored: ``echo``, ``logprobs``, ``best_of`` above 1, several prompts, token ids.

``notebook`` is this server's own field (OpenAI clients send it with ``extra_body``): the
cells around the one being edited and the kernel's variables. With it, ``prompt`` and
``suffix`` are the edited cell's text before and after the cursor, and the server fits the
notebook around them (:mod:`.notebook`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..openai_schema import RequestError, StreamOptions, validate_body

MAX_CELLS = 2000
MAX_VARIABLES = 500


class NotebookCell(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    source: str
    output: str = ""
    """The cell's outputs as text (the browser's ``outputText``), for the short ones."""
    kind: Literal["code", "markdown", "raw"] = "code"


class NotebookVariable(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    name: str
    type: str
    summary: str = ""


class NotebookContext(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    language: str = "python"
    cells_before: list[NotebookCell] = Field(default_factory=list, max_length=MAX_CELLS)
    """The cells above the edited one, top to bottom."""
    cells_after: list[NotebookCell] = Field(default_factory=list, max_length=MAX_CELLS)
    """The cells below it, top to bottom."""
    variables: list[NotebookVariable] = Field(default_factory=list, max_length=MAX_VARIABLES)


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    model: str | None = None
    prompt: str | list[str]
    suffix: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=1)
    echo: bool = False
    logprobs: int | None = None
    best_of: int | None = Field(default=None, ge=1)
    notebook: NotebookContext | None = None

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @property
    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    @property
    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(s for s in self.stop if s)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


DEFAULT_MAX_TOKENS = 16
"""OpenAI's default for the completions API (clients that leave it out expect it)."""


def parse_completion_request(body: bytes, limit: int) -> CompletionRequest:
    """The request, or a :class:`RequestError` (400) saying what is wrong or unsupported."""
    request = validate_body(
        CompletionRequest,
        body,
        limit,
        (CompletionRequest, StreamOptions, NotebookContext, NotebookCell, NotebookVariable),
        hints={"prompt": "a string, or a list of one string; token ids are not accepted"},
    )
    _refuse_unsupported(request)
    return request


def _refuse_unsupported(request: CompletionRequest) -> None:
    if request.echo:
        raise _unsupported("echo", "echo is not supported: the reply holds only the completion.")
    if request.logprobs is not None:
        raise _unsupported("logprobs", "logprobs are not supported by this server.")
    if request.best_of is not None and request.best_of > 1:
        raise _unsupported("best_of", "best_of above 1 is not supported by this server.")
    if isinstance(request.prompt, list) and len(request.prompt) != 1:
        raise _unsupported("prompt", "Send one prompt per request (a string or a list of one).")


def _unsupported(param: str, message: str) -> RequestError:
    return RequestError(400, message, code="unsupported_value", param=param)


def completion_id() -> str:
    import uuid

    return f"cmpl-{uuid.uuid4().hex}"


def completion_chunk(
    request_id: str, model: str, created: int, text: str, finish_reason: str | None = None
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
    }
