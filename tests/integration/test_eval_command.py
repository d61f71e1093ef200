"""`tunesmith eval` end to end on a tiny trained run: three rows on the same examples, every report file, failures
that load as training data, and `tunesmith compare` on the result."""

import json
import sys

import pytest

from tests.conftest import CHAT_FACTS, write_chat_jsonl
from tunesmith.config.eval_metrics import ComparisonSettings, FormatMetric, TaskMetrics
from tunesmith.data.formats import load_examples
from tunesmith.evaluate.compare_runs import comparison_table, load_scored_runs
from tunesmith.evaluate.run_eval import evaluate_run
from tunesmith.run import run

ROWS = ["zero_shot", "few_shot", "tuned"]


@pytest.fixture(scope="module")
def untied_model_dir(tmp_path_factory, tokenizer):
    """A tiny Llama with its own random head: tied to the embeddings it only repeats the prompt's last token, so
    every answer would be empty and the rows could not differ."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    folder = tmp_path_factory.mktemp("untied-llama")
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, untied_model_dir):
    """One tiny LoRA run, evaluated once on 12 test examples with a format metric (module-scoped: it trains)."""
    from tunesmith.config.load import build_config

    folder = tmp_path_factory.mktemp("eval-run")
    train = folder / "train.jsonl"
    # Train questions are worded apart from the test ones, so the few-shot baseline has examples to draw from.
    train.write_text("".join(
        json.dumps({"messages": [{"role": "system", "content": "You are Sous."},
                                 {"role": "user", "content": f"{question} (asked {i} times)"},
                                 {"role": "assistant", "content": answer}]}) + "\n"
        for i in range(6) for question, answer in CHAT_FACTS))
    test = write_chat_jsonl(folder / "test.jsonl", 12, offset=1)
    config = build_config({
        "model": str(untied_model_dir),
        "data": {"train": str(train), "test": str(test), "max_length": 128},
        "method": {"name": "lora", "r": 4, "alpha": 8},
        "training": {"max_steps": 6, "batch_size": 4, "precision": "fp32", "log_every": 1, "eval_every": 2,
                     "save_every": 6, "learning_rate": 1e-2},
        "eval": {"max_new_tokens": 6, "metrics": ["perplexity", "bleu", "chrf", "rouge_l", "exact_match"]},
        "output_dir": str(folder / "run"),
    })
    summary = run(config)
    failures = folder / "failures.jsonl"
    result = evaluate_run(
        summary.run_dir, export_failures_to=failures,
        task=TaskMetrics(format=FormatMetric(patterns=[r"\AShort answer: ", r"\nChef's note: "])),
        comparison=ComparisonSettings(few_shot_k=2, bootstrap_resamples=200),
    )
    return summary.run_dir, result, failures


@pytest.mark.slow
def test_three_rows_on_the_same_examples_and_every_file(evaluated):
    run_dir, result, _ = evaluated
    out = run_dir / "eval"
    assert sorted(p.name for p in out.iterdir()) == [
        "examples.jsonl", "loss_curves.png", "report.html", "report.json", "report.md"]
    report = json.loads((out / "report.json").read_text())
    assert list(report["rows"]) == ROWS
    assert {row["n"] for row in report["rows"].values()} == {12}
    assert set(report["rows"]["tuned"]) == {"n", "perplexity", "bleu", "chrf", "rouge_l", "exact_match", "format"}
    assert report["headline"] == "format"
    assert report["test_set"]["n"] == 12 and len(report["test_set"]["fingerprint"]) == 16
    assert len(report["few_shot"]["shots"]) == 2
    # Every metric against both baselines, and one verdict per baseline, from the same intervals.
    assert len(report["differences"]) == 2 * 6
    assert len(report["verdicts"]) == 2 and all("few-shot prompting (k=2)" in v or "zero-shot" in v
                                                for v in report["verdicts"])
    assert report["fit"]["kind"] in {"overfitting", "unstable", "underfitting", "converged"}
    assert report["forgetting"]["base_perplexity"] > 1

    lines = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == list(range(12))
    assert all(set(line) == {"id", "prompt", "reference", "answers", "scores"} for line in lines)
    assert all(list(line["answers"]) == ROWS and list(line["scores"]) == ROWS for line in lines)
    assert lines[0]["prompt"] == "How do I cook rice?"
    assert lines[0]["reference"].startswith("Short answer: simmer 18 minutes.")
    assert set(lines[0]["scores"]["tuned"]) == set(report["rows"]["tuned"]) - {"n"}

    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert html.count("<tr>") >= 10
    markdown = (out / "report.md").read_text()
    assert "## Verdict" in markdown and "![training and validation loss](loss_curves.png)" in markdown


@pytest.mark.slow
def test_baseline_rows_are_the_base_model(evaluated, untied_model_dir, tokenizer):
    """The adapter is switched off for the baselines: zero-shot equals the untouched base model, answers and losses;
    few-shot prompts the same model differently; tuned differs."""
    from transformers import AutoModelForCausalLM

    from tunesmith.evaluate.generate import generate_texts
    from tunesmith.evaluate.losses import token_losses
    from tunesmith.evaluate.rows import cases

    run_dir, result, _ = evaluated
    rows = result.comparison.rows
    examples, _ = load_examples(run_dir.parent / "test.jsonl")
    base = AutoModelForCausalLM.from_pretrained(untied_model_dir)
    test_cases = cases(examples, tokenizer, 2048)
    answers = generate_texts(base, tokenizer, [case.prompt for case in test_cases], 6)
    assert all(answers)
    assert rows["zero_shot"].answers == answers
    losses = token_losses(base, [case.encoded for case in test_cases])
    assert rows["zero_shot"].stats["perplexity"] == pytest.approx(losses, rel=1e-5)
    assert rows["few_shot"].answers != answers
    assert rows["tuned"].stats["perplexity"][:, 0].sum() < losses[:, 0].sum()
    # The same reference tokens are scored in every row, the few-shot prompt's example answers are not.
    assert (rows["few_shot"].stats["perplexity"][:, 1] == losses[:, 1]).all()


@pytest.mark.slow
def test_failures_file_is_valid_training_data(evaluated):
    _, result, failures = evaluated
    examples, fmt = load_examples(failures)
    assert fmt == "chat"
    assert len(examples) == result.failures_written
    tuned_format = result.comparison.rows["tuned"].per_example(result.comparison.metrics)
    assert result.failures_written == sum(scores["format"] < 100 for scores in tuned_format)
    for line in failures.read_text().splitlines():
        record = json.loads(line)
        assert record["messages"][-1]["content"].startswith("Short answer:")  # the reference, ready to keep
        assert record["review"]["failed_on"] == "format"


@pytest.mark.slow
def test_compare_lines_up_runs_on_the_same_test_set(evaluated):
    from rich.console import Console

    run_dir, _, _ = evaluated
    console = Console(width=200, record=True)
    console.print(comparison_table(load_scored_runs([run_dir, run_dir / "eval" / "report.json"])))
    text = console.export_text()
    assert "fingerprint" in text and "zero_shot" in text and "few_shot" in text and "lora" in text


def test_unknown_baseline_is_a_one_line_error(monkeypatch, capsys, tmp_path):
    from tunesmith.cli.main import main

    monkeypatch.setattr(sys, "argv", ["tunesmith", "eval", str(tmp_path), "--baselines", "zero_shot,scrach"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    error = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "'scrach'" in error and "zero_shot, few_shot, scratch" in error and "Traceback" not in error
    assert len(error.strip().splitlines()) == 1


@pytest.mark.slow
def test_eval_and_compare_commands(evaluated, tmp_path, monkeypatch, capsys):
    import shutil

    from tunesmith.cli.main import main

    run_dir, _, _ = evaluated
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (tmp_path / "general.txt").write_text("The weather was mild.\n\nA bus came at noon.\n")
    monkeypatch.setattr(sys, "argv", ["tunesmith", "eval", str(copy), "--baselines", "zero_shot",
                                      "--general", str(tmp_path / "general.txt"), "--set", "eval.max_new_tokens=3",
                                      "--set", "eval.comparison.bootstrap_resamples=150"])
    main()
    report = json.loads((copy / "eval" / "report.json").read_text())
    assert list(report["rows"]) == ["zero_shot", "tuned"] and "few_shot" not in report
    assert report["meta"]["max_new_tokens"] == 3 and report["meta"]["bootstrap_resamples"] == 150
    assert report["forgetting"]["source"] == str(tmp_path / "general.txt")
    assert "report:" in capsys.readouterr().out

    monkeypatch.setattr(sys, "argv", ["tunesmith", "compare", str(run_dir), str(copy)])
    monkeypatch.setenv("COLUMNS", "200")  # rich would shorten cells to fit the 80 columns of a pipe
    main()
    table = capsys.readouterr().out
    assert table.count("zero_shot") == 1 and "run" in table and "copy" in table


@pytest.mark.slow
def test_full_fine_tuning_loads_the_base_beside_the_tuned_model(tiny_run_config):
    summary = run(tiny_run_config({"name": "full"}, training={"learning_rate": 3e-3},
                                  eval={"metrics": ["perplexity", "exact_match"]}))
    assert (summary.run_dir / "model").is_dir()
    result = evaluate_run(summary.run_dir, baselines=("zero_shot",),
                          comparison=ComparisonSettings(bootstrap_resamples=100))
    rows = result.document["rows"]
    # The same base model and reference tokens as the end-of-training report, and training changed the weights.
    assert rows["zero_shot"]["perplexity"] == pytest.approx(summary.scores["base"]["perplexity"], rel=1e-4)
    assert rows["tuned"]["perplexity"] == pytest.approx(summary.scores["tuned"]["perplexity"], rel=1e-4)
    assert rows["tuned"]["perplexity"] < rows["zero_shot"]["perplexity"]
