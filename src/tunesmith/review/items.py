"""What reviewers compare: one prompt with a baseline answer and the tuned answer, read from a run folder.

The evaluation command writes eval/examples.jsonl (every test example, every system's answer: zero_shot, few_shot,
scratch with `--baselines scratch`, tuned); runs scored only at the end of training have report.json, whose few
"samples" hold the base model's answer (zero-shot) and the tuned one. The baselines are the evaluation's own names
(evaluate/row_names.py), so a row the evaluation adds can be reviewed without a change here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tunesmith.errors import DataError, TunesmithError
from tunesmith.evaluate.row_names import BASELINES

# The default comparison: prompting the base model is the alternative to beat, few-shot first.
PREFERRED = ("few_shot", "zero_shot")
EXAMPLES_FILE = Path("eval") / "examples.jsonl"
REPORT_FILE = Path("report.json")
# report.json names its zero-shot column after the model it came from.
_REPORT_COLUMNS = {"zero_shot": "base", "tuned": "tuned"}


@dataclass(frozen=True)
class ReviewItem:
    id: int
    prompt: str
    baseline: str  # the baseline system's answer
    tuned: str

    @property
    def fingerprint(self) -> str:
        """Identifies the texts a vote was cast on, so votes on answers a later evaluation replaced don't count."""
        payload = json.dumps([self.prompt, self.baseline, self.tuned], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class ReviewSet:
    source: Path  # the file the items came from
    against: str  # which baseline the tuned answers are compared with
    items: tuple[ReviewItem, ...]

    def by_id(self) -> dict[int, ReviewItem]:
        return {item.id: item for item in self.items}


def _read_examples(path: Path) -> list[dict]:
    """eval/examples.jsonl as {"id", "prompt", "answers": {system: text}} rows, validated."""
    rows, seen = [], {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object per line")
        example_id, prompt, answers = row.get("id"), row.get("prompt"), row.get("answers")
        if not isinstance(example_id, int) or isinstance(example_id, bool):
            raise DataError(f"{where}: 'id' must be an integer, got {example_id!r}")
        if example_id in seen:
            raise DataError(f"{where}: id {example_id} already used on line {seen[example_id]}")
        if not isinstance(prompt, str):
            raise DataError(f"{where}: 'prompt' must be a string")
        if not isinstance(answers, dict):
            raise DataError(f"{where}: 'answers' must be an object mapping {', '.join(BASELINES)}, tuned to text")
        seen[example_id] = number
        rows.append({"id": example_id, "prompt": prompt, "answers": answers})
    return rows


def _read_report_samples(path: Path) -> list[dict]:
    """report.json's samples in the same shape as eval/examples.jsonl rows (id = position in the list)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    samples = document.get("samples") if isinstance(document, dict) else None
    if not isinstance(samples, list):
        raise DataError(f"{path}: expected a 'samples' list")
    rows = []
    for index, sample in enumerate(samples):
        if not isinstance(sample, dict) or not isinstance(sample.get("prompt"), str):
            raise DataError(f"{path}: samples[{index}] must be an object with a 'prompt' string")
        answers = {system: sample.get(column) for system, column in _REPORT_COLUMNS.items()}
        rows.append({"id": index, "prompt": sample["prompt"], "answers": answers})
    return rows


def _has(row: dict, system: str) -> bool:
    return isinstance(row["answers"].get(system), str)


def _answered(rows: Iterable[dict], system: str) -> bool:
    """Whether a system generated at all: writers fill "" for every example of a row scored without generations.

    Within a system that did answer, an empty string is a real (empty) answer and stays up for review.
    """
    return any(_has(row, system) and row["answers"][system].strip() for row in rows)


@dataclass(frozen=True)
class RunAnswers:
    run_dir: Path
    source: Path  # eval/examples.jsonl or report.json
    rows: tuple[dict, ...]  # {"id", "prompt", "answers": {system: text}}, only those with a tuned answer
    baselines: tuple[str, ...]  # the baselines that answered on those rows

    def compared_with(self, against: str | None = None) -> ReviewSet:
        """The items that have both the `against` baseline's answer and the tuned one (None: few_shot if any has it,
        else zero_shot, else the first baseline there)."""
        if against is not None and against not in BASELINES:
            raise TunesmithError(f"--against {against!r}: choose one of {', '.join(BASELINES)}")
        chosen = against or next((name for name in PREFERRED if name in self.baselines), self.baselines[0])
        if chosen not in self.baselines:
            raise TunesmithError(
                f"--against {chosen}: no example in {self.source} has both a {chosen} and a tuned answer "
                f"(baselines there: {', '.join(self.baselines)}); run `tunesmith eval {self.run_dir} --baselines "
                f"{chosen}` to add its answers"
            )
        items = tuple(
            ReviewItem(row["id"], row["prompt"], baseline=row["answers"][chosen], tuned=row["answers"]["tuned"])
            for row in self.rows if _has(row, chosen)
        )
        return ReviewSet(source=self.source, against=chosen, items=items)


def read_run_answers(run_dir: Path) -> RunAnswers:
    """The answers to review in `run_dir`, from eval/examples.jsonl or else report.json."""
    run_dir = Path(run_dir)
    if (run_dir / EXAMPLES_FILE).is_file():
        source, rows = run_dir / EXAMPLES_FILE, _read_examples(run_dir / EXAMPLES_FILE)
    elif (run_dir / REPORT_FILE).is_file():
        source, rows = run_dir / REPORT_FILE, _read_report_samples(run_dir / REPORT_FILE)
    else:
        raise TunesmithError(
            f"nothing to review in {run_dir}: looked for {run_dir / EXAMPLES_FILE} and {run_dir / REPORT_FILE}; "
            f"run `tunesmith eval {run_dir}` to write them"
        )
    tuned_rows = tuple(row for row in rows if _has(row, "tuned")) if _answered(rows, "tuned") else ()
    baselines = tuple(name for name in BASELINES if _answered(tuned_rows, name))
    if not baselines:
        raise TunesmithError(
            f"nothing to review in {source}: no example has both a baseline ({', '.join(BASELINES)}) and a tuned "
            f"answer; run `tunesmith eval {run_dir}` to write them"
        )
    return RunAnswers(run_dir=run_dir, source=source, rows=tuned_rows, baselines=baselines)

