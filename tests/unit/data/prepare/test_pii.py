"""Redaction: every personal-data type on planted text, nothing on a clean corpus, and never the network."""

import socket

import pytest

from tunesmith.config.prepare import PiiSettings
from tunesmith.data.prepare.pii import Redactor
from tunesmith.errors import ConfigError


@pytest.fixture(scope="module")
def redactor():
    return Redactor(PiiSettings())


def redacted(redactor, text):
    return redactor.redact(text)[0]


@pytest.mark.parametrize("text, expected", [
    ("Write to jane.doe@example.com today.", "Write to <EMAIL> today."),
    ("Reach me at +1 415-555-0132.", "Reach me at <PHONE>."),
    ("Office: (415) 555-0132, London 020 7946 0958", "Office: <PHONE>, London <PHONE>"),
    ("Call me on 4155550132 tonight", "Call me on <PHONE> tonight"),
    ("Card 4111 1111 1111 1111 exp 09/29", "Card <CREDIT_CARD> exp 09/29"),
    ("Pay to IBAN DE89 3704 0044 0532 0130 00 please", "Pay to IBAN <IBAN> please"),
    ("Server 192.168.1.20 and 2001:db8::1 are down", "Server <IP_ADDRESS> and <IP_ADDRESS> are down"),
    ("My blog https://example.org/jane?tab=1 and www.janes-kitchen.com", "My blog <URL> and <URL>"),
])
def test_each_type_becomes_its_placeholder(redactor, text, expected):
    assert redacted(redactor, text) == expected


def test_numbers_that_fail_their_checksum_are_not_redacted(redactor):
    # 4111...1112 fails the Luhn check; DE00... fails the IBAN check digits.
    assert redacted(redactor, "Card 4111 1111 1111 1112, IBAN DE00 3704 0044 0532 0130 00") == (
        "Card 4111 1111 1111 1112, IBAN DE00 3704 0044 0532 0130 00"
    )


CLEAN_CORPUS = [
    "Order 12345678901234567890 shipped on 2024-10-07 and arrives 07/10/2024 at 10:30.",
    "ISBN 9780306406157, SKU 000123456789, build 20240101, timestamp 1700000000, item 4000-1234.",
    "Python 3.11.7 with numpy 2.4.6 and torch==2.13.0; node v20.11.1; release v1.2.3-beta.",
    "It costs $1,299.99, or 12.50 EUR, or £4.99 a month; 2.5 kg of flour at 1.80/kg.",
    "Roast at 180°C (356°F) for 45-50 minutes; serves 4-6; 1/2 cup sugar, 350 g butter, 12.10.2024.",
    "Fry at 175-190°C (350-375°F), in batches of 2-3; rest 10-15 min (up to 1-2 h).",
    "Run main.py, edit README.md and config.yaml, load model.pt; e.g. Mr.Smith's recipe, i.e. No.1.",
    "Commit 1a2b3c4d5e6f7a8b, step 1.2.3, zip 94103, room 3014, flight 1234, pi is 3.14159265358979.",
    "Long digit runs: 98765432109876543210 and 31415926535897932384626433 are not numbers of any kind.",
]


def test_a_clean_corpus_is_left_exactly_as_it_is(redactor):
    assert [redactor.redact(text) for text in CLEAN_CORPUS] == [(text, ()) for text in CLEAN_CORPUS]


def test_dates_are_not_personal_data_unless_asked_for(redactor):
    text = "Booked for 2024-10-07 and 10/08/2024."
    assert redacted(redactor, text) == text
    with_dates = Redactor(PiiSettings(entities=["EMAIL_ADDRESS", "DATE_TIME"]))
    assert redacted(with_dates, text) == "Booked for <DATE> and <DATE>."


def test_own_patterns_and_deny_lists():
    settings = PiiSettings(patterns=[{"entity": "EMPLOYEE_ID", "regex": r"\bEMP-\d{6}\b"}],
                           deny_lists={"CUSTOMER": ["Jane Doe", "Acme Bakery"]})
    custom = Redactor(settings)
    assert redacted(custom, "jane doe (EMP-004211) of ACME Bakery, jane@acme.com") == (
        "<CUSTOMER> (<EMPLOYEE_ID>) of <CUSTOMER>, <EMAIL>"
    )
    assert "pattern EMPLOYEE_ID (EMPLOYEE_ID)" in custom.detectors
    assert "deny list CUSTOMER (CUSTOMER)" in custom.detectors


def test_the_detectors_that_ran_are_named(redactor):
    assert redactor.detectors == [
        "EmailRecognizer (EMAIL_ADDRESS)", "PhoneRecognizer (PHONE_NUMBER)", "CreditCardRecognizer (CREDIT_CARD)",
        "IbanRecognizer (IBAN_CODE)", "IpRecognizer (IP_ADDRESS)", "UrlRecognizer (URL)",
    ]


def test_spans_point_at_the_placeholders(redactor):
    text, found = redactor.redact("a@b.com or +1 415-555-0132")
    assert text == "<EMAIL> or <PHONE>"
    assert [(f.entity, text[f.start:f.end]) for f in found] == [("EMAIL_ADDRESS", "<EMAIL>"),
                                                               ("PHONE_NUMBER", "<PHONE>")]


def test_redact_value_reaches_every_string_of_a_record(redactor):
    record = {"messages": [{"role": "user", "content": "mail a@b.com"}, 3, None], "note": ["ip 10.0.0.1"]}
    assert redactor.redact_value(record) == {"messages": [{"role": "user", "content": "mail <EMAIL>"}, 3, None],
                                             "note": ["ip <IP_ADDRESS>"]}


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to resolve or reach a host is recorded and refused."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_redaction_never_touches_the_network(no_network, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no public-suffix list cached from an earlier run
    fresh = Redactor(PiiSettings())
    assert redacted(fresh, "mail jane@example.co.uk, see https://example.org") == "mail <EMAIL>, see <URL>"
    assert no_network == []
    # The guard does see a fetch: tldextract's own default tries to download the public-suffix list.
    import tldextract

    tldextract.TLDExtract(cache_dir=str(tmp_path / "tld"))("jane@example.co.uk")
    assert no_network


def test_a_named_entity_model_that_is_not_installed_is_refused_before_any_download():
    with pytest.raises(ConfigError) as caught:
        Redactor(PiiSettings(entities=["PERSON"], ner_model="xx_not_installed_sm"))
    assert str(caught.value) == (
        "data.prepare.pii.ner_model: 'xx_not_installed_sm' is not an installed spaCy model or a model folder; "
        "install it while online (python -m spacy download xx_not_installed_sm), or remove ner_model to redact "
        "with the pattern detectors only"
    )


def test_names_and_places_need_a_model():
    with pytest.raises(ValueError, match="pii.entities lists PERSON, LOCATION, which need a named-entity model"):
        PiiSettings(entities=["PERSON", "LOCATION"])


def test_with_a_named_entity_model_names_and_places_are_redacted(tmp_path):
    # A spaCy pipeline whose entity ruler knows two names stands in for a trained model (none is installed here).
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "PERSON", "pattern": "Alice Martin"},
                                               {"label": "GPE", "pattern": "Lyon"}])
    nlp.to_disk(tmp_path / "ner")
    ner = Redactor(PiiSettings(entities=["EMAIL_ADDRESS", "PERSON", "LOCATION"], ner_model=str(tmp_path / "ner")))
    assert redacted(ner, "Alice Martin moved to Lyon; alice@example.com") == "<PERSON> moved to <LOCATION>; <EMAIL>"
    assert "SpacyRecognizer (PERSON, LOCATION)" in ner.detectors
