"""`method.shared_dropout_mask`: a run stopped and resumed trains exactly as one never stopped, and the option
changes the training (the masks differ from PEFT's one-per-projection)."""

import pytest
import torch

from tunesmith import events as ev
from tunesmith.run import run
from tunesmith.train.loop import CancelToken, TrainingInterrupted
from tunesmith.train.metrics_log import read_metrics

pytestmark = pytest.mark.slow  # four runs of the tiny model

STOP = 3


def losses(folder) -> list[float]:
    return [r["loss"] for r in read_metrics(folder.run_dir / "metrics.jsonl") if r["type"] == "train"]


def test_shared_masks_resume_exactly_and_change_the_training(tiny_run_config, tmp_path):
    from safetensors.torch import load_file

    def config(name, shared=True):
        return tiny_run_config({"name": "lora", "r": 4, "alpha": 8, "dropout": 0.3, "shared_dropout_mask": shared},
                               training={"max_steps": 6, "save_every": STOP, "eval_every": 100},
                               eval={"compare_base": False, "metrics": ["perplexity"]},
                               output_dir=str(tmp_path / name))

    straight = run(config("straight"))
    token = CancelToken()

    def stop(event):
        if isinstance(event, ev.Step) and event.step == STOP:
            token.cancel()

    with pytest.raises(TrainingInterrupted, match=f"stopped at step {STOP}"):
        run(config("stopped"), cancel=token, on_event=stop)
    resumed = run(config("stopped"), resume=True)
    assert losses(resumed) == pytest.approx(losses(straight), abs=1e-6) and len(losses(straight)) == 6
    a = load_file(straight.output / "adapter_model.safetensors")
    b = load_file(resumed.output / "adapter_model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=0, msg=name)

    unshared = run(config("unshared", shared=False))
    assert losses(unshared)[0] == pytest.approx(losses(straight)[0], abs=0.5)  # the same task and data
    assert losses(unshared) != pytest.approx(losses(straight), abs=1e-6)  # other masks
