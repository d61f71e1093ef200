"""Shared fixtures: the real SmolLM2 tokenizer and a tiny random Llama built from a config."""

import pytest
import torch


@pytest.fixture(scope="session")
def tokenizer():
    from tunesmith.models.embedded import load_embedded_tokenizer

    return load_embedded_tokenizer()


@pytest.fixture
def tiny_llama(tokenizer):
    """A 2-layer Llama with hidden size 64 and the SmolLM2 vocabulary, random weights, fp32."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config).eval()
