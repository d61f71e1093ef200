"""The report's numbers against a small case computed by hand, and its three renderings."""

import base64
import json
import re
from pathlib import Path

import pytest

from tunesmith.config.prepare import PrepareConfig
from tunesmith.data.prepare.pipeline import Input, prepare
from tunesmith.data.prepare.report_only import report_file, report_folder


def chat(label, *turns, system=None):
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": ("user", "assistant")[i % 2], "content": text} for i, text in enumerate(turns)]
    return {"messages": messages, "label": label}


CORPUS = [
    chat("a", "red apples are sweet", "yes they are"),  # prompt 4 words, response 3, 2 turns
    chat("a", "green apples are sour", "often", "why", "acid makes them sour"),  # prompt 4+1, response 1+4, 4 turns
    chat("b", "hello there", "hello friend", system="be kind"),  # prompt 2+2 (system counts), response 2, 2 turns
    chat("a", "Red apples are SWEET!", "Yes, they are."),  # an exact duplicate of the first once normalised
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The corpus prepared once for the module (its files are only read): the folder and its report."""
    folder = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        Path("train.jsonl").write_text("".join(json.dumps(record) + "\n" for record in CORPUS))
        settings = PrepareConfig.model_validate({"pii": {"enabled": False}, "split": {"validation": 0, "test": 0},
                                                 "report": {"top_ngrams": 4}})
        prepare([Input("train.jsonl")], settings, "out")
    return folder / "out", json.loads((folder / "out" / "report.json").read_text())


@pytest.fixture
def report(prepared):
    return prepared[1]


def test_counts_lengths_turns_and_labels(report):
    train = report["splits"]["train"]
    assert report["unit"] == "words" and train["examples"] == 3 and train["tokens"] == 13 + 10
    assert {k: train["prompt"][k] for k in ("total", "min", "max", "mean", "median")} == {
        "total": 13, "min": 4, "max": 5, "mean": 4.33, "median": 4.0}
    assert {k: train["response"][k] for k in ("total", "min", "max", "mean", "median")} == {
        "total": 10, "min": 2, "max": 5, "mean": 3.33, "median": 3.0}
    assert sum(train["prompt"]["histogram"]["counts"]) == 3
    assert train["turns"] == {"2": 2, "4": 1}
    assert train["labels"] == {"a": 2, "b": 1} and train["imbalance_ratio"] == 2.0


def test_duplicates_vocabulary_and_ngrams(report):
    dedup = report["steps"]["dedup"]
    assert (dedup["checked"], dedup["exact"], dedup["near"], dedup["rate"]) == (4, 1, 0, 0.25)
    assert dedup["pairs"][0]["removed_where"] == "train.jsonl:4" and dedup["pairs"][0]["kept_where"] == "train.jsonl:1"
    train, overall = report["splits"]["train"], report["overall"]
    # red apples are sweet yes they | green sour often why acid makes them | be kind hello there friend
    assert train["vocabulary"] == overall["vocabulary"] == 18
    assert overall["top_ngrams"]["1"] == [["are", 3], ["apples", 2], ["hello", 2], ["sour", 2]]
    assert overall["top_ngrams"]["2"][0] == ["apples are", 2]
    assert overall["ngram_examples"] == 3


def test_warnings_say_what_to_do(report):
    assert report["warnings"] == [
        "only 3 training examples (under 100): a model learns a style or task reliably from a few hundred; add "
        "data, or expect the tuned model to change little",
        "no validation examples: training cannot report a validation loss or stop at the best step; set "
        "data.prepare.split.validation",
    ]


def test_markdown_and_html_show_the_same_numbers_and_html_embeds_its_plots(prepared):
    markdown = (prepared[0] / "report.md").read_text()
    assert "| train | 3 | 23 | 4.33 | 3.33 | 18 |" in markdown
    assert "| a | 2 |" in markdown and "| b | 1 |" in markdown
    page = (prepared[0] / "report.html").read_text()
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) == 4  # prompt and response lengths, turns, labels
    assert all(base64.b64decode(image).startswith(b"\x89PNG\r\n\x1a\n") for image in images)
    assert "<td>train</td><td>3</td><td>23</td>" in page


def test_imbalance_warning_points_at_augmentation(write_jsonl, distinct_chats):
    chats = [dict(c, label="common") for c in distinct_chats(22)] + [dict(distinct_chats(23)[-1], label="rare")]
    write_jsonl("train.jsonl", chats)
    settings = PrepareConfig.model_validate({"pii": {"enabled": False}, "split": {"validation": 0, "test": 0},
                                             "report": {"min_examples": 1}})
    prepare([Input("train.jsonl")], settings, "out")
    assert json.loads(Path("out/report.json").read_text())["warnings"][0] == (
        "labels are imbalanced: 'common' has 22.0x the examples of 'rare'; set data.prepare.augment.target_ratio "
        "(e.g. 0.5) to oversample the smaller labels, or collect more of them"
    )


def test_report_of_a_raw_file_redacts_before_counting(write_jsonl, make_chat):
    write_jsonl("raw.jsonl", [make_chat("mail jane@example.com", "ok"), make_chat("mail bob@example.org", "ok"),
                              {"messages": []}])
    report = report_file("raw.jsonl", Path("raw-report"))
    assert report["steps"]["check"] == {"records": 3, "invalid": 1, "quarantine": None, "samples": [], "reasons": {
        "messages: no assistant turn; each chat example needs at least one assistant message to learn from": 1}}
    assert report["splits"]["all"]["examples"] == 2
    assert ["mail email", 2] in report["splits"]["all"]["top_ngrams"]["2"]
    text = "".join(p.read_text() for p in Path("raw-report").iterdir())
    assert "jane" not in text and "bob" not in text


def test_report_of_a_prepared_folder_measures_its_files_and_keeps_its_steps(prepared):
    folder, report = prepared
    again = report_folder(folder, Path("again"))
    assert again["splits"]["train"]["prompt"] == report["splits"]["train"]["prompt"]
    assert again["splits"]["train"]["labels"] == {"a": 2, "b": 1}
    assert again["steps"] == report["steps"]


def test_the_duplicates_section_reads_as_sentences(prepared):
    markdown = (prepared[0] / "report.md").read_text()
    assert ("4 examples compared: 1 exact and 0 near duplicates removed (duplicate rate 25.0%), 0 removed because "
            "they repeat a validation or test example, 0 replaced by a corrected feedback example. 0 similar examples "
            "(the same answer to another prompt, or duplicates while deduplication is off) were kept in the split of "
            "the example they resemble. Near duplicates: Jaccard similarity of 5-character shingles at least 0.8, "
            "for the whole example and for its prompt.") in markdown
