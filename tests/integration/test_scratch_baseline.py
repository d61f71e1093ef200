"""`--baselines scratch`: the run's architecture trained from random weights on the same data and token budget, scored
beside the other rows on the same examples; reused by a second evaluation, continued after a stop; and the human
review's tally joining the report once somebody has voted."""

import json
import shutil

import pytest
import torch

from tests.conftest import write_chat_jsonl
from tunesmith.config.eval_metrics import ComparisonSettings
from tunesmith.config.load import load_config
from tunesmith.evaluate.run_eval import evaluate_run
from tunesmith.evaluate.training_budget import read_training
from tunesmith.run import run
from tunesmith.train.loop import CancelToken, TrainingInterrupted

pytestmark = pytest.mark.slow  # each test trains two tiny models and generates with three
SETTINGS = ComparisonSettings(bootstrap_resamples=100)


def scratch_lines(scratch_dir):
    return [json.loads(line) for line in (scratch_dir / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["type"] == "train"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tokenizer):
    """One tiny LoRA run (module-scoped: it trains) on a Llama with its own random head: tied to the embeddings it
    would answer nothing, and there would be no answers to review."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from tunesmith.config.load import build_config

    folder = tmp_path_factory.mktemp("scratch-baseline")
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )).save_pretrained(folder / "model", safe_serialization=True)
    tokenizer.save_pretrained(folder / "model")
    # Batches of 3 over 22 examples of different lengths: the scratch run must see the very same batches.
    config = build_config({
        "model": str(folder / "model"),
        "data": {"train": str(write_chat_jsonl(folder / "train.jsonl", 24)),
                 "test": str(write_chat_jsonl(folder / "test.jsonl", 4, offset=1)), "max_length": 128},
        "method": {"name": "lora", "r": 4, "alpha": 8},
        "training": {"max_steps": 5, "batch_size": 3, "precision": "fp32", "log_every": 1, "eval_every": 2,
                     "save_every": 2, "learning_rate": 1e-2},
        "eval": {"max_new_tokens": 6, "metrics": ["perplexity", "bleu", "rouge_l", "exact_match"]},
        "output_dir": str(folder / "run"),
    })
    return run(config).run_dir, folder / "model"


@pytest.fixture
def tuned_run(trained, tmp_path):
    """A fresh copy of the trained run for each test."""
    copy = tmp_path / "run"
    shutil.copytree(trained[0], copy)
    return copy


def test_scratch_row_on_the_same_examples_with_the_same_token_budget(tuned_run, trained):
    result = evaluate_run(tuned_run, baselines=("zero_shot", "scratch"), comparison=SETTINGS)
    scratch_dir = tuned_run / "eval" / "scratch"
    report = json.loads((tuned_run / "eval" / "report.json").read_text())

    tuned = json.loads((tuned_run / "report.json").read_text())["meta"]
    lines = scratch_lines(scratch_dir)
    assert lines[-1]["step"] == tuned["train_steps"] == 5
    one_batch = tuned["train_tokens"] / tuned["train_steps"]
    assert abs(lines[-1]["tokens_seen"] - tuned["train_tokens"]) <= one_batch
    config = load_config(scratch_dir / "config.yaml")
    assert (config.model_init, config.method.name, config.training.learning_rate) == ("scratch", "full", 6e-4)
    assert config.data == load_config(tuned_run / "config.yaml").data and config.training.seed == 0

    assert list(report["rows"]) == ["zero_shot", "scratch", "tuned"]
    assert report["rows"]["scratch"]["n"] == report["rows"]["tuned"]["n"] == 4
    assert {d["baseline"] for d in report["differences"]} == {"zero_shot", "scratch"}
    assert any("the same architecture trained from scratch" in v for v in report["verdicts"])
    section = report["scratch"]
    assert section["same_budget"] and not section["reused"]
    spent = section["training"]
    assert spent["scratch"]["tokens"] == lines[-1]["tokens_seen"]
    assert spent["scratch"]["seconds"] == pytest.approx(lines[-1]["elapsed"])
    assert spent["scratch"]["parameters"] == spent["tuned"]["parameters"] - tuned["trainable_params"]  # LoRA's extra
    assert spent["scratch"]["flops"] == 6 * spent["scratch"]["parameters"] * spent["scratch"]["tokens"]
    # The scratch model is the architecture with new random weights, trained: none of the base's weights.
    from transformers import AutoModelForCausalLM

    original = AutoModelForCausalLM.from_pretrained(trained[1]).state_dict()
    scratch = AutoModelForCausalLM.from_pretrained(scratch_dir / "model").state_dict()
    assert original.keys() == scratch.keys()
    assert not torch.equal(original["model.embed_tokens.weight"], scratch["model.embed_tokens.weight"])
    assert result.comparison.rows["scratch"].answers and len(result.comparison.rows["scratch"].answers) == 4

    markdown = (tuned_run / "eval" / "report.md").read_text()
    assert "## Fine-tuning vs training from scratch" in markdown and "pretraining" in markdown
    assert "Fine-tuning vs training from scratch" in (tuned_run / "eval" / "report.html").read_text()


def test_a_stopped_scratch_run_continues_to_the_same_budget_then_is_reused(tuned_run, monkeypatch, capsys):
    import tunesmith.run as run_module

    real_run = run_module.run

    def stopped_after_two_steps(config, **options):
        # Cancelled at the end of step 1, the loop sees it at step 2: checkpoint, then TrainingInterrupted.
        token = CancelToken()
        return real_run(config, cancel=token, on_step_end=lambda state: state.step == 1 and token.cancel(), **options)

    monkeypatch.setattr(run_module, "run", stopped_after_two_steps)
    with pytest.raises(TrainingInterrupted, match="run the same `tunesmith eval` again"):
        evaluate_run(tuned_run, baselines=("scratch",), comparison=SETTINGS)
    scratch_dir = tuned_run / "eval" / "scratch"
    assert scratch_lines(scratch_dir)[-1]["step"] == 2 and (scratch_dir / "interrupted.json").is_file()

    monkeypatch.setattr(run_module, "run", real_run)
    evaluate_run(tuned_run, baselines=("scratch",), comparison=SETTINGS)
    assert [line["step"] for line in scratch_lines(scratch_dir)] == [1, 2, 3, 4, 5]  # continued, not restarted
    assert read_training(scratch_dir).tokens == read_training(tuned_run).tokens
    assert json.loads((tuned_run / "eval" / "report.json").read_text())["scratch"]["reused"] is False

    # Finished now: a third evaluation scores it again without training it again.
    finished = (scratch_dir / "metrics.jsonl").read_text()
    capsys.readouterr()
    evaluate_run(tuned_run, baselines=("scratch",), comparison=SETTINGS)
    assert "reusing" in capsys.readouterr().out
    assert (scratch_dir / "metrics.jsonl").read_text() == finished
    assert json.loads((tuned_run / "eval" / "report.json").read_text())["scratch"]["reused"] is True


def test_votes_put_the_review_tally_in_the_eval_report(tuned_run):
    from tunesmith.review.items import read_run_answers
    from tunesmith.review.votes import VOTES_FILE, VoteStore, new_vote

    evaluate_run(tuned_run, baselines=("zero_shot",), comparison=SETTINGS)
    assert "review" not in json.loads((tuned_run / "eval" / "report.json").read_text())
    items = read_run_answers(tuned_run).compared_with("zero_shot").items
    store = VoteStore(tuned_run / VOTES_FILE)
    for item, (reviewer, winner) in zip(items, [("Ana", "tuned"), ("Ana", "tie"), ("Ben", "baseline")]):
        store.append(new_vote(against="zero_shot", item_id=item.id, fingerprint=item.fingerprint, reviewer=reviewer,
                              choice="A", tuned_side="A", winner=winner, comment=""))

    evaluate_run(tuned_run, baselines=("zero_shot",), comparison=SETTINGS)
    report = json.loads((tuned_run / "eval" / "report.json").read_text())
    summary = report["review"]["summaries"]["zero_shot"]
    assert (summary["votes"], summary["win_rate"]) == (3, pytest.approx(0.5))  # 1 + 1/2 + 0 over 3 items
    assert summary["reviewers"]["Ana"]["votes"] == 2
    assert report["review"]["lines"][0].startswith("tuned vs zero_shot: tuned preferred on 50% of 3 reviewed items")
    assert "## Human review: tuned vs zero_shot" in (tuned_run / "eval" / "report.md").read_text()
    assert "Human review: tuned vs zero_shot" in (tuned_run / "eval" / "report.html").read_text()
