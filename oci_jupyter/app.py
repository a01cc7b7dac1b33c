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
from .chat_handlers import HANDLERS as CHAT
from .completions.handlers import HANDLERS as COMPLETIONS
from .config import OCI, keep_secrets_from_kernels
from .engine import Engine
from .handlers import HANDLERS, Services

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
        self.chat_store = ChatStore(Path(chats).expanduser(), locate=self._notebook_file)
        # One request per notebook across every tab, window and user of this server.
        self.chat_notebooks = NotebookRequests()
        # A chat belongs to its notebook: it follows renames (of the notebook or a folder
        # above it), from the file browser, the notebook's own rename, or the REST API; it is
        # deleted with it; a new file at its path does not inherit it (docs/design.md).
        self.serverapp.event_logger.add_listener(
            schema_id=CONTENTS_EVENTS, listener=self._on_contents_event
        )
        self.serverapp.contents_manager.register_pre_save_hook(self._before_save)
        try:
            self.engine = self.settings_.create_engine()
        except Exception as exc:  # bad configuration must not take Jupyter down
            self.engine = ConfigurationError(exc)
        # The engine has read its key: kernels, started with a copy of this environment,
        # must not get it (a hub puts the model server's key into every user's server).
        removed = keep_secrets_from_kernels()
        if removed:
            self.log.info(
                "oci_jupyter: %s removed from the kernels' environment", ", ".join(removed)
            )
        self.log.info(
            "oci_jupyter: engine %s, model %s on %s",
            self.engine.name,
            self.engine.status.model,
            self.engine.status.device,
        )

    async def _on_contents_event(
        self, logger: EventLogger, schema_id: str, data: dict[str, Any]
    ) -> None:
        action, source, path = data.get("action"), data.get("source_path"), data.get("path")
        if not path:
            return
        store = self.chat_store
        try:
            if action == "rename" and source:
                await asyncio.to_thread(store.move, source, path)
            elif action == "delete":
                await asyncio.to_thread(store.remove, path)
            elif action == "save":
                await asyncio.to_thread(store.saved, path)
        except OSError as exc:
            self.log.warning(
                "oci_jupyter: the chat of %s did not follow its %s: %s", path, action, exc
            )

    def _notebook_file(self, path: str) -> str | None:
        """The file of a notebook's path, for contents managers that keep files on disk."""
        os_path = getattr(self.serverapp.contents_manager, "_get_os_path", None)
        try:
            return os_path(path) if os_path is not None else None
        except Exception:  # outside the root, or hidden: no file to look at
            return None

    def _before_save(self, model: dict[str, Any], path: str, **kwargs: Any) -> None:
        """Jupyter's pre-save hook: a save that creates a file does not inherit a chat kept
        for its path (the file there before was deleted or moved outside Jupyter)."""
        os_path = self._notebook_file(path)
        if os_path is None:
            return
        try:
            self.chat_store.before_save(
                path,
                exists=os.path.lexists(os_path),
                folder=model.get("type") == "directory",
            )
        except OSError as exc:  # the save itself must go on
            self.log.warning("oci_jupyter: could not check the chat of %s: %s", path, exc)

    def initialize_handlers(self) -> None:
        # The handlers get what they use as typed arguments of their routes, never the
        # extension itself.
        services = Services(
            engine=self.engine,
            config=self.settings_,
            chat_store=self.chat_store,
            chat_notebooks=self.chat_notebooks,
        )
        for path, handler in [*HANDLERS, *COMPLETIONS, *CHAT]:
            self.handlers.append(services.route(path, handler))

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
