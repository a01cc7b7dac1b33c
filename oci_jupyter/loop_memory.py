"""What one request leaves for the next: the conversation, roles alternating and bounded.

Written apart from :mod:`oci_jupyter.loop` (which re-exports both) because it is about the
memory between requests, not the rules within one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .types import Message


def alternate(messages: Iterable[Message]) -> list[Message]:
    """The conversation with roles strictly alternating, starting with the user: consecutive
    messages of one role are joined, a leading reply of the model is dropped, system
    messages are left out (every request brings its own)."""
    result: list[Message] = []
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "system":
            continue
        if not result and role != "user":
            continue
        if result and result[-1]["role"] == role:
            result[-1] = {"role": role, "content": f"{result[-1]['content']}\n\n{content}"}
        else:
            result.append({"role": role, "content": content})
    return result


def bounded(messages: Sequence[Message], max_chars: int) -> list[Message]:
    """The newest messages whose text fits ``max_chars``, starting with a user turn, so that
    a remembered conversation cannot grow past what any prompt could hold."""
    kept: list[Message] = []
    total = 0
    for message in reversed(messages):
        total += len(message["content"])
        if total > max_chars:
            break
        kept.insert(0, message)
    return alternate(kept)
