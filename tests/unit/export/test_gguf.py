"""GGUF export: the file reads back with `gguf`, and transformers loads it to the same logits and token ids."""

import copy
import json

import gguf
import pytest
import torch
from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

from tunesmith.errors import ModelError
from tunesmith.export.gguf import _pre_tokenizer_name, write_gguf

TEXTS = ["How do I boil an egg so the yolk stays soft?", "Whisk 250 g of butter into the roux, then season."]
SAMPLE = "<|im_start|>user\nWhat's 1234 + 56?  Crème brûlée ✓\n\n<|im_end|>"
BLOCK_TENSORS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "attn_norm", "ffn_norm")
REFUSAL_ADVICE = (
    "Export safetensors instead (--merge without --format gguf) and convert that folder with llama.cpp's "
    "convert_hf_to_gguf.py"
)


def logits(model, input_ids):
    with torch.no_grad():
        return model(input_ids=input_ids).logits


@pytest.fixture
def input_ids(tokenizer):
    return torch.tensor([tokenizer(text)["input_ids"][:10] for text in TEXTS])


def test_f32_round_trip(tmp_path, tiny_llama, tokenizer, input_ids):
    path = write_gguf(tiny_llama, tokenizer, tmp_path / "tiny.gguf", "f32")

    reader = gguf.GGUFReader(path)
    tensors = {t.name: (list(reversed(t.shape.tolist())), t.tensor_type) for t in reader.tensors}
    blocks = {f"blk.{i}.{name}.weight" for i in range(2) for name in BLOCK_TENSORS}
    assert set(tensors) == {"token_embd.weight", "output_norm.weight"} | blocks  # tied head: no output.weight
    assert tensors["token_embd.weight"][0] == [len(tokenizer), 64]
    assert tensors["blk.0.attn_q.weight"][0] == [64, 64]
    assert tensors["blk.0.attn_k.weight"][0] == [32, 64]  # 2 kv heads of 16
    assert tensors["blk.1.ffn_down.weight"][0] == [64, 128]
    assert {kind for _, kind in tensors.values()} == {gguf.GGMLQuantizationType.F32}
    fields = reader.fields
    assert {key: fields[key].contents() for key in fields if key.startswith("llama.")} == {
        "llama.vocab_size": len(tokenizer),
        "llama.context_length": 2048,
        "llama.embedding_length": 64,
        "llama.block_count": 2,
        "llama.feed_forward_length": 128,
        "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 2,
        "llama.rope.freq_base": 10000.0,
        "llama.rope.dimension_count": 16,
        "llama.attention.layer_norm_rms_epsilon": pytest.approx(1e-6),
    }
    assert fields["general.architecture"].contents() == "llama"
    assert fields["tokenizer.ggml.model"].contents() == "gpt2"
    assert fields["tokenizer.ggml.pre"].contents() == "gpt-2"
    tokens = fields["tokenizer.ggml.tokens"].contents()
    assert len(tokens) == len(tokenizer) and tokens[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert fields["tokenizer.ggml.token_type"].contents()[:3] == [gguf.TokenType.CONTROL] * 3
    assert fields["tokenizer.ggml.merges"].contents()[0] == "Ġ t"
    special = {key: fields[f"tokenizer.ggml.{key}"].contents() for key in ("bos_token_id", "eos_token_id")}
    assert special == {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    assert fields["tokenizer.ggml.add_bos_token"].contents() is False
    assert fields["tokenizer.chat_template"].contents() == tokenizer.chat_template

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="tiny.gguf").eval()
    torch.testing.assert_close(logits(loaded, input_ids), logits(tiny_llama, input_ids), rtol=0, atol=1e-5)
    reread = AutoTokenizer.from_pretrained(tmp_path, gguf_file="tiny.gguf")
    for text in [*TEXTS, SAMPLE]:
        assert reread(text)["input_ids"] == tokenizer(text)["input_ids"]


def test_f16_round_trip_with_an_untied_head(tmp_path, tiny_llama, tokenizer, input_ids):
    generator = torch.Generator().manual_seed(1)
    head = torch.randn(tiny_llama.lm_head.weight.shape, generator=generator) * 0.02
    tiny_llama.lm_head.weight = torch.nn.Parameter(head)
    tiny_llama.config.tie_word_embeddings = False

    write_gguf(tiny_llama, tokenizer, tmp_path / "tiny.gguf", "f16")

    kinds = {t.name: t.tensor_type for t in gguf.GGUFReader(tmp_path / "tiny.gguf").tensors}
    assert kinds["output.weight"] == kinds["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.F16
    assert kinds["output_norm.weight"] == kinds["blk.0.attn_norm.weight"] == gguf.GGMLQuantizationType.F32
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="tiny.gguf").eval()
    assert loaded.config.tie_word_embeddings is False
    expected = logits(tiny_llama, input_ids)
    # f16 keeps about 3 significant digits per weight; 1% of the logit range allows for that, not for a wrong layout.
    assert (logits(loaded, input_ids) - expected).abs().max() <= 1e-2 * expected.abs().max()


def test_non_llama_models_are_refused(tmp_path, tokenizer):
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=len(tokenizer)))

    with pytest.raises(ModelError) as error:
        write_gguf(model, tokenizer, tmp_path / "gpt2.gguf")

    assert str(error.value) == (
        f"GGUF export supports Llama-family models (model_type 'llama'); this model is 'gpt2'. {REFUSAL_ADVICE}"
    )
    assert not (tmp_path / "gpt2.gguf").exists()


def test_tokenizers_llama_cpp_would_split_differently_are_refused(tmp_path, tiny_llama, tokenizer):
    whitespace = copy.deepcopy(tokenizer)
    whitespace.backend_tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()

    with pytest.raises(ModelError) as error:
        write_gguf(tiny_llama, whitespace, tmp_path / "tiny.gguf")

    assert str(error.value) == (
        "GGUF export writes byte-level BPE tokenizers (GPT-2, SmolLM and Llama 3 style); this one is BPE with "
        f"pre-tokenizer Whitespace, which llama.cpp would split differently. {REFUSAL_ADVICE}"
    )
    assert not (tmp_path / "tiny.gguf").exists()


# As Llama 3's tokenizer.json spells it.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@pytest.mark.parametrize(
    ("pre_tokenizer", "name"),
    [
        (pre_tokenizers.ByteLevel(add_prefix_space=False), "gpt-2"),
        (pre_tokenizers.Sequence([pre_tokenizers.Digits(True), pre_tokenizers.ByteLevel(False)]), "smollm"),
        (
            pre_tokenizers.Sequence(
                [
                    pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
                ]
            ),
            "llama-bpe",
        ),
    ],
)
def test_pre_tokenizers_map_to_llama_cpp_names(pre_tokenizer, name):
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizer

    assert _pre_tokenizer_name(json.loads(backend.to_str())) == name
