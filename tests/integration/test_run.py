"""The real loop end to end on the tiny model: loss, checkpoints, resume, report, method scope."""

import json

import pytest
import torch
from safetensors.torch import load_file

from tunesmith.run import run
from tunesmith.train.checkpoint import complete_checkpoints
from tunesmith.train.metrics_log import read_metrics


def train_losses(run_dir):
    return [r["loss"] for r in read_metrics(run_dir / "metrics.jsonl") if r["type"] == "train"]


@pytest.mark.parametrize(
    "method",
    [{"name": "lora", "r": 16, "alpha": 32}, {"name": "full"}, {"name": "freeze", "layers": 1, "train_head": True}],
    ids=["lora", "full", "freeze"],
)
def test_loss_goes_down(tiny_run_config, method):
    config = tiny_run_config(method, training={"max_steps": 12, "learning_rate": 3e-3 if method["name"] != "lora" else 1e-2},
                             eval={"metrics": ["perplexity"]})
    summary = run(config)
    losses = train_losses(summary.run_dir)
    assert len(losses) == 12
    # The random tiny model starts near ln(vocab) ~ 10.8; LoRA cannot touch the (tied) head, so it moves slowest.
    assert losses[-1] < losses[0] - (0.3 if method["name"] == "lora" else 1.0)
    assert summary.scores["tuned"]["perplexity"] < summary.scores["base"]["perplexity"]


def test_report_shape_and_files(tiny_run_config):
    summary = run(tiny_run_config())
    report = json.loads((summary.run_dir / "report.json").read_text())
    for side in ("base", "tuned"):
        assert set(report[side]) == {"perplexity", "bleu", "rouge_l", "exact_match", "n"}
        assert report[side]["n"] == 4
    assert len(report["samples"]) == 3
    assert "| **change** |" in (summary.run_dir / "report.md").read_text()
    assert (summary.run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert (summary.run_dir / "adapter" / "tokenizer.json").is_file()
    assert (summary.run_dir / "config.yaml").is_file()
    evals = [r for r in read_metrics(summary.run_dir / "metrics.jsonl") if r["type"] == "eval"]
    assert [r["step"] for r in evals] == [3, 6]
    assert all(r["val_perplexity"] > 1 for r in evals)


def test_checkpoints_keep_the_last_two(tiny_run_config):
    summary = run(tiny_run_config(training={"max_steps": 8, "save_every": 2}))
    assert [p.name for p in complete_checkpoints(summary.run_dir)] == ["step-0000006", "step-0000008"]


class Crash(Exception):
    pass


def test_resume_equals_uninterrupted(tiny_run_config, tmp_path):
    # LoRA dropout on and two epochs, so RNG state and data position must both be restored exactly.
    method = {"name": "lora", "r": 4, "alpha": 8, "dropout": 0.1}
    training = {"max_steps": 8, "save_every": 3, "gradient_accumulation": 2, "batch_size": 3}
    straight = run(tiny_run_config(method, training=training, output_dir=str(tmp_path / "a"),
                                   eval={"compare_base": False, "metrics": ["perplexity"]}))

    def crash_after_five(state):
        if state.step == 5:
            raise Crash

    interrupted = tiny_run_config(method, training=training, output_dir=str(tmp_path / "b"),
                                  eval={"compare_base": False, "metrics": ["perplexity"]})
    with pytest.raises(Crash):
        run(interrupted, on_step_end=crash_after_five)
    assert complete_checkpoints(tmp_path / "b")[-1].name == "step-0000003"
    resumed = run(interrupted, resume=True)

    a = load_file(straight.output / "adapter_model.safetensors")
    b = load_file(resumed.output / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=0)
    assert train_losses(tmp_path / "a") == pytest.approx(train_losses(tmp_path / "b"), abs=1e-6)


def test_freeze_changes_only_the_last_blocks(tiny_run_config, tiny_model_dir):
    summary = run(tiny_run_config({"name": "freeze", "layers": 1}, eval={"compare_base": False, "metrics": ["perplexity"]}))
    before = load_file(tiny_model_dir / "model.safetensors")
    after = load_file(summary.output / "model.safetensors")
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    last_block = {name for name in before if name.startswith("model.layers.1.")}
    assert changed == last_block


def test_full_changes_every_weight(tiny_run_config, tiny_model_dir):
    summary = run(tiny_run_config({"name": "full"}, eval={"compare_base": False, "metrics": ["perplexity"]}))
    before = load_file(tiny_model_dir / "model.safetensors")
    after = load_file(summary.output / "model.safetensors")
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert unchanged == []


def test_existing_run_is_not_overwritten_silently(tiny_run_config):
    from tunesmith.errors import TunesmithError

    config = tiny_run_config(eval={"compare_base": False, "metrics": ["perplexity"]})
    run(config)
    with pytest.raises(TunesmithError, match="already holds a run; continue it with --resume"):
        run(config)


def test_raw_text_is_continued_pretraining_in_full_blocks(tiny_run_config, tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("\n\n".join(f"Paragraph {i} about sourdough starters and their care." * 3 for i in range(12)))
    config = tiny_run_config(
        data={"train": str(text), "test": None, "max_length": 32, "validation_split": 0.2},
        training={"max_steps": 4, "batch_size": 2},
    )
    summary = run(config)
    report = json.loads((summary.run_dir / "report.json").read_text())
    assert set(report["tuned"]) == {"perplexity", "n"}  # no prompt/answer pairs: perplexity only
    assert report["samples"] == []
    assert train_losses(summary.run_dir)[-1] < train_losses(summary.run_dir)[0]


def test_text_blocks_keep_every_token():
    from tunesmith.data.tokenize import text_blocks

    blocks = text_blocks([{"input_ids": [1, 2, 3, 0], "labels": [1, 2, 3, 0]}, {"input_ids": [4, 5, 0], "labels": [4, 5, 0]}], 3)
    assert [b["input_ids"] for b in blocks] == [[1, 2, 3], [0, 4, 5]]  # a lone last token predicts nothing
    assert all(b["labels"] == b["input_ids"] for b in blocks)


def test_gradient_checkpointing_gives_the_same_training(tiny_run_config, tmp_path):
    quiet = {"compare_base": False, "metrics": ["perplexity"]}
    method = {"name": "lora", "r": 4, "alpha": 8, "dropout": 0.0}
    plain = run(tiny_run_config(method, eval=quiet, output_dir=str(tmp_path / "plain")))
    checkpointed = run(tiny_run_config(method, eval=quiet, output_dir=str(tmp_path / "ckpt"),
                                       training={"gradient_checkpointing": True}))
    assert train_losses(checkpointed.run_dir) == pytest.approx(train_losses(plain.run_dir), abs=1e-5)
