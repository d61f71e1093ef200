"""`tunesmith models` as data: every model found, what each method needs of this device's memory, and with a config,
the context its data needs and a ranking.

The context a config's data needs is its longest example in tokens, encoded whole as training encodes it (chat
template, special tokens, no truncation) with each model's own tokenizer; a GGUF file or a folder without a tokenizer gets a
word-based estimate instead (reading a GGUF vocabulary takes seconds per file), and the listing says which.

Ranking, best first: the data's longest example fits the model's context; the config's own method fits in memory;
more methods fit; then more parameters (a larger model of those that fit usually tunes to better answers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tunesmith.config.schema import RunConfig
from tunesmith.data.formats import Example
from tunesmith.models.catalogue import Found, ModelInfo, meta_model_of
from tunesmith.models.method_fit import MethodFit, method_fits

# The estimate: ~1.3 tokens per English word (100 tokens ~ 75 words), plus a chat template's role markers per turn.
TOKENS_PER_WORD = 1.3
TOKENS_PER_TURN = 8
TOKENIZER = "tokenizer"
ESTIMATE = "estimate (1.3 tokens a word + 8 a turn)"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
UNLIMITED = 2**31 - 1


@dataclass
class Candidate:
    info: ModelInfo
    fits: dict[str, MethodFit] = field(default_factory=dict)
    unusable: str = ""  # why no method could be planned (the architecture could not be built)
    context_needed: int | None = None
    measured_with: str | None = None

    @property
    def context_fits(self) -> bool | None:
        if self.context_needed is None or self.info.context is None:
            return None
        return self.info.context >= self.context_needed

    def methods_that_fit(self) -> int:
        return sum(bool(fit.fits) for fit in self.fits.values())

    def to_dict(self) -> dict:
        return {**self.info.to_dict(), "methods": {name: fit.to_dict() for name, fit in self.fits.items()},
                "unusable": self.unusable or None, "context_needed": self.context_needed,
                "context_measured_with": self.measured_with, "context_fits": self.context_fits}


def _words_estimate(example: Example) -> int:
    texts = [m["content"] for m in example.messages] if example.messages else [
        t for t in (example.prompt, example.completion, example.text) if t]
    turns = len(example.messages) if example.messages else 0
    return math.ceil(TOKENS_PER_WORD * sum(len(t.split()) for t in texts)) + TOKENS_PER_TURN * turns


def longest_example(info: ModelInfo, examples: list[Example]) -> tuple[int, str]:
    """(tokens of the longest example, how they were counted)."""
    from tunesmith.data.tokenize import encode_example
    from tunesmith.errors import TunesmithError
    from tunesmith.models.load import ModelSource, load_tokenizer

    if info.gguf is None and any((info.path / name).is_file() for name in _TOKENIZER_FILES):
        try:
            tokenizer = load_tokenizer(ModelSource(info.name, info.path))
            # train_on "all" renders each example once: every token counts, whatever the loss covers.
            return max(len(encode_example(e, tokenizer, UNLIMITED, "all")["input_ids"]) for e in examples), TOKENIZER
        except (TunesmithError, ValueError, OSError):
            pass  # code it would have to run, no chat template for chat data, ...: estimate instead
    return max(_words_estimate(e) for e in examples), ESTIMATE


def survey(found: Found, device, config: RunConfig | None = None, examples: list[Example] = ()) -> list[Candidate]:
    """Every found model with its method fits; with `config`, also the context its data needs, ranked best first."""
    own = {config.method.name: config.method} if config else None
    candidates = []
    for info in found.models:
        candidate = Candidate(info)
        try:
            base = meta_model_of(info.path)
        except (ValueError, KeyError, OSError) as exc:  # unknown to transformers, or code it would have to run
            candidate.unusable = f"its architecture cannot be built here: {exc}".splitlines()[0]
        else:
            candidate.fits = method_fits(base, device, own, None if info.gguf else info.path)
        if config is not None and examples:
            needed, candidate.measured_with = longest_example(info, examples)
            # Raw text trains in blocks of data.max_length, whatever the documents' lengths.
            candidate.context_needed = min(needed, config.data.max_length) if examples[0].text else needed
        candidates.append(candidate)
    if config is None:
        return candidates
    return sorted(candidates, key=lambda candidate: _rank(candidate, config.method.name), reverse=True)


def _rank(candidate: Candidate, method: str) -> tuple:
    own = candidate.fits.get(method)
    return (candidate.context_fits is not False, bool(own and own.fits), candidate.methods_that_fit(),
            candidate.info.parameters or 0)
