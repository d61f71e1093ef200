"""The `data.prepare:` section: check, clean, deduplicate, redact personal data, split and report.

`prepare: {}` turns every step on with its defaults; each step's own section tunes it. The same settings
drive `tunesmith data prepare`, where keys are given without the `data.prepare.` prefix.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tunesmith.config.section import Section, invalid

MAX_LINE_BYTES = 64 * 2**20  # the most a reader takes in at once: one line, or a whole JSON array file

# Presidio entity names tunesmith knows how to detect, and the placeholder each becomes.
PLACEHOLDERS = {
    "EMAIL_ADDRESS": "<EMAIL>",
    "PHONE_NUMBER": "<PHONE>",
    "CREDIT_CARD": "<CREDIT_CARD>",
    "IBAN_CODE": "<IBAN>",
    "IP_ADDRESS": "<IP_ADDRESS>",
    "URL": "<URL>",
    "DATE_TIME": "<DATE>",
    "PERSON": "<PERSON>",
    "LOCATION": "<LOCATION>",
}
PATTERN_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "URL")
NER_ENTITIES = ("PERSON", "LOCATION")  # need a spaCy model with named-entity recognition (pii.ner_model)
Entity = Literal["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "URL", "DATE_TIME",
                 "PERSON", "LOCATION"]
_ENTITY_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


class CleanSettings(Section):
    unicode_nfc: bool = Field(True, description="Unicode NFC normalisation")
    control_characters: bool = Field(True, description="drop control characters (tabs and line ends stay)")
    whitespace: bool = Field(True, description="trim ends and line ends, collapse runs of spaces and blank lines")
    html: bool = Field(False, description="strip HTML tags and decode entities (&amp; -> &)")
    repair: bool = Field(True, description="trim trailing user turns, merge consecutive turns of one role")
    min_tokens: int | None = Field(None, ge=1, description="drop examples shorter than this, in the model's tokens")
    max_tokens: int | None = Field(None, ge=1, description="drop examples longer than this, in the model's tokens")

    @model_validator(mode="after")
    def _range(self) -> "CleanSettings":
        if self.min_tokens and self.max_tokens and self.min_tokens > self.max_tokens:
            raise invalid(f"clean.min_tokens ({self.min_tokens}) is above clean.max_tokens ({self.max_tokens})")
        return self


class DedupSettings(Section):
    exact: bool = Field(True, description="drop exact duplicates (after normalising case, spacing, punctuation)")
    near: bool = Field(True, description="drop near duplicates (MinHash LSH, checked with the true Jaccard)")
    threshold: float = Field(0.8, gt=0.0, le=1.0, description="Jaccard similarity from which two are near duplicates")
    shingle_size: int = Field(5, ge=1, description="characters per shingle")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations (more: finer, slower)")


class PatternSetting(Section):
    entity: str = Field(description="entity name, e.g. EMPLOYEE_ID; the placeholder is <EMPLOYEE_ID>")
    regex: str
    score: float = Field(0.9, gt=0.0, le=1.0)

    @field_validator("entity")
    @classmethod
    def _entity_name(cls, value: str) -> str:
        if not _ENTITY_NAME.match(value):
            raise invalid(f"entity '{value}' must be upper case letters, digits and _, e.g. EMPLOYEE_ID")
        return value

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            raise invalid(f"regex {value!r} does not compile: {error}") from None
        return value


class PiiSettings(Section):
    enabled: bool = True
    entities: list[Entity] = Field(
        default_factory=lambda: list(PATTERN_ENTITIES),
        description="what to redact; DATE_TIME is off by default (dates are rarely personal); PERSON and "
        "LOCATION need ner_model",
    )
    patterns: list[PatternSetting] = Field(default_factory=list, description="your own regular expressions")
    deny_lists: dict[str, list[str]] = Field(default_factory=dict, description="entity -> words always redacted")
    ner_model: str | None = Field(None, description="an installed spaCy model (name or folder) for names/places")
    score_threshold: float = Field(0.4, ge=0.0, le=1.0, description="Presidio confidence needed to redact")
    audit: bool = Field(False, description="write pii_audit.jsonl: where, field, type, span (never the text)")

    @field_validator("deny_lists")
    @classmethod
    def _deny_entities(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for entity, words in value.items():
            if not _ENTITY_NAME.match(entity):
                raise invalid(f"deny_lists key '{entity}' must be an entity name like CUSTOMER_NAME")
            if not words:
                raise invalid(f"deny_lists.{entity} is empty; list the words to redact")
        return value

    @model_validator(mode="after")
    def _ner_entities_need_a_model(self) -> "PiiSettings":
        ner = [entity for entity in self.entities if entity in NER_ENTITIES]
        if ner and not self.ner_model:
            raise invalid(
                f"pii.entities lists {', '.join(ner)}, which need a named-entity model: set pii.ner_model to an "
                "installed spaCy model (e.g. en_core_web_sm), or remove them"
            )
        return self


class SplitSettings(Section):
    validation: float = Field(0.1, ge=0.0, description="a fraction (< 1) or a count (whole number >= 1)")
    test: float = Field(0.1, ge=0.0, description="a fraction (< 1) or a count (whole number >= 1)")
    seed: int = 0
    stratify_by: str | None = Field("label", description="record field whose values each split keeps in proportion")

    @field_validator("validation", "test")
    @classmethod
    def _fraction_or_count(cls, value: float) -> float:
        if value >= 1 and value != int(value):
            raise invalid(f"{value} is neither a fraction below 1 nor a whole count")
        return value


class AugmentSettings(Section):
    target_ratio: float = Field(
        gt=0.0, le=1.0, description="oversample each label to at least this share of the largest label (train only)"
    )


class SourceSetting(Section):
    path: str
    weight: float = Field(1.0, gt=0.0, description="mixing weight: 2 repeats its training examples, 0.5 keeps half")


class ReportSettings(Section):
    samples: int = Field(3, ge=0, description="examples shown per step")
    top_ngrams: int = Field(10, ge=0)
    ngram_examples: int = Field(5_000, ge=1, description="n-grams are counted over the first N examples")
    min_examples: int = Field(100, ge=1, description="warn when the training set is smaller")
    max_imbalance: float = Field(10.0, ge=1.0, description="warn when the largest label outnumbers the smallest")


class PrepareConfig(Section):
    strict: bool = Field(False, description="stop at the first bad row instead of quarantining it")
    max_line_bytes: int = Field(MAX_LINE_BYTES, ge=1024,
                                description="the most read at once: one line, or a whole JSON array file")
    sources: list[SourceSetting] = Field(default_factory=list, description="more training files, with weights")
    feedback: str | None = Field(None, description="corrected failures (tunesmith eval --export-failures) to merge")
    clean: CleanSettings = Field(default_factory=CleanSettings)
    dedup: DedupSettings = Field(default_factory=DedupSettings)
    pii: PiiSettings = Field(default_factory=PiiSettings)
    split: SplitSettings = Field(default_factory=SplitSettings)
    augment: AugmentSettings | None = None
    report: ReportSettings = Field(default_factory=ReportSettings)
