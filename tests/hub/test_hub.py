"""A team on one model, for real: JupyterHub, two users, one shared model server
(docs/jupyterhub.md). Run with scripts/test-hub.sh."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os

import pytest
from tornado.httpclient import HTTPClientError

from .conftest import Team
from .hub import Kernel, chat

pytestmark = [
    pytest.mark.timeout(300),
    # The main suite collects this folder too: the hub and its proxy come with the script.
    pytest.mark.skipif(
        not os.environ.get("OCI_HUB_PROXY"), reason="needs JupyterHub: run scripts/test-hub.sh"
    ),
]

ENV_PROBE = """\
import hashlib, json, os
# The key's hash, not the key: the code sent (echoed on iopub) must not carry it either.
digest = {digest!r}
def holds(text):
    return any(
        hashlib.sha256(text[i : i + {length}].encode()).hexdigest() == digest
        for i in range(len(text) - {length} + 1)
    )
parent = open(f"/proc/{{os.getppid()}}/environ", "rb").read().decode(errors="replace")
print(json.dumps({{
    "names": sorted(os.environ),
    "value_in_env": any(holds(value) for value in os.environ.values()),
    "value_in_parent_proc_environ": holds(parent),
}}))
"""


def test_both_users_chat_at_once_through_the_proxy(team: Team) -> None:
    hub = team.hub

    async def both() -> list[dict[str, object]]:
        return list(
            await asyncio.gather(
                *(
                    chat(
                        hub, user, team.tokens[user], f"{user}'s question: what is six times seven?"
                    )
                    for user in ("alice", "bob")
                )
            )
        )

    alice, bob = asyncio.run(both())
    for result in (alice, bob):
        done = result["done"]
        assert isinstance(done, dict)
        assert done["status"] == "success", done
        assert done["final_code"].strip() == "print(6 * 7)"
    # Both replies streamed at the same time from the one model server: each one's first
    # token came before the other's last.
    a_times, b_times = alice["token_times"], bob["token_times"]
    assert isinstance(a_times, list)
    assert isinstance(b_times, list)
    assert a_times[0] < b_times[-1]
    assert b_times[0] < a_times[-1]
    prompts = json.dumps(team.model.prompts())
    assert "alice's question" in prompts
    assert "bob's question" in prompts


def test_each_users_history_is_theirs_alone(team: Team) -> None:
    hub, tokens = team.hub, team.tokens
    history = ("oci", "chat", "history")
    own = hub.get("alice", tokens["alice"], *history, params={"notebook": "work.ipynb"})
    assert own.status_code == 200
    assert "alice's question" in own.text
    assert "bob's question" not in own.text
    # Bob's token opens nothing of Alice's server: her history, her status, her chat socket.
    for parts in (history, ("oci", "status"), ("api", "contents")):
        response = hub.get("alice", tokens["bob"], *parts, params={"notebook": "work.ipynb"})
        assert response.status_code in (403, 404), (parts, response.status_code)
        assert "alice's question" not in response.text
    bobs = hub.get("bob", tokens["bob"], *history, params={"notebook": "work.ipynb"})
    assert bobs.status_code == 200
    assert "alice's question" not in bobs.text
    # The chats are files in each user's own home, nowhere else.
    for user, other in (("alice", "bob"), ("bob", "alice")):
        files = [p for p in hub.home(user).rglob("*.json") if "chats" in p.parts]
        texts = "".join(p.read_text(errors="replace") for p in files)
        assert f"{user}'s question" in texts
        assert f"{other}'s question" not in texts


def test_another_users_chat_socket_is_refused(team: Team) -> None:

    with pytest.raises(HTTPClientError) as refused:
        asyncio.run(chat(team.hub, "alice", team.tokens["bob"], "bob tries alice's chat"))
    assert refused.value.code in (403, 404)


def test_the_key_stays_out_of_kernels_and_responses(team: Team) -> None:

    hub, key = team.hub, team.model.key
    kernel = Kernel(hub, "alice", team.tokens["alice"])
    try:
        probe = ENV_PROBE.format(digest=hashlib.sha256(key.encode()).hexdigest(), length=len(key))
        probe = asyncio.run(kernel.run(probe))
        seen = json.loads(probe.strip().splitlines()[-1])
        assert "OCI_OPENAI_API_KEY" not in seen["names"]
        assert not seen["value_in_env"]
        print("the key in /proc/<server pid>/environ:", seen["value_in_parent_proc_environ"])
        # %%oci reaches the model through alice's own server, which adds the key.
        status = asyncio.run(kernel.run("%load_ext oci_jupyter\n%oci status"))
        assert "openai" in status, status
        answer = asyncio.run(kernel.run("%%oci --no-read\nprint six times seven"))
        assert "42" in answer, answer
    finally:
        kernel.shutdown()
    assert "print six times seven" in json.dumps(team.model.prompts())
    for user in ("alice", "bob"):
        status = hub.get(user, team.tokens[user], "oci", "status")
        assert status.status_code == 200
        assert status.json()["engine"] == "openai"
    assert not hub.seen.contains(key)


def test_a_restart_keeps_the_chat(team: Team) -> None:
    hub, token = team.hub, team.tokens["alice"]
    hub.stop_server("alice")
    hub.start_server("alice")
    history = hub.get("alice", token, "oci", "chat", "history", params={"notebook": "work.ipynb"})
    assert history.status_code == 200
    assert "alice's question" in history.text
    assert not hub.seen.contains(team.model.key)
