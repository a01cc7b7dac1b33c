"""``POST /oci/v1/completions``: the OpenAI completions API, behind Jupyter's auth.

``prompt`` (and ``suffix``: fill in the middle with the model's own infilling prompt) for every
engine; ``stream`` as server-sent events; a client that disconnects cancels its generation.
Ghost text in the notebook sends the cells around the cursor in ``notebook`` (see
:mod:`.notebook`) and a key per editor in ``X-OCI-Completion-Key``: a newer request with the
same key (the next keystroke) cancels the older one on arrival, so a person who types fast
never queues work, even before their browser's abort reaches the server.

Completions are interactive: they go before programs (``X-OCI-Priority: background`` makes
one a program, for evaluation harnesses) and give way to a chat turn within a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.iostream import StreamClosedError

from ..engine import Delta, Engine, EngineError, EngineNotReady, Finish, GenerationParams
from ..engine.fim import FimPrompt, NoFimFormat, continues
from ..handlers import PRIORITY_HEADER, ChatCompletionsHandler, _openai_reason, collect
from ..openai_schema import RequestError, now, usage
from ..types import Priority
from .notebook import FimLimits, build_notebook_prompt
from .schema import (
    DEFAULT_MAX_TOKENS,
    CompletionRequest,
    completion_chunk,
    completion_id,
    parse_completion_request,
)

KEY_HEADER = "X-OCI-Completion-Key"
MARKER_TOKENS = 4
"""Room for the infilling markers around prefix and suffix."""
COUNT_CACHE = 8192
"""Texts whose token counts are remembered: the cells that do not change between
keystrokes are counted once."""


class LatestCompletions:
    """The newest completion of each key: starting one stops the one before.

    The one before is *superseded* when the new prompt continues it (the person typed on,
    or took back a character or two), so it may finish reading its prompt up to the cursor,
    which the new request needs too; otherwise (another cell) it is cancelled at once."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[str, str]] = {}

    def begin(self, owner: str, request_id: str, engine: Engine, prefix: str) -> None:
        previous = self._latest.get(owner)
        self._latest[owner] = (request_id, prefix)
        if previous is None:
            return
        previous_id, previous_prefix = previous
        if continues(previous_prefix, prefix):
            engine.supersede(previous_id)
        else:
            engine.cancel(previous_id)

    def superseded(self, owner: str, request_id: str) -> bool:
        """A newer request with the same key came in (checked before the generation starts)."""
        latest = self._latest.get(owner)
        return latest is not None and latest[0] != request_id

    def end(self, owner: str, request_id: str) -> None:
        latest = self._latest.get(owner)
        if latest is not None and latest[0] == request_id:
            del self._latest[owner]


_LATEST: weakref.WeakKeyDictionary[Engine, LatestCompletions] = weakref.WeakKeyDictionary()
_COUNTS: weakref.WeakKeyDictionary[Engine, OrderedDict[str, int]] = weakref.WeakKeyDictionary()
_COUNTS_LOCK = threading.Lock()


def cached_counter(engine: Engine) -> Callable[[list[str]], list[int]]:
    """Token counts with the engine's tokenizer, remembered per text (call it off the loop)."""
    cache = _COUNTS.setdefault(engine, OrderedDict())

    def count(texts: list[str]) -> list[int]:
        counts: list[int] = []
        for text in texts:
            with _COUNTS_LOCK:  # requests build their prompts in threads of their own
                known = cache.get(text)
                if known is not None:
                    cache.move_to_end(text)
            if known is None:
                known = engine.count_tokens(text)
                with _COUNTS_LOCK:
                    cache[text] = known
                    if len(cache) > COUNT_CACHE:
                        cache.popitem(last=False)
            counts.append(known)
        return counts

    return count


class CompletionsHandler(ChatCompletionsHandler):
    """Shares the chat endpoint's model check, SSE writing and cancel on disconnect."""

    limits = FimLimits()

    @web.authenticated
    @authorized
    async def post(self) -> None:
        owner = self._owner()
        request_id = self._request_id = completion_id()
        latest = _LATEST.setdefault(self.engine, LatestCompletions())
        try:
            try:
                request = parse_completion_request(
                    self.request.body, self.services.config.max_request_bytes
                )
                if not self.engine.ready:
                    raise self.not_ready_error()
                self._check_model(request)  # type: ignore[arg-type]
                if owner is not None:  # before the prompt is built: a newer one may come
                    latest.begin(owner, request_id, self.engine, self._cell_prefix(request))
                prompt, prompt_tokens = await self._prompt(request)
                params = self._completion_params(request, prompt_tokens)
            except RequestError as error:
                return self.send_openai_error(error)
            except EngineNotReady:
                return self.send_openai_error(self.not_ready_error())
            if owner is not None and latest.superseded(owner, request_id):
                # The next keystroke came while this prompt was built: nothing to generate.
                return await self._empty(request, Finish("cancelled", prompt_tokens, 0))
            if request.stream:
                await self._stream_completion(request, prompt, params)
            else:
                await self._complete_once(request, prompt, params)
        finally:
            if owner is not None:
                latest.end(owner, request_id)

    @staticmethod
    def _cell_prefix(request: CompletionRequest) -> str:
        """What decides whether the next request continues this one: the text before the
        cursor, behind the notebook's cells (they are the same in both, or the request came
        from another cell: then the cell's text differs too)."""
        notebook = request.notebook
        cells = "" if notebook is None else "\x00".join(c.source for c in notebook.cells_before)
        return cells + "\x01" + request.prompt_text

    def _owner(self) -> str | None:
        # The key alone: a token-authenticated client is a new anonymous user at every
        # request. The browser makes a random key per editor, which nobody else can guess.
        return self.request.headers.get(KEY_HEADER, "").strip()[:200] or None

    async def _prompt(self, request: CompletionRequest) -> tuple[FimPrompt, int]:
        """The prompt to fill in, and its tokens; 400 when it cannot fit the window."""
        engine = self.engine
        count = cached_counter(engine)
        before = request.prompt_text
        if request.notebook is not None:
            built = await asyncio.to_thread(
                build_notebook_prompt,
                before,
                request.suffix or "",
                request.notebook,
                count=count,
                limits=self.limits,
            )
            prompt, tokens = built.prompt, built.tokens
        else:
            prompt = FimPrompt(before, request.suffix)
            parts = [prompt.prefix, prompt.suffix or ""]
            tokens = sum(await asyncio.to_thread(lambda: [engine.count_tokens(t) for t in parts]))
        tokens += MARKER_TOKENS
        window = engine.context_length
        if tokens >= window:
            raise RequestError(
                400,
                f"The prompt and suffix are {tokens} tokens; the model's context is {window}.",
                code="context_length_exceeded",
                param="prompt",
            )
        return prompt, tokens

    def _completion_params(
        self, request: CompletionRequest, prompt_tokens: int
    ) -> GenerationParams:
        room = self.engine.context_length - prompt_tokens
        wanted = request.max_tokens or DEFAULT_MAX_TOKENS
        if request.max_tokens is not None and wanted > room:
            raise RequestError(
                400,
                f"max_tokens is {wanted}, but the prompt takes {prompt_tokens} of the model's "
                f"{self.engine.context_length} tokens: at most {room} remain.",
                code="context_length_exceeded",
                param="max_tokens",
            )
        settings = self.services.config
        return GenerationParams(
            max_tokens=min(wanted, room),
            temperature=(
                settings.default_temperature if request.temperature is None else request.temperature
            ),
            top_p=1.0 if request.top_p is None else request.top_p,
            stop=request.stop_sequences,
            seed=request.seed,
            priority=completion_priority(self.request.headers.get(PRIORITY_HEADER, "")),
        )

    async def _complete_once(
        self, request: CompletionRequest, prompt: FimPrompt, params: GenerationParams
    ) -> None:
        assert self._request_id
        try:
            text, finish = await collect(self.engine.stream_fim(prompt, params, self._request_id))
        except EngineNotReady:
            return self.send_openai_error(self.not_ready_error())
        except NoFimFormat as exc:  # a suffix for a model without infilling markers
            return self.send_openai_error(
                RequestError(400, str(exc), code="fim_unsupported", param="suffix")
            )
        except EngineError as exc:
            return self.send_openai_error(RequestError(500, str(exc), type="engine_error"))
        if self._client_gone or finish is None:
            return
        self._reply(request, text, finish)

    async def _empty(self, request: CompletionRequest, finish: Finish) -> None:
        """An empty completion, in the form the client asked for."""
        if not request.stream:
            return self._reply(request, "", finish)
        assert self._request_id
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        with contextlib.suppress(StreamClosedError):
            model = self.engine.status.model
            await self._send(completion_chunk(self._request_id, model, now(), "", "stop"))
            await self._send_raw("data: [DONE]\n\n")
        if not self._client_gone:
            self.finish()

    def _reply(self, request: CompletionRequest, text: str, finish: Finish) -> None:
        assert self._request_id
        body = completion_chunk(
            self._request_id, self.engine.status.model, now(), text, _openai_reason(finish.reason)
        )
        body["usage"] = usage(finish.prompt_tokens, finish.completion_tokens, finish.cached_tokens)
        self.finish(json.dumps(body))

    async def _stream_completion(
        self, request: CompletionRequest, prompt: FimPrompt, params: GenerationParams
    ) -> None:
        assert self._request_id
        request_id, model, created = self._request_id, self.engine.status.model, now()
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        events = self.engine.stream_fim(prompt, params, request_id)
        try:
            await self.flush()  # the headers now: the browser's fetch resolves at once
            async for event in events:
                if isinstance(event, Delta):
                    await self._send(completion_chunk(request_id, model, created, event.text))
                    continue
                self._log_finish(event)
                reason = _openai_reason(event.reason)
                await self._send(completion_chunk(request_id, model, created, "", reason))
                if request.include_usage:
                    body = completion_chunk(request_id, model, created, "")
                    body["choices"] = []
                    body["usage"] = usage(
                        event.prompt_tokens, event.completion_tokens, event.cached_tokens
                    )
                    await self._send(body)
            await self._send_raw("data: [DONE]\n\n")
        except StreamClosedError:
            self._client_gone = True
        except EngineError as exc:
            try:
                await self._send(RequestError(500, str(exc), type="engine_error").body)
            except StreamClosedError:
                self._client_gone = True
        finally:
            await events.aclose()  # cancels the generation if it is still running
        if not self._client_gone:
            self.finish()

    def _log_finish(self, finish: Finish) -> None:
        # One per keystroke: debug, not info.
        self.log.debug(
            "oci: %s %s, %d prompt (%s cached) + %d completion tokens",
            self._request_id,
            finish.reason,
            finish.prompt_tokens,
            finish.cached_tokens,
            finish.completion_tokens,
        )


def completion_priority(header: str) -> Priority:
    """Completions are interactive (a person types) unless a program says ``background``."""
    return "background" if header.strip().lower() == "background" else "interactive"


HANDLERS: list[tuple[str, type[CompletionsHandler]]] = [
    (r"/oci/v1/completions", CompletionsHandler),
]
