"""LoRA's scaling and dropout scale folded into B give PEFT's loss and gradients; anything but plain LoRA is PEFT's."""

import copy
from contextlib import nullcontext

import pytest
import torch
from peft import LoraConfig, get_peft_model

from tunesmith.methods.adapter_input_cast import adapter_inputs_in_compute_dtype, plain_lora_linears
from tunesmith.methods.cpu_dropout import use_cpu_dropout
from tunesmith.methods.lora_folded_scales import lora_scales_folded
from tunesmith.tasks.causal_lm.loss import causal_lm_loss


def lora(model, dropout=0.1, alpha=8, shared_masks=False, **options):
    torch.manual_seed(1)
    config = LoraConfig(r=4, lora_alpha=alpha, target_modules="all-linear", lora_dropout=dropout,
                        init_lora_weights=False, **options)
    model = get_peft_model(model, config)
    use_cpu_dropout(model, shared_masks=shared_masks)
    return model


def loss_and_grads(model, autocast=False):
    batch = {"input_ids": torch.arange(24).view(2, 12) * 7, "labels": torch.arange(24).view(2, 12) * 11}
    model.train()
    torch.manual_seed(2)  # the same dropout masks every call
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = causal_lm_loss(model, batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    return loss.detach(), grads


def worst_distance(grads, expected):
    return max(float((grads[n] - expected[n]).norm() / expected[n].norm()) for n in expected)


def test_power_of_two_scaling_without_dropout_is_bit_identical(tiny_llama):
    model = lora(copy.deepcopy(tiny_llama), dropout=0.0)  # scaling 8 / 4 = 2
    expected_loss, expected_grads = loss_and_grads(model)
    with lora_scales_folded(model) as layers:
        assert layers == 14  # 7 projections x 2 blocks
        loss, grads = loss_and_grads(model)
    assert torch.equal(loss, expected_loss)
    assert grads.keys() == expected_grads.keys() and all(torch.equal(grads[n], expected_grads[n]) for n in grads)


@pytest.mark.parametrize("alpha", [8, 6])  # a power-of-two scaling and one that is not
@pytest.mark.parametrize("shared_masks", [False, True])
def test_with_dropout_equal_to_float_rounding(tiny_llama, alpha, shared_masks):
    model = lora(copy.deepcopy(tiny_llama), alpha=alpha, shared_masks=shared_masks)
    expected_loss, expected_grads = loss_and_grads(model)
    with lora_scales_folded(model):
        loss, grads = loss_and_grads(model)
    # The same masks (same draws) with the scale moved: float32 rounding apart. A scale lost or applied twice
    # would move the loss by percents.
    assert abs(float(loss - expected_loss)) <= 1e-6 * float(expected_loss)
    assert worst_distance(grads, expected_grads) < 1e-5


def test_under_autocast_as_close_to_fp32_as_peft(tiny_llama):
    model = lora(copy.deepcopy(tiny_llama))
    fp32_loss, fp32_grads = loss_and_grads(model)
    autocast_loss, autocast_grads = loss_and_grads(model, autocast=True)
    with adapter_inputs_in_compute_dtype(model, "bf16"), lora_scales_folded(model):
        loss, grads = loss_and_grads(model, autocast=True)
    assert worst_distance(grads, fp32_grads) <= 2 * worst_distance(autocast_grads, fp32_grads)
    assert abs(loss - fp32_loss) <= 2 * abs(autocast_loss - fp32_loss) + 1e-4 * abs(fp32_loss)


def test_disabled_adapters_and_merged_layers_take_peft_forward(tiny_llama):
    model = lora(copy.deepcopy(tiny_llama))
    ids = torch.arange(12).view(1, 12)
    model.eval()
    with torch.no_grad():
        base = model.get_base_model()
        with model.disable_adapter():
            expected_base = base(input_ids=ids).logits
        expected_tuned = base(input_ids=ids).logits
        with lora_scales_folded(model):
            with model.disable_adapter():
                assert torch.equal(base(input_ids=ids).logits, expected_base)
            assert torch.allclose(base(input_ids=ids).logits, expected_tuned, atol=1e-5)
            model.merge_adapter()
            assert torch.allclose(base(input_ids=ids).logits, expected_tuned, atol=1e-4)
            model.unmerge_adapter()


def test_after_exit_layers_use_their_class_forward(tiny_llama):
    model = lora(copy.deepcopy(tiny_llama))
    with lora_scales_folded(model):
        assert all("forward" in layer.__dict__ for layer in plain_lora_linears(model))
    assert not any("forward" in layer.__dict__ for layer in plain_lora_linears(model))
    with lora_scales_folded(model, enabled=False) as layers:
        assert layers == 0


def test_dora_layers_are_not_folded(tiny_llama):
    model = lora(copy.deepcopy(tiny_llama), use_dora=True)
    with lora_scales_folded(model) as layers:
        assert layers == 0


def _saved_bytes_and_grads(model, autocast=False):
    from tunesmith.train.saved_activations import saved_bytes

    torch.manual_seed(2)
    batch = {"input_ids": torch.arange(24).view(2, 12) * 7, "labels": torch.arange(24).view(2, 12) * 11}
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        saved = saved_bytes(model, lambda: causal_lm_loss(model, batch))
    return saved, loss_and_grads(model, autocast)


@pytest.mark.parametrize("autocast", [False, True])
def test_layers_sharing_an_input_keep_it_once_with_the_same_values(tiny_llama, autocast, monkeypatch):
    import tunesmith.methods.lora_folded_scales as folded

    model = lora(copy.deepcopy(tiny_llama))
    def cast():
        return adapter_inputs_in_compute_dtype(model, "bf16") if autocast else nullcontext()

    with cast(), lora_scales_folded(model):
        loss_and_grads(model, autocast)  # the first forward learns which layers share an input
        shared_saved, (loss, grads) = _saved_bytes_and_grads(model, autocast)
    monkeypatch.setattr(folded._InputSharing, "shares", lambda self, layer, x: False)
    with cast(), lora_scales_folded(model):
        copies_saved, (expected_loss, expected_grads) = _saved_bytes_and_grads(model, autocast)
    # the same draws, the masked input rebuilt exactly: the same products, bit for bit
    assert torch.equal(loss, expected_loss)
    assert all(torch.equal(grads[n], expected_grads[n]) for n in expected_grads)
    # Per block, k and v keep q's input instead of masked copies, up keeps gate's: 3 [24 tokens, hidden] tensors
    # fewer. The first block's input needs no gradient, so its copies' masks were never kept: 3 bool masks more.
    hidden, blocks = tiny_llama.config.hidden_size, tiny_llama.config.num_hidden_layers
    fewer = blocks * 3 * 24 * hidden * (2 if autocast else 4) - 3 * 24 * hidden
    if autocast:  # the copies' products also keep their bf16 casts of A, which the shared product casts inside
        assert copies_saved - shared_saved >= fewer
    else:
        assert copies_saved - shared_saved == fewer
