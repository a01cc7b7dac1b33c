"""Saved KV states of recent conversations, for llama.cpp on a CPU.

Reading a prompt is the slow part of a request on a CPU (tens to hundreds of tokens per
second), and most prompts start with what an earlier request already read: the same system
prompt, the same notebook, the same conversation so far. llama.cpp keeps the state of one
sequence; this module keeps copies of the states of several recent conversations in RAM, each
with the tokens it holds, so that a request can continue from the saved state whose tokens share
the longest prefix with its prompt and read only the rest.

Why a copy per conversation (``llama_state_seq_get_data``/``..._set_data`` on sequence 0) and
not llama-cpp-python's ``Llama.save_state``/``LlamaRAMCache``: measured on the bundled model
with a 1,500-token prompt, the sequence state is the KV cells only (43 MB, ~28.7 KB per
token), copied out in 20-45 ms and back in 6-15 ms; ``save_state`` also copies the logits
buffer (311 MB at n_batch 512) and took 0.15-1.9 s to save and 0.15-3.4 s to load. Several
sequences inside one llama.cpp context would avoid the copies but share one context window,
and llama-cpp-python's high-level calls clear every sequence past their own position.

The cache is pure bookkeeping (which tokens, how many bytes, least recently used); the
llama.cpp calls that fill and restore a state are :func:`save_sequence` and
:func:`restore_sequence`.
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Tokens = npt.NDArray[np.intc]


def as_tokens(tokens: Sequence[int] | Tokens) -> Tokens:
    return np.asarray(tokens, dtype=np.intc)


def common_prefix(a: Sequence[int] | Tokens, b: Sequence[int] | Tokens) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    x, y = as_tokens(a), as_tokens(b)
    n = min(len(x), len(y))
    if n == 0:
        return 0
    differ = np.flatnonzero(x[:n] != y[:n])
    return int(differ[0]) if differ.size else n


_clock = itertools.count(1)


@dataclass(eq=False)
class Snapshot:
    """One saved state: the KV cells of ``tokens`` (positions 0..len-1 of sequence 0)."""

    tokens: Tokens
    data: Any
    """The state as llama.cpp wrote it (opaque; a ctypes byte array)."""
    nbytes: int
    used: int = field(default_factory=lambda: next(_clock))

    def touch(self) -> None:
        self.used = next(_clock)


@dataclass
class CacheStats:
    hits: int = 0
    """Requests that continued from a saved state (restored, or still live)."""
    misses: int = 0
    """Requests that found no common prefix anywhere and read their whole prompt."""
    restores: int = 0
    saves: int = 0
    evictions: int = 0
    too_big: int = 0
    """States not kept because they alone exceed the budget."""


class PrefixCache:
    """Saved states within ``budget_bytes``, least recently used evicted first.

    A new state *supersedes* the saved states it continues: a state whose tokens, all but the
    last ``slack`` of them (at most an eighth of them), are a prefix of the new one holds
    nothing worth keeping (the next turn of a conversation continues from the newest state;
    the few tokens it differs in are the end of a reply that was cut short or tokenized
    differently).
    """

    def __init__(self, budget_bytes: int, *, slack: int = 64) -> None:
        self.budget_bytes = max(0, int(budget_bytes))
        self.slack = slack
        self._entries: list[Snapshot] = []
        self.stats = CacheStats()

    # ---- queries -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return sum(entry.nbytes for entry in self._entries)

    @property
    def entries(self) -> list[Snapshot]:
        """Most recently used first."""
        return sorted(self._entries, key=lambda entry: entry.used, reverse=True)

    def find(self, tokens: Sequence[int] | Tokens) -> tuple[Snapshot | None, int]:
        """The saved state sharing the longest prefix with ``tokens``, and that length."""
        best: Snapshot | None = None
        best_len = 0
        wanted = as_tokens(tokens)
        for entry in self._entries:
            length = common_prefix(entry.tokens, wanted)
            if length > best_len or (length == best_len and best and entry.used > best.used):
                best, best_len = entry, length
        return (best, best_len) if best_len > 0 else (None, 0)

    def holds(self, tokens: Sequence[int] | Tokens) -> Snapshot | None:
        """A saved state of exactly ``tokens``, if there is one."""
        wanted = as_tokens(tokens)
        for entry in self._entries:
            if len(entry.tokens) == len(wanted) and common_prefix(entry.tokens, wanted) == len(
                wanted
            ):
                return entry
        return None

    def fits(self, nbytes: int) -> bool:
        return 0 < nbytes <= self.budget_bytes

    # ---- changes -----------------------------------------------------------------------------
    def add(self, tokens: Sequence[int] | Tokens, data: Any, nbytes: int) -> Snapshot | None:
        """Keep a state (None if it alone exceeds the budget); evicts to stay within it."""
        if not self.fits(nbytes):
            self.stats.too_big += 1
            return None
        snapshot = Snapshot(as_tokens(tokens).copy(), data, nbytes)
        self._entries = [
            entry for entry in self._entries if not self._superseded(entry, snapshot.tokens)
        ]
        self._entries.append(snapshot)
        self.stats.saves += 1
        self._evict(keep=snapshot)
        return snapshot

    def _superseded(self, entry: Snapshot, tokens: Tokens) -> bool:
        tail = min(self.slack, len(entry.tokens) // 8)
        return common_prefix(entry.tokens, tokens) >= len(entry.tokens) - tail

    def _evict(self, keep: Snapshot) -> None:
        while self.nbytes > self.budget_bytes:
            victims = [entry for entry in self._entries if entry is not keep]
            if not victims:
                return
            oldest = min(victims, key=lambda entry: entry.used)
            self._entries.remove(oldest)
            self.stats.evictions += 1

    def clear(self) -> None:
        self._entries.clear()

    def describe(self) -> dict[str, Any]:
        return {
            "budget_bytes": self.budget_bytes,
            "bytes": self.nbytes,
            "entries": [len(entry.tokens) for entry in self.entries],
            **vars(self.stats),
        }


# ---- llama.cpp -------------------------------------------------------------------------------
def save_sequence(ctx: Any, seq_id: int = 0) -> tuple[Any, int] | None:
    """Copy the KV state of one sequence out of a llama.cpp context (None if it is empty)."""
    import llama_cpp

    size = int(llama_cpp.llama_state_seq_get_size(ctx, seq_id))
    if size <= 0:
        return None
    buffer = (ctypes.c_uint8 * size)()
    written = int(llama_cpp.llama_state_seq_get_data(ctx, buffer, size, seq_id))
    if written <= 0 or written > size:
        return None
    return buffer, written


def restore_sequence(ctx: Any, data: Any, nbytes: int, seq_id: int = 0) -> bool:
    """Write a saved state back into an empty sequence; False if llama.cpp refused it."""
    import llama_cpp

    return int(llama_cpp.llama_state_seq_set_data(ctx, data, nbytes, seq_id)) > 0
