"""Forgetting: did fine-tuning make the model worse at ordinary English? Perplexity of base and tuned on general text.

tunesmith ships a sample of plain general prose written for it (data/general_english.txt); `--general FILE` takes
the user's own (.txt paragraphs separated by blank lines, or any data file in the text format).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from tunesmith.data.formats import load_examples
from tunesmith.errors import DataError
from tunesmith.evaluate.bootstrap import Difference
from tunesmith.evaluate.metrics import PERPLEXITY


def shipped_sample() -> Path:
    return Path(str(resources.files("tunesmith.evaluate") / "data" / "general_english.txt"))


def general_passages(path: str | Path | None = None) -> tuple[list[str], str]:
    """(passages, where they came from): the user's file, or the shipped sample."""
    source = Path(path) if path else shipped_sample()
    examples, fmt = load_examples(source)
    if fmt != "text":
        raise DataError(f"{source}: --general needs plain text (.txt paragraphs, or records with a 'text' field), "
                        f"but this file is {fmt} data")
    return [example.text for example in examples], str(path) if path else "tunesmith general-English sample"


@dataclass(frozen=True)
class Forgetting:
    source: str
    base: float  # perplexity
    tuned: float
    threshold: float  # relative rise that is flagged
    difference: Difference  # tuned - base perplexity with its bootstrap interval

    @property
    def rise(self) -> float:
        return self.tuned / self.base - 1

    @property
    def flagged(self) -> bool:
        return self.rise > self.threshold

    def line(self) -> str:
        d = self.difference
        numbers = (f"perplexity on {self.source} {self.base:.2f} -> {self.tuned:.2f} ({100 * self.rise:+.1f}%, "
                   f"{round(100 * d.confidence)}% CI of the change [{d.low:+.2f}, {d.high:+.2f}])")
        if self.flagged:
            return (f"forgetting: {numbers}, above the {100 * self.threshold:.0f}% threshold; lower the learning rate "
                    "or rank, train fewer epochs, or mix general text into the training data")
        if self.rise <= 0:  # "within the threshold" would read oddly after a fall
            return f"no forgetting: {numbers}; general text is no harder for the tuned model than for the base"
        return f"no forgetting flagged: {numbers}, within the {100 * self.threshold:.0f}% threshold"

    def to_dict(self) -> dict:
        return {"source": self.source, "base_perplexity": self.base, "tuned_perplexity": self.tuned,
                "relative_rise": self.rise, "threshold": self.threshold, "flagged": self.flagged,
                "difference": self.difference.to_dict(), "line": self.line()}


def forgetting(source: str, base: np.ndarray, tuned: np.ndarray, difference: Difference, threshold: float) -> Forgetting:
    """From the passages' token-loss statistics (see losses.token_losses) of both models."""
    return Forgetting(source, PERPLEXITY.score(base), PERPLEXITY.score(tuned), threshold, difference)
