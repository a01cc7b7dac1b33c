"""The model a harness asks: an engine in this process, or a running server's, behind one
``reply`` (the whole reply, or with ``cut`` only up to where its first python block closes, as
the chat reads it), with the two ways a request can fail that a run tells apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..client import ModelClient, ModelRequestError, ServerInfo, ServerUnavailable
from ..driver import ReplyCutter
from ..engine import Delta, Engine, EngineNotReady, GenerationParams, Message, ModelError


class ModelUnavailable(RuntimeError):
    """The model cannot answer at all (not loaded, server gone): the run stops; finished
    problems are kept and ``--resume`` continues."""


ModelFailure = ModelError
"""This one request failed (e.g. the prompt outgrew the context): the problem fails. The
product's one "the model could not answer" error (engine.base), under the harness's name."""


CUT = "cut"
"""The finish reason of a reply read only up to where its first python block closed (the
chat's way, ``cut=True``): the generation was stopped there."""


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"
    replayed: bool = False
    """Read from an earlier run's records (:mod:`.replay`), not generated now."""


class ReplyModel(Protocol):
    name: str

    async def reply(
        self, messages: Sequence[Message], params: GenerationParams, request_id: str
    ) -> Reply: ...


class EngineModel:
    """An engine in this process (llama.cpp, vLLM, a remote OpenAI-compatible server)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name = engine.status.model

    @property
    def context_length(self) -> int:
        return self.engine.context_length

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts with the engine's tokenizer (what the chat's prompt budget uses)."""
        return [self.engine.count_tokens(text) for text in texts]

    async def reply(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        request_id: str,
        *,
        cut: bool = False,
    ) -> Reply:
        """The whole reply; with ``cut``, only up to where its first python block closes, and
        the generation stops there, as the chat reads a reply (:class:`ReplyCutter`)."""
        cutter = ReplyCutter(cut)
        try:
            stream = self.engine.stream_chat(messages, params, request_id)
            async with contextlib.aclosing(stream):
                async for event in stream:
                    if isinstance(event, Delta):
                        cutter.feed(event.text)
                        if cutter.done:
                            break
                    else:
                        return Reply(
                            cutter.text,
                            event.prompt_tokens,
                            event.completion_tokens,
                            event.reason,
                        )
        except EngineNotReady as exc:
            raise ModelUnavailable(str(exc)) from exc
        if cutter.done:  # stopped where the block closed: the engine sent no finish event
            tokens = self.engine.count_tokens(cutter.text) if cutter.text else 0
            return Reply(cutter.text, None, tokens, CUT)
        raise ModelFailure("the engine's stream ended without a finish event")


class EndpointModel:
    """A running Jupyter server's model, through its OpenAI-compatible endpoint.

    :class:`~oci_jupyter.client.ModelClient` is synchronous: each request runs in a worker
    thread, one at a time (the server generates one at a time anyway).
    """

    def __init__(self, server: ServerInfo, *, timeout: float = 600.0) -> None:
        self.server = server
        self.client = ModelClient(server, timeout=timeout)
        self.name = "?"
        self.context_length = 4096
        """The served model's window (from :meth:`check`); 4096 when the server does not say,
        as the ``%%oci`` magic assumes."""
        self._lock = threading.Lock()

    def check(self) -> dict[str, Any]:
        """The server's status; raises ServerUnavailable / ModelRequestError (both clear)."""
        status = self.client.status()
        self.name = str(status.get("model") or "?")
        if isinstance(status.get("context_length"), int):
            self.context_length = int(status["context_length"])
        return status

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts with the served model's tokenizer (``/oci/tokenize``)."""
        with self._lock:
            try:
                return self.client.count_tokens(list(texts))
            except ServerUnavailable as exc:
                raise ModelUnavailable(str(exc)) from exc

    async def reply(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        request_id: str,
        *,
        cut: bool = False,
    ) -> Reply:
        """See :meth:`EngineModel.reply`; a cut reply closes the stream where its block
        closes (the server stops generating)."""
        return await asyncio.to_thread(self._reply, list(messages), params, cut)

    def _reply(self, messages: list[Message], params: GenerationParams, cut: bool = False) -> Reply:
        cutter = ReplyCutter(cut)
        with self._lock:
            try:
                stream = self.client.stream_chat(messages, params)
                try:
                    for piece in stream:
                        cutter.feed(piece)
                        if cutter.done:
                            break
                finally:
                    close = getattr(stream, "close", None)
                    if close is not None:
                        close()
                text = cutter.text
                tokens = self.client.count_tokens([text])[0] if text else 0
            except ServerUnavailable as exc:
                raise ModelUnavailable(str(exc)) from exc
            except ModelRequestError as exc:
                if exc.status in (401, 403, 404, 503):
                    raise ModelUnavailable(str(exc)) from exc
                raise  # a ModelError: this problem fails
        return Reply(text, None, tokens, CUT if cutter.done else "stop")

    def close(self) -> None:
        self.client.close()


def generation_params(max_tokens: int, temperature: float, seed: int) -> GenerationParams:
    """What a harness asks for: greedy at temperature 0 (top_p 1: nothing cut from the
    distribution), else the chat's sampling (top_p 0.95)."""
    top_p = 1.0 if temperature == 0 else 0.95
    return GenerationParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)


__all__ = [
    "CUT",
    "EndpointModel",
    "EngineModel",
    "ModelFailure",
    "ModelUnavailable",
    "Reply",
    "ReplyModel",
    "generation_params",
]
