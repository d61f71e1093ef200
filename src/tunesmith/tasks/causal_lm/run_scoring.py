"""The end-of-run evaluation of a language-model run, through the code `tunesmith eval` uses (rows, paired-bootstrap
verdicts, forgetting, fit, eval/report.*), so the two never disagree.

The base model's rows (zero-shot, few-shot) and its general-text losses are scored before the method is applied:
full fine-tuning changes the base's own weights. They are cached in the run folder, so a resumed run reuses them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console

from tunesmith import events as ev
from tunesmith.config.schema import RunConfig
from tunesmith.data.formats import Example
from tunesmith.errors import DataError
from tunesmith.evaluate.compare import question_of
from tunesmith.evaluate.evaluation import GeneralText, eval_settings, scorer_for, write_evaluation
from tunesmith.evaluate.few_shot import choose_shots, with_shots
from tunesmith.evaluate.forgetting import general_passages
from tunesmith.evaluate.report import write_report
from tunesmith.evaluate.rows import Row, Scorer, references_of

BASE_CACHE = "base_scores.json"
SAMPLES = 3  # generations side by side in report.md (eval/report.html shows ten)
ROW_KEYS = {"zero_shot": "base", "few_shot": "few_shot", "tuned": "tuned"}  # RunResult.scores keys


@dataclass
class RunScoring:
    config: RunConfig
    scorer: Scorer
    examples: list[Example]
    eval_name: str
    shots: list[Example]
    passages: list[str]
    general_source: str
    note: str | None = None  # why a row is missing, said when scoring starts
    base_rows: dict[str, Row] = field(default_factory=dict)
    general_base: np.ndarray | None = None

    @classmethod
    def prepare(cls, config: RunConfig, data, tokenizer, model, autocast) -> "RunScoring | None":
        """What the run will score, or None when it has no test or validation examples."""
        examples = (data.test or data.validation)[: config.eval.max_examples]
        if not examples:
            return None
        raw_text = data.format == "text"  # raw text has no questions to generate from: perplexity only
        task, settings = eval_settings(config)
        scorer = scorer_for(config, model, tokenizer, autocast, task, raw_text)
        wants_shots = config.eval.compare_base and config.eval.few_shot and not raw_text
        shots, note = [], None
        if wants_shots:
            try:
                shots = choose_shots(data.train, examples, settings.few_shot_k, settings.few_shot_seed)
            except DataError as error:  # a training run goes on without the row; `tunesmith eval` refuses
                note = f"{error}; the few-shot row is left out"
        passages, source = general_passages(None) if config.eval.compare_base and config.eval.forgetting else ([], "")
        return cls(config, scorer, examples, "test" if data.test else "validation", shots, passages, source, note)

    def score_base(self, model, run_dir: Path, resume: bool, console: Console, events: ev.EventStream) -> None:
        if not self.config.eval.compare_base:
            return
        cache = run_dir / BASE_CACHE
        saved = json.loads(cache.read_text()) if resume and cache.is_file() else {}
        if "rows" in saved:  # older runs cached other numbers: those are scored again
            self.base_rows = {name: Row.from_dict(row) for name, row in saved["rows"].items()}
            self.general_base = np.array(saved["general"], dtype=np.float64) if saved["general"] else None
            return
        if self.note:
            console.print(f"[yellow]note[/]: {self.note}", highlight=False, soft_wrap=True)
        names = ["zero_shot", *(["few_shot"] if self.shots else [])]
        console.print(f"scoring the base model ({', '.join(names)}) on {len(self.examples)} {self.eval_name} "
                      "examples ...")
        events.emit(ev.BaseScoringStarted(n=len(self.examples)))
        self.base_rows["zero_shot"] = self.scorer.row("zero_shot", model, self.examples)
        if self.shots:
            self.base_rows["few_shot"] = self.scorer.row(
                "few_shot", model, [with_shots(example, self.shots) for example in self.examples])
        if self.passages:
            self.general_base = self.scorer.text_losses(model, self.passages, self.config.data.max_length)
        events.emit(ev.BaseScoringFinished(scores=self.scores(self.base_rows)))
        cache.write_text(json.dumps({"rows": {name: row.to_dict() for name, row in self.base_rows.items()},
                                     "general": [] if self.general_base is None else self.general_base.tolist()}))

    def finish(self, model, run_dir: Path, meta: dict, console: Console, events: ev.EventStream) -> tuple[dict, Path]:
        """Score the tuned model, write eval/ and the run's report.json/report.md summary; (scores, report path)."""
        console.print(f"scoring the tuned model on {len(self.examples)} {self.eval_name} examples ...")
        rows = {**self.base_rows, "tuned": self.scorer.row("tuned", model, self.examples)}
        general = None
        if self.general_base is not None:
            general_tuned = self.scorer.text_losses(model, self.passages, self.config.data.max_length)
            general = GeneralText(self.general_source, self.general_base, general_tuned)
        scores = self.scores(rows)
        write_report(run_dir, scores, self._samples(rows), meta)
        events.emit(ev.Scores(scores=scores))
        result = write_evaluation(run_dir, self.config, self.scorer, rows, self.examples, self.eval_name,
                                  self.config.eval.comparison, shots=self.shots, general=general, meta=meta,
                                  console=console)
        return scores, result.out_dir / "report.md"

    def scores(self, rows: dict[str, Row]) -> dict:
        return {ROW_KEYS[name]: row.scores(self.scorer.metrics) for name, row in rows.items()}

    def _samples(self, rows: dict[str, Row]) -> list[dict]:
        """The first generations side by side (none for raw text, which is scored by perplexity only)."""
        if not rows["tuned"].answers:
            return []
        examples = self.examples[:SAMPLES]
        references = references_of(examples, self.scorer.tokenizer)
        base = rows["zero_shot"].answers if "zero_shot" in rows else [""] * len(examples)
        return [{"prompt": question_of(e), "reference": r, "base": b, "tuned": t}
                for e, r, b, t in zip(examples, references, base, rows["tuned"].answers)]
