"""Small helpers shared by the server tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jupyter_server.serverapp import ServerApp

from oci_jupyter.app import OCIExtension


def oci_app(serverapp: ServerApp) -> OCIExtension:
    app = serverapp.extension_manager.extension_points["oci_jupyter"].app
    assert isinstance(app, OCIExtension)
    return app


async def wait_for_state(serverapp: ServerApp, *states: str, timeout: float = 300) -> None:
    """Start the engine if the server has not yet, and wait until it is in one of states."""
    engine = oci_app(serverapp).engine
    engine.start()
    async with asyncio.timeout(timeout):
        while engine.status.state not in states:
            await asyncio.sleep(0.05)


def sse_events(raw: str) -> list[Any]:
    """Parse a server-sent-events body into JSON payloads ("[DONE]" kept as a string)."""
    events: list[Any] = []
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        payload = block[len("data: ") :]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events
