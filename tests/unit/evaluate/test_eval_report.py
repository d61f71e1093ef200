import json

import numpy as np
import pytest

from tunesmith.config.eval_metrics import ComparisonSettings, FormatMetric, TaskMetrics
from tunesmith.data.formats import Example, load_examples
from tunesmith.errors import ConfigError
from tunesmith.evaluate.comparison import compare_rows
from tunesmith.evaluate.eval_report import build_document, example_rows, markdown, write_eval_report, write_examples
from tunesmith.evaluate.failures import changes, export_failures, failed
from tunesmith.evaluate.metrics import PERPLEXITY, TEXT_METRICS
from tunesmith.evaluate.report_html import html_report
from tunesmith.evaluate.rows import Row
from tunesmith.evaluate.task_metrics import task_metrics

N = 12
QUESTIONS = [f"question {i}?" for i in range(N)]
REFERENCES = [f"Answer: {i}" for i in range(N)]
FORMAT = task_metrics(TaskMetrics(format=FormatMetric(patterns=[r"\AAnswer: \d+\Z"])))[0]
METRICS = [PERPLEXITY, TEXT_METRICS["exact_match"], FORMAT]


def row(name: str, answers: list[str], loss: float) -> Row:
    stats = {"perplexity": np.array([[loss * 5, 5.0]] * N)}
    stats |= {m.name: m.statistics(answers, REFERENCES) for m in METRICS[1:]}
    return Row(name, answers, stats)


@pytest.fixture
def comparison():
    tuned = [f"Answer: {i}" if i % 4 else f"answer {i}" for i in range(N)]  # 3 of 12 miss the format
    rows = {
        "zero_shot": row("zero_shot", [f"It is {i}." for i in range(N)], 2.0),
        "few_shot": row("few_shot", [f"Answer: {i}" if i < 3 else "no idea" for i in range(N)], 1.5),
        "tuned": row("tuned", tuned, 1.0),
    }
    return compare_rows(rows, METRICS, ComparisonSettings(bootstrap_resamples=200, few_shot_k=2))


def document_of(comparison) -> dict:
    table = changes(comparison, "zero_shot")
    extras = {"test_set": {"name": "test", "n": N, "fingerprint": "0123456789abcdef"},
              "changes_against": "zero_shot", "changes": [{**c, "prompt": QUESTIONS[c["id"]]} for c in table]}
    meta = {"model": "tiny", "method": "lora", "test_set": "test", "bootstrap_resamples": 200}
    return build_document(comparison, QUESTIONS, REFERENCES, meta, extras)


def test_document_rows_differences_and_verdicts(comparison):
    document = document_of(comparison)
    assert list(document["rows"]) == ["zero_shot", "few_shot", "tuned"]
    assert document["rows"]["tuned"]["format"] == pytest.approx(75.0)
    assert document["rows"]["few_shot"]["exact_match"] == pytest.approx(25.0)
    assert document["headline"] == "format"
    assert document["verdicts"][0].startswith("fine-tuning beats the base model zero-shot by +75.0 format, 95% CI")
    assert document["verdicts"][1].startswith("fine-tuning beats few-shot prompting (k=2) by +50.0 format")
    assert len(document["samples"]) == 10
    assert document["samples"][1] == {"id": 1, "prompt": "question 1?", "reference": "Answer: 1",
                                      "zero_shot": "It is 1.", "few_shot": "Answer: 1", "tuned": "Answer: 1"}
    json.dumps(document)  # JSON-ready as is


def test_changes_are_sorted_most_helped_first(comparison):
    table = changes(comparison, "zero_shot")
    assert [c["improvement"] for c in table] == sorted((c["improvement"] for c in table), reverse=True)
    assert {c["id"] for c in table[-3:]} == {0, 4, 8}  # where tuned also missed the format: no help


def test_examples_lines_keep_exactly_the_review_keys(comparison):
    lines = example_rows(comparison, QUESTIONS, REFERENCES)
    assert len(lines) == N
    assert all(set(line) == {"id", "prompt", "reference", "answers", "scores"} for line in lines)
    assert lines[4]["answers"] == {"zero_shot": "It is 4.", "few_shot": "no idea", "tuned": "answer 4"}
    assert lines[4]["scores"]["tuned"] == {"perplexity": pytest.approx(np.e), "exact_match": 0.0, "format": 0.0}


def test_markdown_and_html_lead_with_the_verdict_and_embed_the_charts(comparison, tmp_path):
    document = document_of(comparison)
    text = markdown(document)
    assert text.index("## Verdict") < text.index("## Scores") < text.index("## Per-example changes")
    assert "| **tuned** | 12 | 2.72 | 75.0 | 75.0 |" in text
    assert "| format | +75.0 [" in text
    page = html_report(document, {"differences": b"\x89PNG fake"})
    assert page.count("data:image/png;base64,") == 1
    assert page.count('class="verdict"') == 2
    assert "<td class=\"text\">question 3?</td>" in page
    paths = write_eval_report(tmp_path / "eval", document, page)
    assert json.loads(paths["report.json"].read_text())["headline"] == "format"
    examples = write_examples(tmp_path / "eval", example_rows(comparison, QUESTIONS, REFERENCES))
    assert len(examples.read_text().splitlines()) == N


def test_failures_are_valid_training_data_in_the_runs_format(comparison, tmp_path):
    examples = [Example(messages=[{"role": "user", "content": q}, {"role": "assistant", "content": r}],
                        source="test.jsonl", line=i + 1) for i, (q, r) in enumerate(zip(QUESTIONS, REFERENCES))]
    path = tmp_path / "failures.jsonl"
    assert failed(comparison) == [0, 4, 8]
    assert export_failures(path, comparison, examples) == 3
    loaded, fmt = load_examples(path)
    assert fmt == "chat" and [e.messages for e in loaded] == [examples[i].messages for i in (0, 4, 8)]
    review = json.loads(path.read_text().splitlines()[1])["review"]
    assert review == {"source": "test.jsonl:5", "tuned_answer": "answer 4", "failed_on": "format",
                      "scores": {"perplexity": pytest.approx(np.e), "exact_match": 0.0, "format": 0.0}}

    completions = [Example(prompt=q, completion=r) for q, r in zip(QUESTIONS, REFERENCES)]
    export_failures(path, comparison, completions)
    loaded, fmt = load_examples(path)
    assert fmt == "prompt_completion" and loaded[0].completion == "Answer: 0"


def test_failures_need_a_pass_fail_headline(comparison, tmp_path):
    graded = compare_rows(comparison.rows, METRICS, ComparisonSettings(bootstrap_resamples=100, headline="perplexity"))
    with pytest.raises(ConfigError, match="'perplexity' is a graded score; set eval.comparison.headline to one of "
                                          "exact_match, format"):
        export_failures(tmp_path / "f.jsonl", graded, [])


def test_rows_survive_a_json_round_trip(comparison):
    tuned = comparison.rows["tuned"]
    again = Row.from_dict(json.loads(json.dumps(tuned.to_dict())))
    assert again.answers == tuned.answers and again.scores(METRICS) == tuned.scores(METRICS)
    assert all((again.stats[k] == v).all() for k, v in tuned.stats.items())
