import json

import pytest
from rich.console import Console

from tunesmith.data.formats import Example
from tunesmith.errors import TunesmithError
from tunesmith.evaluate.compare_runs import comparison_table, load_scored_runs
from tunesmith.evaluate.fingerprint import fingerprint

A = [Example(prompt=f"q{i}", completion=f"a{i}", source="test.jsonl", line=i + 1) for i in range(5)]


def test_fingerprint_ignores_order_and_location_but_not_content():
    moved = [Example(prompt=e.prompt, completion=e.completion, source="other.jsonl", line=9) for e in reversed(A)]
    assert fingerprint(moved) == fingerprint(A)
    assert fingerprint(A[:4]) != fingerprint(A)
    assert fingerprint([*A[:4], Example(prompt="q4", completion="a4!")]) != fingerprint(A)


def eval_report(folder, method, tuned_exact, print_="abc", n=80, lower=("perplexity",)):
    rows = {"zero_shot": {"n": n, "perplexity": 9.0, "exact_match": 10.0},
            "few_shot": {"n": n, "perplexity": 8.0, "exact_match": 20.0},
            "tuned": {"n": n, "perplexity": 4.0 + tuned_exact / 100, "exact_match": tuned_exact}}
    document = {"rows": rows, "metrics": {m: {"lower_is_better": m in lower} for m in ("perplexity", "exact_match")},
                "test_set": {"name": "test", "n": n, "fingerprint": print_},
                "meta": {"model": "smollm2-135m-instruct", "method": method}}
    (folder / "eval").mkdir(parents=True)
    (folder / "eval" / "report.json").write_text(json.dumps(document))
    return folder


def render(table) -> str:
    console = Console(width=160, record=True)
    console.print(table)
    return console.export_text()


def test_one_table_with_shared_baselines_once_and_the_best_tuned_value_marked(tmp_path):
    runs = [eval_report(tmp_path / "lora", "lora", 60.0), eval_report(tmp_path / "full", "full", 75.0)]
    table = comparison_table(load_scored_runs(runs))
    text = render(table)
    assert text.count("zero_shot") == 1 and text.count("few_shot") == 1
    assert "lora" in text and "full" in text and "fingerprint abc" in text
    # Bold marks the best tuned cell: highest exact match (full), lowest perplexity (lora).
    perplexity, exact = (column._cells for column in table.columns[3:5])
    assert exact[-2:] == ["60.0", "[bold]75.0[/]"]
    assert perplexity[-2:] == ["[bold]4.60[/]", "4.75"]


def test_runs_on_different_test_sets_are_refused(tmp_path):
    runs = [eval_report(tmp_path / "a", "lora", 60.0), eval_report(tmp_path / "b", "full", 70.0, print_="xyz", n=40)]
    with pytest.raises(TunesmithError, match=r"different test sets.*a \(test, 80 examples, fingerprint abc\); "
                                             r"b \(test, 40 examples, fingerprint xyz\)"):
        load_scored_runs(runs)


def test_end_of_training_reports_without_a_fingerprint_ask_for_tunesmith_eval(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "report.json").write_text(json.dumps({"base": {"n": 4}, "tuned": {"n": 4}, "meta": {}}))
    with pytest.raises(TunesmithError, match="does not record which test set it scored; rescore the run with: "
                                             "tunesmith eval"):
        load_scored_runs([eval_report(tmp_path / "new", "lora", 1.0), tmp_path / "old"])


def test_missing_reports_and_single_runs_are_clear_errors(tmp_path):
    with pytest.raises(TunesmithError, match="no eval/report.json or report.json; score it first"):
        load_scored_runs([tmp_path, tmp_path])
    with pytest.raises(TunesmithError, match="at least two runs"):
        load_scored_runs([tmp_path])
