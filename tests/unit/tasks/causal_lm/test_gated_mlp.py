"""Llama's SiLU MLP swapped for the version that keeps gate and up only: the same forward and gradients bit for bit,
fewer saved bytes, other activations and MLP shapes untouched, the model's own forward back on exit."""

import copy

import pytest
import torch
from transformers import LlamaConfig
from transformers.models.gemma.modeling_gemma import GemmaMLP
from transformers.models.llama.modeling_llama import LlamaMLP

from tunesmith.tasks.causal_lm.gated_mlp import gated_mlp_keeping_less
from tunesmith.tasks.causal_lm.loss import causal_lm_loss
from tunesmith.train.saved_activations import saved_bytes

BATCH = {"input_ids": torch.arange(24).view(2, 12) * 7, "labels": torch.arange(24).view(2, 12) * 11}


def small_config(**options) -> LlamaConfig:
    return LlamaConfig(hidden_size=16, intermediate_size=32, num_attention_heads=2, **options)


def loss_and_grads(model, autocast=False):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = causal_lm_loss(model, BATCH)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return loss.detach(), grads


@pytest.mark.parametrize("autocast", [False, True])
def test_same_loss_and_gradients_bit_for_bit(tiny_llama, autocast):
    model = copy.deepcopy(tiny_llama).train()
    expected_loss, expected_grads = loss_and_grads(model, autocast)
    with gated_mlp_keeping_less(model) as swapped:
        assert swapped == 2  # one per block
        loss, grads = loss_and_grads(model, autocast)
    assert torch.equal(loss, expected_loss)
    assert grads.keys() == expected_grads.keys() and all(torch.equal(grads[n], expected_grads[n]) for n in grads)


def test_keeps_one_intermediate_tensor_a_block_fewer(tiny_llama):
    model = copy.deepcopy(tiny_llama)
    before = saved_bytes(model, lambda: causal_lm_loss(model, BATCH))
    with gated_mlp_keeping_less(model):
        after = saved_bytes(model, lambda: causal_lm_loss(model, BATCH))
    config = tiny_llama.config
    assert before - after == config.num_hidden_layers * 24 * config.intermediate_size * 4  # silu(gate), fp32


def test_frozen_gate_and_up_inputs_get_gradients_only_where_needed():
    torch.manual_seed(0)
    mlp = LlamaMLP(small_config()).requires_grad_(False)
    mlp.up_proj.weight.requires_grad_(True)  # up trains, gate does not
    x = torch.randn(3, 16)
    expected = copy.deepcopy(mlp)
    expected(x).sum().backward()
    with gated_mlp_keeping_less(mlp):
        mlp(x).sum().backward()
    assert mlp.gate_proj.weight.grad is None
    assert torch.equal(mlp.up_proj.weight.grad, expected.up_proj.weight.grad)


def test_other_activations_and_mlps_keep_their_forward():
    gelu = LlamaMLP(small_config(hidden_act="gelu"))
    with gated_mlp_keeping_less(gelu) as swapped:
        assert swapped == 0
    class ScaledMLP(LlamaMLP):  # Llama's layers, another formula
        def forward(self, x):
            return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x) * 0.5)

    with gated_mlp_keeping_less(ScaledMLP(small_config())) as swapped:
        assert swapped == 0
    # transformers' copies of Llama's MLP (Gemma's with a SiLU) are Llama's code under another name
    with gated_mlp_keeping_less(GemmaMLP(small_config())) as swapped:
        assert swapped == 1


def test_after_exit_the_mlps_forward_is_their_own(tiny_llama):
    model = copy.deepcopy(tiny_llama)
    with gated_mlp_keeping_less(model):
        assert any("forward" in m.__dict__ for m in model.modules())
    assert all("forward" not in m.__dict__ for m in model.modules())


@pytest.mark.parametrize("dropout", [0.1, 0.0])
def test_a_lora_down_proj_rebuilds_its_input_from_gate_and_up(tiny_llama, dropout, monkeypatch):
    from peft import LoraConfig, get_peft_model

    import tunesmith.methods.lora_folded_scales as folded
    from tunesmith.methods.cpu_dropout import use_cpu_dropout

    torch.manual_seed(1)
    model = get_peft_model(copy.deepcopy(tiny_llama), LoraConfig(
        r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=dropout, init_lora_weights=False))
    use_cpu_dropout(model)

    def saved_and_grads():
        torch.manual_seed(2)  # the same dropout masks each time
        saved = saved_bytes(model, lambda: causal_lm_loss(model, BATCH))
        torch.manual_seed(2)
        return saved, loss_and_grads(model.train())

    with folded.lora_scales_folded(model), gated_mlp_keeping_less(model):
        loss_and_grads(model.train())  # the first forward learns which layers share an input
        saved, (loss, grads) = saved_and_grads()
        monkeypatch.setattr(folded, "recipe_for", lambda x: None)
        kept_saved, (expected_loss, expected_grads) = saved_and_grads()
    assert torch.equal(loss, expected_loss)
    assert grads.keys() == expected_grads.keys() and all(torch.equal(grads[n], expected_grads[n]) for n in grads)
    # down_proj's A product keeps the mask and gate and up (kept for the MLP's backward anyway), not its input
    config = tiny_llama.config
    assert kept_saved - saved == config.num_hidden_layers * 24 * config.intermediate_size * 4
