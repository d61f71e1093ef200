"""kill -9 at many points of tiny Stable Diffusion runs, then resume until they finish: the saved weights (and full
DreamBooth's weight average) equal an uninterrupted run's.

The mechanism is the language-model chain's (tests/integration/test_kill_resume.py, whose pieces this file reuses):
a runner process (this file run as a script) imports tunesmith once, single-threaded, and forks one child per
attempt; the child arms one kill point (the Nth occurrence of an event in that child) and SIGKILLs itself when it
is reached. The diffusion run adds its own moments: loading the pipeline, drawing and writing class images, the
held-out denoising loss, the sample grids, the weight average saved with each checkpoint, and the final model, LoRA
file and its load-back check. After each attempt the runner verifies every checkpoint on disk and compares it,
tensor by tensor, with the uninterrupted run's checkpoint of the same step.

The run (diffusion_runs.py): 5 optimizer steps of 2 subject images and their 2 class images, a checkpoint every
2 steps (2 kept), the held-out loss at step 3 and at the end (one batch: 2 images at 5 fixed timesteps), a grid at
step 3 and a final one.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

# Full DreamBooth with a weight average (ema: true) and class images drawn into the run's own class folder.
# Attempt i is killed at point i; the attempt after the last must finish.
DREAMBOOTH = [
    ("accelerator", 1, "startup, before the run folder exists"),
    ("pipeline load", 1, "startup: run folder and config.yaml written, loading the pipeline"),
    ("class images", 1, "drawing the class images with the base model"),
    ("class image file", 2, "class image 1 written, class image 2 half written"),
    ("optimizer step", 1, "step 1: gradients computed, not applied"),
    ("checkpoint tensors", 1, "checkpoint 2: trainable.safetensors half written"),
    ("checkpoint average", 1, "checkpoint 2: the weight average half written"),
    ("checkpoint prune", 1, "checkpoint 2: complete and renamed, older checkpoints not yet pruned"),
    ("held-out batch", 1, "the held-out loss at step 3"),
    ("grid", 1, "drawing the grid of step 3"),
    ("step end", 2, "after step 4, its checkpoint saved"),
    ("held-out batch", 1, "the final held-out loss, after step 5"),
    ("model save", 1, "saving the trained model (the weight average) as model/"),
    ("single file", 1, "model.safetensors half written"),
    ("grid", 1, "drawing the final grid"),
]
# DreamBooth LoRA, 7 steps: pruning and deleting old checkpoints, and the final LoRA file.
DREAMBOOTH_LORA = [
    ("checkpoint prune", 1, "checkpoint 2: renamed, older checkpoints not yet pruned"),
    ("checkpoint delete", 1, "checkpoint 6 saved, checkpoint 2 half deleted"),
    ("lora file", 1, "the final LoRA file half written"),
    ("lora check", 1, "the final LoRA file written, its load-back check running"),
]
# Grids at checkpoint steps (2 and 4): killed after checkpoint 2 before its grid, and with grid 4 half written (the
# resumed run's first grid file is grid 2, drawn when it resumes from checkpoint 2).
GRIDS_AT_CHECKPOINTS = [
    ("checkpoint prune", 1, "checkpoint 2 saved, its grid not yet drawn"),
    ("grid file", 2, "the grid of step 4 half written (under its temporary name)"),
]
# Checkpoints 2, 4, 6 (the third prunes the first), a grid at step 5, the held-out loss at the end only.
LONGER = {"training": {"max_steps": 7, "eval_every": 100}, "validation": {"every": 5}}
EVERY_2 = {"training": {"eval_every": 100}, "validation": {"every": 2}}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder with the tiny pipeline, the subject images and the latent cache every run of this module shares."""
    from tests.integration.diffusion_runs import subject_images, tiny_sd_folder

    root = tmp_path_factory.mktemp("diffusion-kill")
    (root / "model").symlink_to(tiny_sd_folder(tmp_path_factory))
    subject_images(root / "images")
    return root


def write_config(workspace: Path, method: str, name: str, **sections) -> Path:
    from tests.integration.diffusion_runs import diffusion_config
    from tunesmith.config.load import save_config

    config = diffusion_config(workspace / "model", workspace / "images", workspace / name / "run", method,
                              class_images=workspace / name / "class", **sections)
    path = workspace / f"{name}.yaml"
    save_config(config, path)
    return path


def start_runner(workspace: Path, name: str, spec: dict) -> list[dict]:
    spec = {**spec, "logs": str(workspace / f"logs-{name}"), "results": str(workspace / f"results-{name}.json")}
    (workspace / f"{name}.json").write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TUNESMITH_CACHE": str(workspace / "cache")}
    runner = subprocess.run([sys.executable, __file__, str(workspace / f"{name}.json")], capture_output=True,
                            text=True, timeout=1500, env=env, cwd=ROOT)
    assert runner.returncode == 0, runner.stderr[-3000:]
    return json.loads(Path(spec["results"]).read_text())


@pytest.fixture
def chain(workspace, request):
    """Run a kill chain of `method` (and, with `compare`, the uninterrupted run first, in the same runner); returns
    (results, killed run folder, uninterrupted run folder or None)."""

    def start(method: str, points: list, compare: bool = True, **sections):
        name = request.node.name
        spec = {"config": str(write_config(workspace, method, f"killed-{name}", **sections)),
                "points": [p[:2] for p in points]}
        if compare:
            training = {**sections.get("training", {}), "keep_checkpoints": 100}  # a twin for every checkpoint
            spec["reference"] = str(write_config(workspace, method, f"uninterrupted-{name}",
                                                 **{**sections, "training": training}))
        results = start_runner(workspace, name, spec)
        for i, result in enumerate(results):
            expected = "killed" if i < len(points) else "finished"
            log = Path(result["log"]).read_text() if Path(result["log"]).is_file() else ""
            assert result["outcome"] == expected, f"attempt {i} ({points[i:i + 1]}): {result['outcome']}\n{log[-3000:]}"
        assert len(results) == len(points) + 1
        return results, workspace / f"killed-{name}" / "run", workspace / f"uninterrupted-{name}" / "run"

    return start


def assert_same_as_uninterrupted(results, killed: Path, straight: Path, steps: int) -> None:
    import numpy as np
    from PIL import Image

    from tests.integration.diffusion_runs import saved_weights
    from tunesmith.train.checkpoint import complete_checkpoints
    from tunesmith.train.metrics_log import read_metrics

    for i, result in enumerate(results):  # every checkpoint on disk after every attempt
        for name, difference in result["checkpoints"].items():
            assert difference is not None and difference <= 1e-6, f"attempt {i}: {name} differs by {difference}"
    assert largest_difference(saved_weights(killed), saved_weights(straight)) <= 1e-6
    straight_metrics, resumed_metrics = (read_metrics(run / "metrics.jsonl") for run in (straight, killed))
    train = lambda records: [(r["step"], r["loss"]) for r in records if r["type"] == "train"]  # noqa: E731
    assert [step for step, _ in train(resumed_metrics)] == list(range(1, steps + 1))  # each step logged once
    assert [loss for _, loss in train(resumed_metrics)] == pytest.approx(
        [loss for _, loss in train(straight_metrics)], abs=1e-6)
    held_out = lambda records: {r["step"]: r["val_loss"] for r in records if r["type"] == "eval"}  # noqa: E731
    mine, theirs = held_out(resumed_metrics), held_out(straight_metrics)
    assert mine.keys() == theirs.keys() and list(mine.values()) == pytest.approx(list(theirs.values()), abs=1e-6)
    report, straight_report = (json.loads((run / "report.json").read_text()) for run in (killed, straight))
    assert report["grids"] == straight_report["grids"] and report["steps"] == steps
    for key in ("final_val_loss", "final_train_loss"):
        assert report[key] == pytest.approx(straight_report[key], abs=1e-6), key
    for grid in report["grids"]:  # the grids show the same weights
        same, again = (np.asarray(Image.open(run / grid), dtype=float) for run in (straight, killed))
        assert np.abs(same - again).max() <= 1, grid
    assert not list((killed / "checkpoints").glob(".tmp-*"))
    assert [p.name for p in complete_checkpoints(killed)] == [p.name for p in complete_checkpoints(straight)][-2:]


def unwrapped(log: str) -> str:
    """An attempt's log without its whitespace: the console wraps at 80 columns, inside messages and paths alike,
    and drops the space where it breaks between words. Compare with `bare(words)`."""
    return bare(Path(log).read_text())


def bare(text: str) -> str:
    return "".join(text.split())


def largest_difference(mine: dict, theirs: dict) -> float:
    assert mine.keys() == theirs.keys()
    return max(((mine[k].double() - theirs[k].double()).abs().max().item() for k in mine if mine[k].numel()),
               default=0.0)


@pytest.mark.slow  # a runner process and 17 forked runs
def test_kill_9_at_15_points_of_a_full_dreambooth_run_resumes_to_the_same_model_and_average(chain):
    results, killed, straight = chain("dreambooth", DREAMBOOTH)
    assert_same_as_uninterrupted(results, killed, straight, steps=5)
    # What the run saves is the weight average; every checkpoint's average matched the uninterrupted run's above.
    assert (killed / "checkpoints" / "step-0000004" / "companion-ema.safetensors").is_file()
    phases = {phase_of(result["where"]) for result in results[:-1]}
    assert phases == {"startup", "class images", "training step", "checkpoint", "held-out loss", "grid",
                      "saving the result"}, phases
    logs = [unwrapped(result["log"]) for result in results]
    # Nothing to resume from: started over.
    assert bare("holds no run yet") in logs[1] and bare("starting over") in logs[4]
    # Class image 2 was half written when attempt 3 died: it did not count as drawn, attempt 4 drew it (and only
    # it) again, and the run's class images are the uninterrupted run's, byte for byte.
    assert bare("class images: drew 1 of 1") in logs[4]
    assert len(results[-1]["class_images"]) == 2 and not list((killed.parent / "class").glob("*.tmp.png"))
    for name in results[-1]["class_images"]:
        assert (killed.parent / "class" / name).read_bytes() == (straight.parent / "class" / name).read_bytes()
    # The checkpoints half written by attempts 5 and 6 were removed by the next resume.
    assert ".tmp-step-0000002" in logs[6] and ".tmp-step-0000002" in logs[7]


@pytest.mark.slow
def test_kill_9_while_pruning_and_saving_the_lora_resumes_to_the_same_lora(chain):
    results, killed, straight = chain("dreambooth_lora", DREAMBOOTH_LORA, **LONGER)
    assert_same_as_uninterrupted(results, killed, straight, steps=7)
    logs = [unwrapped(result["log"]) for result in results]
    assert ".tmp-old-step-0000002" in logs[2]  # the half-deleted checkpoint was removed


@pytest.mark.slow
def test_kill_9_around_grids_at_checkpoint_steps_keeps_every_grid(chain):
    from PIL import Image

    results, killed, straight = chain("dreambooth_lora", GRIDS_AT_CHECKPOINTS, **EVERY_2)
    assert [result["where"]["step"] for result in results[:-1]] == [2, 4]  # killed after step 2, then after step 4
    grids = json.loads((killed / "report.json").read_text())["grids"]
    assert grids == ["samples/step-0000002.png", "samples/step-0000004.png", "samples/final.png"]
    for grid in grids:
        Image.open(killed / grid).load()  # whole PNGs
    assert not list((killed / "samples").glob("*.tmp.png"))
    # Grid 2 was drawn on resuming from checkpoint 2, grid 4 on resuming from checkpoint 4: with the weights of
    # those checkpoints, the same pixels as the uninterrupted run's (compared below, with the weights and losses).
    assert_same_as_uninterrupted(results, killed, straight, steps=5)


def phase_of(where: dict) -> str:
    """What the run was doing when it was killed, from the kill point and the run's events."""
    event = where["event"]
    named = {"class images": "class images", "class image file": "class images", "grid": "grid",
             "held-out batch": "held-out loss", "model save": "saving the result", "single file": "saving the result",
             "lora file": "saving the result", "lora check": "saving the result"}
    if event in named:
        return named[event]
    if event.startswith("checkpoint"):
        return "checkpoint"
    if where["phase"] == "startup":
        return "startup"
    return "training step"


# -- the runner (this file run as a script) -----------------------------------------------------------------------
def main(spec_file: str) -> None:
    import warnings

    import torch

    from tests.integration import test_kill_resume as llm
    from tunesmith.config.load import load_config
    from tunesmith.run import run

    warnings.simplefilter("ignore")
    torch.set_num_threads(1)  # forked children must not inherit a thread pool
    spec = json.loads(Path(spec_file).read_text())
    logs = Path(spec["logs"])
    logs.mkdir(parents=True, exist_ok=True)
    config = load_config(spec["config"])
    llm.arm = arm  # the language-model chain's attempt(), arming this file's kill points
    reference = None
    if spec.get("reference"):
        uninterrupted = load_config(spec["reference"])
        assert llm.attempt(run, uninterrupted, None, False, logs / "uninterrupted.log")[0] == "finished"
        reference = Path(uninterrupted.output_dir)
    results = []
    for i, point in enumerate([*spec["points"], None]):
        log = logs / f"attempt-{i:02d}.log"
        outcome, where = llm.attempt(run, config, point, i > 0, log)
        run_dir = Path(config.output_dir)
        class_folder = Path(config.data.class_images or run_dir / "no-class-images")
        results.append({
            "point": point, "outcome": outcome, "where": where, "log": str(log),
            "checkpoints": compare_checkpoints(run_dir, reference) if reference else {},
            "class_images": sorted(p.name for p in class_folder.glob("tunesmith-class-*.png")
                                   if not p.name.endswith(".tmp.png")),
        })
        if outcome != ("killed" if point else "finished"):
            break
    Path(spec["results"]).write_text(json.dumps(results, indent=1))


def compare_checkpoints(run_dir: Path, reference: Path) -> dict:
    """Each checkpoint of the killed run -> the largest difference from the uninterrupted run's checkpoint of the same
    step over every tensor and value it holds (weight average included); None if it does not verify or differs."""
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
        names = lambda where, pattern: sorted(p.name for p in where.glob(pattern))  # noqa: E731
        texts = [name for name in names(folder, "*.json") if name != "manifest.json"]  # the manifest holds hashes
        same = twin.is_dir() and names(folder, "*.json") == names(twin, "*.json") and all(
            _values(folder / name) == _values(twin / name) for name in texts)
        same = same and names(folder, "*.safetensors") == names(twin, "*.safetensors")
        largest = 0.0
        for name in names(folder, "*.safetensors") if same else []:
            mine, theirs = load_file(folder / name), load_file(twin / name)
            same = same and mine.keys() == theirs.keys()
            largest = max([largest, *((mine[k].double() - theirs[k].double()).abs().max().item()
                                      for k in mine if k in theirs and mine[k].numel())])
        differences[folder.name] = largest if same else None
    return differences


def _values(path: Path):
    values = json.loads(path.read_text())
    if path.name == "state.json":
        values.pop("elapsed")  # wall-clock seconds
    return values


def arm(event: str, n: int, where_file: Path, tracker) -> dict:
    """Install the kill point; returns what run() needs for it."""
    from tests.integration import test_kill_resume as llm

    point = llm.Point(event, n, where_file, tracker)
    if event == "step end":
        return {"on_step_end": point.reached}
    (HOOKS.get(event) or llm.HOOKS[event])(point)
    return {}


def in_module(module: str, name: str):
    """Each call of module.name (a function, or Class.method) counts, before it runs."""
    def install(point) -> None:
        import importlib

        from tests.integration.test_kill_resume import before

        owner = importlib.import_module(module)
        *classes, function = name.split(".")
        for attribute in classes:
            owner = getattr(owner, attribute)
        before(owner, function, point)

    return install


def half_written_image(prefix: str):
    """Each PNG whose name starts with `prefix` and is written under a temporary name (then renamed); the armed one is
    left half written."""
    def install(point) -> None:
        from PIL import Image

        original = Image.Image.save

        def save(image, fp, *args, **kwargs):
            original(image, fp, *args, **kwargs)
            path = Path(fp) if isinstance(fp, (str, os.PathLike)) else None
            if path is not None and path.name.startswith(prefix) and path.name.endswith(".tmp.png"):
                if point.next_is_armed():
                    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
                point.reached()

        Image.Image.save = save

    return install


def held_out_batches(point) -> None:
    """Each batch of the held-out denoising loss (the diffusion loss without gradients)."""
    import torch

    from tunesmith.tasks.diffusion.task import DiffusionLoss

    original = DiffusionLoss.forward

    def forward(self, batch, normaliser):
        if not torch.is_grad_enabled():
            point.reached()
        return original(self, batch, normaliser)

    DiffusionLoss.forward = forward


def half_written_file(module: str, name: str, path_of, only=lambda path: True):
    """Each file module.name writes (`path_of(args)` names it) that `only(path)` picks; the armed one is left half
    written."""
    def install(point) -> None:
        import importlib

        owner = importlib.import_module(module)
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            result = original(*args, **kwargs)
            path = Path(path_of(args))
            if not only(path):
                return result
            if point.next_is_armed():
                path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
            point.reached()
            return result

        setattr(owner, name, wrapper)

    return install


def lora_file_written(point) -> None:
    """The final LoRA file, written and about to be checked by loading it back; the armed one is cut in half."""
    from tunesmith.export import diffusion_lora

    original = diffusion_lora.verify_lora_file

    def verify(pipeline, path, *args, **kwargs):
        if point.next_is_armed():
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        point.reached()
        return original(pipeline, path, *args, **kwargs)

    diffusion_lora.verify_lora_file = verify


def lora_check(point) -> None:
    """The load-back check of the final LoRA file, once it has loaded the file as a second adapter."""
    import diffusers

    from tests.integration.test_kill_resume import after

    after(diffusers.StableDiffusionPipeline, "load_lora_weights", point)


HOOKS = {
    "pipeline load": in_module("tunesmith.tasks.diffusion.run", "load_diffusion"),
    "class images": in_module("tunesmith.data.images.class_images", "_draw"),
    "class image file": half_written_image("tunesmith-class-"),
    "held-out batch": held_out_batches,
    "grid": in_module("tunesmith.tasks.diffusion.validation", "save_grid"),
    "grid file": half_written_image("step-"),
    "model save": in_module("diffusers", "DiffusionPipeline.save_pretrained"),
    "single file": half_written_file("tunesmith.models.diffusion_layout", "save_single_file", lambda args: args[1]),
    "lora file": lora_file_written,
    "lora check": lora_check,
    "checkpoint average": half_written_file("tunesmith.train.checkpoint", "save_file", lambda args: args[1],
                                            only=lambda path: path.name == "companion-ema.safetensors"),
}


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(sys.argv[1])
