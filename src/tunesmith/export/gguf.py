"""Write a Llama-family model and its tokenizer as one GGUF file (f16 or f32) for llama.cpp-based tools.

Tensor names, metadata keys and the Q/K layout follow llama.cpp's convert_hf_to_gguf.py; transformers undoes
exactly those when it reads a GGUF, so the file loads in llama.cpp and back into transformers alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import torch

from tunesmith.errors import ModelError

GGUF_DTYPES = ("f16", "f32")
ARCH = gguf.MODEL_ARCH.LLAMA

# How llama.cpp names the pre-tokenizers (text splitting before BPE) we can recognise in a tokenizer.json. The
# name decides how llama.cpp splits text, so an unrecognised one is refused rather than guessed.
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRE_TOKENIZERS = {
    "gpt-2": [("ByteLevel", True)],
    "smollm": [("Digits", True), ("ByteLevel", True)],
    "llama-bpe": [("Split", {"Regex": _LLAMA3_SPLIT}), ("ByteLevel", False)],
}
# The one setting of each pre-tokenizer step that changes how text is split.
_STEP_SETTING = {"ByteLevel": "use_regex", "Digits": "individual_digits", "Split": "pattern"}


def write_gguf(model, tokenizer, path: Path, dtype: str = "f16") -> Path:
    """Write a plain (merged) Llama `model` and its `tokenizer` to `path`; 1-D tensors (norms) stay f32."""
    if dtype not in GGUF_DTYPES:
        raise ModelError(f"GGUF dtype '{dtype}' is not supported; choose one of {', '.join(GGUF_DTYPES)}")
    check_gguf_architecture(model.config)
    # The writer keeps what is added in memory until write_header_to_file, so a refusal below leaves no file.
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[ARCH])
    _add_model_metadata(writer, model.config, dtype, Path(path).stem)
    _add_tokenizer(writer, tokenizer, model.get_input_embeddings().num_embeddings)
    _add_tensors(writer, model, dtype)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return Path(path)


def check_gguf_architecture(config) -> None:
    """Refuse, before any weights are loaded, a model this writer cannot describe faithfully."""
    if config.model_type != "llama":
        raise ModelError(
            f"GGUF export supports Llama-family models (model_type 'llama'); this model is '{config.model_type}'. "
            "Export safetensors instead (--merge without --format gguf) and convert that folder with llama.cpp's "
            "convert_hf_to_gguf.py"
        )
    rope_type = _rope(config).get("rope_type", "default")
    if rope_type != "default":
        raise ModelError(
            f"GGUF export does not write '{rope_type}' RoPE scaling yet; export safetensors instead (--merge without "
            "--format gguf) and convert that folder with llama.cpp's convert_hf_to_gguf.py"
        )


def _rope(config) -> dict:
    # transformers 5 keeps rope_theta and the scaling type in rope_parameters; older configs have rope_theta.
    return getattr(config, "rope_parameters", None) or {"rope_theta": getattr(config, "rope_theta", 10000.0)}


def _add_model_metadata(writer: gguf.GGUFWriter, config, dtype: str, name: str) -> None:
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)
    writer.add_vocab_size(config.vocab_size)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.num_key_value_heads or heads)
    writer.add_rope_freq_base(_rope(config)["rope_theta"])
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    if head_dim != config.hidden_size // heads:
        # llama.cpp assumes hidden_size / heads per head unless told otherwise.
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)


def _add_tensors(writer: gguf.GGUFWriter, model, dtype: str) -> None:
    config = model.config
    names = gguf.TensorNameMap(ARCH, config.num_hidden_layers)
    heads = config.num_attention_heads
    kv_heads = config.num_key_value_heads or heads
    # named_parameters lists a tied output head once (as the embedding), which is how llama.cpp expects it.
    for hf_name, param in model.named_parameters():
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ModelError(f"GGUF export: tensor '{hf_name}' has no llama.cpp counterpart in a Llama model")
        data = param.detach().float()
        if ".attn_q." in name:
            data = _permute_for_llama_cpp(data, heads)
        elif ".attn_k." in name:
            data = _permute_for_llama_cpp(data, kv_heads)
        if dtype == "f16" and data.ndim > 1:  # llama.cpp wants norms (1-D) in f32 whatever the file type
            data = data.half()
            if not torch.isfinite(data).all():
                raise ModelError(f"GGUF export: '{hf_name}' has values beyond the f16 range; use --gguf-dtype f32")
        writer.add_tensor(name, data.contiguous().numpy())


def _permute_for_llama_cpp(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Reorder each head's rows from HF's rotary layout (rotate halves) to llama.cpp's (rotate adjacent pairs)."""
    half = weight.shape[0] // heads // 2
    return weight.reshape(heads, 2, half, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _add_tokenizer(writer: gguf.GGUFWriter, tokenizer, vocab_size: int) -> None:
    """Describe a byte-level BPE tokenizer the way llama.cpp reads it ("gpt2" model: tokens, types, merges)."""
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    pre = _pre_tokenizer_name(backend)
    vocab = tokenizer.get_vocab()
    if len(vocab) > vocab_size:
        raise ModelError(f"GGUF export: the tokenizer has {len(vocab)} tokens but the model only {vocab_size} rows")
    by_id = {index: token for token, index in vocab.items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for index in range(vocab_size):
        if index not in by_id:  # embedding rows beyond the vocabulary (padding for alignment)
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(by_id[index])
            if index not in added:
                types.append(gguf.TokenType.NORMAL)
            else:
                types.append(gguf.TokenType.CONTROL if added[index].special else gguf.TokenType.USER_DEFINED)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in backend["model"]["merges"]])

    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if bos is not None:
        writer.add_bos_token_id(bos)
    if eos is not None:
        writer.add_eos_token_id(eos)
    if tokenizer.unk_token_id is not None:
        writer.add_unk_token_id(tokenizer.unk_token_id)
    if tokenizer.pad_token_id is not None:
        writer.add_pad_token_id(tokenizer.pad_token_id)
    # Whether BOS/EOS get added lives in the post-processor; asking the tokenizer is the reliable way to know.
    # Both flags are written so llama.cpp never falls back to its own per-vocabulary default.
    probe = tokenizer("a")["input_ids"]
    writer.add_add_bos_token(bos is not None and probe[0] == bos)
    writer.add_add_eos_token(eos is not None and probe[-1] == eos)
    template = tokenizer.chat_template
    if isinstance(template, dict):  # named templates
        template = [{"name": name, "template": text} for name, text in template.items()]
    if template:
        writer.add_chat_template(template)


def _pre_tokenizer_name(backend: dict) -> str:
    pre = backend.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    signature = [(step.get("type"), step.get(_STEP_SETTING.get(step.get("type")))) for step in steps]
    if backend["model"]["type"] == "BPE":
        for name, known in PRE_TOKENIZERS.items():
            if signature == known:
                return name
    described = " + ".join(str(step.get("type")) for step in steps)
    raise ModelError(
        "GGUF export writes byte-level BPE tokenizers (GPT-2, SmolLM and Llama 3 style); this one is "
        f"{backend['model']['type']} with pre-tokenizer {described}, which llama.cpp would split differently. "
        "Export safetensors instead (--merge without --format gguf) and convert that folder with llama.cpp's "
        "convert_hf_to_gguf.py"
    )
