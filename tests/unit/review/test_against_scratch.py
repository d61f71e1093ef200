"""Reviewing the tuned model against the from-scratch baseline: the review reads the scratch row `tunesmith eval
--baselines scratch` writes, `--against scratch` serves and tallies it, and the win-rate sections name the baseline."""

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tunesmith.cli.main import app as cli
from tunesmith.config.eval_metrics import ComparisonSettings
from tunesmith.errors import TunesmithError
from tunesmith.evaluate.comparison import compare_rows
from tunesmith.evaluate.eval_report import build_document, example_rows, markdown, write_examples
from tunesmith.evaluate.metrics import PERPLEXITY, TEXT_METRICS
from tunesmith.evaluate.review_section import review_section
from tunesmith.evaluate.rows import Row
from tunesmith.review.app import create_app
from tunesmith.review.items import read_run_answers
from tunesmith.review.votes import VOTES_FILE, VoteStore

from .test_items import example
from .test_items import write_examples as write_example_lines
from .test_summary import cast

N = 6
QUESTIONS = [f"question {i}?" for i in range(N)]
REFERENCES = [f"Answer: {i}" for i in range(N)]
METRICS = [PERPLEXITY, TEXT_METRICS["exact_match"]]


def row(name, answers):
    return Row(name, answers, {"perplexity": np.array([[5.0, 5.0]] * N),
                               "exact_match": TEXT_METRICS["exact_match"].statistics(answers, REFERENCES)})


@pytest.fixture
def evaluated(tmp_path):
    """A run folder whose eval/examples.jsonl is what `tunesmith eval --baselines zero_shot,scratch` writes."""
    rows = {"zero_shot": row("zero_shot", [f"zero {i}" for i in range(N)]),
            "scratch": row("scratch", [f"scratch {i}" for i in range(N)]),
            "tuned": row("tuned", [f"tuned {i}" for i in range(N)])}
    comparison = compare_rows(rows, METRICS, ComparisonSettings(bootstrap_resamples=100))
    write_examples(tmp_path / "eval", example_rows(comparison, QUESTIONS, REFERENCES))
    return tmp_path, comparison


def test_the_scratch_row_the_evaluation_writes_is_a_baseline_to_review(evaluated):
    run_dir, _ = evaluated
    answers = read_run_answers(run_dir)
    assert answers.baselines == ("zero_shot", "scratch")
    review = answers.compared_with("scratch")
    assert review.against == "scratch"
    assert [(i.id, i.prompt, i.baseline, i.tuned) for i in review.items][:2] == [
        (0, "question 0?", "scratch 0", "tuned 0"), (1, "question 1?", "scratch 1", "tuned 1")]
    assert answers.compared_with().against == "zero_shot"  # prompting stays the default comparison


def test_scratch_alone_is_the_default(tmp_path):
    write_example_lines(tmp_path, [example(i, scratch=f"s{i}", tuned=f"t{i}") for i in range(3)])
    review = read_run_answers(tmp_path).compared_with()
    assert review.against == "scratch" and [i.baseline for i in review.items] == ["s0", "s1", "s2"]


def test_against_scratch_on_a_run_without_it_says_how_to_add_it(tmp_path):
    write_example_lines(tmp_path, [example(0, zero_shot="z", few_shot="f", tuned="t")])
    with pytest.raises(TunesmithError) as error:
        read_run_answers(tmp_path).compared_with("scratch")
    assert str(error.value) == (
        f"--against scratch: no example in {tmp_path}/eval/examples.jsonl has both a scratch and a tuned answer "
        f"(baselines there: zero_shot, few_shot); run `tunesmith eval {tmp_path} --baselines scratch` to add its "
        "answers")
    with pytest.raises(TunesmithError, match="--against 'scrach': choose one of zero_shot, few_shot, scratch"):
        read_run_answers(tmp_path).compared_with("scrach")


def test_the_page_serves_scratch_answers_and_saves_votes_against_scratch(evaluated):
    run_dir, _ = evaluated
    page = TestClient(create_app(run_dir, "scratch"))
    shown = page.get("/items/0", params={"reviewer": "Ana"}).text
    assert "scratch 0" in shown and "tuned 0" in shown and "zero 0" not in shown
    response = page.post("/items/0/vote", data={"reviewer": "Ana", "choice": "tie", "comment": ""},
                         follow_redirects=False)
    assert response.status_code == 303
    [saved] = VoteStore(run_dir / VOTES_FILE).read()
    assert (saved["against"], saved["winner"]) == ("scratch", "tie")
    assert "Tally: tuned vs scratch" in page.get("/tally").text
    written = json.loads((run_dir / "review" / "summary.json").read_text())
    assert list(written) == ["scratch"] and written["scratch"]["win_rate"] == 0.5


def test_tally_against_scratch_on_the_command_line_names_the_baseline(evaluated):
    run_dir, _ = evaluated
    cast(run_dir, [(0, "Ana", "tuned"), (1, "Ana", "tuned"), (2, "Ana", "baseline")], against="scratch")
    result = CliRunner().invoke(cli, ["review", str(run_dir), "--against", "scratch", "--tally"])
    assert result.exit_code == 0, result.output
    assert "tuned vs scratch: tuned preferred on 67% of 3 reviewed items" in result.output
    report = (run_dir / "review" / "report.md").read_text()
    assert "## Human review: tuned vs scratch\n\n- baseline: scratch, the same architecture trained from scratch\n" \
           in report
    assert "- votes: tuned better 2, scratch better 1, tie 0" in report


def test_the_eval_reports_win_rate_section_says_it_is_against_scratch(evaluated):
    run_dir, comparison = evaluated
    cast(run_dir, [(0, "Ana", "tuned"), (1, "Ben", "baseline")], against="scratch")
    cast(run_dir, [(0, "Ana", "tuned")], against="zero_shot")
    section = review_section(run_dir)
    assert set(section["summaries"]) == {"zero_shot", "scratch"}
    assert section["summaries"]["scratch"]["against_label"] == "the same architecture trained from scratch"
    assert "tuned vs scratch: tuned preferred on 50% of 2 reviewed items (95% CI 9%-91%; ties count half), 2 votes" \
           in section["lines"]
    text = markdown(build_document(comparison, QUESTIONS, REFERENCES, {"model": "tiny"}, {"review": section}))
    assert "## Human review: tuned vs scratch\n\n- baseline: scratch, the same architecture trained from scratch" \
           in text
    assert "- baseline: zero_shot, the base model zero-shot" in text


def test_the_review_knows_the_rows_the_evaluation_scores():
    from tunesmith.evaluate import row_names
    from tunesmith.review import items

    assert items.BASELINES == row_names.BASELINES
