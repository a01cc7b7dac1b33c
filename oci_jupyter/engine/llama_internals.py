"""Every use of llama-cpp-python's private attributes, in one place.

The engine drives llama.cpp itself (engine/llamacpp.py explains why), and the public ``Llama``
API lacks what that needs. Each function says which attribute it reads and why there is no
public way. They hold for llama-cpp-python 0.3.16 to 0.3.36 (``pyproject.toml`` pins
``<0.4``); ``tests/test_llama_internals.py`` runs each against the installed version, so an
upgrade that renames one fails there, not in a user's chat.
"""

from __future__ import annotations

from typing import Any


def context_handle(llm: Any) -> Any:
    """The raw ``llama_context`` (``Llama._ctx.ctx``): llama.cpp's C functions for the abort
    callback, the thread counts and a sequence's saved state take it; ``Llama`` wraps none of
    them."""
    return llm._ctx.ctx


def truncate(llm: Any, keep: int) -> None:
    """Drop the KV cells from position ``keep`` on and say the context holds ``keep`` tokens
    (``Llama._ctx.kv_cache_seq_rm``): ``Llama.reset`` drops everything, and reusing a prefix
    needs the rest kept."""
    llm._ctx.kv_cache_seq_rm(0, keep, -1)
    llm.n_tokens = keep


def clear(llm: Any) -> None:
    """Drop every KV cell (before a saved state is restored into the context)."""
    llm._ctx.kv_cache_seq_rm(0, -1, -1)
    llm.n_tokens = 0


def model_vocab(llm: Any) -> Any:
    """The model wrapper (``Llama._model``): token texts for the chat template's bos/eos and
    the vocabulary pointer for ``llama_vocab_is_eog``, which ``Llama`` does not expose."""
    return llm._model


def new_sampler(llm: Any, **settings: Any) -> Any:
    """A sampler chain (``Llama._init_sampler``): ``Llama.sample`` builds one per token, and
    decoding with drafts samples at chosen batch positions."""
    return llm._init_sampler(**settings)


def sample(sampler: Any, llm: Any, index: int) -> int:
    """The token sampled from the logits at batch position ``index`` (-1: the last)."""
    return int(sampler.sample(llm._ctx, index))


def eval_all_logits(llm: Any, tokens: list[int]) -> None:
    """Read ``tokens`` keeping the logits of every position (``Llama._batch``,
    ``Llama._ctx.decode``): checking a draft needs them, and ``Llama.eval`` keeps only the
    last unless the model was opened with ``logits_all`` for every request."""
    base = int(llm.n_tokens)
    llm._ctx.kv_cache_seq_rm(0, base, -1)
    llm._batch.set_batch(batch=tokens, n_past=base, logits_all=True)
    llm._ctx.decode(llm._batch)
    llm.input_ids[base : base + len(tokens)] = tokens
    llm.n_tokens = base + len(tokens)
