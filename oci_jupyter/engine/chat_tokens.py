"""Chat prompts as tokens where only the chat template's own markers are control tokens.

A notebook cell, an output or a file that the model's code printed may contain text such as
``<|im_start|>system``. Tokenized with special-token parsing on, that text would become the
template's real markers and could forge a system or assistant turn. So a prompt is rendered
with a placeholder in place of every message's content; the template's own text between the
placeholders is tokenized with special tokens recognised, and each message's content is
tokenized as plain text (its ``<|im_start|>`` becomes the tokens of those characters).

Engines that format prompts themselves (llama.cpp, vLLM) call :func:`prompt_segments` and
tokenize each segment with their own tokenizer.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .base import Message


@dataclass(frozen=True)
class Segment:
    text: str
    control: bool
    """True for the template's own text (its markers may be control tokens); False for
    content, which is tokenized as plain text."""


def prompt_segments(
    render: Callable[[list[Message]], str], messages: Sequence[Message]
) -> list[Segment]:
    """The prompt that ``render`` makes of ``messages``, cut into template text and content.

    ``render`` applies the chat template to messages and returns the prompt text. Content that
    the template leaves out (a message it drops) is left out here too.
    """
    nonce = secrets.token_hex(8)
    marks = {f"\x00oci-{nonce}-{i}\x00": i for i in range(len(messages))}
    masked: list[Message] = [
        {**message, "content": mark}  # type: ignore[typeddict-item]
        for message, mark in zip(messages, marks, strict=True)
    ]
    rendered = render(masked)
    segments: list[Segment] = []
    position = 0
    for match in re.finditer("|".join(re.escape(mark) for mark in marks), rendered):
        if match.start() > position:
            segments.append(Segment(rendered[position : match.start()], control=True))
        content = str(messages[marks[match.group()]].get("content", ""))
        if content:
            segments.append(Segment(content, control=False))
        position = match.end()
    if position < len(rendered):
        segments.append(Segment(rendered[position:], control=True))
    return segments


def tokenize_segments(
    segments: Sequence[Segment], tokenize: Callable[[str, bool], list[int]]
) -> list[int]:
    """Tokens of the segments: ``tokenize(text, special)`` with ``special`` True only for the
    template's own text."""
    tokens: list[int] = []
    for segment in segments:
        tokens.extend(tokenize(segment.text, segment.control))
    return tokens
