import torch

from tunesmith.data.collate import PaddingCollator
from tunesmith.tasks.causal_lm.activation_memory import (
    PROBE_TOKENS,
    choose_gradient_checkpointing,
    estimate_saved_bytes,
    probe_batch,
    saved_bytes,
)

GIB = 1024**3


def batch(tokenizer, rows: int, length: int) -> dict:
    ids = torch.randint(0, len(tokenizer), (rows, length), generator=torch.Generator().manual_seed(0))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def test_estimate_extrapolates_fixed_and_per_token_parts(tiny_llama, tokenizer):
    # The trainable tied head makes the fused loss keep a fixed [vocab, hidden] gradient; the rest grows per token.
    small, large = saved_bytes(tiny_llama, batch(tokenizer, 1, 32)), saved_bytes(tiny_llama, batch(tokenizer, 4, 32))
    assert large > small > 0
    estimate = estimate_saved_bytes(tiny_llama, batch(tokenizer, 1, 32), 4 * 32)
    assert abs(estimate - large) < 0.1 * (large - small)  # attention scores grow faster than linearly
    tiny_llama.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    assert saved_bytes(tiny_llama, batch(tokenizer, 4, 32)) - small < 0.7 * (large - small)


def test_probe_leaves_the_random_stream_and_the_mode_alone(tiny_llama, tokenizer):
    tiny_llama.eval()
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    saved_bytes(tiny_llama, batch(tokenizer, 1, 16))
    assert torch.equal(torch.rand(3), expected)
    assert not tiny_llama.training


def test_auto_turns_checkpointing_on_only_when_memory_needs_it(tiny_llama, tokenizer):
    probe = batch(tokenizer, 1, 32)
    roomy = choose_gradient_checkpointing("auto", tiny_llama, probe, 1000, GIB, 100 * GIB, allowed=True)
    assert not roomy.enabled and roomy.activation_bytes == round(estimate_saved_bytes(tiny_llama, probe, 1000))
    tight = choose_gradient_checkpointing("auto", tiny_llama, probe, 1000, GIB, int(1.05 * GIB), allowed=True)
    assert tight.enabled and "would not fit" in tight.reason
    refused = choose_gradient_checkpointing("auto", tiny_llama, probe, 1000, GIB, int(1.05 * GIB), allowed=False)
    assert not refused.enabled and "cannot checkpoint" in refused.reason
    assert choose_gradient_checkpointing(True, tiny_llama, probe, 1000, GIB, 100 * GIB, allowed=True).enabled
    assert not choose_gradient_checkpointing(False, tiny_llama, probe, 10**9, GIB, GIB, allowed=True).enabled


def test_probe_batch_is_the_longest_example_cut_short(tokenizer):
    examples = [{"input_ids": [1] * n, "labels": [1] * n, "extra": "x"} for n in (10, PROBE_TOKENS + 50, 30)]
    probe = probe_batch(examples, PaddingCollator(tokenizer.pad_token_id))
    assert probe["input_ids"].shape == (1, PROBE_TOKENS) and probe["labels"].shape == (1, PROBE_TOKENS)


def test_under_trainings_swaps_the_estimate_counts_what_training_keeps(tiny_llama, tokenizer):
    # LoRA layers learn in their first forward which of them share an input and keep it once from then on: the
    # estimate must count the later forwards, as training runs them.
    from peft import LoraConfig, get_peft_model

    from tunesmith.methods.cpu_dropout import use_cpu_dropout
    from tunesmith.methods.lora_folded_scales import lora_scales_folded
    from tunesmith.tasks.causal_lm.gated_mlp import gated_mlp_keeping_less

    model = get_peft_model(tiny_llama, LoraConfig(r=4, target_modules="all-linear", lora_dropout=0.1))
    use_cpu_dropout(model)
    with lora_scales_folded(model), gated_mlp_keeping_less(model):
        first = saved_bytes(model, batch(tokenizer, 4, 32))
        later = saved_bytes(model, batch(tokenizer, 4, 32))
    with lora_scales_folded(model), gated_mlp_keeping_less(model):  # learning afresh
        estimate = estimate_saved_bytes(model, batch(tokenizer, 1, 32), 4 * 32)
    assert first > later  # the learning forward keeps more
    assert abs(estimate - later) < 0.1 * later  # 0.27 with the learning forward counted; attention grows faster
