import pytest
import torch
from torch import nn

from tunesmith.methods.cpu_dropout import CpuDropout, use_cpu_dropout
from tunesmith.methods.latest_input import LatestResult


@pytest.mark.parametrize("p", [0.05, 0.3])
def test_drops_the_right_fraction_and_keeps_the_mean(p):
    x = torch.ones(1000, 1000)
    out = CpuDropout(p).train()(x)
    dropped = (out == 0).float().mean().item()
    assert abs(dropped - p) < 0.002
    kept = out[out != 0]
    assert torch.allclose(kept, torch.full_like(kept, kept[0].item()))
    assert abs(kept[0].item() - 1 / (1 - p)) < 1e-3
    assert abs(out.mean().item() - 1.0) < 0.01


def test_masks_follow_the_seed_and_differ_between_calls():
    dropout, x = CpuDropout(0.5).train(), torch.ones(64, 33)  # an element count not divisible by 4
    torch.manual_seed(1)
    first, second = dropout(x), dropout(x)
    torch.manual_seed(1)
    assert torch.equal(dropout(x), first)
    assert not torch.equal(first, second)


def test_gradient_is_the_scaled_mask():
    x = torch.randn(50, 40, requires_grad=True)
    out = CpuDropout(0.2).train()(x)
    out.sum().backward()
    kept = out != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / (1 - 0.2)), atol=1e-4)
    assert torch.all(x.grad[~kept] == 0)


def test_eval_mode_and_zero_probability_are_the_identity():
    x = torch.randn(10, 10)
    assert torch.equal(CpuDropout(0.5).eval()(x), x)
    assert torch.equal(CpuDropout(0.0).train()(x), x)
    assert torch.equal(CpuDropout(1.0).train()(x), torch.zeros_like(x))


def test_swaps_lora_dropout_in_a_peft_model(tiny_llama):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_llama, LoraConfig(target_modules=["q_proj", "v_proj"], r=4, lora_dropout=0.1))
    assert use_cpu_dropout(model) == 2 * 2  # two layers, two adapted modules each
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert dropouts and all(type(m) is CpuDropout and m.p == 0.1 for m in dropouts)


def _dropout_outputs(model, autocast: bool) -> dict[str, torch.Tensor]:
    """Each LoRA dropout's output in one training forward, by the name of the projection it belongs to."""
    outputs, hooks = {}, []
    for name, module in model.named_modules():
        if type(module) is CpuDropout:
            projection = name.split(".lora_dropout")[0]
            hooks.append(module.register_forward_hook(lambda m, i, o, key=projection: outputs.setdefault(key, o)))
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        model(input_ids=torch.randint(0, 100, (2, 12)))
    for hook in hooks:
        hook.remove()
    return outputs


@pytest.mark.parametrize("autocast", [False, True])
def test_shared_masks_give_projections_of_one_input_one_mask(tiny_llama, autocast):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_llama, LoraConfig(target_modules="all-linear", r=4, lora_dropout=0.3))
    use_cpu_dropout(model, shared_masks=True)
    outputs = _dropout_outputs(model, autocast)
    layer = next(name for name in outputs if name.endswith("q_proj"))[: -len("self_attn.q_proj")]
    parts = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
             "mlp.up_proj", "mlp.down_proj")
    out = {part.split(".")[-1]: outputs[layer + part] for part in parts}
    assert out["q_proj"] is out["k_proj"] is out["v_proj"]  # one mask for the attention's input
    assert out["gate_proj"] is out["up_proj"]  # one for the MLP's
    distinct = [out[name] for name in ("q_proj", "o_proj", "gate_proj", "down_proj")]
    assert len({id(tensor) for tensor in distinct}) == 4  # other inputs draw their own


def test_without_shared_masks_every_projection_draws_its_own(tiny_llama):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_llama, LoraConfig(target_modules="all-linear", r=4, lora_dropout=0.3))
    use_cpu_dropout(model)
    outputs = _dropout_outputs(model, autocast=False)
    q, k = (outputs[next(name for name in outputs if name.endswith(part))] for part in ("q_proj", "k_proj"))
    assert q is not k and not torch.equal(q, k)


def test_a_shared_mask_is_not_reused_for_a_changed_or_another_input():
    shared = LatestResult()
    first, second = CpuDropout(0.5, shared=shared).train(), CpuDropout(0.5, shared=shared).train()
    x = torch.ones(40, 40)
    out = first(x)
    assert second(x) is out
    x.mul_(2)  # changed in place: a new mask
    assert second(x) is not out
    assert second(torch.ones(40, 40)) is not first(torch.ones(40, 40))  # equal values, another tensor
    latest = shared.entry
    assert torch.equal(first.eval()(x), x) and shared.entry is latest  # eval: the identity, nothing recorded


def test_unscaled_forward_owes_the_scale_the_scaled_one_applies():
    dropout, x = CpuDropout(0.2).train(), torch.randn(64, 40, requires_grad=True)
    torch.manual_seed(3)
    scaled = dropout(x)
    torch.manual_seed(3)
    unscaled, scale = dropout.forward_unscaled(x)
    assert scale == pytest.approx(1 / (1 - 0.2), abs=1e-4)
    assert torch.equal(unscaled != 0, scaled != 0)  # the same mask
    assert torch.allclose(unscaled * scale, scaled)
    unscaled.sum().backward()
    assert torch.equal(x.grad, (unscaled != 0).float())  # the backward owes the same scale
    assert dropout.eval().forward_unscaled(x) == (x, 1.0)


def test_shared_masks_keep_scaled_and_unscaled_outputs_apart():
    shared, x = LatestResult(), torch.randn(16, 8)
    first, second = CpuDropout(0.3, shared=shared).train(), CpuDropout(0.3, shared=shared).train()
    unscaled, scale = first.forward_unscaled(x)
    assert second.forward_unscaled(x)[0] is unscaled  # q's mask serves k
    assert not torch.equal(second(x), unscaled)  # a scaled request is not served the unscaled tensor


def test_keep_mask_is_the_mask_the_dropout_applies():
    dropout, x = CpuDropout(0.3).train(), torch.randn(32, 24)
    torch.manual_seed(4)
    unscaled, scale = dropout.forward_unscaled(x)
    torch.manual_seed(4)
    keep, keep_scale = dropout.keep_mask(x)
    assert keep_scale == scale and torch.equal(torch.where(keep, x, 0), unscaled)
    assert dropout.eval().keep_mask(x) is None and CpuDropout(0.0).train().keep_mask(x) is None
