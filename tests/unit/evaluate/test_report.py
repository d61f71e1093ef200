import json

import pytest
from rich.console import Console

from tunesmith.evaluate.report import better, scores_table, write_report

SCORES = {
    "base": {"n": 4, "perplexity": 12.345, "bleu": 10.0, "rouge_l": 20.0, "exact_match": 25.0},
    "tuned": {"n": 4, "perplexity": 8.1, "bleu": 30.25, "rouge_l": 18.0, "exact_match": 25.0},
}
META = {"model": "smollm2-135m-instruct", "method": "lora", "test_file": "data/test.jsonl", "train_seconds": 12.3456}


def _samples(count=4):
    return [
        {"prompt": f"question {i}?", "reference": f"reference {i}", "base": f"base answer {i}", "tuned": f"tuned {i}"}
        for i in range(count)
    ]


@pytest.fixture
def report(tmp_path):
    json_path, md_path = write_report(tmp_path / "run", SCORES, _samples(), META)
    return json_path, md_path


def test_writes_both_files_and_nothing_else(report, tmp_path):
    json_path, md_path = report
    assert (json_path.name, md_path.name) == ("report.json", "report.md")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["report.json", "report.md"]


def test_json_keeps_base_and_tuned_metric_dicts_at_top_level(report):
    document = json.loads(report[0].read_text())
    assert document["base"] == SCORES["base"] and document["tuned"] == SCORES["tuned"]
    assert document["meta"] == META
    assert document["samples"] == _samples()


def test_markdown_has_meta_table_change_row_and_three_samples(report):
    text = report[1].read_text()
    assert "- **method**: lora" in text
    assert "| n | perplexity | bleu | rouge_l | exact_match |" in text
    change = next(line for line in text.splitlines() if line.startswith("| **change**"))
    assert "-4.25 (better)" in change  # perplexity went down
    assert "+20.2 (better)" in change
    assert "-2.0 (worse)" in change
    assert "+0.0 (same)" in change
    assert text.count("### Sample") == 3
    assert "| reference 2 | base answer 2 | tuned 2 |" in text
    assert "reference 3" not in text


def test_only_present_metrics_become_columns(tmp_path):
    scores = {"base": {"n": 2, "bleu": 1.0}, "tuned": {"n": 2, "bleu": 2.0}}
    text = write_report(tmp_path, scores, [], {})[1].read_text()
    assert "| n | bleu |" in text
    assert "perplexity" not in text and "## Samples" not in text


def test_extra_rows_sit_between_base_and_tuned(tmp_path):
    scores = {"tuned": SCORES["tuned"], "few_shot": {"n": 4, "bleu": 15.0}, "base": SCORES["base"]}
    lines = write_report(tmp_path, scores, [], META)[1].read_text().splitlines()
    rows = [line.split("|")[1].strip() for line in lines if line.startswith("| **")]
    assert rows == ["**base**", "**few_shot**", "**tuned**", "**change**"]
    few_shot = next(line for line in lines if line.startswith("| **few_shot**"))
    assert "15.0" in few_shot and "–" in few_shot  # missing perplexity shown as a dash


def test_pipes_newlines_and_html_in_samples_are_escaped(tmp_path):
    sample = {"prompt": "a | b?", "reference": "x | y", "base": "line one\nline two", "tuned": "<b>bold</b>"}
    text = write_report(tmp_path, SCORES, [sample], META)[1].read_text()
    assert "| x \\| y | line one<br>line two | &lt;b&gt;bold&lt;/b&gt; |" in text
    assert "> a \\| b?" in text


def test_rewrite_replaces_the_report_without_leaving_temp_files(tmp_path):
    write_report(tmp_path, SCORES, _samples(), META)
    write_report(tmp_path, {"base": {"n": 1, "bleu": 3.0}, "tuned": {"n": 1, "bleu": 4.0}}, [], META)
    assert json.loads((tmp_path / "report.json").read_text())["tuned"] == {"n": 1, "bleu": 4.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]


@pytest.mark.parametrize(
    ("metric", "base", "tuned", "expected"),
    [("perplexity", 10.0, 8.0, True), ("perplexity", 8.0, 10.0, False), ("bleu", 10.0, 12.0, True),
     ("rouge_l", 12.0, 10.0, False), ("exact_match", 5.0, 5.0, False)],
)
def test_better_knows_the_direction_of_each_metric(metric, base, tuned, expected):
    assert better(metric, base, tuned) is expected


def test_scores_table_renders_rows_numbers_and_verdicts():
    console = Console(width=120, record=True)
    console.print(scores_table(SCORES))
    text = console.export_text()
    for expected in ("perplexity", "exact_match", "12.35", "8.10", "30.2", "-4.25 better", "-2.0 worse", "change"):
        assert expected in text


def test_small_numbers_in_the_meta_keep_their_digits(tmp_path):
    meta = {"learning_rate": 0.0005, "train_seconds": 390.9, "final_val_loss": 1.4894, "steps": 106}
    text = write_report(tmp_path, SCORES, [], meta)[1].read_text()
    assert "- **learning_rate**: 5.00e-04" in text and "- **train_seconds**: 390.90" in text
    assert "- **final_val_loss**: 1.49" in text and "- **steps**: 106" in text
