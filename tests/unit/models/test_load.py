"""Model resolution: what is looked for, what is refused, and the one-sentence errors users read."""

import pytest
import torch

from tunesmith.errors import ModelError
from tunesmith.models.embedded import EMBEDDED_ALIAS, embedded_model_dir
from tunesmith.models.load import load_trained, resolve_model


def test_embedded_alias_resolves_to_the_cached_safetensors_folder():
    source = resolve_model(EMBEDDED_ALIAS)
    assert source.folder == embedded_model_dir()
    assert (source.folder / "model.safetensors").is_file()
    assert not source.uses_pickle


def test_local_folder_with_safetensors(tiny_model_dir):
    assert resolve_model(str(tiny_model_dir)).folder == tiny_model_dir


def test_pickle_only_folder_is_refused_unless_allowed(tmp_path, tiny_model_dir):
    (tmp_path / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    torch.save({"w": torch.zeros(1)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelError) as info:
        resolve_model(str(tmp_path))
    assert str(info.value) == (
        f"{tmp_path}: weights are only in pickle files (pytorch_model.bin), which can run arbitrary code when "
        "loaded; convert them to safetensors, or pass --allow-pickle if you trust their source"
    )
    assert resolve_model(str(tmp_path), allow_pickle=True).uses_pickle


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelError, match="no config.json; expected a Hugging Face model folder"):
        resolve_model(str(tmp_path))


def test_missing_paths_and_unknown_hub_ids(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelError, match=r"^model folder not found: ./nope"):
        resolve_model("./nope")
    with pytest.raises(ModelError, match=r"^model file not found: missing.gguf$"):
        resolve_model("missing.gguf")
    with pytest.raises(ModelError) as info:
        resolve_model("someone/some-model")
    assert str(info.value).startswith(
        f"model 'someone/some-model' is not '{EMBEDDED_ALIAS}', a local folder, a .gguf file, or a hub id in the "
        "local Hugging Face cache"
    )


def test_load_trained_needs_a_run_folder(tmp_path):
    with pytest.raises(ModelError, match="not a run folder"):
        load_trained(tmp_path)


def test_scratch_model_has_the_architecture_but_not_the_weights(tiny_model_dir):
    from tunesmith.models.load import load_causal_lm, load_model_for_method
    from tunesmith.methods.llm.full import FullMethod

    source = resolve_model(str(tiny_model_dir))
    pretrained = load_causal_lm(source)
    torch.manual_seed(1)  # the tiny model's own weights were drawn with seed 0
    scratch = load_model_for_method(source, FullMethod(name="full"), scratch=True)
    torch.manual_seed(1)
    again = load_model_for_method(source, FullMethod(name="full"), scratch=True)
    shapes = lambda m: {k: v.shape for k, v in m.state_dict().items()}  # noqa: E731
    assert shapes(scratch) == shapes(pretrained)
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(scratch.state_dict()[name], pretrained.state_dict()[name])
    assert torch.equal(scratch.state_dict()[name], again.state_dict()[name])  # seeded: reproducible
    assert next(scratch.parameters()).dtype == torch.float32


def test_scratch_needs_the_full_method(tiny_run_config):
    from tunesmith.errors import ConfigError

    with pytest.raises(ConfigError, match="model_init: scratch trains every weight; use method.name: full, not lora"):
        tiny_run_config(model_init="scratch")
    assert tiny_run_config(method={"name": "full"}, model_init="scratch").model_init == "scratch"


def test_a_model_folder_without_tokenizer_files_is_one_error_naming_it(tmp_path, tiny_model_dir):
    from tunesmith.models.load import load_tokenizer

    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((tiny_model_dir / name).read_bytes())
    with pytest.raises(ModelError) as info:
        load_tokenizer(resolve_model(str(tmp_path)))
    message = str(info.value)
    assert message.startswith(f"{tmp_path}: no tokenizer could be loaded from it (")
    assert message.endswith("a model folder needs its tokenizer files beside config.json (tokenizer.json, or "
                            "tokenizer_config.json and the vocabulary files it names): copy them from where the model "
                            "came from")
    assert "\n" not in message


def test_a_loaded_model_keeps_a_swapped_forward_through_train_and_eval(tiny_model_dir):
    """transformers 5.25 kernelizes loaded models by default and again on every train()/eval(), putting the class's
    forward back over a run's swapped one (and fetching kernels from the Hub); tunesmith loads with it off."""
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    from tunesmith.models.load import load_causal_lm
    from tunesmith.tasks.causal_lm.llama_code import forward_swapped

    model = load_causal_lm(resolve_model(str(tiny_model_dir)))
    norms = [module for module in model.modules() if isinstance(module, LlamaRMSNorm)]
    with forward_swapped(norms, lambda module, hidden: hidden * 0):
        model.train()
        model.eval()
        assert all("forward" in norm.__dict__ for norm in norms)
        assert norms[0](torch.ones(2, 64)).abs().sum() == 0
    assert all("forward" not in norm.__dict__ for norm in norms)
