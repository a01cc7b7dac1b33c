"""Which request runs in which notebook, across every chat connection of the server: two tabs
(or two users) on one notebook must not drive its kernel at once, and each is told what the
other runs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import protocol
from .protocol import Ask

log = logging.getLogger(__name__)
Post = Callable[[dict[str, Any]], None]
"""Hands a message to one connection without waiting for it to be sent."""


@dataclass(frozen=True)
class _Claim:
    owner: object
    ask: Ask


def notebook_key(path: str) -> str:
    """One notebook, however its path is spelled ("/a.ipynb" is "a.ipynb"), as the store
    keys it."""
    return path.strip("/")


class NotebookRequests:
    """One request at a time per notebook, server-wide. Each connection (its
    :class:`~oci_jupyter.chat.ChatSession`, the ``owner``) subscribes with a :data:`Post` and
    is told whenever a notebook's request starts or ends on another connection."""

    def __init__(self) -> None:
        self._claims: dict[str, _Claim] = {}
        self._subscribers: dict[object, Post] = {}

    def subscribe(self, owner: object, post: Post) -> None:
        """Listen from now on, and hear at once of each notebook whose request runs now."""
        self._subscribers[owner] = post
        for notebook, claim in list(self._claims.items()):
            if claim.owner is not owner:
                post(protocol.notebook(notebook, claim.ask))

    def unsubscribe(self, owner: object) -> None:
        self._subscribers.pop(owner, None)

    def holder(self, notebook: str) -> tuple[object, Ask] | None:
        """Who runs a request in this notebook now, and which one."""
        claim = self._claims.get(notebook_key(notebook))
        return (claim.owner, claim.ask) if claim is not None else None

    def claim(self, notebook: str, owner: object, ask: Ask) -> bool:
        """Take the notebook for this request; False if a request already runs in it."""
        key = notebook_key(notebook)
        if key in self._claims:
            return False
        self._claims[key] = _Claim(owner, ask)
        self._tell_others(owner, protocol.notebook(key, ask))
        return True

    def release(self, notebook: str, owner: object, request_id: str) -> None:
        """The request ended: the notebook is free. Only the request that holds it frees it;
        a second release is a no-op."""
        key = notebook_key(notebook)
        claim = self._claims.get(key)
        if claim is None or claim.owner is not owner or claim.ask.id != request_id:
            return
        del self._claims[key]
        self._tell_others(owner, protocol.notebook(key, None))

    def _tell_others(self, owner: object, message: dict[str, Any]) -> None:
        for subscriber, post in list(self._subscribers.items()):
            if subscriber is owner:
                continue
            try:
                post(message)
            except Exception:  # one broken connection must not keep the others uninformed
                log.exception("oci chat: could not tell a connection about %s", message)
