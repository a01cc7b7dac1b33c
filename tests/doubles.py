"""Test doubles. They live here only, never in the product.

``ScriptedTestEngine`` answers with replies given in advance, word by word, so that loop,
handler and UI tests are deterministic and fast. Select it in a server with
``c.OCI.engine_class = "tests.doubles.ScriptedTestEngine"``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

from oci_jupyter.engine import Delta, Engine, Finish, GenerationParams, Message, StreamEvent


class ScriptedTestEngine(Engine):
    name = "scripted-test"

    def __init__(
        self,
        replies: Sequence[str] = ("```python\nprint('hello')\n```",),
        *,
        hold_loading: bool = False,
        fail_load: str | None = None,
        token_delay: float = 0.0,
        context_length: int = 4096,
    ) -> None:
        super().__init__(model="scripted-test-model", device="test")
        self.replies = list(replies)
        self.prompts: list[list[Message]] = []
        self.release = asyncio.Event()
        if not hold_loading:
            self.release.set()
        self._fail_load = fail_load
        self._token_delay = token_delay
        self._context = context_length

    async def _load(self) -> None:
        self._set_status(detail="waiting to be released", progress=0.5)
        await self.release.wait()
        if self._fail_load:
            raise RuntimeError(self._fail_load)

    async def _generate(
        self,
        messages: list[Message],
        params: GenerationParams,
        request_id: str,
        cancelled: asyncio.Event,
    ) -> AsyncGenerator[StreamEvent, None]:
        self.prompts.append(messages)
        reply = self.replies[min(len(self.prompts), len(self.replies)) - 1]
        words = reply.split(" ")
        sent = 0
        for index, word in enumerate(words):
            if cancelled.is_set():
                yield Finish("cancelled", self.count_chat_tokens(messages), sent)
                return
            if sent >= params.max_tokens:
                yield Finish("length", self.count_chat_tokens(messages), sent)
                return
            yield Delta(word if index == 0 else " " + word)
            sent += 1
            await asyncio.sleep(self._token_delay)
        yield Finish("stop", self.count_chat_tokens(messages), sent)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_chat_tokens(self, messages: Sequence[Message]) -> int:
        return sum(self.count_tokens(m["content"]) + 3 for m in messages)

    @property
    def context_length(self) -> int:
        return self._context
