"""Train/validation/test examples for a run, from files or a seeded split of the training file.

With `data.prepare` set, the run trains on the prepared set instead: the preparation runs (or is reused from
the cache, by fingerprint) and its split files are loaded; `data.validation_split` does not apply then, the
preparation's own split does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from tunesmith.config.schema import DataConfig
from tunesmith.data.formats import Example, load_examples
from tunesmith.errors import DataError


@dataclass
class RunData:
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    format: str
    prepared: Path | None = None  # the prepared set's folder (report.md, rejected.jsonl) when data.prepare is set


def load_run_data(cfg: DataConfig, tokenizer=None) -> RunData:
    """`tokenizer` measures lengths in the model's tokens for data.prepare (needed by its min/max_tokens)."""
    if cfg.prepare is not None:
        return _prepared(cfg, tokenizer)
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


def _prepared(cfg: DataConfig, tokenizer) -> RunData:
    from tunesmith.data.prepare.pipeline import inputs_for, prepare

    prepared = prepare(inputs_for(cfg), cfg.prepare, format=cfg.format, tokenizer=tokenizer)
    fmt = prepared.manifest["format"]

    def load(split: str) -> list[Example]:
        path = prepared.split_file(split)
        return load_examples(path, fmt)[0] if path else []

    train = load("train")
    if not train:
        raise DataError(f"{cfg.train}: no training examples left after data.prepare; see "
                        f"{prepared.folder / 'report.md'} and {prepared.folder / 'rejected.jsonl'} for why")
    return RunData(train, load("validation"), load("test"), fmt, prepared.folder)
