"""What turns the model's tokens into a reply, apart from the model: prompt-lookup drafts (a
reply that copies its prompt is checked several tokens a step) and the text out (whole UTF-8
characters, cut at a stop string)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .kv_cache import as_tokens

LOOKUP_MAX_PAUSE = 32
"""prompt_lookup "auto": after a draft whose first token the model rejects, no drafts for 2,
4, 8, ... up to this many tokens (a checked batch of 11 tokens costs ~3 single steps on the
CPU); a draft with 2 or more confirmed tokens ends the pause."""


class PromptLookupDrafts:
    """Drafts for prompt-lookup decoding: what followed the first earlier occurrence of the
    text's last 3 tokens, else of its last 2 (llama-cpp-python's LlamaPromptLookupDecoding
    search, without its fallback to a single token: measured, single-token matches draft
    mostly wrong tokens, 27 of 751 confirmed on first replies, and cost more than they save)."""

    def __init__(self, tokens: int, max_ngram: int = 3, min_ngram: int = 2) -> None:
        self.tokens = tokens
        self.max_ngram = max_ngram
        self.min_ngram = min_ngram

    def __call__(self, context: Any, pending: int, room: int) -> list[int]:
        if room <= 0:
            return []
        ids = np.append(as_tokens(context), np.intc(pending))
        n = len(ids)
        for size in range(min(self.max_ngram, n - 1), self.min_ngram - 1, -1):
            windows = np.lib.stride_tricks.sliding_window_view(ids[:-1], size)
            matches = np.flatnonzero(np.all(windows == ids[-size:], axis=1))
            for start in matches:
                follow = start + size
                draft = ids[follow : min(follow + min(self.tokens, room), n)]
                if len(draft):
                    return [int(t) for t in draft]
        return []


class TextOut:
    """Sampled tokens to text deltas: whole UTF-8 characters only, cut at a stop string."""

    def __init__(
        self, piece: Callable[[int], bytes], stops: Sequence[str], emit: Callable[[str], None]
    ) -> None:
        self._piece = piece
        self._stops = [s for s in stops if s]
        self._emit = emit
        self._raw = bytearray()
        self._decoded = 0
        self.text = ""
        self._sent = 0
        self.stopped = False

    def add(self, token: int) -> bool:
        """Take one token; True once a stop string ended the text."""
        self._raw += self._piece(token)
        self._decode_complete()
        return self._flush(final=False)

    def finish(self) -> None:
        self.text += bytes(self._raw[self._decoded :]).decode("utf-8", errors="ignore")
        self._decoded = len(self._raw)
        self._flush(final=True)

    def _decode_complete(self) -> None:
        """Decode the complete characters received so far; an incomplete one waits."""
        while self._decoded < len(self._raw):
            chunk = bytes(self._raw[self._decoded :])
            try:
                self.text += chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.text += chunk[: exc.start].decode("utf-8")
                if exc.reason == "unexpected end of data":
                    self._decoded += exc.start
                    return
                self.text += "\ufffd"
                self._decoded += exc.end
                continue
            self._decoded = len(self._raw)

    def _flush(self, *, final: bool) -> bool:
        cut = min((i for i in (self.text.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.text = self.text[:cut]
            self.stopped = True
            final = True
        hold = 0 if final else partial_stop(self.text, self._stops)
        upto = max(self._sent, len(self.text) - hold)
        if upto > self._sent:
            self._emit(self.text[self._sent : upto])
            self._sent = upto
        return self.stopped


def partial_stop(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that could begin a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest
