"""Every PEFT method and LoRA option on the tiny Llama: the loss goes down, exactly the method's parameters
change, and the saved adapter (or checkpoint state) rebuilds the same model on a fresh base."""

import copy

import pytest
import torch
from peft import PeftModel

from tunesmith.methods.apply import apply_method, save_final
from tunesmith.methods.parameters import load_trainable_state, trainable_state
from tunesmith.models.load import load_model_for_method

VARIANTS = {
    "lora": {"name": "lora", "r": 4},
    "lora-rslora": {"name": "lora", "r": 4, "rslora": True},
    "lora-dora": {"name": "lora", "r": 4, "dora": True},
    "lora-pissa": {"name": "lora", "r": 4, "init": "pissa"},
    "lora-olora": {"name": "lora", "r": 4, "init": "olora"},
    "lora-gaussian": {"name": "lora", "r": 4, "init": "gaussian"},
    "lora-modules_to_save": {"name": "lora", "r": 4, "target_modules": ["q_proj"], "modules_to_save": ["lm_head"]},
    "lora-pissa-modules_to_save": {"name": "lora", "r": 4, "init": "pissa", "modules_to_save": ["lm_head"]},
    "qlora-nf4": {"name": "qlora", "r": 4},
    "qlora-fp4": {"name": "qlora", "r": 4, "quant_type": "fp4", "double_quant": False},
    "qlora-8bit": {"name": "qlora", "r": 4, "bits": 8},
    "qlora-dora": {"name": "qlora", "r": 4, "dora": True},
    "ia3": {"name": "ia3"},
    "prompt_tuning": {"name": "prompt_tuning", "num_virtual_tokens": 4},
    "prompt_tuning-text": {"name": "prompt_tuning", "num_virtual_tokens": 4, "init": "text", "init_text": "Cook well"},
    "prefix_tuning": {"name": "prefix_tuning", "num_virtual_tokens": 4},
    "prefix_tuning-projection": {"name": "prefix_tuning", "num_virtual_tokens": 4, "prefix_projection": True},
    "p_tuning": {"name": "p_tuning", "num_virtual_tokens": 4, "encoder_hidden_size": 16},
}


@pytest.fixture
def fresh_base(tiny_llama, request):
    """A new copy of the same base for a method: qlora quantises while loading, so its base comes from disk."""

    def load(method):
        if method.name == "qlora":
            return load_model_for_method(request.getfixturevalue("tiny_llama_source"), method)
        return copy.deepcopy(tiny_llama)

    return load


@pytest.fixture
def applied(fresh_base, make_method, tokenizer):
    def apply(variant: str):
        method = make_method(**VARIANTS[variant])
        return apply_method(fresh_base(method), method, tokenizer_path=tokenizer.name_or_path), method

    return apply


def snapshot(model) -> dict[str, tuple[torch.Tensor, bool]]:
    return {name: (p.detach().clone(), p.requires_grad) for name, p in model.named_parameters()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_loss_goes_down_and_only_the_methods_parameters_change(variant, applied, train_steps):
    model, _ = applied(variant)
    before = snapshot(model)

    losses = train_steps(model)

    assert losses[-1] < losses[0]
    after = dict(model.named_parameters())
    trainable = [name for name, (_, grad) in before.items() if grad]
    assert trainable
    assert [name for name in trainable if torch.equal(before[name][0], after[name])] == []
    frozen_changed = [name for name, (t, grad) in before.items() if not grad and not torch.equal(t, after[name])]
    assert frozen_changed == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_saved_adapter_loads_onto_a_fresh_base_with_the_same_logits(
    variant, applied, fresh_base, train_steps, logits_of, tokenizer, tmp_path
):
    model, method = applied(variant)
    train_steps(model, steps=2)

    folder = save_final(model, tokenizer, method, tmp_path)
    reloaded = PeftModel.from_pretrained(fresh_base(method), folder)

    assert folder.name == "adapter" and (folder / "adapter_model.safetensors").is_file()
    torch.testing.assert_close(logits_of(reloaded), logits_of(model), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("variant", ["lora-pissa", "qlora-nf4", "prefix_tuning-projection"])
def test_checkpoint_state_restores_the_trained_model(variant, applied, train_steps, logits_of):
    # Resume rebuilds the method on a fresh base, then loads the trainable tensors: PiSSA's residual base and
    # the quantised base must come out identical.
    model, _ = applied(variant)
    train_steps(model, steps=2)

    restored, _ = applied(variant)
    load_trainable_state(restored, trainable_state(model))

    torch.testing.assert_close(logits_of(restored), logits_of(model))
