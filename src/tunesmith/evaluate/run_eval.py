"""`tunesmith eval RUN_DIR`: was fine-tuning worth it? The base model zero-shot and few-shot (and, asked for, the
architecture trained from scratch on the same budget) against the tuned model on one test set, with intervals,
forgetting, fit and error analysis, written to RUN_DIR/eval/.

The base model is the tuned one with its adapter switched off (PEFT's disable_adapter), or, for methods that
change the weights themselves, the base loaded beside it for as long as its rows take. The from-scratch model is
trained first (evaluate/scratch.py) and loaded after the others are scored.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from rich.console import Console

from tunesmith.config.eval_metrics import ComparisonSettings, TaskMetrics
from tunesmith.config.load import load_config
from tunesmith.config.schema import RunConfig
from tunesmith.data.formats import Example, load_examples
from tunesmith.data.splits import load_run_data
from tunesmith.errors import DataError, TunesmithError
from tunesmith.evaluate.evaluation import EvalResult, GeneralText, eval_settings, scorer_for, write_evaluation
from tunesmith.evaluate.few_shot import choose_shots, with_shots
from tunesmith.evaluate.forgetting import general_passages
from tunesmith.evaluate.row_names import BASELINES, DEFAULT_BASELINES
from tunesmith.evaluate.rows import Row
from tunesmith.evaluate.scratch import case_study, train_scratch
from tunesmith.evaluate.training_budget import read_training


def parse_baselines(text: str) -> tuple[str, ...]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in BASELINES:
            raise TunesmithError(f"--baselines: unknown baseline '{name}'; choose from {', '.join(BASELINES)}")
    return tuple(dict.fromkeys(names))


def test_examples(config: RunConfig, data, test: Path | None) -> tuple[list[Example], str]:
    """The examples to score and what to call them: --test, else the run's test split, else its validation split."""
    if test is not None:
        examples, fmt = load_examples(test, data.format)
        if fmt != data.format:
            raise DataError(f"{test}: format is {fmt} but the run trained on {data.format} data; use one format")
        name = str(test)
    else:
        examples, name = (data.test, "test") if data.test else (data.validation, "validation")
    examples = examples[: config.eval.max_examples]
    if not examples:
        raise DataError(f"no examples to evaluate on: set data.test in {config.output_dir}/config.yaml or pass --test")
    return examples, name


def _device(model) -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else next(model.parameters()).device


def _to_device(model, device: torch.device):
    # bitsandbytes places quantised weights while loading (device_map) and refuses .to().
    return model if getattr(model.config, "quantization_config", None) else model.to(device)


def _autocast(config: RunConfig, device: torch.device):
    from tunesmith.train.precision import resolve_precision

    precision = resolve_precision(config.training.precision, device)
    if precision == "no":
        return nullcontext, "fp32"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return (lambda: torch.autocast(device.type, dtype=dtype)), precision


@contextmanager
def base_model(tuned, config: RunConfig, device: torch.device):
    if hasattr(tuned, "disable_adapter"):
        with tuned.disable_adapter():
            yield tuned
        return
    from tunesmith.models.load import load_model_for_method, resolve_model

    source = resolve_model(config.model, config.allow_pickle)
    base = _to_device(load_model_for_method(source, config.method, config.trust_remote_code), device)
    try:
        yield base.eval()
    finally:
        del base


def evaluate_run(
    run_dir: str | Path,
    *,
    test: str | Path | None = None,
    baselines: tuple[str, ...] = DEFAULT_BASELINES,
    general: str | Path | None = None,
    export_failures_to: str | Path | None = None,
    overrides: list[str] = (),
    task: TaskMetrics | None = None,
    comparison: ComparisonSettings | None = None,
    console: Console | None = None,
) -> EvalResult:
    """Score the run, write RUN_DIR/eval/report.{json,md,html} and examples.jsonl, print the verdicts.

    With "scratch" in `baselines`, RUN_DIR/eval/scratch/ is trained first (or reused, or continued)."""
    from tunesmith.methods.parameters import parameter_counts
    from tunesmith.models.catalogue import parameters_of
    from tunesmith.models.load import load_trained, resolve_model

    console = console or Console()
    started = time.perf_counter()
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise TunesmithError(f"{run_dir}: not a run folder (no config.yaml); pass the output_dir of a training run")
    config = load_config(run_dir / "config.yaml", list(overrides))
    configured_task, configured_comparison = eval_settings(config)
    settings = comparison or configured_comparison
    data = load_run_data(config.data)
    examples, test_name = test_examples(config, data, Path(test) if test else None)
    raw_text = data.format == "text"
    if raw_text and "few_shot" in baselines:
        console.print("[yellow]note[/]: raw text has no questions to put examples before; few_shot skipped")
        baselines = tuple(b for b in baselines if b != "few_shot")
    shots = choose_shots(data.train, examples, settings.few_shot_k, settings.few_shot_seed) if (
        "few_shot" in baselines) else []
    passages, general_source = general_passages(general)
    scratch_dir = given = None
    if "scratch" in baselines:
        architecture = parameters_of(resolve_model(config.model, config.allow_pickle).folder)
        scratch_dir, given = train_scratch(config, run_dir, architecture, console)

    model, tokenizer = load_trained(run_dir, config.allow_pickle)
    device = _device(model)
    model = _to_device(model, device)
    autocast, precision = _autocast(config, device)
    scorer = scorer_for(config, model, tokenizer, autocast, task or configured_task, raw_text)
    rows: dict[str, Row] = {}
    console.print(f"scoring {', '.join((*baselines, 'tuned'))} on {len(examples)} {test_name} examples ...")
    with base_model(model, config, device) as base:
        if "zero_shot" in baselines:
            rows["zero_shot"] = scorer.row("zero_shot", base, examples)
        if shots:
            rows["few_shot"] = scorer.row("few_shot", base, [with_shots(example, shots) for example in examples])
        general_base = scorer.text_losses(base, passages, config.data.max_length)
    rows["tuned"] = scorer.row("tuned", model, examples)
    general_tuned = scorer.text_losses(model, passages, config.data.max_length)
    sections = {}
    if scratch_dir is not None:
        tuned_parameters = parameter_counts(model)[1]
        del model  # the scratch model takes its place
        scratch, _ = load_trained(scratch_dir)
        rows["scratch"] = scorer.row("scratch", _to_device(scratch, device), examples)
        sections["scratch"] = case_study(read_training(run_dir), tuned_parameters, read_training(scratch_dir),
                                         parameter_counts(scratch)[1], given)
        del scratch
    return write_evaluation(
        run_dir, config, scorer, rows, examples, test_name, settings, shots=shots,
        general=GeneralText(general_source, general_base, general_tuned), export_failures_to=export_failures_to,
        meta={"device": str(device), "precision": precision, "eval_seconds": round(time.perf_counter() - started, 1)},
        console=console, sections=sections,
    )
