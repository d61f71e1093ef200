"""The model catalogue: models found in folders, TUNESMITH_MODELS, a config and a Hugging Face cache layout, described
from their files (parameters, context, licence, chat template), each method's memory by the plan's own arithmetic,
and the ranking for a config's data."""

import json
import math
import os

import numpy as np
import pytest
import torch

from tunesmith.config.load import build_config
from tunesmith.data.formats import load_examples
from tunesmith.data.tokenize import encode_example
from tunesmith.methods import memory, registry
from tunesmith.methods.apply import apply_method
from tunesmith.models.catalogue import (
    EMBEDDED_LICENCE, describe, find_models, hub_models, meta_model_of, models_in, parameters_of,
)
from tunesmith.models.load import ModelSource, load_model_for_method
from tunesmith.models.method_fit import method_fits
from tunesmith.models.ranking import ESTIMATE, TOKENIZER, longest_example, survey

CHAT_TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"


def save_tiny(folder, tokenizer=None, context=256, layers=2, licence=None, chat=True):
    """A tiny Llama folder: config.json + model.safetensors (+ the SmolLM2 tokenizer, + a model card)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=tokenizer.vocab_size if tokenizer else 96, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=context, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
        settings = json.loads((folder / "tokenizer_config.json").read_text())
        settings["chat_template"] = CHAT_TEMPLATE if chat else None
        (folder / "tokenizer_config.json").write_text(json.dumps(settings))
        (folder / "chat_template.jinja").unlink(missing_ok=True)
    if licence:
        (folder / "README.md").write_text(f"---\nlicense: {licence}\nlanguage: en\n---\n# A tiny model\n")
    return folder


def hub_snapshot(cache, repo_id, make):
    """The Hugging Face cache layout: models--org--name/{refs/main, snapshots/<commit>/...}."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    make(snapshot)
    return snapshot


def write_tiny_gguf(path, context=512):
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(context)
    writer.add_block_count(1)
    writer.add_embedding_length(16)
    writer.add_feed_forward_length(32)
    writer.add_head_count(2)
    writer.add_head_count_kv(1)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(8)
    writer.add_license("mit")
    writer.add_chat_template(CHAT_TEMPLATE)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"t{i}" for i in range(8)])
    writer.add_token_merges([])
    shapes = {"token_embd.weight": (8, 16), "blk.0.attn_q.weight": (16, 16), "blk.0.attn_k.weight": (8, 16),
              "blk.0.attn_v.weight": (8, 16), "blk.0.attn_output.weight": (16, 16), "blk.0.ffn_gate.weight": (32, 16),
              "blk.0.ffn_up.weight": (32, 16), "blk.0.ffn_down.weight": (16, 32), "blk.0.attn_norm.weight": (16,),
              "blk.0.ffn_norm.weight": (16,), "output_norm.weight": (16,)}
    for name, shape in shapes.items():
        writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path, sum(math.prod(shape) for shape in shapes.values())


def test_a_folder_is_described_from_its_files(tmp_path, tokenizer):
    from transformers import AutoModelForCausalLM

    folder = save_tiny(tmp_path / "tiny", tokenizer, context=777, licence="mit")
    info = describe(folder, str(folder), "config")
    loaded = AutoModelForCausalLM.from_pretrained(folder)
    assert info.parameters == loaded.num_parameters()
    assert (info.context, info.licence, info.chat_template, info.architecture) == (
        777, "mit", True, "LlamaForCausalLM")
    (folder / "README.md").unlink()
    bare = describe(save_tiny(tmp_path / "bare", context=64), "bare", "config")
    assert (bare.licence, bare.chat_template) == ("unknown", False)


def test_parameters_without_weights_come_from_the_architecture(tmp_path):
    folder = save_tiny(tmp_path / "tiny")
    stored = parameters_of(folder)
    (folder / "model.safetensors").unlink()  # e.g. only config.json downloaded
    assert parameters_of(folder) == stored
    (folder / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    assert parameters_of(folder) is None


def test_places_hold_models_or_folders_of_models(tmp_path):
    shelf = tmp_path / "shelf"
    one, two = save_tiny(shelf / "one"), save_tiny(shelf / "two")
    (shelf / "notes").mkdir()
    (shelf / "diffusion").mkdir()
    (shelf / "diffusion" / "config.json").write_text("{}")
    (shelf / "diffusion" / "model_index.json").write_text("{}")  # a diffusers pipeline, not a language model
    gguf_file, _ = write_tiny_gguf(shelf / "small.gguf")
    assert models_in(shelf) == [one, gguf_file, two]
    assert models_in(one) == [one] and models_in(gguf_file) == [gguf_file] and models_in(shelf / "notes") == []


def test_a_gguf_file_is_described_from_its_metadata(tmp_path):
    path, parameters = write_tiny_gguf(tmp_path / "small.gguf", context=320)
    info = describe(path, str(path), "TUNESMITH_MODELS")
    assert (info.architecture, info.parameters, info.context, info.licence, info.chat_template) == (
        "llama", parameters, 320, "mit", True)
    assert info.gguf == path


def test_the_hub_cache_layout_is_read_from_disk(tmp_path):
    cache = tmp_path / "hub"
    hub_snapshot(cache, "acme/tiny-chat", lambda snapshot: save_tiny(snapshot, licence="apache-2.0"))
    hub_snapshot(cache, "acme/tiny-GGUF", lambda snapshot: write_tiny_gguf(snapshot / "tiny.Q8_0.gguf"))
    found = dict(hub_models(cache))
    gguf_name = next(name for name in found if name.endswith(".gguf"))  # a repo of GGUF files: named by file path
    assert set(found) == {"acme/tiny-chat", gguf_name}
    assert found["acme/tiny-chat"].name == "0123abcd" and found[gguf_name].name == "tiny.Q8_0.gguf"
    assert gguf_name == str(found[gguf_name])
    assert hub_models(tmp_path / "no-cache") == []


def test_find_models_lists_each_model_once_from_every_place(tmp_path, tokenizer):
    cache = tmp_path / "hub"
    hub_snapshot(cache, "acme/tiny-chat", lambda snapshot: save_tiny(snapshot, tokenizer, licence="apache-2.0"))
    mine = save_tiny(tmp_path / "mine", licence="mit")
    shelf = tmp_path / "shelf"
    save_tiny(shelf / "a")
    found = find_models(config_models=(str(mine), "acme/tiny-chat", "acme/missing"),
                        places=os.pathsep.join([str(shelf), str(mine), str(tmp_path / "nothing-here")]),
                        hub_cache=cache)
    places = {info.name: info.found_in for info in found.models}
    assert places[str(mine)] == "config"  # also in TUNESMITH_MODELS: listed once, where first named
    assert places[str(shelf / "a")] == "TUNESMITH_MODELS" and places["acme/tiny-chat"] == "hf-cache"
    assert len(found.models) == len({info.path.resolve() for info in found.models})
    assert any("'acme/missing' is not on this machine" in note for note in found.notes)
    assert any(str(tmp_path / "nothing-here") in note for note in found.notes)
    embedded = [info for info in found.models if info.found_in == "embedded"]
    assert [info.licence for info in embedded] in ([], [EMBEDDED_LICENCE])


def test_an_unreadable_model_is_named_and_the_others_listed(tmp_path):
    shelf = tmp_path / "shelf"
    save_tiny(shelf / "good")
    broken = save_tiny(shelf / "broken")
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    found = find_models(places=str(shelf), hub_cache=tmp_path / "no-hub")
    assert [info.path for info in found.models if info.found_in != "embedded"] == [shelf / "good"]
    assert any(note.startswith(f"{broken}: not readable as a model") for note in found.notes)


@pytest.mark.slow  # reads the whole shipped GGUF's metadata (its 49k-token vocabulary): seconds
def test_the_embedded_licence_is_the_one_its_gguf_names():
    from tunesmith.models.catalogue import describe_gguf
    from tunesmith.models.embedded import embedded_gguf_path

    assert describe_gguf(embedded_gguf_path(), "smollm2", "embedded").licence == EMBEDDED_LICENCE


# --- memory per method ----------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_folder(tmp_path, tokenizer):
    return save_tiny(tmp_path / "tiny", tokenizer)


@pytest.mark.parametrize("options", [{"name": "full"}, {"name": "freeze"}, {"name": "lora", "r": 4},
                                     {"name": "qlora", "r": 4}, {"name": "qlora", "bits": 8}, {"name": "ia3"},
                                     {"name": "prompt_tuning"}, {"name": "prefix_tuning"}, {"name": "p_tuning"}])
def test_meta_arithmetic_equals_the_plan_on_the_loaded_model(options, tiny_folder):
    """What the listing says a method needs is what a run's plan line would say after loading the weights: also for
    qlora, whose base bitsandbytes quantises while loading (on this CPU)."""
    from pydantic import TypeAdapter

    from tunesmith.config.schema import MethodConfig

    method = TypeAdapter(MethodConfig).validate_python(options)
    real = apply_method(load_model_for_method(ModelSource(str(tiny_folder), tiny_folder), method), method,
                        tokenizer_path=tiny_folder)
    listed = method_fits(meta_model_of(tiny_folder), torch.device("cpu"), {method.name: method}, tiny_folder)
    assert listed[method.name].need == memory.estimate(real)


def test_fits_follow_the_devices_memory(tiny_folder, monkeypatch):
    base = meta_model_of(tiny_folder)
    needs = {name: fit.need.total for name, fit in method_fits(base, torch.device("cpu")).items()}
    assert set(needs) == set(registry.names("llm"))
    assert needs["qlora"] < needs["lora"] < needs["full"]
    monkeypatch.setattr(memory, "device_memory", lambda device: (needs["lora"] + needs["full"]) // 2)
    fits = method_fits(base, torch.device("cpu"))
    assert fits["lora"].fits and fits["qlora"].fits and not fits["full"].fits
    assert "full needs ~" in fits["full"].reason and "try method.name: lora" in fits["full"].reason


def test_an_architecture_transformers_does_not_know_is_listed_without_methods(tmp_path):
    folder = save_tiny(tmp_path / "odd")
    stored = parameters_of(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "no-such-architecture", "n_positions": 128}))
    found = find_models(places=str(folder), hub_cache=tmp_path / "no-hub")
    found.models = [info for info in found.models if info.found_in != "embedded"]
    [candidate] = survey(found, torch.device("cpu"))
    assert (candidate.info.parameters, candidate.info.context, candidate.fits) == (stored, 128, {})
    assert candidate.unusable.startswith("its architecture cannot be built here")


# --- context for a config's data, and the ranking ---------------------------------------------------------------


def chat_file(path, answers):
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": "How do I cook rice?"},
                                                     {"role": "assistant", "content": answer}]}) + "\n"
                            for answer in answers))
    return path


def test_longest_example_with_the_models_tokenizer_or_a_word_estimate(tmp_path, tokenizer):
    data = chat_file(tmp_path / "train.jsonl", ["Simmer it.", "Rinse, then simmer it for eighteen minutes, covered."])
    examples, _ = load_examples(data)
    folder = save_tiny(tmp_path / "with-tokenizer", tokenizer)
    tokens, how = longest_example(describe(folder, "t", "config"), examples)
    reference = tokenizer.__class__.from_pretrained(folder)
    assert how == TOKENIZER
    assert tokens == max(len(encode_example(e, reference, 10_000, "all")["input_ids"]) for e in examples)
    # Without a tokenizer: 5 + 8 words -> ceil(1.3 x 13) = 17, plus 8 for each of the two turns.
    tokens, how = longest_example(describe(save_tiny(tmp_path / "bare"), "b", "config"), examples)
    assert (tokens, how) == (17 + 16, ESTIMATE)


def test_ranking_puts_models_whose_context_holds_the_data_first(tmp_path, tokenizer, monkeypatch):
    long_answer = " ".join(["simmer"] * 120)
    data = chat_file(tmp_path / "train.jsonl", ["Simmer it.", long_answer])
    config = build_config({"model": "smollm2-135m-instruct", "data": {"train": str(data)},
                           "method": {"name": "lora", "r": 4}})
    examples, _ = load_examples(data)
    short = save_tiny(tmp_path / "short", tokenizer, context=64, layers=2)
    roomy_small = save_tiny(tmp_path / "roomy-small", tokenizer, context=4096, layers=1)
    roomy_big = save_tiny(tmp_path / "roomy-big", tokenizer, context=4096, layers=3)
    found = find_models(places=os.pathsep.join(map(str, [short, roomy_small, roomy_big])),
                        hub_cache=tmp_path / "no-hub")
    found.models = [info for info in found.models if info.found_in != "embedded"]
    ranked = survey(found, torch.device("cpu"), config, examples)
    assert [c.info.path.name for c in ranked] == ["roomy-big", "roomy-small", "short"]
    assert ranked[2].context_fits is False and ranked[0].context_fits is True
    assert ranked[0].context_needed > 120 and ranked[0].measured_with == TOKENIZER
    assert ranked[0].fits["lora"].need.total == method_fits(
        meta_model_of(roomy_big), torch.device("cpu"), {"lora": config.method})["lora"].need.total

    # Where the config's method does not fit, a model that fits it ranks first.
    small_need = ranked[1].fits["lora"].need.total
    monkeypatch.setattr(memory, "device_memory", lambda device: small_need)
    assert [c.info.path.name for c in survey(found, torch.device("cpu"), config, examples)][0] == "roomy-small"
