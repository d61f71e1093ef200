import pytest
from pydantic import ValidationError

from tunesmith.config.eval_metrics import ComparisonSettings, FormatMetric, JsonMetric, LabelMetric, TaskMetrics
from tunesmith.errors import DataError
from tunesmith.evaluate.task_metrics import format_checker, label_parser, task_metrics


def scores(settings: TaskMetrics, answers, references) -> dict:
    return {m.name: m.score(m.statistics(answers, references)) for m in task_metrics(settings)}


def per_example(settings: TaskMetrics, name, answers, references) -> list[float]:
    metric = next(m for m in task_metrics(settings) if m.name == name)
    return metric.per_example(metric.statistics(answers, references))


REFERENCES = ["cat", "cat", "dog", "dog", "bird"]
ANSWERS = ["Cat.", "dog\nbecause it barks", "**dog**", "fish", "bird"]


def test_label_accuracy_and_macro_f1_by_hand():
    result = scores(TaskMetrics(label=LabelMetric()), ANSWERS, REFERENCES)
    # First lines, undecorated and case-folded: cat, dog, dog, fish, bird -> 3 of 5 right.
    assert result["label_accuracy"] == pytest.approx(60.0)
    # cat: tp 1, fn 1 -> 2/3; dog: tp 1, fp 1, fn 1 -> 1/2; bird: tp 1 -> 1; "fish" is no class, so no false positive.
    assert result["label_macro_f1"] == pytest.approx(100 * (2 / 3 + 1 / 2 + 1) / 3)
    assert per_example(TaskMetrics(label=LabelMetric()), "label_macro_f1", ANSWERS, REFERENCES) == [100, 0, 100, 0, 100]


def test_configured_classes_count_even_when_never_referenced():
    settings = TaskMetrics(label=LabelMetric(labels=["cat", "dog", "bird", "fish"]))
    # "fish" is now a class: one false positive for it, F1 0, and the mean is over four classes.
    assert scores(settings, ANSWERS, REFERENCES)["label_macro_f1"] == pytest.approx(100 * (2 / 3 + 1 / 2 + 1 + 0) / 4)


def test_regex_rule_reads_group_one_from_answer_and_reference():
    settings = TaskMetrics(label=LabelMetric(parse="regex", pattern=r"Label: (\w+)"))
    answers = ["I think... Label: Positive", "no label here", "Label: negative"]
    references = ["Label: positive", "Label: negative", "Label: negative"]
    assert scores(settings, answers, references)["label_accuracy"] == pytest.approx(200 / 3)


def test_case_sensitive_and_whole_rules():
    parse = label_parser(LabelMetric(parse="whole", case_sensitive=True))
    assert parse("  Spam!\n") == "Spam" and parse("spam") == "spam" and parse(" ** ") is None


def test_a_reference_without_a_label_is_named():
    settings = TaskMetrics(label=LabelMetric(parse="regex", pattern=r"Label: (\w+)"))
    with pytest.raises(DataError, match=r"reference answer 2 \('oops'\).*finds no label"):
        scores(settings, ["Label: a", "Label: a"], ["Label: a", "oops"])


def test_reference_labels_outside_the_configured_classes_are_an_error():
    with pytest.raises(DataError, match=r"\['bird'\] are not in eval.task.label.labels"):
        scores(TaskMetrics(label=LabelMetric(labels=["cat", "dog"])), ["cat"], ["bird"])


def test_json_validity_and_field_accuracy_by_hand():
    references = ['{"name": "Ada", "year": 1815}', '{"name": "Alan", "year": 1912}', '{"name": "Grace", "year": 1906}']
    answers = [' {"name": "Ada", "year": 1815} ', '{"name": "Alan", "year": 1954}', "name: Grace"]
    result = scores(TaskMetrics(json_output=JsonMetric(fields=["name", "year"])), answers, references)
    assert result["json_valid"] == pytest.approx(200 / 3)
    assert result["json_fields"] == pytest.approx(100 * 3 / 6)  # 2 + 1 + 0 fields right of 6
    assert result["json:name"] == pytest.approx(200 / 3) and result["json:year"] == pytest.approx(100 / 3)


def test_json_fields_default_to_each_references_keys():
    result = scores(TaskMetrics(json_output=JsonMetric()), ['{"a": 1, "b": 2}', "[1]"], ['{"a": 1, "b": 3}', '{"c": 1}'])
    assert result["json_fields"] == pytest.approx(100 * 1 / 3)
    assert set(result) == {"json_valid", "json_fields"}


def test_json_field_accuracy_needs_object_references():
    with pytest.raises(DataError, match="reference answer 1 .* is not a JSON object"):
        scores(TaskMetrics(json_output=JsonMetric()), ["{}"], ["not json"])


HOUSE_STYLE = [r"\AShort answer: \S", r"\nSteps:\n1\. .+\n2\. .+\n3\. .+\nChef's note: ", r"\nChef's note: \S[^\n]*\Z"]


def test_format_adherence_needs_every_pattern():
    good = "Short answer: 7 minutes.\nSteps:\n1. Boil.\n2. Add eggs.\n3. Cool.\nChef's note: use old eggs."
    four_steps = good.replace("3. Cool.", "3. Cool.\n4. Peel.")
    settings = TaskMetrics(format=FormatMetric(patterns=HOUSE_STYLE))
    assert per_example(settings, "format", [good, four_steps, "7 minutes."], ["", "", ""]) == [100.0, 0.0, 0.0]
    assert format_checker(settings.format)(four_steps) == [1]
    assert format_checker(settings.format)("7 minutes.") == [0, 1, 2]


def test_bad_settings_name_the_key():
    with pytest.raises(ValidationError, match=r"format.patterns\[1\]: '\(' is not a valid regular expression"):
        FormatMetric(patterns=["ok", "("])
    with pytest.raises(ValidationError, match="label.pattern is required with parse: regex"):
        LabelMetric(parse="regex")
    with pytest.raises(ValidationError, match="only used with parse: regex"):
        LabelMetric(pattern="x")
    with pytest.raises(ValidationError):
        ComparisonSettings(few_shot_k=0)
    with pytest.raises(ValidationError):
        TaskMetrics(labels={})


def test_cooking_house_style_accepts_every_answer_in_the_data_and_rejects_others():
    import json
    from pathlib import Path

    from tunesmith.config.load import load_config

    folder = Path(__file__).resolve().parents[3] / "examples" / "cooking-assistant"
    settings = load_config(folder / "lora.yaml").eval.task  # the house style exactly as the demo scores it
    answers = [json.loads(line)["messages"][-1]["content"] for name in ("train.jsonl", "test.jsonl")
               for line in (folder / name).read_text().splitlines() if line.strip()]
    assert len(answers) > 500
    assert scores(settings, answers, answers)["format"] == 100.0
    style = answers[0]
    lines = style.splitlines()
    plain = "To fix gummy bread, bake it longer and let it cool before slicing. " * 3
    four_steps = "\n".join(lines[:5] + ["4. Slice it."] + lines[5:])
    no_note = "\n".join(lines[:-1])
    rambling = style.replace("Chef's note:", "Chef's note: " + "and also " * 30)
    assert per_example(settings, "format", [plain, four_steps, no_note, rambling], [""] * 4) == [0.0] * 4
