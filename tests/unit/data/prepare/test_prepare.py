"""`prepare` end to end: quarantine with reasons, duplicates and leakage, feedback, redacted outputs, the cache."""

import json
from collections import Counter
from pathlib import Path

import pytest

from tunesmith.config.prepare import PrepareConfig
from tunesmith.data.prepare import pipeline
from tunesmith.data.prepare.pipeline import Input, prepare
from tunesmith.errors import ConfigError, DataError

NO_PII = {"pii": {"enabled": False}}


def settings(**sections):
    return PrepareConfig.model_validate({**NO_PII, **sections})


def rejected(out="out"):
    return [(r["where"], r["step"], r["reason"]) for r in map(json.loads, Path(out, "rejected.jsonl").open())]


def questions(path):
    return [r["messages"][0]["content"] for r in map(json.loads, Path(path).open())]


def test_planted_duplicates_are_removed_naming_what_they_repeat_and_distinct_ones_kept(
        write_jsonl, distinct_chats, make_chat):
    chats = distinct_chats(30)
    near = make_chat(chats[3]["messages"][0]["content"], chats[3]["messages"][1]["content"].replace(".", " too."))
    exact = make_chat(chats[5]["messages"][0]["content"].upper(), chats[5]["messages"][1]["content"] + "!!")
    write_jsonl("train.jsonl", chats + [near, exact])
    result = prepare([Input("train.jsonl")], settings(split={"validation": 0.1, "test": 0.1}), "out")
    assert result.manifest["counts"] == {"train": 24, "validation": 3, "test": 3, "rejected": 2}
    assert [r[:2] for r in rejected()] == [("train.jsonl:31", "dedup"), ("train.jsonl:32", "dedup")]
    assert rejected()[0][2].startswith("near duplicate of train.jsonl:4 (Jaccard similarity 0.")
    assert rejected()[1][2] == "exact duplicate of train.jsonl:6"
    kept = questions("out/train.jsonl") + questions("out/validation.jsonl") + questions("out/test.jsonl")
    assert sorted(kept) == sorted(c["messages"][0]["content"] for c in chats)


def test_bad_rows_are_quarantined_with_their_reason_and_the_rest_prepared(write_jsonl, make_chat, distinct_chats):
    write_jsonl("train.jsonl", [
        *distinct_chats(8),
        {"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "hello"}]},
        '{"messages": [',
        make_chat("Only control characters here", "\x00\x07\x1b"),
        {"messages": [{"role": "user", "content": "Eggs?"}, {"role": "user", "content": "Boiled?"},
                      {"role": "assistant", "content": "Nine minutes."}, {"role": "user", "content": "Thanks!"}]},
    ])
    result = prepare([Input("train.jsonl")], settings(split={"validation": 1, "test": 1}), "out")
    assert rejected() == [
        ("train.jsonl:9", "check", "messages[1].role: unknown role 'bot'; expected one of system, user, assistant"),
        ("train.jsonl:10", "check", "invalid JSON (Expecting value at column 15)"),
        ("train.jsonl:11", "clean", "after cleaning: messages[1].content: empty content; user and assistant "
                                    "messages need some text"),
    ]
    assert result.manifest["counts"] == {"train": 7, "validation": 1, "test": 1, "rejected": 3}
    report = json.loads(Path("out/report.json").read_text())
    assert report["steps"]["repair"] | {"samples": None} == {"trailing_user": 1, "repeated_role": 1, "samples": None}
    repaired = next(r for name in ("train", "validation", "test") for r in map(json.loads, open(f"out/{name}.jsonl"))
                    if r["messages"][0]["content"].startswith("Eggs?"))
    assert repaired["messages"] == [{"role": "user", "content": "Eggs?\n\nBoiled?"},
                                    {"role": "assistant", "content": "Nine minutes."}]


def test_strict_stops_at_the_first_bad_row(write_jsonl, distinct_chats):
    write_jsonl("train.jsonl", distinct_chats(5) + [{"messages": [{"role": "user", "content": "no reply"}]}])
    with pytest.raises(DataError) as caught:
        prepare([Input("train.jsonl")], settings(strict=True), "out")
    assert str(caught.value) == (
        "train.jsonl:6: messages: no assistant turn; each chat example needs at least one assistant message to "
        "learn from\n(data.prepare.strict stops at the first bad row; without it the row is quarantined in "
        "rejected.jsonl and preparation goes on)"
    )


def test_a_file_that_cannot_be_read_past_a_point_stops_the_preparation(workdir):
    (workdir / "train.csv").write_bytes(b"prompt,completion\na,b\n\xff,c\n")
    with pytest.raises(DataError) as caught:
        prepare([Input("train.csv")], settings(), "out")
    assert str(caught.value) == "train.csv:3: not valid UTF-8 text (byte 0xff at column 1); save the file as UTF-8"


ANSWER = "Short answer: rest the dough for an hour in the fridge, then roll it thin and bake it until golden."


def test_training_examples_that_repeat_a_held_out_example_are_removed(write_jsonl, distinct_chats, make_chat):
    chats = distinct_chats(11)
    test = [chats[0], make_chat("Dough tips?", ANSWER)]
    write_jsonl("test.jsonl", test)
    write_jsonl("train.jsonl", chats[1:] + [chats[0], make_chat("Pastry advice?", ANSWER)])
    result = prepare([Input("train.jsonl"), Input("test.jsonl", "test")], settings(split={"validation": 1}), "out")
    assert rejected() == [
        ("train.jsonl:11", "dedup", "exact duplicate of test example test.jsonl:1; kept out of train so the test "
                                    "set stays unseen"),
        ("train.jsonl:12", "dedup", rejected()[1][2]),
    ]
    assert rejected()[1][2].startswith("the same answer to another prompt as test example test.jsonl:2 (Jaccard")
    assert result.manifest["counts"] == {"train": 9, "validation": 1, "test": 2, "rejected": 2}
    assert questions("out/test.jsonl") == [c["messages"][0]["content"] for c in test]


def test_similar_examples_stay_together_in_one_split(write_jsonl, distinct_chats, make_chat):
    chats = distinct_chats(20)
    family = [make_chat(q, ANSWER) for q in ("Dough tips?", "Pastry advice?", "Pie crust help?", "Tart base?")]
    write_jsonl("train.jsonl", chats + family)
    sides = Counter()
    for seed in range(3):
        out = f"out{seed}"
        result = prepare([Input("train.jsonl")], settings(split={"validation": 0.2, "test": 0.2, "seed": seed}), out)
        assert result.manifest["counts"]["rejected"] == 0
        where = [name for name in ("train", "validation", "test") for q in questions(f"{out}/{name}.jsonl")
                 if q in {"Dough tips?", "Pastry advice?", "Pie crust help?", "Tart base?"}]
        assert len(where) == 4 and len(set(where)) == 1
        sides[where[0]] += 1
    assert set(sides) == {"train", "validation", "test"}, sides  # the family moves with the seed, always whole
    report = json.loads(Path("out0/report.json").read_text())
    assert report["steps"]["dedup"]["kept_together"] == 3


def test_stratified_split_keeps_labels_and_their_proportions(write_jsonl, distinct_chats):
    chats = [dict(c, label="yes" if i % 4 else "no") for i, c in enumerate(distinct_chats(40))]
    write_jsonl("train.jsonl", chats)
    prepare([Input("train.jsonl")], settings(split={"validation": 0.25, "test": 0.25}), "out")
    labels = {name: Counter(r["label"] for r in map(json.loads, open(f"out/{name}.jsonl")))
              for name in ("train", "validation", "test")}
    assert labels == {"train": {"yes": 15, "no": 5}, "validation": {"yes": 8, "no": 2},
                      "test": {"yes": 7, "no": 3}}


def test_feedback_is_merged_into_train_and_replaces_the_example_it_corrects(write_jsonl, distinct_chats, make_chat):
    chats = distinct_chats(10)
    wrong = make_chat("How long do I boil an egg for a firm yolk?", "Boil it for three minutes, then cool it in "
                      "cold water and peel it under the tap so the shell comes off cleanly.")
    corrected = make_chat("How long do I boil an egg for a firm yolk?", "Boil it for nine minutes, then cool it in "
                          "cold water and peel it under the tap so the shell comes off cleanly.")
    write_jsonl("train.jsonl", chats + [wrong])
    write_jsonl("fixed.jsonl", [dict(corrected, review={"tuned_answer": "3 minutes"}), {"messages": []}])
    prepared = prepare([Input("train.jsonl"), Input("fixed.jsonl", "feedback")],
                       settings(split={"validation": 1, "test": 1}), "out")
    assert rejected()[0][:2] == ("fixed.jsonl:2", "check")
    assert rejected()[1][:2] == ("train.jsonl:11", "dedup")
    assert rejected()[1][2].startswith("near duplicate of feedback example fixed.jsonl:1 (Jaccard similarity 0.")
    assert rejected()[1][2].endswith("); the corrected version is kept")
    train = list(map(json.loads, open("out/train.jsonl")))
    assert corrected in train and wrong not in train
    assert prepared.manifest["counts"]["train"] == 9  # 10 chats + the correction, less one validation and one test
    report = json.loads(Path("out/report.json").read_text())
    assert report["steps"]["feedback"] == {"path": "fixed.jsonl", "merged": 1, "rejected": 1, "replaced": 1}


def test_mixing_weights_and_oversampling_resample_train_only(write_jsonl, distinct_chats):
    chats = distinct_chats(30)
    write_jsonl("main.jsonl", [dict(c, label="common") for c in chats[:20]])
    write_jsonl("extra.jsonl", [dict(c, label="rare") for c in chats[20:24]])
    write_jsonl("small.jsonl", [dict(c, label="common") for c in chats[24:]])
    config = settings(split={"validation": 0, "test": 0}, augment={"target_ratio": 0.5})
    inputs = [Input("main.jsonl"), Input("extra.jsonl", weight=2.0), Input("small.jsonl", weight=0.5)]
    prepare(inputs, config, "out")
    labels = Counter(r["label"] for r in map(json.loads, open("out/train.jsonl")))
    assert labels == {"common": 23, "rare": 12}  # 20 + 6/2 common; rare 4 x 2 = 8, oversampled to ceil(23 / 2)
    report = json.loads(Path("out/report.json").read_text())
    assert report["steps"]["augment"]["added"] == {"rare": 4}
    assert report["overall"]["sources"] == {"main.jsonl": 20, "extra.jsonl": 12, "small.jsonl": 3}
    assert report["weights"] == {"extra.jsonl": 2.0, "small.jsonl": 0.5}


def test_every_file_written_holds_redacted_text_only(write_jsonl, distinct_chats, make_chat):
    secret = "jane.doe@example.com"
    phone = "+1 415-555-0132"
    chats = distinct_chats(10) + [
        make_chat(f"Mail me at {secret}", "Sure, I will write soon."),  # kept
        make_chat(f"Mail me at {secret}", "Sure, I will write soon."),  # exact duplicate
        {"messages": [{"role": "user", "content": f"call {phone}"}, {"role": "bot", "content": "ok"}]},  # invalid
        make_chat(f"My number is {phone}", "\x00"),  # empty after cleaning
    ]
    write_jsonl("train.jsonl", chats)
    config = PrepareConfig.model_validate({"pii": {"audit": True}, "report": {"samples": 10},
                                           "split": {"validation": 1, "test": 1}})
    prepare([Input("train.jsonl")], config, "out")
    files = sorted(p.name for p in Path("out").iterdir())
    assert files == ["pii_audit.jsonl", "prepared.json", "rejected.jsonl", "report.html", "report.json", "report.md",
                     "test.jsonl", "train.jsonl", "validation.jsonl"]
    for name in files:
        text = Path("out", name).read_text()
        assert secret not in text and phone not in text and "415-555" not in text, name
    assert "<EMAIL>" in Path("out/rejected.jsonl").read_text() and "<PHONE>" in Path("out/rejected.jsonl").read_text()
    audit = list(map(json.loads, open("out/pii_audit.jsonl")))
    assert audit == [{"where": "train.jsonl:11", "field": "messages[0].content", "type": "EMAIL_ADDRESS",
                      "start": 11, "end": 18}]
    report = json.loads(Path("out/report.json").read_text())
    assert report["steps"]["pii"]["counts"] == {"EMAIL_ADDRESS": 1}


def test_a_second_prepare_reuses_the_first_and_a_changed_setting_or_file_does_not(write_jsonl, distinct_chats,
                                                                                   monkeypatch):
    write_jsonl("train.jsonl", distinct_chats(10))
    first = prepare([Input("train.jsonl")], settings(), "out")
    assert not first.reused
    stamp = Path("out/train.jsonl").stat().st_mtime_ns

    def no_work(self, key):
        raise AssertionError("prepared again although nothing changed")

    with monkeypatch.context() as patch:
        patch.setattr(pipeline._Preparation, "run", no_work)
        again = prepare([Input("train.jsonl")], settings(), "out")
    assert again.reused and again.manifest == first.manifest
    assert Path("out/train.jsonl").stat().st_mtime_ns == stamp
    changed = prepare([Input("train.jsonl")], settings(dedup={"threshold": 0.9}), "out")
    assert not changed.reused and changed.manifest["fingerprint"] != first.manifest["fingerprint"]
    write_jsonl("train.jsonl", distinct_chats(11))
    edited = prepare([Input("train.jsonl")], settings(dedup={"threshold": 0.9}), "out")
    assert not edited.reused and edited.manifest["counts"]["train"] == 9


def test_without_out_the_set_goes_to_the_cache_by_fingerprint(write_jsonl, distinct_chats, workdir):
    write_jsonl("train.jsonl", distinct_chats(10))
    result = prepare([Input("train.jsonl")], settings())
    assert result.folder == workdir / "cache" / "prepared" / result.manifest["fingerprint"]
    assert (result.folder / "train.jsonl").is_file()
    assert prepare([Input("train.jsonl")], settings()).reused


def test_outputs_an_earlier_preparation_wrote_are_removed_when_no_longer_made(write_jsonl, distinct_chats):
    write_jsonl("train.jsonl", distinct_chats(10))
    prepare([Input("train.jsonl")], settings(split={"test": 1}), "out")
    assert Path("out/test.jsonl").is_file()
    prepare([Input("train.jsonl")], settings(split={"test": 0}), "out")
    assert not Path("out/test.jsonl").exists() and not list(Path("out").glob(".prepare-*"))


def test_token_limits_need_the_model_and_count_its_tokens(write_jsonl, make_chat, distinct_chats, tokenizer):
    write_jsonl("train.jsonl", distinct_chats(6) + [make_chat("Hi", "Yo")])
    short = sum(len(tokenizer.encode(text, add_special_tokens=False)) for text in ("Hi", "Yo"))
    config = settings(clean={"min_tokens": 5}, split={"validation": 1, "test": 1})
    with pytest.raises(ConfigError, match="count the model's tokens, so preparing needs the model"):
        prepare([Input("train.jsonl")], config, "out")
    prepare([Input("train.jsonl")], config, "out", tokenizer=tokenizer)
    assert short < 5
    assert rejected() == [("train.jsonl:7", "clean", f"{short} tokens, under data.prepare.clean.min_tokens (5)")]
    assert json.loads(Path("out/report.json").read_text())["unit"] == "tokens"


def test_no_valid_record_at_all(write_jsonl):
    write_jsonl("train.jsonl", ['{"a": 1}', "[]"])
    with pytest.raises(DataError) as caught:
        prepare([Input("train.jsonl")], settings(), "out")
    assert str(caught.value) == ("train.jsonl: no valid records to prepare; every record was quarantined (see the "
                                 "reasons with tunesmith data check)")


def test_what_is_kept_beside_a_feedback_example_trains_with_it(write_jsonl, distinct_chats, make_chat):
    write_jsonl("fixed.jsonl", [make_chat("Dough tips?", ANSWER)])
    write_jsonl("train.jsonl", distinct_chats(10) + [make_chat("Pastry advice?", ANSWER)])
    for seed in (0, 2):  # without the feedback example beside it, seed 2 puts "Pastry advice?" in validation
        prepare([Input("train.jsonl"), Input("fixed.jsonl", "feedback")],
                settings(split={"validation": 0.3, "test": 0.3, "seed": seed}), f"out{seed}")
        assert {"Dough tips?", "Pastry advice?"} <= set(questions(f"out{seed}/train.jsonl"))


def test_the_prepared_set_never_replaces_an_input(write_jsonl, distinct_chats):
    write_jsonl("train.jsonl", distinct_chats(5))
    with pytest.raises(DataError) as caught:
        prepare([Input("train.jsonl")], settings(), ".")
    assert str(caught.value) == ("train.jsonl: the prepared train.jsonl would replace this input in .; choose "
                                 "another --out folder")
