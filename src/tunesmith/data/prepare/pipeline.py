"""`prepare`: check -> repair and clean -> deduplicate -> redact -> split -> report, streamed.

Pass one reads every input once, in the order validation, test, feedback, train: each example is checked,
repaired, cleaned, measured, compared with what came before and redacted, then appended to a staging file
(redacted text only) or quarantined in rejected.jsonl with its reason. Evaluation files come first so a
training example that repeats one is removed (it would leak the held-out set), and feedback (corrected
failures) comes before the training files so its corrected version wins over an older duplicate. Exact
duplicates are found before redaction, near duplicates after it (on the text that is kept). Pass two splits
the training pool, applies mixing weights and oversampling, and streams the staging file into the split
files while the report's numbers are gathered. Memory holds a few numbers and hashes per example, never texts:
about 20 bytes here and ~270 in the deduplication index, which is freed before pass two.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from array import array
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tunesmith.config.prepare import PrepareConfig
from tunesmith.config.schema import DataConfig
from tunesmith.data.formats import (
    REPEATED_ROLE, TRAILING_USER, Example, RecordProblem, check_format_name, convert_record,
)
from tunesmith.data.prepare.augment import oversample, weighted_copies
from tunesmith.data.prepare.cache import MANIFEST, OUTPUTS, cached_folder, fingerprint, publish, read_manifest
from tunesmith.data.prepare.check import Checked, FormatTracker, Issue, check_records, problem_kind
from tunesmith.data.prepare.clean import OPERATIONS, clean_example
from tunesmith.data.prepare.dedup import Deduplicator, Match
from tunesmith.data.prepare.examples import (
    compared_parts, from_record, output_format, preview, text_fields, to_record, with_texts,
)
from tunesmith.data.prepare.lengths import LengthCounter, Lengths, tokenizer_identity
from tunesmith.data.prepare.report import write_report
from tunesmith.data.prepare.split import SPLITS_IN_ORDER, TEST, TRAIN, VALIDATION, split_codes, stratum_codes
from tunesmith.data.prepare.stats import SplitStats
from tunesmith.data.readers import Record
from tunesmith.errors import ConfigError, DataError

FEEDBACK = "feedback"
ROLE_ORDER = (VALIDATION, TEST, FEEDBACK, TRAIN)
EVALUATION = (VALIDATION, TEST)
REPAIRED = {TRAILING_USER: "trailing user turns trimmed", REPEATED_ROLE: "consecutive turns of one role merged"}


@dataclass(frozen=True)
class Input:
    path: str
    role: str = TRAIN  # train, validation, test (kept as that split) or feedback (merged into train)
    weight: float = 1.0  # mixing weight of a training file


@dataclass
class Prepared:
    folder: Path
    reused: bool  # True when a complete preparation with the same fingerprint was already there
    manifest: dict

    def split_file(self, split: str) -> Path | None:
        return self.folder / f"{split}.jsonl" if self.manifest["counts"].get(split) else None


def inputs_for(cfg: DataConfig) -> list[Input]:
    """A run config's data files as preparation inputs: its held-out files, feedback, and the training files."""
    settings = cfg.prepare
    inputs = [Input(path, role) for path, role in ((cfg.validation, VALIDATION), (cfg.test, TEST)) if path]
    if settings.feedback:
        inputs.append(Input(settings.feedback, FEEDBACK))
    inputs.append(Input(cfg.train, TRAIN))
    return inputs + [Input(source.path, TRAIN, source.weight) for source in settings.sources]


def prepare(inputs: list[Input], settings: PrepareConfig, out: str | Path | None = None, *, format: str = "auto",
            tokenizer=None) -> Prepared:
    """Prepare `inputs` into `out` (or the cache, keyed by fingerprint); reuse a complete earlier preparation."""
    check_format_name(format)
    if tokenizer is None and (settings.clean.min_tokens or settings.clean.max_tokens):
        raise ConfigError("data.prepare.clean.min_tokens and max_tokens count the model's tokens, so preparing needs "
                          "the model: run it from a config with model:, or pass --model to tunesmith data prepare")
    inputs = sorted(inputs, key=lambda i: ROLE_ORDER.index(i.role))
    for item in inputs:
        if not Path(item.path).is_file():
            raise DataError(f"data file not found: {item.path}" if not Path(item.path).exists()
                            else f"{item.path}: is a directory; expected a data file")
    key = fingerprint(inputs, settings, format, tokenizer_identity(tokenizer))
    target = Path(out) if out is not None else cached_folder(key)
    _check_not_overwriting_inputs(inputs, target)
    manifest = read_manifest(target)
    if manifest and manifest.get("fingerprint") == key:
        return Prepared(target, True, manifest)
    target.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".prepare-", dir=target))
    try:
        manifest = _Preparation(inputs, settings, format, tokenizer, work).run(key)
        publish(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Prepared(target, False, manifest)


def _check_not_overwriting_inputs(inputs: list[Input], target: Path) -> None:
    written = {(target / name).resolve(): name for name in OUTPUTS}
    for item in inputs:
        name = written.get(Path(item.path).resolve())
        if name:
            raise DataError(f"{item.path}: the prepared {name} would replace this input in {target}; choose another "
                            "--out folder")


class _Staging:
    """Kept examples (redacted) on disk, appended in order and read back by key."""

    def __init__(self, path: Path):
        self._file = open(path, "w+b")
        self._offsets = array("q")

    def __len__(self) -> int:
        return len(self._offsets)

    def add(self, entry: dict) -> int:
        self._file.seek(0, 2)
        self._offsets.append(self._file.tell())
        self._file.write(json.dumps(entry, ensure_ascii=False).encode() + b"\n")
        return len(self._offsets) - 1

    def get(self, key: int) -> dict:
        self._file.seek(self._offsets[key])
        return json.loads(self._file.readline())

    def __iter__(self):
        self._file.seek(0)
        for line in self._file:
            yield json.loads(line)

    def close(self) -> None:
        self._file.close()


class _Preparation:
    def __init__(self, inputs: list[Input], settings: PrepareConfig, fmt: str, tokenizer, work: Path):
        self.inputs, self.settings, self.work = inputs, settings, work
        self.formats = FormatTracker(fmt)
        self.counter = LengthCounter(tokenizer)
        self.redactor = None
        if settings.pii.enabled:
            from tunesmith.data.prepare.pii import Redactor

            self.redactor = Redactor(settings.pii)
        self.staging = _Staging(work / ".staged.jsonl")
        self.dedup = Deduplicator(settings.dedup, self._staged_parts)
        self.rejected = open(work / "rejected.jsonl", "w", encoding="utf-8")
        self.audit = open(work / "pii_audit.jsonl", "w", encoding="utf-8") if (
            settings.pii.enabled and settings.pii.audit) else None
        # A few numbers per kept example (by staging key): its role, label, input and duplicate group.
        self.roles = array("b")
        self.labels = array("i")
        self.sources = array("h")
        self.groups = array("i")
        self.label_names: list[str] = []
        self.label_ids: dict[str, int] = {}
        self.seen = Counter()  # per input path: records read
        self.kept = Counter()  # per input path: examples staged
        self.invalid = Counter()  # check problems by kind
        self.repairs = Counter()
        self.changed = Counter()
        self.dropped = Counter()
        self.duplicates = Counter()  # exact, near, leakage, replaced_by_feedback, kept_grouped
        self.redacted = Counter()  # entity -> count, in kept examples
        self.redacted_examples = 0
        self.samples: dict[str, list] = {"check": [], "repair": [], "clean": [], "pairs": []}
        self.feedback_rejected = 0
        self.augmented: dict[str, int] = {}

    def _staged_parts(self, key: int) -> tuple[str, str]:
        return compared_parts(from_record(self.staging.get(key)["record"]))

    # --- pass one --------------------------------------------------------------------------------------

    def run(self, key: str) -> dict:
        try:
            for index, item in enumerate(self.inputs):
                self._read(item, index)
            if self.formats.format is None:
                raise DataError(f"{', '.join(i.path for i in self.inputs)}: no valid records to prepare; "
                                "every record was quarantined (see the reasons with tunesmith data check)")
            manifest = self._finish(key)
        finally:
            self.staging.close()
            self.rejected.close()
            if self.audit:
                self.audit.close()
        (self.work / ".staged.jsonl").unlink(missing_ok=True)
        return manifest

    def _read(self, item: Input, index: int) -> None:
        for entry in check_records(item.path, self.formats, self.settings.clean.repair, self.settings.max_line_bytes):
            self.seen[item.path] += 1
            if isinstance(entry, Issue):
                self._invalid(entry, item)
            else:
                self._example(entry, item, index)
        if not self.seen[item.path]:
            raise DataError(f"{item.path}: the file is empty; it holds no records")

    def _invalid(self, issue: Issue, item: Input) -> None:
        if issue.fatal:
            raise DataError(str(issue))
        if self.settings.strict:
            raise DataError(f"{issue}\n(data.prepare.strict stops at the first bad row; without it the row is "
                            "quarantined in rejected.jsonl and preparation goes on)")
        self.invalid[problem_kind(issue.message)] += 1
        self.feedback_rejected += item.role == FEEDBACK
        record = self._redact_value(issue.record) if issue.record is not None else None
        self._reject(issue.where, "check", issue.message, record, "check")

    def _example(self, checked: Checked, item: Input, index: int) -> None:
        where = checked.record.where
        example = checked.example
        if checked.repairs:
            self.repairs.update(checked.repairs)
            if self._wants("repair"):
                made = "; ".join(REPAIRED[kind] for kind in sorted(checked.repairs))
                self._sample("repair", where, made, self._redacted_record(example))
        example, ops = clean_example(example, self.settings.clean)
        self.changed.update(ops)
        lengths = self.counter.measure(example)
        problem = (self._clean_problem(example, checked.record) if ops else None) or self._length_problem(lengths)
        if problem:
            kind, reason = problem
            self.dropped[kind] += 1
            self._drop(item, where, "clean", reason, self._redacted_record(example), "clean")
            return
        label = self._label(checked.record.data)
        exact_parts = compared_parts(example)
        redacted, found = self._redact(example)
        record = to_record(redacted, label, self.settings.split.stratify_by)
        exact = self.dedup.exact_match(exact_parts)
        sketch = None
        match, kind = (exact, "exact") if exact and (self.settings.dedup.exact or not self.settings.dedup.near) else (
            None, "near")
        if match is None:
            match, sketch = self.dedup.near_match(compared_parts(redacted))
        if match is not None:
            reason = self._duplicate_reason(item.role, match, kind)
            if reason:
                self._drop(item, where, "dedup", reason, record, None)
                self._pair(where, record, match)
                return
            self.duplicates["kept_together"] += 1
        entry = {"where": where, "role": item.role, "source": item.path, "label": label, "record": record,
                 "lengths": list(self.counter.measure(redacted) if found else lengths)}
        key = self.staging.add(entry)
        self.roles.append(ROLE_ORDER.index(item.role))
        self.labels.append(self._label_id(label))
        self.sources.append(index)
        self.groups.append(self.groups[match.key] if match is not None else key)
        if match is None:
            self.dedup.remember(key, exact_parts, sketch)
        self.kept[item.path] += 1
        self._count_redactions(where, found)

    def _clean_problem(self, example: Example, record: Record) -> tuple[str, str] | None:
        """Why a cleaned example is no longer valid (a text that was only spaces or control characters)."""
        try:
            convert_record(Record(record.source, record.line, to_record(example), record.unit),
                           output_format(self.formats.format))
        except RecordProblem as problem:
            return "empty_after_cleaning", f"after cleaning: {problem}"
        return None

    def _length_problem(self, lengths: Lengths) -> tuple[str, str] | None:
        clean, unit = self.settings.clean, self.counter.unit
        if clean.min_tokens and lengths.total < clean.min_tokens:
            return "too_short", f"{lengths.total} {unit}, under data.prepare.clean.min_tokens ({clean.min_tokens})"
        if clean.max_tokens and lengths.total > clean.max_tokens:
            return "too_long", f"{lengths.total} {unit}, over data.prepare.clean.max_tokens ({clean.max_tokens})"
        return None

    def _duplicate_reason(self, role: str, match: Match, kind: str) -> str | None:
        """Why a duplicate is removed, or None when it stays, in its twin's split: a similar example (the same
        answer to another prompt), or a duplicate while deduplication is off."""
        partner = self.staging.get(match.key)
        other, there = partner["role"], partner["where"]
        similarity = f" (Jaccard similarity {match.similarity:.2f})" if kind == "near" else ""
        if other in EVALUATION and role != other:
            self.duplicates["leakage"] += 1
            what = f"{kind} duplicate of" if match.same_prompt else "the same answer to another prompt as"
            return (f"{what} {other} example {there}{similarity}; kept out of {role} so the {other} set stays unseen")
        if not match.same_prompt:
            return None
        if other == FEEDBACK and role == TRAIN:
            self.duplicates["replaced_by_feedback"] += 1
            return f"{kind} duplicate of feedback example {there}{similarity}; the corrected version is kept"
        if getattr(self.settings.dedup, kind):
            self.duplicates[kind] += 1
            return f"{kind} duplicate of {there}{similarity}"
        return None

    def _label(self, data: dict) -> str | None:
        field = self.settings.split.stratify_by
        value = data.get(field) if field else None
        return None if value is None else value if isinstance(value, str) else json.dumps(value)

    def _label_id(self, label: str | None) -> int:
        if label is None:
            return -1
        if label not in self.label_ids:
            self.label_ids[label] = len(self.label_names)
            self.label_names.append(label)
        return self.label_ids[label]

    # --- redaction -------------------------------------------------------------------------------------

    def _redact(self, example: Example) -> tuple[Example, list[tuple[str, object]]]:
        if self.redactor is None:
            return example, []
        texts, found = [], []
        for field, text in text_fields(example):
            redacted, spans = self.redactor.redact(text)
            texts.append(redacted)
            found += [(field, span) for span in spans]
        return (with_texts(example, texts) if found else example), found

    def _redacted_record(self, example: Example) -> dict:
        return to_record(self._redact(example)[0])

    def _redact_value(self, value: object) -> object:
        return value if self.redactor is None else self.redactor.redact_value(value)

    def _count_redactions(self, where: str, found: list) -> None:
        if not found:
            return
        self.redacted_examples += 1
        for field, span in found:
            self.redacted[span.entity] += 1
            if self.audit:
                self.audit.write(json.dumps({"where": where, "field": field, "type": span.entity,
                                             "start": span.start, "end": span.end}) + "\n")

    # --- quarantine and samples ------------------------------------------------------------------------

    def _drop(self, item: Input, where: str, step: str, reason: str, record: dict, sample: str | None) -> None:
        self.feedback_rejected += item.role == FEEDBACK
        self._reject(where, step, reason, record, sample)

    def _reject(self, where: str, step: str, reason: str, record: dict | None, sample: str | None) -> None:
        self.rejected.write(json.dumps({"where": where, "step": step, "reason": reason, "record": record},
                                       ensure_ascii=False) + "\n")
        if sample:
            self._sample(sample, where, reason, record)

    def _wants(self, step: str) -> bool:
        return len(self.samples[step]) < self.settings.report.samples

    def _sample(self, step: str, where: str, reason: str, record: dict | None) -> None:
        if self._wants(step):
            self.samples[step].append({"where": where, "reason": reason, "preview": preview(record)})

    def _pair(self, where: str, record: dict, match: Match) -> None:
        if self._wants("pairs"):
            partner = self.staging.get(match.key)
            self.samples["pairs"].append({"removed_where": where, "removed": preview(record),
                                          "kept_where": partner["where"], "kept": preview(partner["record"]),
                                          "similarity": round(match.similarity, 3)})

    # --- pass two --------------------------------------------------------------------------------------

    def _finish(self, key: str) -> dict:
        self.dedup = None  # pass two needs only the numbers per example: the index goes before the split
        split_of = self._splits()
        copies = self._copies(split_of)
        stats = {name: SplitStats(self.settings.report, ngrams=False) for name in SPLITS_IN_ORDER}
        overall = SplitStats(self.settings.report)
        strata: dict[str, Counter] = {}
        handles = {}
        try:
            for entry, code, count in zip(self.staging, split_of.tolist(), copies.tolist()):
                split = SPLITS_IN_ORDER[code]
                if not count:
                    continue
                if split not in handles:
                    handles[split] = open(self.work / f"{split}.jsonl", "w", encoding="utf-8")
                handles[split].write((json.dumps(entry["record"], ensure_ascii=False) + "\n") * count)
                example, lengths = from_record(entry["record"]), Lengths(*entry["lengths"])
                for target in (stats[split], overall):
                    target.add(example, lengths, entry["label"], entry["source"], count)
                if entry["label"] is not None:
                    strata.setdefault(entry["label"], Counter())[split] += count
        finally:
            for handle in handles.values():
                handle.close()
        counts = {name: stats[name].examples for name in SPLITS_IN_ORDER}
        fmt = output_format(self.formats.format)
        report = self._report(fmt, {n: s.summary() for n, s in stats.items() if s.examples}, overall.summary(),
                              counts, strata)
        write_report(self.work, report, self.settings.report)
        manifest = {"version": 1, "fingerprint": key, "format": fmt, "unit": self.counter.unit,
                    "label_field": self.settings.split.stratify_by if self.label_names else None,
                    "counts": {**counts, "rejected": self._rejected_count()},
                    "inputs": [{"path": i.path, "role": i.role, "weight": i.weight} for i in self.inputs]}
        (self.work / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return manifest

    def _splits(self) -> np.ndarray:
        """Each kept example's split, as an index into SPLITS_IN_ORDER."""
        roles, groups = _numbers(self.roles), _numbers(self.groups)
        # Feedback always trains, and so does whatever was kept beside a feedback example (its group).
        pinned = np.isin(groups, groups[roles == ROLE_ORDER.index(FEEDBACK)])
        pool = np.flatnonzero((roles == ROLE_ORDER.index(TRAIN)) & ~pinned)
        fixed = {item.role for item in self.inputs}
        strata, names = stratum_codes(_numbers(self.labels)[pool], self.label_names)
        split_of = np.array([SPLITS_IN_ORDER.index(TRAIN if role == FEEDBACK else role) for role in ROLE_ORDER],
                            np.int8)[roles]
        split_of[pool] = split_codes(groups[pool], strata, names, self.settings.split,
                                     validation=VALIDATION not in fixed, test=TEST not in fixed)
        return split_of

    def _copies(self, split_of: np.ndarray) -> np.ndarray:
        """How many times each kept example is written: once in validation and test; weighted and oversampled in
        train."""
        weights = {index: item.weight for index, item in enumerate(self.inputs) if item.weight != 1.0}
        copies = np.ones(len(split_of), np.int64)
        train = np.flatnonzero(split_of == SPLITS_IN_ORDER.index(TRAIN))
        copies[train] = weighted_copies(_numbers(self.sources)[train], weights, self.settings.split.seed)
        if self.settings.augment:
            train_copies = copies[train]
            names = np.array([*self.label_names, None], object)  # by label id; -1 (no label) is the last
            labels = names[_numbers(self.labels)[train]]
            self.augmented = oversample(train_copies, labels, self.settings.augment.target_ratio,
                                        self.settings.split.seed)
            copies[train] = train_copies
        return copies

    def _rejected_count(self) -> int:
        return sum(self.invalid.values()) + sum(self.dropped.values()) + sum(
            v for k, v in self.duplicates.items() if k != "kept_together")

    def _report(self, fmt: str, splits: dict, overall: dict, counts: dict, strata: dict) -> dict:
        settings = self.settings
        compared = len(self.staging) + sum(v for k, v in self.duplicates.items() if k != "kept_together")
        removed = self.duplicates["exact"] + self.duplicates["near"]
        feedback = next((i for i in self.inputs if i.role == FEEDBACK), None)
        pii = settings.pii
        steps = {
            "check": {"records": sum(self.seen.values()), "invalid": sum(self.invalid.values()),
                      "quarantine": "rejected.jsonl",
                      "reasons": dict(self.invalid.most_common()), "samples": self.samples["check"]},
            "repair": {"trailing_user": self.repairs[TRAILING_USER], "repeated_role": self.repairs[REPEATED_ROLE],
                       "samples": self.samples["repair"]} if fmt == "chat" and settings.clean.repair else None,
            "clean": {"changed": {op: self.changed[op] for op in OPERATIONS if getattr(settings.clean, op)},
                      "dropped": dict(self.dropped), "samples": self.samples["clean"]},
            "dedup": {"checked": compared, "exact": self.duplicates["exact"], "near": self.duplicates["near"],
                      "leakage": self.duplicates["leakage"],
                      "replaced_by_feedback": self.duplicates["replaced_by_feedback"],
                      "kept_together": self.duplicates["kept_together"], "rate": round(removed / compared, 4)
                      if compared else 0.0, "threshold": settings.dedup.threshold,
                      "shingle_size": settings.dedup.shingle_size, "pairs": self.samples["pairs"]},
            "pii": {"enabled": pii.enabled, "detectors": self.redactor.detectors if self.redactor else [],
                    "ner_model": pii.ner_model, "counts": dict(self.redacted.most_common()),
                    "examples": self.redacted_examples, "audit": "pii_audit.jsonl" if self.audit else None},
            "split": {"seed": settings.split.seed, "stratify_by": settings.split.stratify_by,
                      "counts": counts, "strata": {label: dict(c) for label, c in sorted(strata.items())}},
            "augment": {"target_ratio": settings.augment.target_ratio, "added": self.augmented}
            if settings.augment else None,
            "feedback": {"path": feedback.path, "merged": self.kept[feedback.path], "rejected": self.feedback_rejected,
                         "replaced": self.duplicates["replaced_by_feedback"]} if feedback else None,
        }
        return {
            "title": "Data preparation report", "format": fmt, "unit": self.counter.unit,
            "inputs": [{"path": i.path, "role": i.role, "weight": i.weight, "records": self.seen[i.path],
                        "kept": self.kept[i.path]} for i in self.inputs],
            "weights": {i.path: i.weight for i in self.inputs if i.weight != 1.0},
            "steps": steps, "splits": splits, "overall": overall,
        }


def _numbers(values: array) -> np.ndarray:
    """The array's numbers as numpy sees them, without a copy."""
    return np.frombuffer(values, values.typecode)
