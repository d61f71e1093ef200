"""kill -9 at many points of a tiny LoRA run, then resume until it finishes: the weights equal an uninterrupted run's.

A runner process (this file, run as a script) imports tunesmith once, single-threaded, then forks one child per
attempt. The child arms one kill point, calls `run(config, resume=...)` and SIGKILLs itself when the point is
reached: it dies as a `kill -9`ed process does, with no handler, no cleanup and nothing flushed. Each point is the
Nth occurrence of an event in that child (the Nth optimizer step, the Nth forward pass without gradients, the Nth
file a checkpoint writes ...), so every point is hit deterministically. After each attempt the runner verifies every
checkpoint on disk and compares it, tensor by tensor, with the uninterrupted run's checkpoint of the same step.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

# Each kill point: (event, n, where it lands in the chain below). Events are counted in each attempt separately;
# attempt i is killed at point i and the attempt after the last point must finish. The run: 12 optimizer steps of 2
# micro-batches (4 epochs of 3 steps), a checkpoint every 3 steps (2 kept), an evaluation every 4 steps.
FULL = [
    ("accelerator", 1, "startup, before the run folder exists"),
    ("tokenizer", 1, "startup: run folder and config.yaml written, nothing else"),
    ("model load", 1, "startup: loading the model"),
    ("forward without gradients", 1, "startup: scoring the base model"),
    ("optimizer step", 1, "step 1: gradients computed, not applied"),
    ("forward with gradients", 4, "step 1: its second micro-batch (after the two forward passes of the memory probe)"),
    ("optimizer step done", 3, "step 3 applied, its learning rate not yet stepped"),
    ("checkpoint tensors", 1, "checkpoint 3: trainable.safetensors half written"),
    ("checkpoint manifest", 1, "checkpoint 3: every file written, manifest.json not yet"),
    ("checkpoint rename", 1, "checkpoint 3: complete, not yet renamed from .tmp-step-0000003"),
    ("checkpoint prune", 1, "checkpoint 3: renamed, older checkpoints not yet pruned"),
    ("accelerator", 1, "startup of a resume that has a checkpoint"),
    ("checkpoint read", 2, "resume: reading checkpoint 3 (optimizer state read, scheduler not yet)"),
    ("optimizer step done", 1, "step 4 applied"),
    ("forward without gradients", 1, "evaluation at step 4, first batch"),
    ("forward without gradients", 2, "evaluation at step 4, second batch"),
    ("step end", 2, "after step 5"),
    ("checkpoint tensors", 2, "checkpoint 6: optimizer.safetensors half written"),
    ("checkpoint text", 3, "checkpoint 6: scheduler.json half written"),
    ("forward with gradients", 1, "startup: the activation-memory probe"),
    ("step end", 3, "after step 6, its checkpoint saved"),
    ("forward with gradients", 3, "step 7: its first micro-batch"),
    ("forward without gradients", 1, "evaluation at step 8, first batch"),
    ("checkpoint delete", 1, "checkpoint 9 saved, checkpoint 3 half deleted"),
    ("optimizer step", 2, "step 11: gradients computed, not applied"),
    ("forward without gradients", 1, "final evaluation after step 12"),
    ("adapter save", 1, "saving the trained adapter"),
    ("adapter saved", 1, "adapter written, tokenizer and report not yet"),
    ("forward without gradients", 3, "scoring the tuned model"),
]
# The fast set, on the first 6 steps: points that resume from a checkpoint (killed after the first one).
FAST = [
    ("step end", 4, "after step 4"),
    ("checkpoint tensors", 1, "checkpoint 6: trainable.safetensors half written"),
    ("checkpoint rename", 1, "checkpoint 6: complete, not yet renamed from .tmp-step-0000006"),
    ("forward without gradients", 2, "evaluation at step 4, second batch"),
]
CHILD_TIMEOUT_S = 240  # an attempt that hangs is killed by SIGALRM and reported


@pytest.fixture
def chain(tiny_run_config, tmp_path):
    """Run the kill chain in a runner process; returns (results, killed run folder, uninterrupted run folder)."""
    from tests.conftest import write_chat_jsonl
    from tunesmith.config.load import save_config

    validation = write_chat_jsonl(tmp_path / "val.jsonl", 8, offset=2)

    def start(points, max_steps: int = 12):
        configs = {}
        for name, keep in (("uninterrupted", 100), ("killed", 2)):
            config = tiny_run_config(
                {"name": "lora", "r": 4, "alpha": 8, "dropout": 0.1},  # dropout: the random state must resume too
                data={"validation": str(validation)},
                training={"max_steps": max_steps, "batch_size": 4, "gradient_accumulation": 2, "save_every": 3,
                          "eval_every": 4, "keep_checkpoints": keep},
                eval={"compare_base": True, "metrics": ["perplexity"]},
                output_dir=str(tmp_path / name),
            )
            configs[name] = tmp_path / f"{name}.yaml"
            save_config(config, configs[name])
        spec = {"configs": {k: str(v) for k, v in configs.items()}, "points": [p[:2] for p in points],
                "logs": str(tmp_path / "logs"), "results": str(tmp_path / "results.json")}
        (tmp_path / "spec.json").write_text(json.dumps(spec))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TUNESMITH_CACHE": str(tmp_path / "cache")}
        runner = subprocess.run([sys.executable, __file__, str(tmp_path / "spec.json")], capture_output=True,
                                text=True, timeout=900, env=env)
        assert runner.returncode == 0, runner.stderr[-3000:]
        results = json.loads((tmp_path / "results.json").read_text())
        for i, result in enumerate(results):
            expected = "killed" if i < len(points) else "finished"
            log = Path(result["log"]).read_text() if Path(result["log"]).is_file() else ""
            assert result["outcome"] == expected, f"attempt {i} ({points[i:i + 1]}): {result['outcome']}\n{log[-3000:]}"
        assert len(results) == len(points) + 1
        return results, tmp_path / "killed", tmp_path / "uninterrupted"

    return start


def assert_same_as_uninterrupted(results, killed: Path, uninterrupted: Path, steps: int = 12) -> None:
    from safetensors.torch import load_file

    from tunesmith.train.checkpoint import complete_checkpoints
    from tunesmith.train.metrics_log import read_metrics

    for i, result in enumerate(results):  # every checkpoint on disk after every attempt
        for name, difference in result["checkpoints"].items():
            assert difference is not None and difference <= 1e-6, f"attempt {i}: {name} differs by {difference}"
    a = load_file(uninterrupted / "adapter" / "adapter_model.safetensors")
    b = load_file(killed / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    straight, resumed = (read_metrics(run / "metrics.jsonl") for run in (uninterrupted, killed))
    train = lambda records: [(r["step"], r["loss"]) for r in records if r["type"] == "train"]  # noqa: E731
    assert [step for step, _ in train(resumed)] == list(range(1, steps + 1))  # every step logged exactly once
    assert [loss for _, loss in train(resumed)] == pytest.approx([loss for _, loss in train(straight)], abs=1e-6)
    assert [p.name for p in complete_checkpoints(killed)] == [f"step-{steps - 3:07d}", f"step-{steps:07d}"]


@pytest.mark.slow  # subprocesses: make test runs it, make test-fast leaves it out
def test_kill_9_at_a_few_points_resumes_to_the_same_weights(chain):
    results, killed, uninterrupted = chain(FAST, max_steps=6)
    assert_same_as_uninterrupted(results, killed, uninterrupted, steps=6)


@pytest.mark.slow
def test_kill_9_at_29_points_resumes_to_the_same_weights(chain):
    results, killed, uninterrupted = chain(FULL)
    assert_same_as_uninterrupted(results, killed, uninterrupted)
    landings = {(*result["point"], result["where"]["step"], result["where"]["phase"], *previous["checkpoints"])
                for previous, result in zip([{"checkpoints": {}}, *results], results[:-1])}
    assert len(landings) == len(FULL) >= 25  # each kill landed somewhere else
    phases = [phase_of(result["where"]) for result in results[:-1]]
    for phase in ("startup", "training step", "evaluation", "checkpoint"):
        assert phases.count(phase) >= 3, phases
    logs = [Path(result["log"]).read_text() for result in results]
    # Killed before its run folder existed (attempt 0) or before its first checkpoint: resuming started over.
    assert "starting over" in logs[1]
    for i in range(2, len(results)):
        if not results[i - 1]["checkpoints"] and (results[i]["where"] or {}).get("phase", "training") == "training":
            assert "starting over" in logs[i], f"attempt {i}"
    # The checkpoint half written by attempt 7 was removed by the next resume, and none is left at the end.
    assert "removing" in logs[8] and ".tmp-step-0000003" in logs[8]
    assert not list((killed / "checkpoints").glob(".tmp-*"))


def phase_of(where: dict) -> str:
    """What the run was doing when it was killed, from the kill point, the run's events and the stack."""
    if where["event"].startswith("checkpoint"):
        return "checkpoint"
    if where["event"].startswith("adapter"):
        return "saving the result"
    if where["phase"] in ("startup", "base scoring"):
        return "startup"
    if {"evaluate", "score_row"} & set(where["stack"]):
        return "evaluation"
    return "training step"


# -- the runner (this file run as a script) -----------------------------------------------------------------------
def main(spec_file: str) -> None:
    import torch

    from tunesmith.config.load import load_config
    from tunesmith.run import run

    torch.set_num_threads(1)  # forked children must not inherit a thread pool
    spec = json.loads(Path(spec_file).read_text())
    logs = Path(spec["logs"])
    logs.mkdir(parents=True, exist_ok=True)
    configs = {name: load_config(path) for name, path in spec["configs"].items()}
    reference = Path(configs["uninterrupted"].output_dir)
    assert attempt(run, configs["uninterrupted"], None, False, logs / "uninterrupted.log")[0] == "finished"
    results = []
    for i, point in enumerate([*spec["points"], None]):
        log = logs / f"attempt-{i:02d}.log"
        outcome, where = attempt(run, configs["killed"], point, i > 0, log)
        results.append({"point": point, "outcome": outcome, "where": where, "log": str(log),
                        "checkpoints": compare_checkpoints(Path(configs["killed"].output_dir), reference)})
        if outcome != ("killed" if point else "finished"):
            break
    Path(spec["results"]).write_text(json.dumps(results, indent=1))


def attempt(run, config, point, resume: bool, log: Path):
    """Fork a child that runs `config`, killed at `point` ((event, n) or None); return (outcome, where)."""
    where_file = log.with_suffix(".where.json")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            signal.alarm(CHILD_TIMEOUT_S)
            tracker = Tracker()
            extra = arm(*point, where_file, tracker) if point else {}
            run(config, resume=resume, on_event=tracker, **extra)
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        outcome = {signal.SIGKILL: "killed", signal.SIGALRM: "timed out"}.get(os.WTERMSIG(status), "signalled")
    else:
        outcome = "finished" if os.WEXITSTATUS(status) == 0 else f"failed (exit {os.WEXITSTATUS(status)})"
    where = json.loads(where_file.read_text()) if where_file.is_file() else None
    return outcome, where


def compare_checkpoints(run_dir: Path, reference: Path) -> dict:
    """Each checkpoint of the killed run -> the largest difference from the uninterrupted run's checkpoint of the same
    step over every tensor and value it holds; None if it does not verify or has no twin with the same contents."""
    from safetensors.torch import load_file

    from tunesmith.train.checkpoint import CheckpointDamaged, complete_checkpoints, verify_checkpoint

    differences = {}
    for folder in complete_checkpoints(run_dir):
        twin = reference / "checkpoints" / folder.name
        try:
            verify_checkpoint(folder)
        except CheckpointDamaged:
            differences[folder.name] = None
            continue
        same_values = twin.is_dir() and all(
            _values(folder / name) == _values(twin / name) for name in ("optimizer.json", "scheduler.json", "rng.json",
                                                                         "state.json"))
        largest = 0.0
        for file in sorted(folder.glob("*.safetensors")) if same_values else []:
            mine, theirs = load_file(file), load_file(twin / file.name)
            same_values = same_values and mine.keys() == theirs.keys()
            largest = max([largest, *((mine[k].double() - theirs[k].double()).abs().max().item()
                                      for k in mine if k in theirs and mine[k].numel())])
        differences[folder.name] = largest if same_values else None
    return differences


def _values(path: Path):
    values = json.loads(path.read_text())
    if path.name == "state.json":
        values.pop("elapsed")  # wall-clock seconds
    return values


class Tracker:
    """The run's events as they come: what the run was doing and the last step it reached."""

    PHASES = {"base_scoring_started": "base scoring", "base_scoring_finished": "startup",
              "training_started": "training", "run_finished": "finished"}

    def __init__(self):
        self.phase, self.step = "startup", None

    def __call__(self, event) -> None:
        self.phase = self.PHASES.get(event.type, self.phase)
        self.step = getattr(event, "step", self.step)


class Point:
    """The n-th `event` of this process, where it SIGKILLs itself after noting where it was."""

    def __init__(self, event: str, n: int, where_file: Path, tracker: Tracker):
        self.event, self.n, self.where_file, self.tracker = event, n, where_file, tracker
        self.count = 0

    def next_is_armed(self) -> bool:
        return self.count + 1 == self.n

    def reached(self, *args) -> None:
        self.count += 1
        if self.count == self.n:
            import inspect

            stack = [frame.function for frame in inspect.stack() if "tunesmith" in frame.filename]
            self.where_file.write_text(json.dumps({"event": self.event, "n": self.n, "phase": self.tracker.phase,
                                                   "step": self.tracker.step, "stack": stack}))
            os.kill(os.getpid(), signal.SIGKILL)


def arm(event: str, n: int, where_file: Path, tracker: Tracker) -> dict:
    """Install the kill point; returns what run() needs for it (the end of a step is run()'s own callback)."""
    point = Point(event, n, where_file, tracker)
    if event == "step end":
        return {"on_step_end": point.reached}
    HOOKS[event](point)
    return {}


def before(owner, name: str, point: Point) -> None:
    """Count each call of owner.name (a function, method or classmethod) before it runs."""
    import inspect

    static, original = inspect.getattr_static(owner, name), getattr(owner, name)

    def wrapper(*args, **kwargs):
        point.reached()
        return original(*args, **kwargs)

    setattr(owner, name, staticmethod(wrapper) if isinstance(static, (classmethod, staticmethod)) else wrapper)


def after(owner, name: str, point: Point) -> None:
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        point.reached()
        return result

    setattr(owner, name, wrapper)


def forwards(with_gradients: bool):
    """Each forward pass of the transformer backbone: in training (with gradients), or evaluating and scoring."""
    def install(point: Point) -> None:
        import torch

        def hook(module, args):
            if type(module).__name__ == "LlamaModel" and torch.is_grad_enabled() == with_gradients:
                point.reached()

        torch.nn.modules.module.register_module_forward_pre_hook(hook)

    return install


def half_written(writer: str):
    """Each file the checkpoint module's `writer` writes; the armed one is left half written."""
    def install(point: Point) -> None:
        from tunesmith.train import checkpoint

        original = getattr(checkpoint, writer)

        def wrapper(first, second):
            original(first, second)
            path = second if writer == "save_file" else first  # save_file(tensors, path), _write_text(path, text)
            if point.next_is_armed():
                path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
            point.reached()

        setattr(checkpoint, writer, wrapper)

    return install


def torn_delete(point: Point) -> None:
    """Each old checkpoint deleted after pruning; the armed one dies with one of its files gone."""
    import shutil

    original = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        if Path(path).name.startswith(".tmp-old-") and Path(path).is_dir():
            if point.next_is_armed():
                next(p for p in sorted(Path(path).iterdir()) if p.is_file()).unlink()
            point.reached()
        return original(path, *args, **kwargs)

    shutil.rmtree = rmtree


def in_checkpoint_module(function: str):
    def install(point: Point) -> None:
        from tunesmith.train import checkpoint

        before(checkpoint, function, point)

    return install


def library(module: str, owner: str, name: str, hook=before):
    def install(point: Point) -> None:
        import importlib

        hook(getattr(importlib.import_module(module), owner), name, point)

    return install


def optimizer_hook(register: str):
    def install(point: Point) -> None:
        from torch.optim import optimizer

        getattr(optimizer, register)(point.reached)

    return install


HOOKS = {
    "accelerator": library("accelerate", "Accelerator", "__init__"),
    "tokenizer": library("transformers", "AutoTokenizer", "from_pretrained"),
    "model load": library("transformers", "AutoModelForCausalLM", "from_pretrained"),
    "forward with gradients": forwards(True),
    "forward without gradients": forwards(False),
    "optimizer step": optimizer_hook("register_optimizer_step_pre_hook"),
    "optimizer step done": optimizer_hook("register_optimizer_step_post_hook"),
    "checkpoint tensors": half_written("save_file"),
    "checkpoint text": half_written("_write_text"),
    "checkpoint manifest": in_checkpoint_module("_write_manifest"),
    "checkpoint rename": in_checkpoint_module("_publish"),
    "checkpoint prune": in_checkpoint_module("_prune"),
    "checkpoint delete": torn_delete,
    "checkpoint read": in_checkpoint_module("_read_part"),
    "adapter save": library("peft", "PeftModel", "save_pretrained"),
    "adapter saved": library("peft", "PeftModel", "save_pretrained", hook=after),
}


if __name__ == "__main__":
    main(sys.argv[1])
