import pytest
import torch

from tunesmith.data.packing import PackingCollator
from tunesmith.tasks.causal_lm import cpu_attention as attention_module
from tunesmith.tasks.causal_lm.cpu_attention import NAME, cpu_attention


def padded(tokenizer, lengths=(11, 6, 9)):
    generator = torch.Generator().manual_seed(4)
    width = max(lengths)
    input_ids = torch.full((len(lengths), width), tokenizer.pad_token_id)
    attention_mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = torch.randint(0, len(tokenizer), (length,), generator=generator)
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def packed(tokenizer):
    generator = torch.Generator().manual_seed(5)
    examples = [{"input_ids": torch.randint(0, len(tokenizer), (n,), generator=generator).tolist(), "labels": [1] * n}
                for n in (5, 8, 4)]
    batch = PackingCollator(tokenizer.pad_token_id)(examples)
    return {key: batch[key] for key in ("input_ids", "position_ids")}


def unpadded(tokenizer):
    return {"input_ids": padded(tokenizer, (10, 10))["input_ids"]}


def logits_and_grads(model, batch):
    model.zero_grad(set_to_none=True)
    logits = model(**batch, use_cache=False).logits
    mask = batch.get("attention_mask", torch.ones_like(batch["input_ids"]))[..., None]
    (logits * mask).square().mean().backward()
    return logits.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("make_batch", [padded, packed, unpadded])
@pytest.mark.parametrize("max_scores", [attention_module.MAX_SCORES, 0])  # three-op form, then SDPA fallback
def test_same_logits_and_gradients_as_sdpa(tiny_llama, tokenizer, make_batch, max_scores, monkeypatch):
    monkeypatch.setattr(attention_module, "MAX_SCORES", max_scores)
    batch = make_batch(tokenizer)
    tiny_llama.train()
    reference_logits, reference_grads = logits_and_grads(tiny_llama, batch)
    fused_calls = []
    sdpa = attention_module.sdpa_attention_forward
    monkeypatch.setattr(attention_module, "sdpa_attention_forward", lambda *a, **k: fused_calls.append(1) or sdpa(*a, **k))
    with cpu_attention(tiny_llama, torch.device("cpu")) as active:
        assert active and tiny_llama.config._attn_implementation == NAME
        logits, grads = logits_and_grads(tiny_llama, batch)
    assert tiny_llama.config._attn_implementation == "sdpa"
    calls_per_layer = 3 if make_batch is packed else 1  # a packed row is attended example by example
    assert len(fused_calls) == (0 if max_scores else calls_per_layer * tiny_llama.config.num_hidden_layers)
    real = batch.get("attention_mask", torch.ones_like(batch["input_ids"])).bool()
    torch.testing.assert_close(logits[real], reference_logits[real], atol=1e-5, rtol=1e-4)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, reference_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_three_op_form_runs_under_bf16_autocast(tiny_llama, tokenizer):
    batch = padded(tokenizer)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference = tiny_llama(**batch).logits.float()
        with cpu_attention(tiny_llama, torch.device("cpu")):
            logits = tiny_llama(**batch).logits.float()
    real = batch["attention_mask"].bool()
    assert (logits[real] - reference[real]).abs().max() < 0.05 * reference.abs().max()


def test_other_devices_and_implementations_are_left_alone(tiny_llama):
    with cpu_attention(tiny_llama, torch.device("cuda")) as active:
        assert not active and tiny_llama.config._attn_implementation == "sdpa"
    tiny_llama.set_attn_implementation("eager")
    with cpu_attention(tiny_llama, torch.device("cpu")) as active:
        assert not active and tiny_llama.config._attn_implementation == "eager"


class KeptOutputSoftmax(torch.autograd.Function):
    """The softmax the attention used before _MaskedSoftmax: float32, returned in `dtype`, backward from that."""

    @staticmethod
    def forward(ctx, scores, dtype):
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(dtype)
        ctx.save_for_backward(probs)
        ctx.scores_dtype = scores.dtype
        return probs

    @staticmethod
    def backward(ctx, grad_probs):
        (probs,) = ctx.saved_tensors
        probs, grad_probs = probs.float(), grad_probs.float()
        return (probs * (grad_probs - (grad_probs * probs).sum(dim=-1, keepdim=True))).to(ctx.scores_dtype), None


def composed_softmax(scores, mask, scale, dtype):
    """The separate autograd ops _MaskedSoftmax stands for."""
    scores = scores * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min) if mask.dtype == torch.bool else scores + mask
    return KeptOutputSoftmax.apply(scores, dtype)


def attention_mask(kind):
    causal = torch.ones(5, 7, dtype=torch.bool).tril(2)
    if kind == "none":
        return None
    if kind == "float":
        return torch.zeros(5, 7).masked_fill(~causal, -1e4)[None, None]
    keys = torch.tensor([7, 4, 0])[:, None, None, None] > torch.arange(7)  # the third row attends no key at all
    return causal & keys if kind == "bool" else causal


@pytest.mark.parametrize("kind", ["none", "bool", "float", "causal"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("scale", [0.125, 48**-0.5])
def test_masked_softmax_gives_the_separate_ops_values_and_gradients(kind, dtype, scale):
    mask = attention_mask(kind)
    weights = torch.randn(3, 2, 5, 7, generator=torch.Generator().manual_seed(1))
    results = []
    for softmax in (composed_softmax, attention_module._MaskedSoftmax.apply):
        scores = torch.randn(3, 2, 5, 7, generator=torch.Generator().manual_seed(0)).to(dtype).requires_grad_()
        probs = softmax(scores, mask, scale, dtype)
        (probs.float() * weights).sum().backward()
        results.append((probs, scores.grad))
    (probs, grad), (reference_probs, reference_grad) = results[1], results[0]
    assert probs.dtype == dtype and grad.dtype == dtype
    assert torch.equal(probs, reference_probs)
    assert torch.equal(grad, reference_grad)
    if kind == "bool":  # the row attending nothing: uniform probabilities, no gradient
        assert grad[2].abs().sum() == 0 and probs[2].float().std() == 0


def test_masked_softmax_keeps_only_its_output():
    scores = torch.randn(2, 3, 5, 7, dtype=torch.bfloat16, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        probs = attention_module._MaskedSoftmax.apply(scores, attention_mask("causal"), 0.125, torch.bfloat16)
    assert [t.dtype for t in saved] == [torch.bfloat16]  # no float32 copy of the probabilities, no mask
    reference = torch.softmax(scores.float() * 0.125 + torch.where(attention_mask("causal"), 0.0, -1e30), dim=-1)
    torch.testing.assert_close(probs.float(), reference, atol=1e-2, rtol=1e-2)


def test_layers_given_the_same_mask_share_its_additive_form():
    mask = attention_mask("bool")
    first, empty_rows = attention_module._additive(mask, torch.float32)
    assert attention_module._additive(mask, torch.float32)[0] is first and empty_rows
    assert attention_module._additive(attention_mask("causal"), torch.float32)[0] is not first
    assert not attention_module._additive(attention_mask("causal"), torch.float32)[1]
    cpu = torch.device("cpu")
    assert attention_module._causal(5, 7, cpu) is attention_module._causal(5, 7, cpu)  # so its additive form too
