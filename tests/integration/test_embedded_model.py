"""A handful of real steps on the embedded SmolLM2-135M-Instruct, end to end through the CLI path."""

import json
from pathlib import Path

import pytest

from tunesmith.config.load import load_config
from tunesmith.evaluate.generate import generate_texts
from tunesmith.models.load import load_trained
from tunesmith.run import run

DEMO = Path(__file__).parents[2] / "examples" / "cooking-assistant" / "lora.yaml"


@pytest.mark.slow
def test_demo_config_trains_a_few_steps_and_reports(tmp_path):
    config = load_config(DEMO, [
        "training.max_steps=3", "training.batch_size=2", "eval.max_examples=2", "eval.max_new_tokens=8",
        "eval.batch_size=2", f"output_dir={tmp_path / 'run'}",
    ])
    summary = run(config)
    report = json.loads((summary.run_dir / "report.json").read_text())
    assert report["base"]["n"] == report["tuned"]["n"] == 2
    assert report["meta"]["precision"] in ("bf16", "fp32")
    model, tokenizer = load_trained(summary.run_dir)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "How do I cook rice?"}], tokenize=False,
                                           add_generation_prompt=True)
    assert generate_texts(model, tokenizer, [prompt], max_new_tokens=4)[0].strip()
