"""Hostile files someone hands you: pickles that run code when loaded, and model folders that bring their own code.

Every payload here writes a canary file when it runs; each test asserts the canary is absent, so a refusal that
came after the code ran would still fail, and every refusal is one sentence (ModelError, printed without a traceback).
"""

import copy
import json
import shutil
import subprocess
import sys

import pytest
import torch

from tunesmith.errors import ModelError
from tunesmith.models.load import load_adapter, load_causal_lm, load_tokenizer, resolve_model


class Payload:
    """Unpickling this runs code that writes `canary`."""

    def __init__(self, canary):
        self.canary = str(canary)

    def __reduce__(self):
        return (exec, (f"open({self.canary!r}, 'w').write('the payload ran')",))


def plant(path, canary):
    torch.save({"weight": Payload(canary)}, path)


@pytest.fixture
def canary(tmp_path):
    path = tmp_path / "canary"
    yield path
    assert not path.exists(), "a planted payload ran"


def test_the_payload_runs_when_anything_unpickles_it(tmp_path):
    # The detector works: an unpickler that runs code (torch.load without weights_only) creates the canary.
    plant(tmp_path / "payload.pt", tmp_path / "ran")
    torch.load(tmp_path / "payload.pt", weights_only=False)
    assert (tmp_path / "ran").read_text() == "the payload ran"


@pytest.fixture
def model_copy(tmp_path, tiny_model_dir):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    return folder


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.ckpt", "model.pt", "model.pth"])
def test_pickle_only_weights_are_refused_and_never_opened(tmp_path, tiny_model_dir, canary, name):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "config.json", folder)
    plant(folder / name, canary)
    with pytest.raises(ModelError) as info:
        resolve_model(str(folder))
    assert str(info.value) == (
        f"{folder}: weights are only in pickle files ({name}), which can run arbitrary code when loaded; convert "
        "them to safetensors, or pass --allow-pickle if you trust their source"
    )


def test_with_allow_pickle_a_payload_is_still_refused_by_the_weights_only_loader(tmp_path, tiny_model_dir, canary):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "config.json", folder)
    plant(folder / "pytorch_model.bin", canary)
    source = resolve_model(str(folder), allow_pickle=True)
    with pytest.raises(ModelError) as info:
        load_causal_lm(source)
    assert str(info.value) == (
        f"{folder}: its pickle weights ask to run code or build objects other than tensors, which tunesmith's "
        "weights-only loader refuses even with --allow-pickle; convert them to safetensors where you trust them"
    )


def test_pickles_beside_safetensors_weights_are_never_opened(model_copy, canary):
    # A Hugging Face Trainer checkpoint folder: the weights in safetensors, its training state in pickles.
    for name in ("pytorch_model.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"):
        plant(model_copy / name, canary)
    source = resolve_model(str(model_copy))
    assert not source.uses_pickle
    assert load_causal_lm(source).config.num_hidden_layers == 2
    assert load_tokenizer(source).pad_token_id is not None


@pytest.fixture
def adapter_dir(tmp_path, tiny_llama):
    from peft import LoraConfig, get_peft_model

    folder = tmp_path / "adapter"
    get_peft_model(copy.deepcopy(tiny_llama), LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(folder)
    return folder


def test_a_pickle_only_adapter_is_refused(adapter_dir, tiny_llama, canary):
    (adapter_dir / "adapter_model.safetensors").unlink()
    plant(adapter_dir / "adapter_model.bin", canary)  # PEFT would fall back to it
    with pytest.raises(ModelError) as info:
        load_adapter(tiny_llama, adapter_dir)
    assert str(info.value) == (
        f"{adapter_dir}: weights are only in pickle files (adapter_model.bin), which can run arbitrary code when "
        "loaded; convert them to safetensors, or pass --allow-pickle if you trust their source"
    )
    with pytest.raises(ModelError, match="weights-only loader refuses even with --allow-pickle"):
        load_adapter(tiny_llama, adapter_dir, allow_pickle=True)


def test_an_adapter_pickle_beside_its_safetensors_is_never_opened(adapter_dir, tiny_llama, canary):
    plant(adapter_dir / "adapter_model.bin", canary)
    assert load_adapter(tiny_llama, adapter_dir).peft_config["default"].r == 2


# -- code that comes with a model folder (auto_map) ------------------------------------------------------------------
def add_remote_code(folder, canary, config_name: str, auto_map: dict, **fields) -> None:
    """Point `config_name`'s auto_map at Python files in the folder that write the canary when imported."""
    for module, cls, base in (("configuration_evil", "EvilConfig", "LlamaConfig"),
                              ("modeling_evil", "EvilForCausalLM", "LlamaForCausalLM"),
                              ("tokenization_evil", "EvilTokenizer", "PreTrainedTokenizerFast")):
        (folder / f"{module}.py").write_text(f"open({str(canary)!r}, 'w').write('remote code ran')\n"
                                             f"from transformers import {base} as {cls}\n")
    path = folder / config_name
    path.write_text(json.dumps({**json.loads(path.read_text()), "auto_map": auto_map, **fields}))


MODEL_AUTO_MAP = {"AutoConfig": "configuration_evil.EvilConfig",
                  "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}


def test_a_model_that_needs_its_own_code_is_refused_with_the_reason(model_copy, canary):
    add_remote_code(model_copy, canary, "config.json", MODEL_AUTO_MAP, model_type="evil")
    source = resolve_model(str(model_copy))
    for load in (load_causal_lm, load_tokenizer):
        with pytest.raises(ModelError) as info:
            load(source)
        assert str(info.value) == (
            f"{model_copy}: its config.json maps its classes to Python code in the model folder "
            "(configuration_evil.py, modeling_evil.py) that transformers would have to run to load it; tunesmith "
            "runs no model code unless the config says trust_remote_code: true, so read that code before you set it"
        )


def test_a_tokenizer_that_needs_its_own_code_is_refused(model_copy, canary):
    add_remote_code(model_copy, canary, "tokenizer_config.json",
                    {"AutoTokenizer": [None, "tokenization_evil.EvilTokenizer"]}, tokenizer_class="EvilTokenizer")
    with pytest.raises(ModelError, match=r"its tokenizer_config.json maps its classes to Python code in the model "
                                         r"folder \(tokenization_evil.py\) that transformers would have to run"):
        load_tokenizer(resolve_model(str(model_copy)))


def test_an_auto_map_beside_a_known_model_type_loads_transformers_own_classes(model_copy, canary):
    add_remote_code(model_copy, canary, "config.json", MODEL_AUTO_MAP)  # model_type stays "llama"
    source = resolve_model(str(model_copy))
    assert type(load_causal_lm(source)).__name__ == "LlamaForCausalLM"


# -- a checkpoint with a planted payload, resumed from the command line ---------------------------------------------
@pytest.mark.slow
def test_resuming_a_checkpoint_with_a_planted_payload_is_one_sentence(tiny_run_config, tmp_path, canary):
    from tunesmith.config.load import save_config
    from tunesmith.run import run
    from tunesmith.train.checkpoint import complete_checkpoints

    config = tiny_run_config(training={"max_steps": 2, "save_every": 2},
                             eval={"compare_base": False, "metrics": ["perplexity"]})
    run(config)
    folder = complete_checkpoints(tmp_path / "run")[-1]
    plant(folder / "scheduler.pt", canary)  # where older tunesmith versions kept the scheduler state
    path = tmp_path / "config.yaml"
    save_config(config, path)
    resumed = subprocess.run([sys.executable, "-m", "tunesmith", "train", str(path), "--resume"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 2, resumed.stderr[-2000:]
    assert "Traceback" not in resumed.stderr
    assert "holds pickle files (scheduler.pt), which can run code when loaded" in " ".join(resumed.stderr.split())
