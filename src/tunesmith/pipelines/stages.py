"""Transfer learning: `stages:` run one after another, each starting from the previous stage's result.

Every stage is scored on the *target* test set (the last stage's), so the pipeline report shows how the
target metrics move after each stage.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from rich.console import Console

from tunesmith import events as ev
from tunesmith.config.load import build_config
from tunesmith.config.schema import RunConfig, StageConfig
from tunesmith.errors import ConfigError
from tunesmith.evaluate.report import scores_table, write_report
from tunesmith.methods.apply import is_adapter
from tunesmith.run import RunResult, run_one
from tunesmith.train.distributed import is_main_process, wait_for_everyone

RESULT = "result.json"  # written into a finished stage or round, so a resumed pipeline reuses it as it was

PIPELINE_KEYS = {"stages", "refine", "output_dir", "init_adapter"}


def base_raw(config: RunConfig) -> dict:
    """The config without its pipeline keys, as plain data to layer stage overrides on."""
    return config.model_dump(mode="json", exclude=PIPELINE_KEYS)


def deep_merge(base: dict, override: dict | None) -> dict:
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def stage_configs(config: RunConfig) -> list[RunConfig]:
    """Validate every stage up front, so a typo in stage 3 fails before stage 1 trains for an hour."""
    root = Path(config.output_dir)
    raws = [_stage_raw(config, stage) for stage in config.stages]
    target_test = raws[-1]["data"].get("test")
    configs = []
    for i, (stage, raw) in enumerate(zip(config.stages, raws), start=1):
        raw["data"]["test"] = target_test
        raw["output_dir"] = str(root / f"stage-{i}-{stage.name}")
        configs.append(build_config(raw, source=f"stages[{i - 1}] ({stage.name})"))
    return configs


def _stage_raw(config: RunConfig, stage: StageConfig) -> dict:
    raw = base_raw(config)
    for section in ("data", "training", "eval"):
        override = getattr(stage, section)
        if override:
            raw[section] = deep_merge(raw[section], override)
    if stage.method:
        name = stage.method.get("name", raw["method"]["name"])
        if name == raw["method"]["name"]:
            raw["method"] = {**raw["method"], **stage.method}
        else:
            raw["method"] = dict(stage.method)
            if "learning_rate" not in (stage.training or {}) and raw["training"]["learning_rate"] != "auto":
                raw["training"]["learning_rate"] = None  # the new method's default, not the previous one's
    return raw


def carry_mode(stage: StageConfig, previous: RunConfig, current: RunConfig) -> str:
    if stage.carry != "auto":
        return stage.carry
    if not is_adapter(previous.method):
        return "weights"
    return "adapter" if previous.method == current.method else "merge"


def chain(previous: RunResult, previous_config: RunConfig, mode: str) -> dict:
    """Config changes that make a stage start from the previous stage's result."""
    if mode == "adapter":
        if not is_adapter(previous_config.method):
            raise ConfigError("carry: adapter needs the previous stage to train an adapter (lora, qlora, ...)")
        return {"model": previous_config.model, "init_adapter": str(previous.output)}
    if mode == "merge":
        from tunesmith.export.merge import export_run

        merged = previous.run_dir / "merged"
        if is_main_process() and not (merged / "config.json").is_file():
            export_run(previous.run_dir, merged, merge=True)
        wait_for_everyone()
        return {"model": str(merged)}
    if is_adapter(previous_config.method):
        raise ConfigError("carry: weights needs the previous stage to train full weights (full or freeze)")
    return {"model": str(previous.output)}


def run_stages(config: RunConfig, *, resume: bool = False, overwrite: bool = False, console: Console,
               events: ev.EventStream, cancel=None) -> RunResult:
    configs = stage_configs(config)
    results: list[RunResult] = []
    total = len(configs)
    for i, (stage, stage_config) in enumerate(zip(config.stages, configs)):
        if results:
            mode = carry_mode(stage, configs[i - 1], stage_config)
            updates = chain(results[-1], configs[i - 1], mode)
            stage_config = build_config({**stage_config.model_dump(mode="json"), **updates})
            configs[i] = stage_config
            console.print(f"[bold]stage {i + 1}/{total}[/] {stage.name}: starts from stage {i} ({mode})")
        else:
            console.print(f"[bold]stage 1/{total}[/] {stage.name}")
        events.emit(ev.StageStarted(index=i + 1, total=total, name=stage.name))
        results.append(run_or_reuse(stage_config, resume, overwrite, console, events, cancel))
        events.emit(ev.StageFinished(index=i + 1, total=total, name=stage.name, scores=results[-1].scores))
    return _write_pipeline_report(config, results, console)


def run_or_reuse(config: RunConfig, resume: bool, overwrite: bool, console: Console, events: ev.EventStream,
                 cancel=None) -> RunResult:
    """On --resume, finished stages are reused and the interrupted one continues from its checkpoint."""
    run_dir = Path(config.output_dir)
    if resume and (run_dir / RESULT).is_file():
        console.print(f"  {run_dir.name} already finished; reusing it")
        saved = json.loads((run_dir / RESULT).read_text())
        return RunResult(run_dir, saved["scores"], Path(saved["output"]), saved["val_loss"])
    has_checkpoint = (run_dir / "checkpoints").is_dir()
    result = run_one(config, resume=resume and has_checkpoint, overwrite=overwrite or (resume and not has_checkpoint),
                     console=console, events=events, cancel=cancel)
    if is_main_process():
        saved = {"scores": result.scores, "output": str(result.output), "val_loss": result.val_loss}
        (run_dir / RESULT).write_text(json.dumps(saved, indent=2))
    return result


def _write_pipeline_report(config: RunConfig, results: list[RunResult], console: Console) -> RunResult:
    root = Path(config.output_dir)
    scores: dict = {}
    if results[0].scores.get("base"):
        scores["base"] = results[0].scores["base"]
    for stage, result in zip(config.stages[:-1], results[:-1]):
        scores[f"after {stage.name}"] = result.scores.get("tuned")
    scores["tuned"] = results[-1].scores.get("tuned")
    scores = {k: v for k, v in scores.items() if v}
    meta = {"pipeline": "stages", "stages": ", ".join(s.name for s in config.stages), "model": config.model,
            "final": str(results[-1].output)}
    report = write_report(root, scores, [], meta)[1] if is_main_process() else None
    console.print(scores_table(scores))
    return RunResult(root, scores, results[-1].output, results[-1].val_loss, report)
