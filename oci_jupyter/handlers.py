"""HTTP endpoints, all behind Jupyter's authentication and authorization.

- ``GET  /oci/status``                 the engine's state (for the sidebar and tools)
- ``GET  /oci/v1/models``              OpenAI model list
- ``POST /oci/v1/chat/completions``    OpenAI chat completions, streamed as server-sent events
- ``POST /oci/tokenize``               token counts with the served model's tokenizer
- ``POST /oci/restart``                load the model again (after it died or failed to load)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.iostream import StreamClosedError

from .chat import ChatStore, NotebookRequests
from .client import TOKENIZE_CHARACTERS, TOKENIZE_TEXTS
from .config import OCI
from .engine import Delta, Engine, EngineError, EngineNotReady, Finish, GenerationParams
from .engine.base import EngineBusy, StreamEvent
from .openai_schema import (
    ChatCompletionRequest,
    RequestError,
    chunk,
    completion_id,
    now,
    parse_request,
    usage,
)
from .types import PRIORITY_HEADER, Priority
from .version import __version__

AUTH_RESOURCE = "oci"

TOKEN_COUNTING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="oci-tokenize")
"""``/oci/tokenize``'s own threads: a client counting large texts waits for these, never
for the default executor that the chat histories, the chat's prompts and completions use."""


@dataclass(frozen=True)
class Services:
    """What the extension (app.py) hands its handlers: each route's third element is
    ``{"services": services}``, which tornado passes to the handler's ``initialize``. The
    handlers know these, typed, and nothing else of the extension."""

    engine: Engine
    config: OCI
    """``c.OCI.*``."""
    chat_store: ChatStore
    chat_notebooks: NotebookRequests
    """One request per notebook, across every connection of the server."""

    def route(self, path: str, handler: type) -> tuple[str, type, dict[str, Any]]:
        """A route of the extension: ``path``, ``handler``, and these services for it."""
        return (path, handler, {"services": self})


class OCIHandler(ExtensionHandlerMixin, APIHandler):
    auth_resource = AUTH_RESOURCE
    services: Services

    def initialize(self, name: str, *args: Any, services: Services, **kwargs: Any) -> None:
        self.services = services
        super().initialize(name, *args, **kwargs)

    @property
    def oci(self) -> Services:
        return self.services

    @property
    def engine(self) -> Engine:
        return self.services.engine

    def send_openai_error(self, error: RequestError) -> None:
        self.set_status(error.status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(error.body))

    def not_ready_error(self) -> RequestError:
        status = self.engine.status
        said = status.not_ready()
        # What a load is doing right now ("downloading 40%") is the status's, not the
        # sentence's: it goes after it.
        detail = f" ({status.detail})" if status.detail and status.state == "loading" else ""
        return RequestError(
            503,
            f"{said}{detail}",
            type="engine_unavailable",
            code=status.state,
            extra={"status": status.to_json(), "text": said.json()},
        )


class StatusHandler(OCIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        body = self.engine.status.to_json()
        body["version"] = __version__
        body["running_requests"] = len(self.engine.running_requests)
        body["waiting_requests"] = self.engine.waiting_requests
        body["busy"] = self.engine.busy
        body["loop"] = self.services.config.loop_defaults()
        self.finish(json.dumps(body))


class ModelsHandler(OCIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        if not self.engine.ready:
            return self.send_openai_error(self.not_ready_error())
        status = self.engine.status
        self.finish(
            json.dumps(
                {
                    "object": "list",
                    "data": [
                        {
                            "id": status.model,
                            "object": "model",
                            "created": int(status.since),
                            "owned_by": "oci_jupyter",
                            "max_model_len": self.engine.context_length,
                        }
                    ],
                }
            )
        )


class ChatCompletionsHandler(OCIHandler):
    _request_id: str | None = None
    _client_gone = False

    @web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            request = parse_request(self.request.body, self.services.config.max_request_bytes)
            if not self.engine.ready:
                raise self.not_ready_error()
            self._check_model(request)
            messages = [m.normalised() for m in request.messages]
            params = await self._params(request, messages)
        except RequestError as error:
            return self.send_openai_error(error)
        except EngineNotReady:  # released by a restart while the prompt was counted
            return self.send_openai_error(self.not_ready_error())
        self._request_id = completion_id()
        if request.stream:
            await self._stream(request, messages, params)
        else:
            await self._complete(messages, params)

    def _check_model(self, request: ChatCompletionRequest) -> None:
        served = self.engine.status.model
        if request.model and request.model != served:
            raise RequestError(
                404,
                f"The model {request.model!r} does not exist; this server serves {served!r}.",
                code="model_not_found",
                param="model",
            )

    async def _params(
        self, request: ChatCompletionRequest, messages: list[dict[str, str]]
    ) -> GenerationParams:
        settings = self.services.config
        window = self.engine.context_length
        # Tokenising a large prompt takes a while: keep it off the event loop.
        prompt_tokens = await asyncio.to_thread(self.engine.count_chat_tokens, messages)
        room = window - prompt_tokens
        if room < 1:
            raise RequestError(
                400,
                f"The messages are {prompt_tokens} tokens; the model's context is {window}.",
                code="context_length_exceeded",
                param="messages",
            )
        wanted = request.requested_max_tokens
        if wanted is not None and wanted > room:
            raise RequestError(
                400,
                f"max_tokens is {wanted}, but the messages take {prompt_tokens} of the model's "
                f"{window} tokens: at most {room} remain.",
                code="context_length_exceeded",
                param="max_tokens",
            )
        return GenerationParams(
            max_tokens=wanted or min(settings.default_max_tokens, room),
            temperature=(
                settings.default_temperature if request.temperature is None else request.temperature
            ),
            top_p=1.0 if request.top_p is None else request.top_p,
            stop=request.stop_sequences,
            seed=request.seed,
            priority=request_priority(self.request.headers.get(PRIORITY_HEADER, "")),
        )

    async def _complete(self, messages: list[dict[str, str]], params: GenerationParams) -> None:
        assert self._request_id
        try:
            events = self.engine.stream_chat(messages, params, self._request_id)
            text, finish = await collect(events)
        except EngineNotReady:
            return self.send_openai_error(self.not_ready_error())
        except EngineError as exc:
            return self.send_openai_error(RequestError(500, str(exc), type="engine_error"))
        if self._client_gone or finish is None:
            return
        self._log_finish(finish)
        model = self.engine.status.model
        self.finish(
            json.dumps(
                {
                    "id": self._request_id,
                    "object": "chat.completion",
                    "created": now(),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": _openai_reason(finish.reason),
                        }
                    ],
                    "usage": usage(
                        finish.prompt_tokens, finish.completion_tokens, finish.cached_tokens
                    ),
                }
            )
        )

    async def _stream(
        self,
        request: ChatCompletionRequest,
        messages: list[dict[str, str]],
        params: GenerationParams,
    ) -> None:
        assert self._request_id
        request_id, model, created = self._request_id, self.engine.status.model, now()
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # proxies must not hold tokens back
        events = self.engine.stream_chat(messages, params, request_id)
        waiting: asyncio.Task[None] | None = None
        try:
            await self._send(
                chunk(request_id, model, created, {"role": "assistant", "content": ""})
            )
            waiting = asyncio.get_running_loop().create_task(self._tell_waiting(request_id))
            async for event in events:
                if waiting is not None:
                    waiting.cancel()
                    waiting = None
                if isinstance(event, Delta):
                    await self._send(chunk(request_id, model, created, {"content": event.text}))
                    continue
                self._log_finish(event)
                await self._send(
                    chunk(request_id, model, created, {}, _openai_reason(event.reason))
                )
                if request.include_usage:
                    body = chunk(request_id, model, created, {})
                    body["choices"] = []
                    body["usage"] = usage(
                        event.prompt_tokens, event.completion_tokens, event.cached_tokens
                    )
                    await self._send(body)
            await self._send_raw("data: [DONE]\n\n")
        except StreamClosedError:
            self._client_gone = True
            self.log.info("oci: client left during %s; generation cancelled", request_id)
        except EngineError as exc:
            # Headers are sent: report the failure in-band, as OpenAI servers do.
            body = RequestError(500, str(exc), type="engine_error").body
            try:
                await self._send(body)
            except StreamClosedError:
                self._client_gone = True
        finally:
            if waiting is not None:
                waiting.cancel()
            await events.aclose()  # cancels the generation if it is still running
        if not self._client_gone:
            self.finish()

    async def _tell_waiting(self, request_id: str) -> None:
        """While the request waits for the model, say so as server-sent-event comments
        (``: waiting 2``: two requests ahead), which OpenAI clients skip and ``%%oci`` shows."""
        with contextlib.suppress(StreamClosedError):
            async for ahead in self.engine.places(request_id):
                await self._send_raw(f": waiting {ahead}\n\n")

    async def _send(self, body: dict[str, Any]) -> None:
        await self._send_raw(f"data: {json.dumps(body)}\n\n")

    async def _send_raw(self, text: str) -> None:
        if self._client_gone:
            raise StreamClosedError()
        self.write(text)
        await self.flush()

    def on_connection_close(self) -> None:
        self._client_gone = True
        if self._request_id:
            self.engine.cancel(self._request_id)

    def _log_finish(self, finish: Finish) -> None:
        elapsed = time.monotonic() - self._started
        self.log.info(
            "oci: %s %s, %d prompt + %d completion tokens in %.1f s",
            self._request_id,
            finish.reason,
            finish.prompt_tokens,
            finish.completion_tokens,
            elapsed,
        )

    async def prepare(self) -> None:  # type: ignore[override]
        self._started = time.monotonic()
        await super().prepare()


class TokenizeHandler(OCIHandler):
    """``POST /oci/tokenize {"texts": [...]}`` -> token counts with the served model's tokenizer,
    so that a client (the %%oci magic) can fit a prompt into the window exactly."""

    MAX_TEXTS = TOKENIZE_TEXTS
    MAX_CHARACTERS = TOKENIZE_CHARACTERS

    @web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            texts = _parse_texts(self.request.body, self.services.config.max_request_bytes)
            if not self.engine.ready:
                raise self.not_ready_error()
        except RequestError as error:
            return self.send_openai_error(error)
        engine = self.engine
        try:
            counts = await asyncio.get_running_loop().run_in_executor(
                TOKEN_COUNTING, lambda: [engine.count_tokens(t) for t in texts]
            )
        except EngineNotReady:  # released by a restart while it counted
            return self.send_openai_error(self.not_ready_error())
        self.finish(
            json.dumps(
                {
                    "counts": counts,
                    "model": self.engine.status.model,
                    "context_length": self.engine.context_length,
                }
            )
        )


class RestartHandler(OCIHandler):
    """``POST /oci/restart`` -> 202 with the status (``loading``): the model loads again in
    the background, without restarting Jupyter (running requests are cancelled first).
    409 while the model loads (``text``: the error's message as ``{"code", "params"}``).
    Needs the "write" permission on ``oci`` (as every POST here)."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            self.engine.restart()
        except EngineBusy as exc:
            return self.send_openai_error(
                RequestError(
                    409,
                    str(exc),
                    type="engine_busy",
                    code=self.engine.status.state,
                    extra={"status": self.engine.status.to_json(), "text": exc.said.json()},
                )
            )
        self.log.info("oci: restarting the %s engine", self.engine.name)
        self.set_status(202)
        self.finish(json.dumps(self.engine.status.to_json()))


async def collect(events: AsyncIterator[StreamEvent]) -> tuple[str, Finish | None]:
    """A generation's whole text and how it ended (None: it did not), for a reply that is
    not streamed."""
    parts: list[str] = []
    finish: Finish | None = None
    async for event in events:
        if isinstance(event, Delta):
            parts.append(event.text)
        else:
            finish = event
    return "".join(parts), finish


def request_priority(header: str) -> Priority:
    return "interactive" if header.strip().lower() == "interactive" else "background"


def _parse_texts(body: bytes, limit: int) -> list[str]:
    if len(body) > limit:
        raise RequestError(400, f"Request body over {limit:,} bytes.", code="request_too_large")
    try:
        data = json.loads(body or b"null")
    except RecursionError as exc:
        raise RequestError(
            400, "Request body is not valid JSON: nested too deeply.", code="invalid_json"
        ) from exc
    except ValueError as exc:
        raise RequestError(
            400, f"Request body is not valid JSON: {exc}", code="invalid_json"
        ) from exc
    texts = data.get("texts") if isinstance(data, dict) else None
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise RequestError(400, "'texts' must be a list of strings.", param="texts")
    if len(texts) > TokenizeHandler.MAX_TEXTS:
        raise RequestError(400, f"At most {TokenizeHandler.MAX_TEXTS} texts.", param="texts")
    most = TokenizeHandler.MAX_CHARACTERS
    if sum(len(t) for t in texts) > most:
        raise RequestError(
            400,
            f"At most {most:,} characters in all per request; send larger batches in parts.",
            code="too_many_characters",
            param="texts",
        )
    return texts


def _openai_reason(reason: str) -> str:
    return "length" if reason == "length" else "stop"


# Relative to the server's base_url (the ExtensionApp prefixes it).
HANDLERS: list[tuple[str, type[OCIHandler]]] = [
    (r"/oci/status", StatusHandler),
    (r"/oci/v1/models", ModelsHandler),
    (r"/oci/v1/chat/completions", ChatCompletionsHandler),
    (r"/oci/tokenize", TokenizeHandler),
    (r"/oci/restart", RestartHandler),
]
