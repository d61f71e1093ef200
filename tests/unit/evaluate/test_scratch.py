"""The from-scratch baseline's parts: its config, its learning rate, the training a run folder records, the case study
section, and how the report shows it and the human review."""

import json

import numpy as np
import pytest

from tunesmith.config.eval_metrics import ComparisonSettings
from tunesmith.config.load import build_config
from tunesmith.errors import TunesmithError
from tunesmith.evaluate.comparison import compare_rows
from tunesmith.evaluate.eval_report import build_document, example_rows, markdown, write_examples
from tunesmith.evaluate.metrics import PERPLEXITY, TEXT_METRICS
from tunesmith.evaluate.report_html import html_report
from tunesmith.evaluate.review_section import review_section
from tunesmith.evaluate.rows import Row
from tunesmith.evaluate.scratch import case_study, scratch_config, scratch_learning_rate
from tunesmith.evaluate.training_budget import Training, read_training
from tunesmith.review.votes import VOTES_FILE, VoteStore, new_vote

N = 12
QUESTIONS = [f"question {i}?" for i in range(N)]
REFERENCES = [f"Answer: {i}" for i in range(N)]
METRICS = [PERPLEXITY, TEXT_METRICS["exact_match"]]


@pytest.mark.parametrize(("parameters", "rate"), [(3_000_000, 6e-4), (135e6, 6e-4), (360e6, 3e-4),
                                                  (1.7e9, 2e-4), (7e9, 1.2e-4), (None, 6e-4)])
def test_learning_rate_is_gpt3s_for_the_nearest_size(parameters, rate):
    chosen, why = scratch_learning_rate(parameters)
    assert chosen == rate
    assert "Brown et al. 2020" in why and f"{rate:g}" in why


def run_config(tmp_path, **sections):
    train = tmp_path / "train.jsonl"
    train.write_text('{"prompt": "a", "completion": "b"}\n')
    return build_config({"model": "some/model", "data": {"train": str(train), "max_length": 64},
                         "method": {"name": "lora", "r": 4},
                         "training": {"epochs": 3, "batch_size": 2, "gradient_accumulation": 2, "seed": 7},
                         "eval": {"metrics": ["perplexity", "exact_match"], "max_new_tokens": 9, "max_examples": 5},
                         "output_dir": str(tmp_path / "run"), **sections})


def test_scratch_config_is_the_runs_twin_with_random_weights_and_the_same_steps(tmp_path):
    config = run_config(tmp_path)
    scratch = scratch_config(config, Training(steps=42, tokens=9000, seconds=3.0), tmp_path / "run", 6e-4)
    assert (scratch.model_init, scratch.method.name, scratch.model) == ("scratch", "full", "some/model")
    assert scratch.output_dir == str(tmp_path / "run" / "eval" / "scratch")
    assert scratch.training.max_steps == 42 and scratch.training.learning_rate == 6e-4
    assert scratch.data == config.data
    same = ("batch_size", "gradient_accumulation", "seed", "lr_scheduler", "warmup_ratio", "train_on", "packing")
    assert all(getattr(scratch.training, key) == getattr(config.training, key) for key in same)
    # It scores itself by perplexity only and never scores a base model: `tunesmith eval` scores it in full.
    assert scratch.eval.metrics == ["perplexity"] and not scratch.eval.compare_base
    assert scratch.eval.max_examples == 5


def test_pipelines_have_no_single_budget_to_match(tmp_path):
    config = run_config(tmp_path, init_adapter=str(tmp_path / "adapter"))
    with pytest.raises(TunesmithError, match="a run with init_adapter, whose training budget spans several runs"):
        scratch_config(config, Training(1, 1, None), tmp_path / "run", 6e-4)


def write_run(folder, meta=None, train_lines=()):
    folder.mkdir(parents=True, exist_ok=True)
    if meta is not None:
        (folder / "report.json").write_text(json.dumps({"tuned": {}, "meta": meta}))
    lines = [{"type": "train", **line} for line in train_lines] + [{"type": "eval", "step": 9, "val_loss": 1.0}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def test_training_reads_the_report_and_the_steps_own_seconds(tmp_path):
    run_dir = write_run(tmp_path / "a", {"train_steps": 9, "train_tokens": 1800, "train_seconds": 50.0},
                        [{"step": 5, "tokens_seen": 1000, "elapsed": 2.5}, {"step": 9, "tokens_seen": 1800,
                                                                             "elapsed": 4.5}])
    assert read_training(run_dir) == Training(9, 1800, 4.5)  # 50 s included evaluation and saving
    only_metrics = write_run(tmp_path / "b", None, [{"step": 3, "tokens_seen": 300, "elapsed": 1.0}])
    assert read_training(only_metrics) == Training(3, 300, 1.0)
    with pytest.raises(TunesmithError, match="no training recorded"):
        read_training(write_run(tmp_path / "c"))


def test_case_study_compares_budgets_within_one_batch_and_counts_flops():
    tuned, given = Training(10, 2000, 8.0), {"run_dir": "r/eval/scratch", "learning_rate": 6e-4,
                                            "learning_rate_reason": "why", "steps": 10, "reused": False}
    section = case_study(tuned, 1000, Training(10, 2150, 6.0), 900, given)
    assert section["same_budget"] and section["tokens_per_step"] == 200
    assert section["training"]["tuned"]["flops"] == 6 * 1000 * 2000
    assert section["training"]["scratch"] == {"steps": 10, "tokens": 2150, "seconds": 6.0, "parameters": 900,
                                              "flops": 6 * 900 * 2150}
    assert "the same budget (2,000 training tokens)" in section["line"] and "not included" in section["line"]
    apart = case_study(tuned, 1000, Training(10, 2201, 6.0), 900, given)
    assert not apart["same_budget"] and "budgets differ by more than one batch" in apart["line"]


def row(name, answers, loss):
    return Row(name, answers, {"perplexity": np.array([[loss * 5, 5.0]] * N),
                               "exact_match": TEXT_METRICS["exact_match"].statistics(answers, REFERENCES)})


@pytest.fixture
def comparison():
    rows = {"zero_shot": row("zero_shot", [f"It is {i}." for i in range(N)], 2.0),
            "scratch": row("scratch", ["Answer: 1"] * N, 3.0),
            "tuned": row("tuned", REFERENCES[:9] + ["no"] * 3, 1.0)}
    return compare_rows(rows, METRICS, ComparisonSettings(bootstrap_resamples=200))


def test_report_shows_the_case_study_side_by_side(comparison):
    section = case_study(Training(10, 2000, 8.0), 1000, Training(10, 2000, 6.5), 900,
                         {"run_dir": "r/eval/scratch", "learning_rate": 6e-4, "learning_rate_reason": "GPT-3's rate",
                          "steps": 10, "reused": False})
    document = build_document(comparison, QUESTIONS, REFERENCES, {"model": "tiny", "method": "lora"},
                              {"scratch": section})
    assert list(document["rows"]) == ["zero_shot", "scratch", "tuned"]
    assert document["verdicts"][1].startswith("fine-tuning beats the same architecture trained from scratch by "
                                              "+66.7 exact match")
    assert document["samples"][0]["scratch"] == "Answer: 1"
    text = markdown(document)
    assert "| **tuned** | 75.0 | 2.72 | 8.0 s | 2,000 | 1,000 | 1.20e+07 |" in text
    assert "| **scratch** | 8.3 | 20.09 | 6.5 s | 2,000 | 900 | 1.08e+07 |" in text
    assert text.index("## Verdict") < text.index("- fine-tuning vs training from scratch on the same budget")
    assert "GPT-3's rate" in text
    page = html_report(document, {})
    assert "<h2>Fine-tuning vs training from scratch</h2>" in page and "<td>1.08e+07</td>" in page


def test_votes_join_the_report_with_their_tally(comparison, tmp_path):
    assert review_section(tmp_path) is None  # nobody voted
    write_examples(tmp_path / "eval", example_rows(comparison, QUESTIONS, REFERENCES))
    from tunesmith.review.items import read_run_answers

    items = read_run_answers(tmp_path).compared_with("zero_shot").items
    store = VoteStore(tmp_path / VOTES_FILE)
    for item, (reviewer, winner) in zip(items, [("Ana", "tuned"), ("Ana", "tuned"), ("Ben", "tie"), ("Ben", "tuned")]):
        store.append(new_vote(against="zero_shot", item_id=item.id, fingerprint=item.fingerprint, reviewer=reviewer,
                              choice="A", tuned_side="A", winner=winner, comment=""))
    section = review_section(tmp_path)
    summary = section["summaries"]["zero_shot"]
    assert summary["win_rate"] == pytest.approx(3.5 / 4) and summary["votes"] == 4
    # Wilson(3.5, 4): centre (0.875 + 1.96^2/8) / (1 + 1.96^2/4) = 0.691, half-width 0.296 -> [40%, 99%].
    assert section["lines"] == ["tuned vs zero_shot: tuned preferred on 88% of 4 reviewed items (95% CI 40%-99%; "
                                "ties count half), 4 votes"]

    document = build_document(comparison, QUESTIONS, REFERENCES, {"model": "tiny"}, {"review": section})
    text = markdown(document)
    assert "- tuned vs zero_shot: tuned preferred on 88%" in text  # among the verdicts
    assert "## Human review: tuned vs zero_shot" in text and "| Ana | 2 | 2 | 0 | 0 |" in text
    page = html_report(document, {})
    assert "<h2>Human review: tuned vs zero_shot</h2>" in page and "<td>Ben</td>" in page


def test_votes_against_a_baseline_not_scored_are_named(comparison, tmp_path):
    write_examples(tmp_path / "eval", example_rows(comparison, QUESTIONS, REFERENCES))
    VoteStore(tmp_path / VOTES_FILE).append(new_vote(against="few_shot", item_id=0, fingerprint="x", reviewer="Ana",
                                                     choice="A", tuned_side="A", winner="tuned", comment=""))
    section = review_section(tmp_path)
    assert section["summaries"] == {} and "against few_shot, which this evaluation did not score" in section["lines"][0]
