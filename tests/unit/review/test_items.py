"""Reading what to review from a run folder: eval/examples.jsonl first, report.json as the fallback."""

import json

import pytest

from tunesmith.errors import DataError, TunesmithError
from tunesmith.review.items import read_run_answers


def load_review_set(run_dir, against=None):
    return read_run_answers(run_dir).compared_with(against)


def write_examples(run_dir, rows):
    (run_dir / "eval").mkdir(parents=True, exist_ok=True)
    path = run_dir / "eval" / "examples.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def example(i, **answers):
    return {"id": i, "prompt": f"question {i}", "reference": f"ref {i}", "answers": answers, "scores": {}}


def write_report(run_dir, samples):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "report.json").write_text(json.dumps({"base": {}, "tuned": {}, "meta": {}, "samples": samples}))


def test_few_shot_is_the_default_baseline_when_present(tmp_path):
    write_examples(tmp_path, [example(0, zero_shot="z0", few_shot="f0", tuned="t0"),
                              example(1, zero_shot="z1", tuned="t1")])
    review = load_review_set(tmp_path)
    assert review.against == "few_shot"
    assert [(i.id, i.baseline, i.tuned) for i in review.items] == [(0, "f0", "t0")]  # item 1 has no few-shot answer


def test_zero_shot_on_request_and_items_without_a_tuned_answer_are_left_out(tmp_path):
    write_examples(tmp_path, [example(3, zero_shot="z3", few_shot="f3", tuned="t3"), example(4, zero_shot="z4"),
                              example(5, zero_shot="z5", tuned=None)])
    review = load_review_set(tmp_path, "zero_shot")
    assert [(i.id, i.baseline) for i in review.items] == [(3, "z3")]


def test_zero_shot_is_the_default_without_few_shot(tmp_path):
    write_examples(tmp_path, [example(0, zero_shot="z0", tuned="t0")])
    assert load_review_set(tmp_path).against == "zero_shot"


def test_report_json_is_the_fallback_with_base_as_zero_shot(tmp_path):
    write_report(tmp_path, [{"prompt": "p0", "reference": "r0", "base": "b0", "tuned": "t0"},
                            {"prompt": "p1", "reference": "r1", "base": "b1", "tuned": "t1"}])
    review = load_review_set(tmp_path)
    assert review.against == "zero_shot" and review.source == tmp_path / "report.json"
    assert [(i.id, i.prompt, i.baseline, i.tuned) for i in review.items] == [(0, "p0", "b0", "t0"),
                                                                            (1, "p1", "b1", "t1")]


def test_examples_file_wins_over_report_json(tmp_path):
    write_report(tmp_path, [{"prompt": "old", "reference": "", "base": "b", "tuned": "t"}])
    write_examples(tmp_path, [example(7, zero_shot="z", tuned="t")])
    assert [i.id for i in load_review_set(tmp_path).items] == [7]


def test_nothing_to_review_names_both_files_and_the_command(tmp_path):
    with pytest.raises(TunesmithError) as caught:
        load_review_set(tmp_path)
    assert str(caught.value) == (
        f"nothing to review in {tmp_path}: looked for {tmp_path}/eval/examples.jsonl and {tmp_path}/report.json; "
        f"run `tunesmith eval {tmp_path}` to write them"
    )


def test_no_item_with_both_answers_is_an_error(tmp_path):
    path = write_examples(tmp_path, [example(0, tuned="t0"), example(1, zero_shot="z1")])
    with pytest.raises(TunesmithError, match=f"nothing to review in {path}: no example has both a baseline"):
        load_review_set(tmp_path)


def test_a_system_whose_answers_are_all_empty_did_not_answer(tmp_path):
    # The evaluation writes "" for every example of a row it scored without generating.
    rows = [example(0, zero_shot="z0", few_shot="", tuned="t0"), example(1, zero_shot="", few_shot="", tuned="")]
    write_examples(tmp_path, rows)
    review = load_review_set(tmp_path)
    assert review.against == "zero_shot"
    assert [(i.id, i.baseline, i.tuned) for i in review.items] == [(0, "z0", "t0"), (1, "", "")]


def test_a_report_without_base_answers_is_nothing_to_review(tmp_path):
    write_report(tmp_path, [{"prompt": "p", "reference": "r", "base": "", "tuned": "t"}])
    with pytest.raises(TunesmithError, match="no example has both a baseline"):
        load_review_set(tmp_path)


def test_asking_for_a_baseline_the_run_lacks_says_which_it_has(tmp_path):
    write_report(tmp_path, [{"prompt": "p", "reference": "", "base": "b", "tuned": "t"}])
    with pytest.raises(TunesmithError, match=r"--against few_shot: no example in .*report\.json has both a few_shot "
                                             r"and a tuned answer \(baselines there: zero_shot\)"):
        load_review_set(tmp_path, "few_shot")
    with pytest.raises(TunesmithError, match="--against 'base': choose one of zero_shot, few_shot"):
        load_review_set(tmp_path, "base")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"examples\.jsonl:2: invalid JSON"),
        ('{"id": "x", "prompt": "p", "answers": {}}', r"examples\.jsonl:2: 'id' must be an integer, got 'x'"),
        ('{"id": 0, "prompt": "p", "answers": {}}', r"examples\.jsonl:2: id 0 already used on line 1"),
        ('{"id": 1, "answers": {}}', r"examples\.jsonl:2: 'prompt' must be a string"),
        ('{"id": 1, "prompt": "p", "answers": ["t"]}', r"examples\.jsonl:2: 'answers' must be an object"),
    ],
)
def test_a_malformed_examples_line_names_file_line_and_key(tmp_path, line, message):
    path = write_examples(tmp_path, [example(0, zero_shot="z", tuned="t")])
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(DataError, match=message):
        load_review_set(tmp_path)


def test_a_vote_fingerprint_changes_when_an_answer_changes(tmp_path):
    write_examples(tmp_path, [example(0, zero_shot="z", tuned="t")])
    before = load_review_set(tmp_path).items[0].fingerprint
    write_examples(tmp_path, [example(0, zero_shot="z", tuned="t, retrained")])
    after = load_review_set(tmp_path).items[0]
    assert after.fingerprint != before and after.fingerprint == load_review_set(tmp_path).items[0].fingerprint
