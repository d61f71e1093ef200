"""LoRA layers reading one input share its compute-dtype copy under autocast; outside the context nothing changed."""

import copy

import torch
from peft import LoraConfig, get_peft_model

from tunesmith.methods.adapter_input_cast import adapter_inputs_in_compute_dtype, plain_lora_linears
from tunesmith.methods.cpu_dropout import use_cpu_dropout
from tunesmith.tasks.causal_lm.loss import causal_lm_loss


def lora(model, **options):
    torch.manual_seed(1)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.1, init_lora_weights=False,
                        **options)
    model = get_peft_model(model, config)
    use_cpu_dropout(model)
    return model


def loss_and_grads(model, autocast=True):
    batch = {"input_ids": torch.arange(24).view(2, 12) * 7, "labels": torch.arange(24).view(2, 12) * 11}
    model.train()
    torch.manual_seed(2)  # the same dropout masks every call
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = causal_lm_loss(model, batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    return loss.detach(), grads


def inputs_seen(model):
    """Per LoRA layer: the tensor its dropout receives, recorded by a pre-hook on the dropout module."""
    seen = {}
    for name, module in model.named_modules():
        if name.endswith("lora_dropout.default"):
            owner = name.removesuffix(".lora_dropout.default")
            module.register_forward_pre_hook(lambda m, args, owner=owner: seen.__setitem__(owner, args[0]))
    return seen


def test_projections_of_one_input_read_one_bf16_copy(tiny_llama):
    model = lora(copy.deepcopy(tiny_llama))
    seen = inputs_seen(model)
    with adapter_inputs_in_compute_dtype(model, "bf16") as layers:
        assert layers == 14  # 7 projections x 2 blocks
        loss_and_grads(model)
    block = "base_model.model.model.layers.0"
    q, k, v = (seen[f"{block}.self_attn.{p}_proj"] for p in "qkv")
    gate, up = (seen[f"{block}.mlp.{p}_proj"] for p in ("gate", "up"))
    assert q is k is v and gate is up and q is not gate
    assert all(x.dtype == torch.bfloat16 for x in seen.values())


def test_loss_and_gradients_as_close_to_fp32_as_plain_autocast(tiny_llama):
    model = lora(copy.deepcopy(tiny_llama))
    fp32_loss, fp32_grads = loss_and_grads(model, autocast=False)
    autocast_loss, autocast_grads = loss_and_grads(model)
    with adapter_inputs_in_compute_dtype(model, "bf16"):
        loss, grads = loss_and_grads(model)

    def worst_error(grads):  # the largest relative distance of a parameter's gradient from the fp32 one
        return max(float((grads[n] - fp32_grads[n]).norm() / fp32_grads[n].norm()) for n in grads)

    # One more rounding (dropout's scale applied to the bf16 input, 4% here against autocast's 2.4%), no more:
    # a wrong input or a lost gradient path would be off by far more.
    assert worst_error(grads) <= 2 * worst_error(autocast_grads)
    assert abs(loss - fp32_loss) <= 2 * abs(autocast_loss - fp32_loss) + 1e-4 * abs(fp32_loss)


def test_after_exit_layers_are_as_before(tiny_llama):
    model = lora(copy.deepcopy(tiny_llama))
    before_loss, before_grads = loss_and_grads(model)
    with adapter_inputs_in_compute_dtype(model, "bf16"):
        loss_and_grads(model)
    for layer in plain_lora_linears(model):
        assert not layer._forward_pre_hooks and layer.cast_input_dtype_enabled is True
    loss, grads = loss_and_grads(model)
    assert torch.equal(loss, before_loss)
    assert all(torch.equal(grads[n], before_grads[n]) for n in grads)


def test_nothing_changes_without_autocast_or_mixed_precision(tiny_llama):
    model = lora(copy.deepcopy(tiny_llama))
    expected_loss, expected_grads = loss_and_grads(model, autocast=False)
    with adapter_inputs_in_compute_dtype(model, "bf16"):
        loss, grads = loss_and_grads(model, autocast=False)  # the hook passes fp32 inputs through untouched
    assert torch.equal(loss, expected_loss) and all(torch.equal(grads[n], expected_grads[n]) for n in grads)
    with adapter_inputs_in_compute_dtype(model, "no") as layers:
        assert layers == 0
    with adapter_inputs_in_compute_dtype(model, "bf16", enabled=False) as layers:
        assert layers == 0


def test_dora_layers_keep_peft_casts(tiny_llama):
    model = lora(copy.deepcopy(tiny_llama), use_dora=True)
    with adapter_inputs_in_compute_dtype(model, "bf16") as layers:
        assert layers == 0
