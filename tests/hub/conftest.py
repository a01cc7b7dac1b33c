"""Fixtures of the team tests: one shared model server and one hub with two users, for the
whole module (starting a hub and two single-user servers takes seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from .hub import Hub, ModelServer, jupyterhub, model_server

USERS = ["alice", "bob"]


@dataclass
class Team:
    hub: Hub
    model: ModelServer
    tokens: dict[str, str]
    """Each user's own hub API token (what their browser's session stands for)."""


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    root = tmp_path_factory.mktemp("hub")
    with model_server(root / "model") as model, jupyterhub(root / "hub", model, USERS) as hub:
        for user in USERS:
            hub.start_server(user)
        yield Team(hub, model, {user: hub.user_token(user) for user in USERS})
