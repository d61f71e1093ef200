"""Personal data redaction with Microsoft Presidio: typed placeholders (<EMAIL>, <PHONE>, ...) in place of what
its recognizers find.

Without a spaCy model Presidio's pattern recognizers run on a blank English pipeline (tokens only); with
`pii.ner_model` naming an installed model, its named-entity recognizer finds PERSON and LOCATION too. Nothing
is ever downloaded: a missing model is an error, and the e-mail recognizer's domain check uses tldextract's
bundled public-suffix snapshot instead of fetching the list.

Three adjustments keep redaction from eating ordinary text, each because of a false positive seen on it:
- phone numbers: phonenumbers accepts any 7-10 digit run a numbering plan allows, which order numbers,
  timestamps, item codes and temperature ranges ("175-190°C (350-375°F)") are; a match counts when it is
  written like a phone number (a leading +, an area code in brackets, or 10+ digits with separators) or
  follows a phone word ("call", "tel", "my number").
- URLs: only with a scheme (https://) or www.; Presidio's bare-domain pattern takes file names (main.py,
  README.md: .py and .md are country domains) and abbreviations (Mr.Smith) for web addresses.
- DATE_TIME is not redacted unless listed in pii.entities: dates are rarely personal data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tunesmith.config.prepare import NER_ENTITIES, PATTERN_ENTITIES, PLACEHOLDERS, PiiSettings
from tunesmith.errors import ConfigError

LANGUAGE = "en"
CACHED_TEXTS = 16_384  # system prompts and greetings repeat: each distinct text is analysed once
_PHONE_WORDS = re.compile(
    r"\b(?:phone|tel|telephone|mobile|cell|cellphone|call|fax|whatsapp|sms|text me|my number|number is)\b",
    re.IGNORECASE,
)
_PHONE_WINDOW = 30  # characters before a bare digit run searched for a phone word
_SEPARATED_DIGITS = re.compile(r"\d[\s.\-()/]+\d")
_AREA_CODE = re.compile(r"\(\d{2,5}\)")
# Every built-in pattern detector needs one of these (a digit, an @, an IPv6 "::", a scheme or www.), so a text
# without any is skipped; own patterns, deny lists, dates and named entities can match anything and turn this off.
_PATTERN_HINT = re.compile(r"[\d@]|::|://|www\.", re.IGNORECASE)


@dataclass(frozen=True)
class Found:
    entity: str
    start: int  # span of the placeholder in the redacted text (the audit never holds the original)
    end: int


class Redactor:
    def __init__(self, settings: PiiSettings):
        self.settings = settings
        self._analyzer, self.detectors = _analyzer(settings)
        from presidio_anonymizer import AnonymizerEngine
        from presidio_anonymizer.entities import OperatorConfig

        self._anonymizer = AnonymizerEngine()
        self._entities = sorted({*settings.entities, *(p.entity for p in settings.patterns), *settings.deny_lists})
        self._operators = {
            entity: OperatorConfig("replace", {"new_value": PLACEHOLDERS.get(entity, f"<{entity}>")})
            for entity in self._entities
        }
        self._hint = _PATTERN_HINT if set(self._entities) <= set(PATTERN_ENTITIES) else None
        self.redact = lru_cache(maxsize=CACHED_TEXTS)(self._redact)

    def _redact(self, text: str) -> tuple[str, tuple[Found, ...]]:
        """(redacted text, what was replaced) for one text."""
        if self._hint is not None and not self._hint.search(text):
            return text, ()
        results = self._analyzer.analyze(text, language=LANGUAGE, entities=self._entities,
                                         score_threshold=self.settings.score_threshold)
        if not results:
            return text, ()
        output = self._anonymizer.anonymize(text=text, analyzer_results=results, operators=self._operators)
        found = sorted((Found(item.entity_type, item.start, item.end) for item in output.items),
                       key=lambda f: f.start)
        return output.text, tuple(found)

    def redact_value(self, value: object) -> object:
        """Every string inside a JSON value redacted (for quarantined records, whose shape may be anything)."""
        if isinstance(value, str):
            return self.redact(value)[0]
        if isinstance(value, list):
            return [self.redact_value(item) for item in value]
        if isinstance(value, dict):
            return {key: self.redact_value(item) for key, item in value.items()}
        return value


def _analyzer(settings: PiiSettings):
    """Presidio's analyzer with exactly the recognizers the settings ask for, and their names for the report."""
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer, DateRecognizer, IbanRecognizer, IpRecognizer, SpacyRecognizer,
    )

    recognizers = {
        "EMAIL_ADDRESS": _offline_email_recognizer,
        "PHONE_NUMBER": _phone_recognizer,
        "CREDIT_CARD": CreditCardRecognizer,
        "IBAN_CODE": IbanRecognizer,
        "IP_ADDRESS": IpRecognizer,
        "URL": _url_recognizer,
        "DATE_TIME": DateRecognizer,
    }
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    for entity in settings.entities:
        if entity in recognizers:
            registry.add_recognizer(recognizers[entity]())
    ner = [entity for entity in settings.entities if entity in NER_ENTITIES]
    if ner:
        registry.add_recognizer(SpacyRecognizer(supported_entities=ner))
    by_entity: dict[str, list] = {}
    for pattern in settings.patterns:
        by_entity.setdefault(pattern.entity, []).append(Pattern(pattern.entity.lower(), pattern.regex, pattern.score))
    for entity, patterns in by_entity.items():
        registry.add_recognizer(PatternRecognizer(supported_entity=entity, patterns=patterns,
                                                  name=f"pattern {entity}"))
    for entity, words in settings.deny_lists.items():
        registry.add_recognizer(PatternRecognizer(supported_entity=entity, deny_list=words,
                                                  name=f"deny list {entity}"))
    engine = _nlp_engine(settings.ner_model)
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=[LANGUAGE])
    detectors = [f"{r.name} ({', '.join(r.supported_entities)})" for r in registry.recognizers]
    return analyzer, detectors


def _nlp_engine(ner_model: str | None):
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    if ner_model is None:
        return _blank_engine()
    import spacy.util

    # Presidio downloads a model it cannot find; check first, so nothing is ever fetched.
    if not (spacy.util.is_package(ner_model) or Path(ner_model).is_dir()):
        raise ConfigError(
            f"data.prepare.pii.ner_model: '{ner_model}' is not an installed spaCy model or a model folder; install "
            f"it while online (python -m spacy download {ner_model}), or remove ner_model to redact with the "
            "pattern detectors only"
        )
    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": LANGUAGE, "model_name": ner_model}],
    })
    return provider.create_engine()


def _blank_engine():
    import spacy
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    class BlankSpacyEngine(SpacyNlpEngine):
        """Tokens from spaCy's rules, no statistical model: all the pattern recognizers need."""

        def load(self) -> None:
            self.nlp = {LANGUAGE: spacy.blank(LANGUAGE)}

    engine = BlankSpacyEngine(models=[{"lang_code": LANGUAGE, "model_name": f"blank:{LANGUAGE}"}])
    engine.load()
    return engine


def _offline_email_recognizer():
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    # No suffix-list URLs and no cache: only the snapshot that ships inside tldextract, never the network.
    extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return extract(pattern_text).fqdn != ""

    return OfflineEmailRecognizer(name="EmailRecognizer")


def _phone_recognizer():
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    class WrittenPhoneRecognizer(PhoneRecognizer):
        def analyze(self, text, entities, nlp_artifacts=None):
            return [result for result in super().analyze(text, entities, nlp_artifacts)
                    if _looks_like_phone(text[result.start : result.end])
                    or _PHONE_WORDS.search(text[max(0, result.start - _PHONE_WINDOW) : result.start])]

    return WrittenPhoneRecognizer(name="PhoneRecognizer")


def _looks_like_phone(number: str) -> bool:
    digits = sum(c.isdigit() for c in number)
    return number.startswith("+") or (digits >= 7 and bool(_AREA_CODE.search(number))) or (
        digits >= 10 and bool(_SEPARATED_DIGITS.search(number)))


def _url_recognizer():
    from presidio_analyzer import Pattern
    from presidio_analyzer.predefined_recognizers import UrlRecognizer

    base = UrlRecognizer.BASE_URL_REGEX
    patterns = [
        Pattern("url with scheme", r"(?i)(?:https?://)" + base, 0.6),
        Pattern("url with www", r"(?i)\b(?=www\d{0,3}[.])" + base, 0.6),
    ]
    return UrlRecognizer(patterns=patterns, name="UrlRecognizer")
