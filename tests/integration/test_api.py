"""The Python API and the run's event stream, on the tiny model: what a script, a sweep or the service sees."""

import json
from pathlib import Path

import pytest

import tunesmith
from tunesmith import events as ev
from tunesmith.config.load import build_config, load_config
from tunesmith.provenance import written_by
from tunesmith.train.checkpoint import complete_checkpoints
from tunesmith.train.metrics_log import read_metrics

QUICK_EVAL = {"compare_base": False, "metrics": ["perplexity"]}


def test_a_run_emits_its_phases_in_order(tiny_run_config):
    seen = []
    result = tunesmith.finetune(tiny_run_config(), on_event=seen.append)
    kinds = [e.type for e in seen]
    assert kinds == [
        "run_started", "base_scoring_started", "base_scoring_finished", "plan", "training_started",
        "step", "step", "step", "evaluation", "checkpoint", "step", "step", "step", "checkpoint", "evaluation",
        "scores", "run_finished",
    ]
    by_type = {e.type: e for e in seen}
    assert by_type["plan"].plan["method"] == "lora" and by_type["plan"].plan["trainable"] > 0
    assert by_type["base_scoring_started"].n == 4
    steps = [e for e in seen if isinstance(e, ev.Step)]
    assert [s.step for s in steps] == [1, 2, 3, 4, 5, 6] and {s.unit for s in steps} == {"tokens"}
    assert all(s.total_steps == 6 and s.throughput > 0 and s.eta_s >= 0 for s in steps)
    assert [e.path.name for e in seen if isinstance(e, ev.CheckpointSaved)] == ["step-0000003", "step-0000006"]
    finished = seen[-1]
    assert finished.run_dir == result.run_dir and finished.scores == result.scores == by_type["scores"].scores
    assert json.loads(json.dumps(finished.to_dict()))["type"] == "run_finished"  # JSON-ready
    # metrics.jsonl is one more subscriber of the same stream.
    logged = read_metrics(result.run_dir / "metrics.jsonl")
    assert [r["loss"] for r in logged if r["type"] == "train"] == [s.loss for s in steps]
    assert result.report == result.run_dir / "eval" / "report.md" and result.report.is_file()
    assert (result.run_dir / "report.md").is_file() and (result.run_dir / "eval" / "report.html").is_file()


def test_a_failed_run_emits_its_message(tiny_run_config, tmp_path):
    seen = []
    config = tiny_run_config(data={"train": str(tmp_path / "missing.jsonl")})
    with pytest.raises(tunesmith.TunesmithError, match="data file not found"):
        tunesmith.finetune(config, on_event=seen.append)
    assert seen[-1].type == "run_failed" and "data file not found" in seen[-1].message


def test_load_config_takes_overrides_as_a_mapping(tiny_run_config, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(tiny_run_config().model_dump_json())
    config = tunesmith.load_config(path, overrides={"training.epochs": 2, "method.r": 2})
    assert config.training.epochs == 2 and config.method.r == 2
    with pytest.raises(tunesmith.ConfigError, match="training.epoch: unknown key; did you mean 'training.epochs'"):
        tunesmith.load_config(path, overrides={"training.epoch": 2})


@pytest.mark.slow
def test_every_checkpoint_and_output_says_how_it_was_made(tiny_run_config, tmp_path):
    from tunesmith.export.merge import export_run

    result = tunesmith.finetune(tiny_run_config(eval=QUICK_EVAL))
    folders = [result.run_dir, *complete_checkpoints(result.run_dir), result.output]
    for folder in folders:
        assert written_by(folder / "config.yaml") == tunesmith.__version__, folder
        assert load_config(folder / "config.yaml").method.r == 4
    export_run(result.run_dir, tmp_path / "merged", merge=True)
    assert written_by(tmp_path / "merged" / "config.yaml") == tunesmith.__version__


def test_a_method_of_another_family_is_a_config_error(tiny_run_config, tmp_path):
    pipeline = tmp_path / "sd"
    pipeline.mkdir()
    (pipeline / "model_index.json").write_text("{}")
    with pytest.raises(tunesmith.ConfigError) as info:
        tunesmith.finetune(tiny_run_config(model=str(pipeline), method={"name": "qlora"}))
    assert (f"  method.name: qlora is a language model method, but {pipeline} is a diffusion model; use one of lora, "
            "dreambooth, dreambooth_lora") in str(info.value).splitlines()


def refined(tiny_run_config, **refine):
    raw = tiny_run_config(eval=QUICK_EVAL, training={"max_steps": 2}).model_dump(mode="json")
    raw["refine"] = {"rounds": 2, "stop_when_no_gain": False, **refine}
    raw["data"]["test"] = None
    return build_config(raw)


@pytest.mark.slow
def test_resuming_a_finished_refinement_reuses_its_rounds(tiny_run_config):
    config = refined(tiny_run_config)
    first = tunesmith.finetune(config)
    assert first.val_loss is not None
    again = tunesmith.finetune(config, resume=True)  # used to fail: finished rounds came back without val_loss
    assert again.val_loss == first.val_loss and again.output == first.output


def test_a_refine_metric_that_was_not_scored_is_a_config_error(tiny_run_config):
    with pytest.raises(tunesmith.ConfigError, match="refine.metric: 'bleu' was not scored; add it to eval.metrics"):
        tunesmith.finetune(refined(tiny_run_config, metric="bleu"))


@pytest.mark.slow
def test_tensorboard_is_one_more_subscriber(tiny_run_config):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = tunesmith.finetune(tiny_run_config(eval=QUICK_EVAL, training={"report_to": "tensorboard"}))
    logs = EventAccumulator(str(result.run_dir / "tensorboard"))
    logs.Reload()
    losses = [r["loss"] for r in read_metrics(result.run_dir / "metrics.jsonl") if r["type"] == "train"]
    assert [s.value for s in logs.Scalars("train/loss")] == pytest.approx(losses)
    assert [s.step for s in logs.Scalars("eval/val_loss")] == [3, 6]


def test_a_cancelled_run_is_marked_interrupted_until_it_finishes(tiny_run_config):
    token = tunesmith.CancelToken()

    def cancel_at_two(event):
        if event.type == "step" and event.step == 2:
            token.cancel()

    config = tiny_run_config(eval=QUICK_EVAL, training={"save_every": 100})
    with pytest.raises(tunesmith.TrainingInterrupted, match="stopped at step 2; checkpoint saved"):
        tunesmith.finetune(config, on_event=cancel_at_two, cancel=token)
    run_dir = Path(config.output_dir)
    marker = json.loads((run_dir / "interrupted.json").read_text())
    assert marker["step"] == 2 and "--resume" in marker["message"]
    result = tunesmith.finetune(config, resume=True)
    assert not (run_dir / "interrupted.json").exists() and result.output.is_dir()
