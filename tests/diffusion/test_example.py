"""examples/sd-dreambooth-lora: its images are the ones draw_subject.py draws, and (slow) its config trains."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

EXAMPLE = Path(__file__).parents[2] / "examples" / "sd-dreambooth-lora"


def test_the_subject_images_are_the_ones_the_script_draws():
    spec = importlib.util.spec_from_file_location("draw_subject", EXAMPLE / "draw_subject.py")
    draw_subject = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(draw_subject)

    kinds = [*draw_subject.GROUNDS, *draw_subject.GROUNDS]
    assert sorted(p.name for p in (EXAMPLE / "images").iterdir()) == [f"ball-{i:02d}.png" for i in range(len(kinds))]
    for seed in (0, 5):
        drawn = np.asarray(draw_subject.draw(seed=seed, kind=kinds[seed]))
        np.testing.assert_array_equal(drawn, np.asarray(Image.open(EXAMPLE / "images" / f"ball-{seed:02d}.png")))


@pytest.mark.slow
def test_the_example_trains_on_a_fresh_machine(tmp_path, isolated_cache):
    import json

    from tunesmith.config.load import load_config
    from tunesmith.run import run

    # The same config with fewer steps and class images: the tiny pipeline is built into the empty cache.
    config = load_config(EXAMPLE / "config.yaml", {
        "output_dir": str(tmp_path / "run"), "training.max_steps": 4, "training.eval_every": 2,
        "data.num_class_images": 2, "data.class_inference_steps": 2, "validation.every": 2, "validation.steps": 2,
    })
    result = run(config)

    report = json.loads((result.run_dir / "report.json").read_text())
    assert report["steps"] == 4 and report["train_images"] == 8 and report["class_images"] == 2
    assert report["grids"] == ["samples/step-0000002.png", "samples/step-0000004.png", "samples/final.png"]
    assert Image.open(result.run_dir / "samples" / "final.png").size == (4 * 64, 2 * 64)  # 4 seeds x 2 prompts
    assert (result.output / "pytorch_lora_weights.safetensors").is_file()
    assert (isolated_cache / "models" / "tunesmith-tiny-sd" / "model_index.json").is_file()
