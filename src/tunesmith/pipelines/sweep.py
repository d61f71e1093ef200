"""`run_sweep(config)`: an Optuna study over `sweep.space`; every trial is one normal run (`tunesmith.run.run`) in
`<output_dir>/trial-NNN`, its values set as config overrides.

The study lives in storage (SQLite in the sweep folder unless `sweep.storage` names another database), so running
the sweep again continues it: complete and pruned trials count towards `sweep.trials` and never run again, and
several processes or machines given one PostgreSQL URL share the study (Optuna's own distributed mode). A trial
stopped mid-run (Ctrl-C, SIGTERM, a cancel token) is queued again with the same values and continues from its
checkpoint in its own folder; so is a trial whose process died, once Optuna's heartbeat has gone stale (after
2 x HEARTBEAT_S seconds). Where the folder is not on this machine, the queued trial trains from the start.

With `pruner: median`, each `evaluation` event is reported to the trial; when Optuna says prune, the trial's cancel
token stops the run after its current step and the trial is recorded as pruned.
"""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from tunesmith.config.schema import RunConfig
from tunesmith.db_urls import with_driver, masked
from tunesmith.errors import ConfigError
from tunesmith.pipelines import sweep_report as report
from tunesmith.pipelines.sweep_space import (check_objective, check_space, check_space_unchanged, suggest, trial_config,
                                             trial_value)
from tunesmith.run import INTERRUPTED, run
from tunesmith.train.loop import CancelToken, TrainingInterrupted

HEARTBEAT_S = 30  # a running trial records a heartbeat this often; twice this without one, it is stale
STUDY_DB = "study.db"


@dataclass
class SweepResult:
    sweep_dir: Path
    study: str
    metric: str
    direction: str  # "minimize" or "maximize"
    trials: list[dict]  # trials.json's rows: number, state, params, metric, seconds, run_dir, note
    best: dict | None  # the best complete trial's row
    best_config: Path | None  # best.yaml
    table: Path  # trials.md
    importance: dict[str, float] | None  # parameter -> share; None with fewer than two complete trials
    importance_plot: Path | None


class TrialToken(CancelToken):
    """A trial's cancel token: cancelled when the pruner stops the trial (`cancel()`), or when the sweep's own
    token is cancelled."""

    def __init__(self, sweep_token: CancelToken | None):
        super().__init__()
        self.sweep_token = sweep_token

    @property
    def pruned(self) -> bool:
        return super().cancelled

    @property
    def cancelled(self) -> bool:
        return self.pruned or (self.sweep_token is not None and self.sweep_token.cancelled)


class Pruning:
    """Reports each intermediate validation loss to the trial and stops the run when Optuna says prune."""

    def __init__(self, trial, token: TrialToken):
        self.trial, self.token, self.total = trial, token, None

    def __call__(self, event) -> None:
        if event.type == "training_started":
            self.total = event.total_steps
        if event.type != "evaluation" or self.token.pruned:
            return
        self.trial.report(event.val_loss, event.step)
        # The final evaluation is the trial's result; pruning after it would stop nothing.
        if self.total is not None and event.step < self.total and self.trial.should_prune():
            self.trial.set_user_attr("pruned_at_step", event.step)
            self.trial.set_user_attr("pruned_val_loss", event.val_loss)
            self.token.cancel()


def continue_later(study, trial) -> None:
    """Queue a trial that did not finish again with its values; the new trial continues in the same folder."""
    study.enqueue_trial(trial.params, user_attrs={"continues": trial.user_attrs.get("continues", trial.number)})


class Objective:
    def __init__(self, config: RunConfig, sweep_dir: Path, study, console: Console, on_event, cancel, prune: bool):
        self.config, self.sweep_dir, self.study, self.console = config, sweep_dir, study, console
        self.on_event, self.cancel, self.prune = on_event, cancel, prune

    def __call__(self, trial) -> float:
        import optuna

        values = suggest(trial, self.config.sweep.space)
        origin = trial.user_attrs.get("continues")
        run_dir = self.sweep_dir / f"trial-{trial.number if origin is None else origin:03d}"
        trial.set_user_attr("run_dir", str(run_dir))
        config = trial_config(self.config, values, run_dir, source=f"sweep trial {trial.number}")
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
        again = f" (continues trial {origin} in {run_dir.name})" if origin is not None else ""
        self.console.print(f"[bold]trial {trial.number}[/]: {shown}{again}")
        token = TrialToken(self.cancel)
        subscribers = [s for s in (Pruning(trial, token) if self.prune else None, self.on_event) if s]
        try:
            result = run(config, resume=origin is not None, overwrite=origin is None, console=self.console,
                         on_event=_fan_out(subscribers), cancel=token)
        except TrainingInterrupted as stopped:
            if token.pruned:
                _finished(run_dir)
                self.console.print(f"trial {trial.number}: pruned at step {stopped.step}")
                raise optuna.TrialPruned(f"pruned at step {stopped.step}") from None
            trial.set_user_attr("stopped_at_step", stopped.step)
            continue_later(self.study, trial)
            raise TrainingInterrupted(f"sweep stopped in trial {trial.number} at step {stopped.step} (checkpoint "
                                      "saved); run the sweep again to continue it", stopped.step) from None
        except KeyboardInterrupt:  # outside training (loading, scoring): the trial is queued again all the same
            continue_later(self.study, trial)
            raise
        except Exception as exc:
            trial.set_user_attr("error", (str(exc).splitlines() or [type(exc).__name__])[0][:200])
            raise
        value = trial_value(result, self.config.sweep.metric, trial.number)
        _finished(run_dir)
        self.console.print(f"trial {trial.number}: {self.config.sweep.metric} = {value:.4g}")
        return value


def _fan_out(subscribers: list):
    def emit(event) -> None:
        for subscriber in subscribers:
            subscriber(event)

    return emit


def _finished(run_dir: Path) -> None:
    """A finished or pruned trial is never resumed: drop its checkpoints (weights and optimizer state, per trial)."""
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    (run_dir / INTERRUPTED).unlink(missing_ok=True)


def run_sweep(config: RunConfig, *, console: Console | None = None, on_event=None,
              cancel: CancelToken | None = None) -> SweepResult:
    """Run (or continue) the study until it holds `sweep.trials` complete or pruned trials, then write the trials
    table, the importance plot and best.yaml. `on_event` receives every event of every trial's run; `cancel` stops
    the running trial after a checkpoint (it continues when the sweep runs again) and raises TrainingInterrupted."""
    import optuna

    from tunesmith.offline import offline_defaults

    if config.sweep is None:
        raise ConfigError("the config has no sweep: section; add one with metric and space (see "
                          "examples/cooking-assistant/sweep.yaml)")
    offline_defaults()
    sweep, console = config.sweep, console or Console()
    direction = check_objective(config)
    check_space(config)
    sweep_dir = Path(config.output_dir).resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    name = sweep.study or sweep_dir.name
    url = sweep.storage or f"sqlite:///{sweep_dir / STUDY_DB}"
    finished_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own lines say what happened, without tracebacks
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = _open_study(url, name, direction, sweep.metric)
            check_space_unchanged(study, sweep.space, name)
            study.sampler = _sampler(sweep, seed=sweep.seed + len(study.trials))  # a resumed study draws new values
            study.pruner = _pruner(sweep)
            done = len(study.get_trials(deepcopy=False, states=finished_states))
            console.print(f"[bold]sweep[/] study {name}: {direction} {sweep.metric} over {', '.join(sweep.space)} | "
                          f"{done} of {sweep.trials} trials finished | storage {masked(url)}", soft_wrap=True)
            objective = Objective(config, sweep_dir, study, console, on_event, cancel, sweep.pruner == "median")
            try:
                if done < sweep.trials:
                    study.optimize(objective, n_trials=sweep.trials - done, gc_after_trial=True, callbacks=[
                        optuna.study.MaxTrialsCallback(sweep.trials, states=finished_states),  # across workers
                        lambda s, _: s.stop() if cancel is not None and cancel.cancelled else None,
                    ])
            finally:
                result = _write_outputs(study, config, sweep_dir, name, url, direction, console)
    finally:
        optuna.logging.set_verbosity(verbosity)
    if cancel is not None and cancel.cancelled:
        raise TrainingInterrupted("sweep cancelled between trials; run the sweep again to continue it")
    return result


def _open_study(url: str, name: str, direction: str, metric: str):
    import optuna

    study = optuna.create_study(storage=_storage(url), study_name=name, direction=direction, load_if_exists=True)
    stored = study.user_attrs.get("metric")
    if stored is None:
        study.set_user_attr("metric", metric)
    elif stored != metric or study.direction.name.lower() != direction:
        raise ConfigError(f"sweep: study '{name}' in {masked(url)} is set to {study.direction.name.lower()} {stored}, "
                          f"not {direction} {metric}; name another study with sweep.study or --set sweep.study=...")
    return study


def _storage(url: str):
    """An RDB storage with heartbeats, so a trial whose process died is queued again to continue."""
    import optuna
    import sqlalchemy.exc

    try:
        return optuna.storages.RDBStorage(with_driver(url), heartbeat_interval=HEARTBEAT_S,
                                          heartbeat_stale_trial_callback=continue_later)
    except (ImportError, ValueError, sqlalchemy.exc.SQLAlchemyError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"sweep.storage: cannot open {masked(url)} ({reason}); give a database URL such as "
                          "sqlite:///sweep.db or postgresql://user@host/db") from None


def _sampler(sweep, seed: int):
    import optuna

    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, n_startup_trials=sweep.startup_trials),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    return samplers[sweep.sampler]()


def _pruner(sweep):
    import optuna

    if sweep.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=sweep.startup_trials)


def _write_outputs(study, config: RunConfig, sweep_dir: Path, name: str, url: str, direction: str,
                   console: Console) -> SweepResult:
    import optuna

    metric, keys = config.sweep.metric, list(config.sweep.space)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    best = study.best_trial if complete else None
    best_config = report.write_best_config(sweep_dir, config, best, metric, name) if best else None
    shares = report.importances(study)
    plot = report.write_importance_plot(sweep_dir / report.IMPORTANCE_PNG, shares, metric) if shares else None
    rows = report.trial_rows(study)
    summary = {"study": name, "storage": masked(url), "metric": metric, "direction": direction,
               "best": best.number if best else None, "best_value": best.value if best else None,
               "best_config": str(best_config) if best_config else None, "importance": shares}
    table, _ = report.write_tables(sweep_dir, rows, summary, keys)
    console.print(report.trials_table(rows, keys, metric, summary["best"]))
    if best:
        console.print(f"best: trial {best.number} ({metric} {best.value:.4g}); config: {best_config}", soft_wrap=True)
    else:
        console.print("no trial has finished yet; run the sweep again to continue it")
    console.print(f"trials: {table}" + (f" | importance: {plot}" if plot else ""), soft_wrap=True)
    best_row = next((r for r in rows if best and r["number"] == best.number), None)
    return SweepResult(sweep_dir, name, metric, direction, rows, best_row, best_config, table, shares, plot)
