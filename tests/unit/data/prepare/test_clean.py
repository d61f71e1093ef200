"""Cleaning and chat repairs: what changes, what is kept, and what each change is counted as."""

from tunesmith.config.prepare import CleanSettings
from tunesmith.data.formats import REPEATED_ROLE, TRAILING_USER, Example
from tunesmith.data.prepare.clean import clean_example, clean_text, repair_record

ALL = CleanSettings(html=True)


def roles(data):
    return [(m["role"], m["content"]) for m in data["messages"]]


def test_trailing_user_turns_are_trimmed_and_repeated_speakers_merged():
    data = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                         {"role": "user", "content": "Eggs?"}, {"role": "assistant", "content": "Boil 9 min."},
                         {"role": "assistant", "content": "Cool them."}, {"role": "user", "content": "Thanks"}],
            "label": "eggs"}
    repaired, made = repair_record(data)
    assert roles(repaired) == [("system", "Be brief."), ("user", "Hi\n\nEggs?"),
                               ("assistant", "Boil 9 min.\n\nCool them.")]
    assert made == {TRAILING_USER, REPEATED_ROLE}
    assert repaired["label"] == "eggs"
    assert len(data["messages"]) == 6  # the record as read is left alone


def test_what_cannot_be_repaired_is_left_for_validation_to_name():
    no_reply = {"messages": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Hello?"}]}
    malformed = {"messages": [{"role": "user", "content": "Hi"}, "hello"]}
    fine = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    for data in (no_reply, malformed, fine, {"prompt": "a", "completion": "b"}):
        assert repair_record(data) == (data, frozenset())


def test_unicode_is_composed_and_controls_dropped_but_tabs_and_line_ends_stay():
    text, changed = clean_text("Cafe\u0301\x00 menu\x1b:\tsoup\u200b\ufeff\nbread\x7f", ALL)
    assert text == "Café menu:\tsoup\nbread"
    assert changed == {"unicode_nfc", "control_characters"}


def test_whitespace_keeps_indentation_and_one_blank_line():
    text = "  Steps:  \r\n\n\n\n    1.  Heat   the pan.\u00a0\u00a0Then\r\n    2. Add oil.   \n"
    cleaned, changed = clean_text(text, ALL)
    assert cleaned == "Steps:\n\n    1. Heat the pan. Then\n    2. Add oil."
    assert changed == {"whitespace"}


def test_html_remnants_are_stripped_only_when_asked():
    text = "<p>Salt &amp; pepper</p><script>track()</script><br>to taste"
    assert clean_text(text, ALL) == ("Salt & pepper\n\nto taste", {"html", "whitespace"})
    assert clean_text(text, CleanSettings()) == (text, set())


def test_clean_example_cleans_every_field_and_reports_the_union_of_changes():
    example = Example(messages=[{"role": "user", "content": "Hi  there "}, {"role": "assistant", "content": "e\u0301"}])
    cleaned, changed = clean_example(example, CleanSettings())
    assert [m["content"] for m in cleaned.messages] == ["Hi there", "é"]
    assert changed == {"whitespace", "unicode_nfc"}
    same = Example(prompt="a", completion="b")
    assert clean_example(same, CleanSettings()) == (same, set())
