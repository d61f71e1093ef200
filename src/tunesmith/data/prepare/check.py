"""Check: every problem of every record in one pass, each with its location and what would be right.

`check_records` is the first step of `prepare` too: it yields each valid example (repaired when asked) and
an Issue for each bad line or record, so prepare can quarantine the bad ones and go on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.config.prepare import SplitSettings
from tunesmith.data.formats import (
    Example, RecordProblem, check_format_name, classify, convert_record, mixed_formats, unknown_format,
)
from tunesmith.data.prepare.clean import repair_record
from tunesmith.data.readers import MAX_LINE_BYTES, ReadProblem, Record, iter_records

_NUMBER = re.compile(r"\d+")
LOCATIONS_PER_PROBLEM = 3  # a problem shared by many records is listed this often, then counted
REPAIRABLE = " (tunesmith data prepare repairs this)"


@dataclass(frozen=True)
class Issue:
    where: str
    message: str  # what is wrong and how to fix it, without the location
    repairs: frozenset[str] = frozenset()  # what `data prepare` would repair; empty when a person must fix it
    record: dict | None = None  # the record as read, to quarantine; None for unreadable lines
    fatal: bool = False  # the rest of the file cannot be read

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class Checked:
    example: Example
    record: Record  # as read, before any repair
    repairs: frozenset[str]  # the repairs made to get the example


class FormatTracker:
    """The one format all files of a preparation share: forced, or the first record's that shows one."""

    def __init__(self, forced: str = "auto"):
        check_format_name(forced)
        self.forced = forced != "auto"
        self.format: str | None = None if forced == "auto" else forced

    def issue(self, record: Record) -> str | None:
        """Why this record cannot be read in the tracked format, or None (fixing the format on first sight)."""
        found = classify(record.data)
        if self.format is None:
            if found is None:
                return unknown_format(record.data)
            self.format = found
        elif not self.forced and found is not None and found != self.format:
            return mixed_formats(found, self.format)
        return None


def check_records(path: str | Path, formats: FormatTracker, repair: bool = False,
                  max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Checked | Issue]:
    for item in iter_records(path, max_line_bytes):
        if isinstance(item, ReadProblem):
            yield Issue(item.where, item.message, fatal=item.fatal)
            continue
        wrong_format = formats.issue(item)
        if wrong_format:
            yield Issue(item.where, wrong_format, record=item.data)
            continue
        data, made = repair_record(item.data) if repair and formats.format == "chat" else (item.data, frozenset())
        try:
            example = convert_record(Record(item.source, item.line, data, item.unit), formats.format)
        except RecordProblem as problem:
            yield Issue(item.where, str(problem), problem.repairs, record=item.data)
            continue
        yield Checked(example, item, made)


def problem_kind(message: str) -> str:
    """A problem without its numbers (columns, message indexes), so that alike problems are counted together."""
    return _NUMBER.sub("N", message)


@dataclass
class ProblemLog:
    """Problems grouped by message, so a million rows with one mistake stay one readable entry."""

    total: int = 0
    groups: dict[str, list] = field(default_factory=dict)  # message -> [count, first locations]

    def add(self, issue: Issue) -> None:
        self.total += 1
        message = issue.message + (REPAIRABLE if issue.repairs else "")
        group = self.groups.setdefault(message, [0, []])
        group[0] += 1
        if len(group[1]) < LOCATIONS_PER_PROBLEM:
            group[1].append(issue.where)

    def lines(self) -> list[str]:
        out = []
        for message, (count, wheres) in self.groups.items():
            out += [f"{where}: {message}" for where in wheres]
            if count > len(wheres):
                more = count - len(wheres)
                out.append(f"  ... and {more:,} more record{'s' if more > 1 else ''} with this problem")
        return out


@dataclass
class CheckResult:
    source: str
    format: str | None
    records: int  # records and unreadable lines seen
    examples: int  # valid ones
    problems: ProblemLog

    @property
    def ok(self) -> bool:
        return self.problems.total == 0

    def summary(self) -> str:
        kind = f"{self.format} " if self.format else ""
        if self.ok:
            return f"{self.source}: {self.examples:,} {kind}examples, no problems"
        noun = "problem" if self.problems.total == 1 else "problems"
        valid = f"{self.examples:,} valid {kind}example{'s' if self.examples != 1 else ''}"
        return (f"{self.source}: {self.problems.total:,} {noun} in {self.records:,} records, {valid}; fix them, or let "
                "`tunesmith data prepare` quarantine the bad rows")


def check_file(path: str | Path, format: str = "auto", split: SplitSettings | None = None,
               max_line_bytes: int = MAX_LINE_BYTES) -> CheckResult:
    """Every problem of a file (none repaired), and whether enough valid examples remain for the split."""
    source = str(path)
    tracker, log = FormatTracker(format), ProblemLog()
    records = examples = 0
    for item in check_records(path, tracker, max_line_bytes=max_line_bytes):
        records += 1
        if isinstance(item, Issue):
            log.add(item)
        else:
            examples += 1
    if not records:
        log.add(Issue(source, "the file is empty; it holds no records"))
    else:
        needed = split_minimum(split or SplitSettings())
        if examples < needed:
            log.add(Issue(source, f"only {examples} valid example{'s' if examples != 1 else ''}; a split into train, "
                          f"validation and test needs at least {needed}"))
    return CheckResult(source, tracker.format, records, examples, log)


def split_minimum(split: SplitSettings) -> int:
    """The fewest examples the split settings can work with: one to train on, plus each held-out split's share."""
    return 1 + sum(int(share) if share >= 1 else 1 for share in (split.validation, split.test) if share > 0)
