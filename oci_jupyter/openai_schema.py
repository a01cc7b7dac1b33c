"""The OpenAI chat-completions request we accept, and the shapes of what we answer.

Validation is strict (wrong types are errors, not coerced) but unknown fields are ignored,
as OpenAI clients send fields that do not matter to a local model (user, logprobs: false, ...).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .engine import Message

M = TypeVar("M", bound=BaseModel)


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def normalised(self) -> Message:
        role = "system" if self.role == "developer" else self.role
        if isinstance(self.content, str):
            return {"role": role, "content": self.content}
        return {"role": role, "content": "".join(part.text for part in self.content)}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=1)

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @property
    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(s for s in self.stop if s)

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class RequestError(Exception):
    """A request we refuse, with the HTTP status and OpenAI error fields to send."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {
            "error": {"message": message, "type": type, "param": param, "code": code},
            **(extra or {}),
        }


def parse_request(body: bytes, limit: int) -> ChatCompletionRequest:
    return validate_body(
        ChatCompletionRequest,
        body,
        limit,
        (ChatCompletionRequest, ChatMessage, TextPart, StreamOptions),
    )


def validate_body(
    model: type[M],
    body: bytes,
    limit: int,
    field_models: Sequence[type[BaseModel]],
    hints: Mapping[str, str] | None = None,
) -> M:
    """``body`` as ``model``, or a :class:`RequestError` (400) that names what is wrong: too
    large, empty, not JSON, or the first invalid field (its path from the fields of
    ``field_models``, with the ``hints`` for that field)."""
    if len(body) > limit:
        raise RequestError(
            400,
            f"Request body is {len(body):,} bytes; the limit is {limit:,} "
            "(c.OCI.max_request_bytes).",
            code="request_too_large",
        )
    if not body.strip():
        raise RequestError(400, "Request body is empty; send a JSON object.", code="invalid_json")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        if error["type"] == "json_invalid":
            raise RequestError(
                400, f"Request body is not valid JSON: {error['msg']}", code="invalid_json"
            ) from exc
        param = _param_path(error["loc"], field_models)
        where = f"'{param}': " if param else ""
        message = f"Invalid request: {where}{error['msg']}"
        if hints and param in hints:
            message += f" ({hints[param]})"
        raise RequestError(400, message, code="invalid_value", param=param) from exc


def _param_path(loc: tuple[int | str, ...], field_models: Sequence[type[BaseModel]]) -> str | None:
    """'messages.0.content' from pydantic's location, without its union-member tags."""
    fields = {name for model in field_models for name in model.model_fields}
    parts = [str(p) for p in loc if isinstance(p, int) or p in fields]
    return ".".join(parts) or None


def completion_id() -> str:
    import uuid

    return f"chatcmpl-{uuid.uuid4().hex}"


def chunk(
    request_id: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def usage(
    prompt_tokens: int, completion_tokens: int, cached_tokens: int | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cached_tokens is not None:  # as OpenAI reports prompt caching
        body["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    return body


def now() -> int:
    return int(time.time())
