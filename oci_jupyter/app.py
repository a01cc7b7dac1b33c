"""The Jupyter server extension: configuration, endpoints and the engine's lifecycle."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_events import EventLogger
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.services.contents.manager import ContentsManager

from .chat import ChatStore, NotebookRequests
from .config import OCI
from .engine import Engine

CONTENTS_EVENTS = ContentsManager.event_schema_id


class OCIExtension(ExtensionApp):
    """Hosts one model for the notebook's chat, the %%oci magic and any OpenAI client."""

    name = "oci_jupyter"
    # The extension has no page of its own; JupyterLab serves the UI.
    load_other_extensions = True

    engine: Engine
    settings_: OCI
    chat_store: ChatStore
    chat_notebooks: NotebookRequests

    def initialize_settings(self) -> None:
        self.settings_ = OCI(parent=self)
        chats = self.settings_.chat_dir or os.path.join(jupyter_data_dir(), "oci_jupyter", "chats")
        self.chat_store = ChatStore(Path(chats).expanduser())
        # One request per notebook across every tab, window and user of this server.
        self.chat_notebooks = NotebookRequests()
        # A chat belongs to its notebook: it follows renames (of the notebook or a folder
        # above it), from the file browser, the notebook's own rename, or the REST API.
        self.serverapp.event_logger.add_listener(
            schema_id=CONTENTS_EVENTS, listener=self._on_contents_event
        )
        try:
            self.engine = self.settings_.create_engine()
        except Exception as exc:  # bad configuration must not take Jupyter down
            self.engine = ConfigurationError(exc)
        self.log.info(
            "oci_jupyter: engine %s, model %s on %s",
            self.engine.name,
            self.engine.status.model,
            self.engine.status.device,
        )

    async def _on_contents_event(
        self, logger: EventLogger, schema_id: str, data: dict[str, Any]
    ) -> None:
        source, path = data.get("source_path"), data.get("path")
        if data.get("action") != "rename" or not source or not path:
            return
        try:
            await asyncio.to_thread(self.chat_store.move, source, path)
        except OSError as exc:
            self.log.warning("oci_jupyter: the chat of %s did not follow it: %s", source, exc)

    def initialize_handlers(self) -> None:
        from .chat_handlers import ChatHistoryHandler, ChatWebSocket
        from .handlers import HANDLERS

        self.handlers.extend(HANDLERS)
        self.handlers.extend(
            [(r"/oci/chat", ChatWebSocket), (r"/oci/chat/history", ChatHistoryHandler)]
        )

    async def _start_jupyter_server_extension(self, serverapp: object) -> None:
        # The loop is running now: load the model in the background, Jupyter starts at once.
        self.engine.start()

    async def stop_extension(self) -> None:
        await self.engine.shutdown()


class ConfigurationError(Engine):
    """Stands in when the configured engine cannot even be constructed: reports why."""

    name = "unconfigured"

    def __init__(self, error: Exception) -> None:
        super().__init__(model="(none)", device="(none)")
        self._error = error

    async def _load(self) -> None:
        raise self._error

    def _generate(self, *args: object, **kwargs: object):  # type: ignore[override]
        raise RuntimeError("unreachable: the engine never becomes ready")

    def count_tokens(self, text: str) -> int:
        return 0

    def count_chat_tokens(self, messages: object) -> int:  # type: ignore[override]
        return 0

    @property
    def context_length(self) -> int:
        return 0
