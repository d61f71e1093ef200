"""Frozen Linear weights held in bf16 during training give the same autocast loss and gradients as fp32 ones,
and the exact fp32 weights come back afterwards."""

import copy

import torch
from peft import LoraConfig, get_peft_model

from tunesmith.methods.llm.full import FullMethod
from tunesmith.methods.llm.lora import LoraMethod
from tunesmith.methods.frozen_precision import (
    applies_to, frozen_in_compute_dtype, in_compute_dtype, tied_frozen_weights,
)
from tunesmith.tasks.causal_lm.loss import causal_lm_loss


def lora(model):
    torch.manual_seed(1)
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))


def loss_and_grads(model):
    batch = {"input_ids": torch.arange(24).view(2, 12) * 7, "labels": torch.arange(24).view(2, 12) * 11}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = causal_lm_loss(model, batch)
    loss.backward()
    return loss, {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


def test_same_loss_and_adapter_gradients_under_bf16_autocast(tiny_llama):
    reference = lora(copy.deepcopy(tiny_llama))
    fast = lora(copy.deepcopy(tiny_llama))
    expected_loss, expected_grads = loss_and_grads(reference)
    with frozen_in_compute_dtype(fast, "bf16") as cast:
        assert cast == 14  # 7 projections x 2 blocks; the head is tied to the embedding and stays fp32
        loss, grads = loss_and_grads(fast)
    assert torch.equal(loss, expected_loss)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=0, atol=0)


def test_only_frozen_plain_linears_change_and_fp32_returns_exactly(tiny_llama):
    model = lora(tiny_llama)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with frozen_in_compute_dtype(model, "bf16"):
        for name, p in model.named_parameters():
            assert p.dtype == (torch.bfloat16 if "base_layer" in name else torch.float32), name
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32 and torch.equal(p, before[name]), name
    with frozen_in_compute_dtype(model, "no") as cast:
        assert cast == 0


def test_applies_to_adapters_whose_weights_do_not_come_from_the_base():
    assert applies_to(LoraMethod())
    assert not applies_to(LoraMethod(dora=True))
    assert not applies_to(LoraMethod(init="pissa"))
    assert not applies_to(FullMethod(name="full"))


def test_a_tied_frozen_head_is_cast_once_and_only_while_unchanged(tiny_llama):
    model = lora(tiny_llama)
    head = model.get_output_embeddings().weight
    assert tied_frozen_weights(model) == [head]  # tied to the embedding, so it stays fp32 ...
    with frozen_in_compute_dtype(model, "bf16"):
        kept = in_compute_dtype(head, torch.bfloat16)
        assert head.dtype == torch.float32 and torch.equal(kept, head.detach().to(torch.bfloat16))
        assert in_compute_dtype(head, torch.bfloat16) is kept  # ... and its bf16 copy is made once
        with torch.no_grad():
            head.mul_(2)  # a weight that changed is cast again
        assert torch.equal(in_compute_dtype(head, torch.bfloat16), head.detach().to(torch.bfloat16))
    assert in_compute_dtype(head, torch.bfloat16) is not kept  # the copy lives inside the block only
