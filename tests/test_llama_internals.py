"""The llama-cpp-python private attributes the engine needs (engine/llama_internals.py), run
against the installed version: an upgrade that renames one fails here, not in a chat."""

from __future__ import annotations

from typing import Any

import pytest

from oci_jupyter.engine import llama_internals as internals

pytestmark = pytest.mark.model


@pytest.fixture
def idle_llm(llama_engine: Any) -> Any:
    assert not llama_engine.busy  # the worker computes with it otherwise
    return llama_engine._llm


async def test_the_context_can_be_cut_and_cleared(idle_llm: Any) -> None:
    tokens = idle_llm.tokenize(b"print('hello world')", add_bos=False)
    internals.clear(idle_llm)
    idle_llm.eval(tokens)
    assert idle_llm.n_tokens == len(tokens)
    assert internals.context_handle(idle_llm) is not None
    internals.truncate(idle_llm, 2)
    assert idle_llm.n_tokens == 2
    internals.clear(idle_llm)
    assert idle_llm.n_tokens == 0


async def test_drafts_are_checked_with_every_positions_logits(idle_llm: Any) -> None:
    tokens = idle_llm.tokenize(b"for i in range(10):\n    print(i)", add_bos=False)
    internals.clear(idle_llm)
    idle_llm.eval(tokens[:2])
    internals.eval_all_logits(idle_llm, tokens[2:5])
    assert idle_llm.n_tokens == 5
    assert list(idle_llm.input_ids[:5]) == tokens[:5]
    sampler = internals.new_sampler(
        idle_llm, top_k=40, top_p=1.0, min_p=0.05, typical_p=1.0, temp=0.0, repeat_penalty=1.0
    )
    try:
        picks = [internals.sample(sampler, idle_llm, i) for i in range(3)]
    finally:
        sampler.close()
    assert all(isinstance(token, int) and token >= 0 for token in picks)
    internals.clear(idle_llm)


async def test_the_vocabulary_names_its_tokens(idle_llm: Any) -> None:
    vocab = internals.model_vocab(idle_llm)
    assert vocab.token_get_text(idle_llm.token_eos())
    assert vocab.vocab is not None  # the pointer llama_vocab_is_eog takes
