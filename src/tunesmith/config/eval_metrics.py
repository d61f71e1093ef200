"""The `eval.task` and `eval.comparison` sections: task metrics a user sets, and how baselines are compared.

```yaml
eval:
  task:
    label: {parse: regex, pattern: "Label: (\\w+)", labels: [positive, negative]}
    json_output: {fields: [name, date]}
    format: {patterns: ['\\AShort answer: ', '\\nChef''s note: ']}
  comparison: {few_shot_k: 3, bootstrap_resamples: 1000, headline: format}
```
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tunesmith.config.section import Section, invalid


def _compiled(pattern: str, where: str) -> re.Pattern:
    try:
        return re.compile(pattern, re.MULTILINE)
    except re.error as error:
        raise invalid(f"{where}: {pattern!r} is not a valid regular expression ({error})") from None


class LabelMetric(Section):
    """Accuracy and macro-F1 of a label parsed from each answer (and from each reference, by the same rule)."""

    parse: Literal["first_line", "regex", "whole"] = Field(
        "first_line", description="first_line: the first non-empty line; whole: the whole answer; regex: `pattern`"
    )
    pattern: str | None = Field(None, description="regex rule: the label is group 1, or the whole match without groups")
    labels: list[str] | None = Field(None, min_length=2, description="the classes; default: those in the references")
    case_sensitive: bool = False

    @model_validator(mode="after")
    def _pattern_with_regex(self) -> "LabelMetric":
        if self.parse == "regex" and not self.pattern:
            raise invalid("label.pattern is required with parse: regex, e.g. pattern: 'Label: (\\w+)'")
        if self.parse != "regex" and self.pattern:
            raise invalid(f"label.pattern is only used with parse: regex (parse is {self.parse}); drop it or set parse")
        if self.pattern:
            _compiled(self.pattern, "label.pattern")
        return self


class JsonMetric(Section):
    """JSON validity of each answer, and per-field accuracy against the reference object."""

    fields: list[str] | None = Field(None, min_length=1, description="default: every key of each reference object")


class FormatMetric(Section):
    """Format adherence: the share of answers that every regular expression matches (re.search, multiline)."""

    patterns: list[str] = Field(min_length=1)

    @field_validator("patterns")
    @classmethod
    def _valid_patterns(cls, patterns: list[str]) -> list[str]:
        for index, pattern in enumerate(patterns):
            _compiled(pattern, f"format.patterns[{index}]")
        return patterns


class TaskMetrics(Section):
    label: LabelMetric | None = None
    json_output: JsonMetric | None = None
    format: FormatMetric | None = None


class ComparisonSettings(Section):
    few_shot_k: int = Field(3, ge=1, description="training examples shown as earlier chat turns")
    few_shot_seed: int = 0
    bootstrap_resamples: int = Field(1000, ge=100)
    bootstrap_seed: int = 0
    confidence: float = Field(0.95, ge=0.5, lt=1.0)
    forgetting_threshold: float = Field(0.10, gt=0.0, description="flag a relative rise in general-text perplexity")
    headline: str | None = Field(None, description="the verdict's metric; default: the first task metric, else exact_match")
