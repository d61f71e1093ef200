"""`training.batch_size: auto` and `training.learning_rate: auto` on the tiny language model.

The learning-rate test runs the language-model task (full fine-tuning with attention dropout) through the loop: choosing the rate leaves
no trace, so the run equals a run given the chosen rate. The batch-size test goes through run(): the model's loss
runs out of memory above two examples per micro-batch, and the run trains the same steps as one that had room.
"""

import pytest
import torch

from tunesmith import events as ev
from tunesmith.config.training import TrainingConfig
from tunesmith.run import run
from tunesmith.train.distributed import reset_accelerate_state
from tunesmith.train.loop import CancelToken, TrainingInterrupted, train
from tunesmith.train.metrics_log import read_metrics

CPU_OOM = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 1073741824 bytes. Error code 12"


def full_task(model_dir, pad_token_id):
    """Every weight of the tiny Llama trains, with attention dropout (a random tiny model learns too little through
    an adapter in a few tens of steps for the curve to say anything)."""
    from transformers import LlamaForCausalLM

    from tunesmith.tasks.causal_lm.task import CausalLMTask

    torch.manual_seed(0)
    model = LlamaForCausalLM.from_pretrained(model_dir, attention_dropout=0.1, attn_implementation="eager")
    generator = torch.Generator().manual_seed(1)
    # A few recurring token patterns, so there is something for the adapter to learn quickly.
    patterns = [torch.randint(100, 400, (12,), generator=generator).tolist() for _ in range(4)]
    rows = [patterns[i % 4] * (1 + i % 2) for i in range(16)]
    return CausalLMTask(model, [{"input_ids": r, "labels": r} for r in rows], [], pad_token_id)


def cpu_accelerator():
    from accelerate import Accelerator

    reset_accelerate_state()
    return Accelerator(cpu=True)


def lm_config(rate):
    cfg = TrainingConfig(learning_rate=rate, max_steps=6, batch_size=4, precision="fp32", log_every=1,
                         eval_every=100, save_every=100, lr_scheduler="cosine", warmup_steps=1, train_on="all")
    cfg.use_method_learning_rate(1e-2)  # the centre of the range test: a random tiny model takes high rates
    return cfg


@pytest.mark.slow  # two runs of a fully trained tiny model, each with its range test
def test_learning_rate_auto_on_a_language_model_equals_the_chosen_rate(tiny_model_dir, tokenizer, tmp_path):
    auto_task, seen = full_task(tiny_model_dir, tokenizer.pad_token_id), []
    result = train(auto_task, lm_config("auto"), tmp_path / "auto", cpu_accelerator(),
                   events=ev.EventStream([seen.append]))
    chosen = next(e for e in seen if isinstance(e, ev.LearningRateChosen))
    assert not chosen.fallback, chosen.reason
    assert 1e-4 < chosen.rate < 1.0 and result.learning_rate == chosen.rate

    explicit_task, explicit = full_task(tiny_model_dir, tokenizer.pad_token_id), []
    train(explicit_task, lm_config(chosen.rate), tmp_path / "explicit", cpu_accelerator(),
          events=ev.EventStream([explicit.append]))
    steps = lambda events: [(e.step, e.loss, e.learning_rate) for e in events if isinstance(e, ev.Step)]  # noqa: E731
    assert steps(seen) == steps(explicit)
    trained = {n: p for n, p in auto_task.model.named_parameters() if p.requires_grad}
    for name, p in explicit_task.model.named_parameters():
        if p.requires_grad:
            assert torch.equal(trained[name], p), name


def out_of_memory_above(rows, refused):
    """The language-model loss on a device with room for `rows` examples per micro-batch."""
    from tunesmith.tasks.causal_lm import task

    original = task.causal_lm_loss

    def limited(model, batch, *args, **kwargs):
        if torch.is_grad_enabled() and batch["input_ids"].shape[0] > rows:
            refused.append(batch["input_ids"].shape[0])
            raise RuntimeError(CPU_OOM)
        return original(model, batch, *args, **kwargs)

    return limited


@pytest.mark.slow  # four runs of the tiny model
def test_batch_size_auto_trains_the_same_steps_after_running_out_of_memory(tiny_run_config, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    def make(name, batch_size):
        return tiny_run_config({"name": "lora", "r": 4, "alpha": 8, "dropout": 0.0},  # no masks to cut differently
                               data={"validation_split": 0.0},  # 24 training examples: 3 batches of 8
                               training={"batch_size": batch_size, "gradient_accumulation": 1, "max_steps": 6},
                               eval={"compare_base": False, "metrics": ["perplexity"]},
                               output_dir=str(tmp_path / name))

    roomy = run(make("roomy", 8))
    refused: list[int] = []
    monkeypatch.setattr("tunesmith.tasks.causal_lm.task.causal_lm_loss", out_of_memory_above(2, refused))
    seen = []
    cramped = run(make("cramped", "auto"), on_event=seen.append)
    cuts = [(e.step, e.micro_batch, e.gradient_accumulation) for e in seen if isinstance(e, ev.BatchSizeReduced)]
    assert cuts == [(1, 4, 2), (1, 2, 4)] and refused == [8, 4]

    train_lines = lambda r: [(x["step"], x["lr"], x["loss"]) for x in read_metrics(r.run_dir / "metrics.jsonl")  # noqa: E731
                             if x["type"] == "train"]
    assert [(s, lr) for s, lr, _ in train_lines(cramped)] == [(s, lr) for s, lr, _ in train_lines(roomy)]
    assert [loss for *_, loss in train_lines(cramped)] == pytest.approx([loss for *_, loss in train_lines(roomy)],
                                                                       rel=1e-5)
    a, b = (load_file(r.output / "adapter_model.safetensors") for r in (roomy, cramped))
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-5, rtol=1e-4, msg=name)

    # Stopped after step 2 and resumed: it starts cut in four, as the checkpoint says, and never tries larger.
    refused.clear()
    token, stopped = CancelToken(), make("stopped", "auto")

    def stop_after_two(event):
        if isinstance(event, ev.Step) and event.step == 2:
            token.cancel()

    with pytest.raises(TrainingInterrupted):
        run(stopped, cancel=token, on_event=stop_after_two)
    refused.clear()
    resumed_events = []
    resumed = run(stopped, resume=True, on_event=resumed_events.append)
    assert refused == []
    assert [(e.step, e.micro_batch) for e in resumed_events if isinstance(e, ev.BatchSizeReduced)] == [(3, 2)]
    c = load_file(resumed.output / "adapter_model.safetensors")
    for name in b:
        torch.testing.assert_close(c[name], b[name], atol=1e-6, rtol=0, msg=name)


@pytest.mark.slow  # one tiny run (about 6 s here)
def test_batch_size_auto_that_never_fits_quotes_the_runs_memory_plan(tiny_run_config, tmp_path, monkeypatch):
    """Even one example per micro-batch runs out of memory: run() ends with one message holding what was tried, the
    memory plan the run printed and the language model's advice, and writes no adapter."""
    import re

    from tunesmith.errors import TunesmithError

    refused: list[int] = []
    monkeypatch.setattr("tunesmith.tasks.causal_lm.task.causal_lm_loss", out_of_memory_above(0, refused))
    config = tiny_run_config(data={"validation_split": 0.0}, training={"batch_size": "auto", "max_steps": 2},
                             eval={"compare_base": False, "metrics": ["perplexity"]})
    seen = []
    with pytest.raises(TunesmithError) as info:
        run(config, on_event=seen.append)
    message = str(info.value)
    assert message.startswith("training.batch_size: auto: step 1 runs out of memory even with one example per "
                              "micro-batch (tried micro-batch x accumulation 8 x 1, 4 x 2, 2 x 4, 1 x 8; last error: "
                              "DefaultCPUAllocator: can't allocate memory"), message
    quoted = re.search(r"; memory plan: ~([\d.]+) GiB \(weights [\d.]+ \+ gradients [\d.]+ \+ optimizer [\d.]+\) \+ "
                       r"activations ~([\d.]+) GiB; lower data.max_length, turn on training.gradient_checkpointing",
                       message)
    assert quoted, message
    plan = next(e.plan for e in seen if isinstance(e, ev.Planned))  # the plan the run printed, in GiB to 3 places
    assert [float(x) for x in quoted.groups()] == pytest.approx([plan["memory_gib"], plan["activations_gib"]],
                                                               abs=0.006)
    assert "\n" not in message and refused == [8, 4, 2, 1]
    assert [e.message for e in seen if isinstance(e, ev.RunFailed)] == [message]
    assert not (tmp_path / "run" / "adapter").exists()
