"""Train/validation/test examples for a run, from files or a seeded split of the training file."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tunesmith.config.schema import DataConfig
from tunesmith.data.formats import Example, load_examples
from tunesmith.errors import DataError


@dataclass
class RunData:
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    format: str


def load_run_data(cfg: DataConfig) -> RunData:
    train, fmt = load_examples(cfg.train, cfg.format)
    fixed = fmt if cfg.format == "auto" else cfg.format
    validation = _load_same_format(cfg.validation, fixed, cfg.train) if cfg.validation else []
    test = _load_same_format(cfg.test, fixed, cfg.train) if cfg.test else []
    if not cfg.validation and cfg.validation_split > 0 and len(train) >= 2:
        order = list(range(len(train)))
        random.Random(0).shuffle(order)
        n_val = max(1, round(len(train) * cfg.validation_split))
        validation = [train[i] for i in sorted(order[:n_val])]
        train = [train[i] for i in sorted(order[n_val:])]
    return RunData(train, validation, test, fmt)


def _load_same_format(path: str, fmt: str, train_path: str) -> list[Example]:
    examples, found = load_examples(path, fmt)
    if found != fmt:
        raise DataError(f"{path}: format is {found} but {train_path} is {fmt}; use one format for all splits")
    return examples
