"""The chat's endpoints: the websocket ``/oci/chat`` and ``/oci/chat/history``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web, websocket

from .chat import ChatSession
from .handlers import AUTH_RESOURCE, OCIHandler, Services
from .request import LoopDefaults


class ChatWebSocket(
    ExtensionHandlerMixin, WebSocketMixin, JupyterHandler, websocket.WebSocketHandler
):
    """One browser tab's chat. Generated code runs in kernels, so this needs "execute"."""

    auth_resource = AUTH_RESOURCE
    session: ChatSession | None = None
    services: Services

    def initialize(self, name: str, *args: Any, services: Services, **kwargs: Any) -> None:
        self.services = services
        super().initialize(name, *args, **kwargs)

    async def pre_get(self) -> None:
        user = self.current_user
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, user, "execute", AUTH_RESOURCE)
        )
        if not allowed:
            raise web.HTTPError(403)

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await self.pre_get()
        result = super().get(*args, **kwargs)
        if result is not None:
            await result

    def open(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().open(*args, **kwargs)
        services, config = self.services, self.services.config
        self.session = ChatSession(
            services.engine,
            services.chat_store,
            self._send,
            reply_tokens=config.default_max_tokens,
            temperature=config.default_temperature,
            # c.OCI.* are the defaults of what an ask leaves out (its budgets, read_results).
            defaults=LoopDefaults(**config.loop_defaults()),
            notebooks=services.chat_notebooks,
            root_dir=Path(self.serverapp.root_dir).expanduser(),
        )

    async def _send(self, message: dict[str, Any]) -> None:
        await self.write_message(json.dumps(message))

    async def on_message(self, message: str | bytes) -> None:
        if self.session is not None:
            await self.session.receive(message)

    def on_close(self) -> None:
        if self.session is not None:
            # Keep a reference: the loop holds tasks only weakly.
            self._closing = asyncio.ensure_future(self.session.close())


class ChatHistoryHandler(OCIHandler):
    """``GET`` a notebook's chat (what the panel shows after a reload); ``DELETE`` forgets it."""

    def _notebook(self) -> str:
        notebook = self.get_query_argument("notebook", "")
        if not notebook:
            raise web.HTTPError(400, "the 'notebook' query argument is required")
        return notebook

    @web.authenticated
    @authorized
    async def get(self) -> None:
        data = await asyncio.to_thread(self.services.chat_store.load, self._notebook())
        self.finish(json.dumps({"notebook": data["notebook"], "requests": data["requests"]}))

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        await asyncio.to_thread(self.services.chat_store.clear, self._notebook())
        self.set_status(204)
        self.finish()


HANDLERS: list[tuple[str, type]] = [
    (r"/oci/chat", ChatWebSocket),
    (r"/oci/chat/history", ChatHistoryHandler),
]
