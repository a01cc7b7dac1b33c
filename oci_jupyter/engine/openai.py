"""A remote OpenAI-compatible server: `vllm serve` (with tensor/pipeline parallelism or replicas
behind a load balancer), llama.cpp's server, or another Jupyter running oci_jupyter.

Nothing is loaded here; "loading" means asking the server which models it serves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..texts import text
from ..types import PRIORITY_HEADER
from .base import (
    Delta,
    Engine,
    EngineError,
    Finish,
    GenerationParams,
    Message,
    StreamEvent,
    finish_reason,
)
from .fim import FimPrompt

# Without the remote tokenizer, token counts are estimates: code averages about 3.5 characters
# per token for the BPE vocabularies of current code models; err on the high side.
_CHARS_PER_TOKEN = 3.2
_PER_MESSAGE_OVERHEAD = 4
_ASSUMED_CONTEXT = 4096
log = logging.getLogger(__name__)


class OpenAIEngine(Engine):
    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str = "",
        model: str = "",
        context_length: int | None = None,
        timeout: float = 600.0,
        connect_timeout: float = 5.0,
    ) -> None:
        super().__init__(model=model or "(asking the server)", device=f"remote {base_url}")
        self._base_url = base_url
        self._api_key = api_key or "none"
        self._model = model
        self._context_length = context_length
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._client: Any = None

    async def _load(self) -> None:
        # The SDK's own Timeout: openai 3.x moved to httpx2 and rejects httpx.Timeout.
        from openai import AsyncOpenAI, Timeout

        if not self._base_url:
            raise EngineError("the openai engine needs c.OCI.openai_base_url")
        self._client = AsyncOpenAI(
            base_url=self._base_url,
            api_key=self._api_key,
            timeout=Timeout(self._timeout, connect=self._connect_timeout),
            max_retries=0,
        )
        self._set_status(detail=text("engine_asking_models", url=self._base_url))
        try:
            listing = await self._client.models.list()
        except Exception as exc:
            raise EngineError(f"cannot reach {self._base_url}: {exc}") from exc
        models = list(listing.data)
        if not models:
            raise EngineError(f"{self._base_url} serves no models")
        chosen = next((m for m in models if m.id == self._model), None) if self._model else None
        if self._model and chosen is None:
            served = ", ".join(m.id for m in models)
            raise EngineError(
                f"{self._base_url} does not serve {self._model!r} (it serves {served})"
            )
        chosen = chosen or models[0]
        self._model = chosen.id
        if self._context_length is None:
            # vLLM reports max_model_len on its model cards; others say nothing.
            extra = getattr(chosen, "model_extra", None) or {}
            reported = extra.get("max_model_len")
            if reported:
                self._context_length = int(reported)
            else:
                # Not every server says (llama.cpp's does not): assume a modest window so that
                # prompts are trimmed here rather than refused there.
                self._context_length = _ASSUMED_CONTEXT
                log.warning(
                    "%s does not report its context length; assuming %d tokens "
                    "(set c.OCI.openai_context_length)",
                    self._base_url,
                    _ASSUMED_CONTEXT,
                )
        self._set_status(model=self._model, context_length=self._context_length)

    def _request_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        """What every streamed request to the remote server carries, chat or infilling."""
        kwargs: dict[str, Any] = {
            "model": self._model,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
            # A shared oci_jupyter model server ranks a person before a program by it.
            "extra_headers": {PRIORITY_HEADER: params.priority},
        }
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if params.seed is not None:
            kwargs["seed"] = params.seed
        return kwargs

    async def _generate(
        self,
        messages: list[Message],
        params: GenerationParams,
        request_id: str,
        cancelled: asyncio.Event,
    ) -> AsyncGenerator[StreamEvent, None]:
        kwargs = {**self._request_kwargs(params), "messages": messages}
        try:
            stream = await self._client.chat.completions.create(**kwargs)
        except Exception as exc:
            raise EngineError(f"{self._base_url}: {exc}") from exc
        end = _StreamEnd()
        events = self._relay(stream, cancelled, end, _chat_text)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()
        if end.usage is not None and end.reason != "cancelled":
            prompt, completion = end.usage.prompt_tokens, end.usage.completion_tokens
        else:
            prompt = self.count_chat_tokens(messages)
            completion = self.count_tokens("".join(end.parts))
        yield Finish(finish_reason(end.reason), prompt, completion)

    async def _relay(
        self,
        stream: Any,
        cancelled: asyncio.Event,
        end: _StreamEnd,
        text_of: Callable[[Any], str | None],
    ) -> AsyncGenerator[Delta, None]:
        """Pass on the remote stream's text (``text_of`` a choice) until it ends or
        ``cancelled``; how it ended goes into ``end``."""
        watcher = asyncio.get_running_loop().create_task(cancelled.wait())
        try:
            iterator = stream.__aiter__()
            while True:
                step = asyncio.ensure_future(iterator.__anext__())
                await asyncio.wait({step, watcher}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():  # cancelled while waiting for the next chunk
                    step.cancel()
                    end.reason = "cancelled"
                    break
                try:
                    chunk = step.result()
                except StopAsyncIteration:
                    break
                if chunk.usage is not None:
                    end.usage = chunk.usage
                for choice in chunk.choices:
                    text = text_of(choice)
                    if text:
                        end.parts.append(text)
                        yield Delta(text)
                    if choice.finish_reason:
                        end.reason = choice.finish_reason
                if cancelled.is_set():
                    end.reason = "cancelled"
                    break
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"{self._base_url}: {exc}") from exc
        finally:
            watcher.cancel()
            await stream.close()  # closing the HTTP stream makes the remote server abort

    async def _generate_fim(
        self,
        prompt: FimPrompt,
        params: GenerationParams,
        request_id: str,
        cancelled: asyncio.Event,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Forwarded to the remote ``/v1/completions`` with ``suffix``: the remote server
        formats its model's infilling prompt (vLLM's server refuses ``suffix``; another
        oci_jupyter, llama.cpp's server or a hosted FIM API takes it)."""
        kwargs = {**self._request_kwargs(params), "prompt": prompt.prefix}
        if prompt.suffix is not None:
            kwargs["suffix"] = prompt.suffix
        try:
            stream = await self._client.completions.create(**kwargs)
        except Exception as exc:
            raise EngineError(f"{self._base_url}: {exc}") from exc
        end = _StreamEnd()
        events = self._relay(stream, cancelled, end, _completion_text)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()
        if end.usage is not None and end.reason != "cancelled":
            used, completion = end.usage.prompt_tokens, end.usage.completion_tokens
        else:
            used = self.count_tokens(prompt.prefix) + self.count_tokens(prompt.suffix or "")
            completion = self.count_tokens("".join(end.parts))
        yield Finish(finish_reason(end.reason), used, completion)

    def count_tokens(self, text: str) -> int:
        return int(len(text) / _CHARS_PER_TOKEN) + 1 if text else 0

    def count_chat_tokens(self, messages: Sequence[Message]) -> int:
        return sum(self.count_tokens(m["content"]) + _PER_MESSAGE_OVERHEAD for m in messages)

    @property
    def context_length(self) -> int:
        return self._context_length or _ASSUMED_CONTEXT

    async def _close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


@dataclass
class _StreamEnd:
    """How a remote stream ended: its finish reason, usage (if sent) and the text it sent."""

    reason: str = "stop"
    usage: Any = None
    parts: list[str] = field(default_factory=list)


def _chat_text(choice: Any) -> str | None:
    return choice.delta.content if choice.delta else None


def _completion_text(choice: Any) -> str | None:
    return getattr(choice, "text", None)
