"""Test doubles. They live here only, never in the product.

``ScriptedTestEngine`` answers with replies given in advance, word by word, so that loop,
handler and UI tests are deterministic and fast. Select it in a server with
``c.OCI.engine_class = "tests.doubles.ScriptedTestEngine"``.

For a server in another process, ``script_file`` names a JSON file
``{"replies": [...], "prompts": [...]}``: each generation takes the next reply from it and
appends the messages it was given, so a test can script and inspect a running server
(infilling: ``"completions"``, the last one repeating, and ``"fim_prompts"``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from oci_jupyter.engine import (
    Delta,
    Engine,
    EngineError,
    Finish,
    GenerationParams,
    Message,
    StreamEvent,
)
from oci_jupyter.engine.fim import FimPrompt


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
        script_file: str | None = None,
        completions: Sequence[str] = ("print('hello')",),
    ) -> None:
        super().__init__(model="scripted-test-model", device="test")
        self.replies = list(replies)
        self.prompts: list[list[Message]] = []
        self.params: list[GenerationParams] = []
        self.completions = list(completions)
        """Middles to fill in, one per infilling request (the last one repeats)."""
        self.fim_prompts: list[FimPrompt] = []
        self.fim_params: list[GenerationParams] = []
        self.fim_finishes: list[Finish] = []
        self.release = asyncio.Event()
        if not hold_loading:
            self.release.set()
        self._fail_load = fail_load
        self._token_delay = token_delay
        self._context = context_length
        self._script_file = script_file

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
        self.params.append(params)
        if self._script_file:
            reply = self._next_scripted(messages)
        else:
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

    async def _generate_fim(
        self,
        prompt: FimPrompt,
        params: GenerationParams,
        request_id: str,
        cancelled: asyncio.Event,
    ) -> AsyncGenerator[StreamEvent, None]:
        """The next scripted middle, word by word (cancel and max_tokens as for a reply)."""
        self.fim_prompts.append(prompt)
        self.fim_params.append(params)
        if self._script_file:
            middle = self._next_scripted_middle(prompt)
        else:
            middle = self.completions[min(len(self.fim_prompts), len(self.completions)) - 1]
        prompt_tokens = self.count_tokens(prompt.prefix) + self.count_tokens(prompt.suffix or "")
        words = middle.split(" ")
        finish = Finish("stop", prompt_tokens, len(words))
        for sent, word in enumerate(words):
            if cancelled.is_set():
                finish = Finish("cancelled", prompt_tokens, sent)
                break
            if sent >= params.max_tokens:
                finish = Finish("length", prompt_tokens, sent)
                break
            yield Delta(word if sent == 0 else " " + word)
            await asyncio.sleep(self._token_delay)
        self.fim_finishes.append(finish)
        yield finish

    def _next_scripted_middle(self, prompt: FimPrompt) -> str:
        """From the script file: the next of its "completions" (the last one repeats), and
        the prompt appended to its "fim_prompts" ({"prefix", "suffix"})."""
        assert self._script_file
        with open(self._script_file) as handle:
            script = json.load(handle)
        script.setdefault("fim_prompts", []).append(
            {"prefix": prompt.prefix, "suffix": prompt.suffix}
        )
        middles = script.get("completions") or [""]
        middle = middles.pop(0) if len(middles) > 1 else middles[0]
        script["completions"] = middles
        with open(self._script_file, "w") as handle:
            json.dump(script, handle)
        return str(middle)

    def _next_scripted(self, messages: list[Message]) -> str:
        assert self._script_file
        with open(self._script_file) as handle:
            script = json.load(handle)
        script.setdefault("prompts", []).append(messages)
        replies = script.get("replies") or []
        reply = replies.pop(0) if replies else "(no more scripted replies)"
        with open(self._script_file, "w") as handle:
            json.dump(script, handle)
        return str(reply)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_chat_tokens(self, messages: Sequence[Message]) -> int:
        return sum(self.count_tokens(m["content"]) + 3 for m in messages)

    @property
    def context_length(self) -> int:
        return self._context


class StrictTemplateTestEngine(ScriptedTestEngine):
    """A scripted engine whose "chat template" is as strict as the strictest real ones: it
    raises when roles do not alternate user/assistant after the system message."""

    name = "strict-template-test"

    async def _generate(
        self,
        messages: list[Message],
        params: GenerationParams,
        request_id: str,
        cancelled: asyncio.Event,
    ) -> AsyncGenerator[StreamEvent, None]:
        roles = [m["role"] for m in messages if m["role"] != "system"]
        for index, role in enumerate(roles):
            expected = "user" if index % 2 == 0 else "assistant"
            if role != expected:
                raise ValueError(f"roles must alternate user/assistant: {roles}")
        async for event in super()._generate(messages, params, request_id, cancelled):
            yield event


class DyingTestEngine(ScriptedTestEngine):
    """A scripted engine whose engine "dies" in the middle of its first generation: it sends
    one word, reports its death (as vLLM's engine core or llama.cpp's worker would) and
    fails the request. After a restart it answers like :class:`ScriptedTestEngine`.

    ``loads`` and ``closes`` count the loads and the releases of the "model"."""

    name = "dying-test"
    title = "test"

    def __init__(self, *args: Any, death: str = "the test engine core exited", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.death = death
        self.dead_on_next_generation = True
        self.loads = 0
        self.closes = 0

    async def _load(self) -> None:
        self.loads += 1
        await super()._load()

    async def _close(self) -> None:
        self.closes += 1

    def _reset(self) -> None:
        self.dead_on_next_generation = False

    async def _generate(
        self,
        messages: list[Message],
        params: GenerationParams,
        request_id: str,
        cancelled: asyncio.Event,
    ) -> AsyncGenerator[StreamEvent, None]:
        if self.dead_on_next_generation:
            yield Delta("Here")
            self._died(self.death)
            raise EngineError(f"The test engine died: {self.death}")
        async for event in super()._generate(messages, params, request_id, cancelled):
            yield event
