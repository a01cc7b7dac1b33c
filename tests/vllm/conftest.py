"""Fixtures for the vLLM engine tests: a tiny random-weight Qwen2 model, built on the spot.

vLLM cannot read GGUF files and no model may be downloaded, so the tests build a Hugging Face
model folder themselves: the real Qwen2.5 tokenizer and chat template (read from the bundled
GGUF) on a random-weight Qwen2 with 2 layers and hidden size 64 (~48 MiB of float32
safetensors). Its output is noise, which is all the engine tests need.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

if importlib.util.find_spec("vllm") is not None:
    # Offline, quiet vLLM/transformers, set before either is imported (only where these
    # tests run: elsewhere the module is skipped and the environment is left alone).
    for _name, _value in {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_DO_NOT_TRACK": "1",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }.items():
        os.environ.setdefault(_name, _value)

TINY_CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    # CPU attention needs head_dim in {32, 64, 80, 96, ...}: 64 / 2 heads = 32.
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}


def build_tiny_qwen2(target: Path, gguf: Path, seed: int = 0) -> Path:
    """Write a random-weight Qwen2 model folder with the GGUF's tokenizer into ``target``."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    assert tokenizer.chat_template, "the GGUF's tokenizer has no chat template"
    tokenizer.save_pretrained(target)

    config = Qwen2Config(
        vocab_size=151_936,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TINY_CONFIG,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.float32)
    model.save_pretrained(target, safe_serialization=True)
    return target


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from oci_jupyter.engine.bundled import ensure_default_model

    gguf = ensure_default_model()
    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"), gguf)
