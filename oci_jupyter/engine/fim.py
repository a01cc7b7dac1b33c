"""Fill-in-the-middle prompts: the model's own FIM markers around the user's code.

Code models trained for infilling read ``<marker>prefix<marker>suffix<marker>`` and write the
middle (Qwen2.5-Coder's ``<|fim_prefix|>``, ``<|fim_suffix|>``, ``<|fim_middle|>``;
DeepSeek-Coder's fim begin, hole and end markers (with full-width bars); StarCoder's
``<fim_prefix>``...). Which markers a model has is read from its vocabulary: a marker is a
model's own when it tokenizes to one control token.

Content is data, as for chat prompts (:mod:`.chat_tokens`): the markers are the only control
tokens; the prefix and the suffix are tokenized as plain text, so a cell holding
``<|fim_middle|>`` or ``<|im_start|>`` is read as those characters and cannot steer the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .base import EngineError
from .chat_tokens import Segment


@dataclass(frozen=True)
class FimPrompt:
    """What to fill in: the text before the hole and after it.

    ``suffix`` None asks for a plain continuation of ``prefix`` (the OpenAI completions API
    without ``suffix``); a string, even empty, asks for the middle.
    """

    prefix: str
    suffix: str | None = ""


@dataclass(frozen=True)
class FimFormat:
    """A model family's infilling markers, in prefix-suffix-middle order."""

    name: str
    prefix: str
    suffix: str
    middle: str
    ends: tuple[str, ...] = ()
    """Control tokens that end a middle besides the model's end of text (llama.cpp stops at
    every end-of-generation token; vLLM is given these as stop tokens)."""
    begin: str = ""
    """Text before the first marker (DeepSeek-Coder's begin-of-sentence token)."""

    @property
    def markers(self) -> tuple[str, str, str]:
        return (self.prefix, self.suffix, self.middle)

    def segments(self, prefix: str, suffix: str) -> list[Segment]:
        """The infilling prompt as control text (the markers) and plain text (the code)."""
        return self.parts(prefix, suffix)[0]

    def parts(self, prefix: str, suffix: str) -> tuple[list[Segment], int]:
        """:meth:`segments`, and how many of them run up to the end of the prefix: what the
        next keystroke's prompt begins with too (all but its last tokens, see
        :data:`KEEP_MARGIN`), so a keystroke's request may read it for the next one."""
        head: list[Segment] = []
        if self.begin:
            head.append(Segment(self.begin, control=True))
        head.append(Segment(self.prefix, control=True))
        head += _text(prefix)
        rest = [Segment(self.suffix, control=True), *_text(suffix)]
        rest.append(Segment(self.middle, control=True))
        return head + rest, len(head)

    @property
    def stop_texts(self) -> tuple[str, ...]:
        """Strings that end a middle if the engine renders a control token as text."""
        return (*self.markers, *self.ends)


QWEN = FimFormat(
    "qwen",
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    ends=("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|im_end|>"),
)
_BAR = "\uff5c"  # DeepSeek's markers use the full-width vertical bar and U+2581 for spaces
DEEPSEEK = FimFormat(
    "deepseek",
    f"<{_BAR}fim\u2581begin{_BAR}>",
    f"<{_BAR}fim\u2581hole{_BAR}>",
    f"<{_BAR}fim\u2581end{_BAR}>",
    ends=(f"<{_BAR}end\u2581of\u2581sentence{_BAR}>", "<|EOT|>"),
    begin=f"<{_BAR}begin\u2581of\u2581sentence{_BAR}>",
)
STARCODER = FimFormat(
    "starcoder",
    "<fim_prefix>",
    "<fim_suffix>",
    "<fim_middle>",
    ends=("<|endoftext|>", "<file_sep>"),
)
FORMATS: tuple[FimFormat, ...] = (QWEN, DEEPSEEK, STARCODER)
"""Known formats, tried in this order."""


class NoFimFormat(EngineError):
    """The model has no infilling markers this project knows."""


def detect_format(is_control: Callable[[str], bool]) -> FimFormat | None:
    """The first known format whose three markers (and its begin text) are all single control
    tokens of this model, per ``is_control(text)``; None if none is."""
    for fim in FORMATS:
        needed = [*fim.markers, *([fim.begin] if fim.begin else [])]
        if all(is_control(marker) for marker in needed):
            return fim
    return None


def prompt_segments(fim: FimFormat | None, prompt: FimPrompt) -> list[Segment]:
    """The segments to tokenize for ``prompt``: the model's infilling prompt, or, without a
    suffix, the prefix alone to continue (raises :class:`NoFimFormat` when a suffix is given
    to a model without infilling markers)."""
    return prompt_parts(fim, prompt)[0]


def prompt_parts(fim: FimFormat | None, prompt: FimPrompt) -> tuple[list[Segment], int]:
    """:func:`prompt_segments`, and how many of them run up to the end of the prefix (see
    :meth:`FimFormat.parts`; 0 for a continuation)."""
    if prompt.suffix is None:
        return _text(prompt.prefix), 0
    if fim is None:
        raise NoFimFormat(
            "the model has no fill-in-the-middle markers this server knows "
            f"({', '.join(f.name for f in FORMATS)}); send the prompt without a suffix"
        )
    return fim.parts(prompt.prefix, prompt.suffix)


KEEP_MARGIN = 2
"""Tokens at the end of a prefix that the next keystroke may tokenize differently (a
character typed on merges with the word before it)."""
CONTINUE_SLACK = 8
"""Characters at the end of a prefix the next keystroke may change and still continue it
(a typo taken back with Backspace)."""


def continues(earlier: str, later: str) -> bool:
    """Whether the prefix ``later`` continues ``earlier`` (typing on, or taking back the
    last few characters): then the earlier request's prompt, but its last tokens, is the
    beginning of the later one's."""
    shared = 0
    for a, b in zip(earlier, later, strict=False):
        if a != b:
            break
        shared += 1
    return shared >= len(earlier) - CONTINUE_SLACK


def chunk_bounds(start: int, end: int, size: int, split: int = 0) -> list[tuple[int, int]]:
    """``[start, end)`` in chunks of at most ``size`` tokens, one of them ending at
    ``split`` when it falls inside (what a superseded request reads ends on a chunk's end)."""
    bounds: list[tuple[int, int]] = []
    position = start
    while position < end:
        stop = min(end, position + size)
        if position < split < stop:
            stop = split
        bounds.append((position, stop))
        position = stop
    return bounds


def _text(text: str) -> list[Segment]:
    return [Segment(text, control=False)] if text else []
