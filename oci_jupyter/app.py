"""The Jupyter server extension: configuration, endpoints and the engine's lifecycle."""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp

from .chat import ChatStore
from .config import OCI
from .engine import Engine


class OCIExtension(ExtensionApp):
    """Hosts one model for the notebook's chat, the %%oci magic and any OpenAI client."""

    name = "oci_jupyter"
    # The extension has no page of its own; JupyterLab serves the UI.
    load_other_extensions = True

    engine: Engine
    settings_: OCI
    chat_store: ChatStore

    def initialize_settings(self) -> None:
        self.settings_ = OCI(parent=self)
        chats = self.settings_.chat_dir or os.path.join(jupyter_data_dir(), "oci_jupyter", "chats")
        self.chat_store = ChatStore(Path(chats).expanduser())
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
