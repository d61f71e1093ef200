"""The data.prepare section of a run config: defaults, and the messages its mistakes get."""

import pytest

from tunesmith.config.load import build_config
from tunesmith.config.prepare import PrepareConfig
from tunesmith.errors import ConfigError


def error(prepare) -> str:
    with pytest.raises(ConfigError) as caught:
        build_config({"data": {"train": "train.jsonl", "prepare": prepare}})
    return str(caught.value)


def test_an_empty_section_turns_every_step_on_with_its_defaults():
    config = build_config({"data": {"train": "train.jsonl", "prepare": {}}})
    assert config.data.prepare == PrepareConfig()
    assert config.data.prepare.pii.entities == ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE",
                                                "IP_ADDRESS", "URL"]
    assert build_config({"data": {"train": "train.jsonl"}}).data.prepare is None


@pytest.mark.parametrize("prepare, line", [
    ({"dedup": {"treshold": 0.9}}, "  data.prepare.dedup.treshold: unknown key; did you mean 'data.prepare.dedup.threshold'?"),
    ({"split": {"validation": 2.5}}, "  data.prepare.split.validation: 2.5 is neither a fraction below 1 nor a whole "
                                     "count (got 2.5)"),
    ({"pii": {"patterns": [{"entity": "id", "regex": "x"}]}},
     "  data.prepare.pii.patterns.0.entity: entity 'id' must be upper case letters, digits and _, e.g. EMPLOYEE_ID "
     "(got 'id')"),
    ({"pii": {"patterns": [{"entity": "ID", "regex": "(x"}]}},
     "  data.prepare.pii.patterns.0.regex: regex '(x' does not compile: missing ), unterminated subpattern at "
     "position 0 (got '(x')"),
    ({"pii": {"deny_lists": {"CUSTOMER": []}}},
     "  data.prepare.pii.deny_lists: deny_lists.CUSTOMER is empty; list the words to redact (got {'CUSTOMER': []})"),
])
def test_mistakes_name_the_key_and_what_would_be_right(prepare, line):
    assert line in error(prepare).splitlines()


def test_rules_across_keys():
    assert "clean.min_tokens (50) is above clean.max_tokens (10)" in error({"clean": {"min_tokens": 50,
                                                                                    "max_tokens": 10}})
    assert ("pii.entities lists PERSON, which need a named-entity model: set pii.ner_model to an installed spaCy "
            "model (e.g. en_core_web_sm), or remove them") in error({"pii": {"entities": ["PERSON"]}})
