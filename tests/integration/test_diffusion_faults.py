"""Faults injected into tiny Stable Diffusion runs (docs/reliability.md): a stop signal or cancel token, nan/inf in
the diffusion loss or its gradients, a full disk while saving a checkpoint, the weight average, the final LoRA or an
export, and out-of-memory steps under `batch_size: auto`. kill -9 is in test_diffusion_kill_resume.py; bad image
files are tests/diffusion/test_images.py's.

Every run is in this process, on the tiny SD 1.x pipeline at 32 px (diffusion_runs.py): 5 steps of 2 subject
images (the DreamBooth methods: and 2 class images), a checkpoint every 2 steps. Faults are injected through
global forward hooks on the UNet's training forwards (gradients on), so they land inside the real run.
"""

import dataclasses
import json
import os
import signal
import subprocess
import warnings
from pathlib import Path

import pytest
import torch

from tests.integration.diffusion_runs import diffusion_config, saved_weights, subject_images, tiny_sd_folder
from tunesmith import events as ev
from tunesmith.errors import TunesmithError
from tunesmith.run import INTERRUPTED, run
from tunesmith.train.checkpoint import complete_checkpoints, latest_checkpoint
from tunesmith.train.loop import CancelToken, TrainingInterrupted

pytestmark = pytest.mark.slow  # each test trains one to three diffusion runs (10-30 s each on two cores)

CPU_OOM = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 1073741824 bytes. Error code 12"
NO_SPACE = "Error while serializing: I/O error: No space left on device (os error 28)"  # as safetensors says it
KIB = 1024


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("diffusion-faults")
    (root / "model").symlink_to(tiny_sd_folder(tmp_path_factory))
    subject_images(root / "images")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNESMITH_CACHE", str(root / "cache"))  # class images and latents, shared by every run
        yield root


def config(workspace: Path, method: str, out: Path, **sections):
    return diffusion_config(workspace / "model", workspace / "images", out, method, **sections)


@dataclasses.dataclass
class Trained:
    run_dir: Path
    events: list
    error: BaseException | None = None  # what the run ended with; None when it finished

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def train(cfg, *watchers, **kwargs) -> Trained:
    """Run `cfg` with each of `watchers` receiving its events too."""
    trained = Trained(Path(cfg.output_dir), [])

    def on_event(event):
        trained.events.append(event)
        for watch in watchers:
            watch(event)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            run(cfg, on_event=on_event, **kwargs)
        except Exception as error:  # noqa: BLE001 -- the test asserts what it was
            trained.error = error
    return trained


@pytest.fixture(scope="module")
def straight(workspace):
    """(method, config changes) -> an uninterrupted run of it, trained once per module."""
    runs = {}

    def get(method: str, **sections) -> Trained:
        key = (method, json.dumps(sections, sort_keys=True))
        if key not in runs:
            runs[key] = train(config(workspace, method, workspace / f"straight-{len(runs)}", **sections))
            assert runs[key].error is None, runs[key].error
        return runs[key]

    return get


def assert_same_weights(a: Path, b: Path, atol: float = 1e-6) -> None:
    mine, theirs = saved_weights(a), saved_weights(b)
    assert mine.keys() == theirs.keys()
    for key in mine:
        torch.testing.assert_close(mine[key], theirs[key], atol=atol, rtol=0, msg=key)


def train_losses(run_dir: Path) -> dict[int, float]:
    """Step -> the training loss metrics.jsonl logged for it."""
    from tunesmith.train.metrics_log import read_metrics

    return {r["step"]: r["loss"] for r in read_metrics(run_dir / "metrics.jsonl") if r["type"] == "train"}


def assert_same_losses(a: Path, b: Path, rel: float = 0.0, abs: float = 1e-6) -> None:
    mine, theirs = train_losses(a), train_losses(b)
    assert mine.keys() == theirs.keys()
    assert list(mine.values()) == pytest.approx(list(theirs.values()), rel=rel, abs=abs)


def all_finite(tensors) -> bool:
    return all(torch.isfinite(t).all() for t in tensors)


class UNetHooks:
    """Global hooks on each training forward of the UNet (gradients on) once training has started (so not the
    activation-memory probe), numbered from 1. Pass the object to train() as a watcher."""

    def __init__(self, from_the_start: bool = False):
        self.handles, self.forwards, self.unet = [], 0, None
        self.training = from_the_start  # with True, the probe's forward counts too

    def __call__(self, event) -> None:
        if isinstance(event, ev.TrainingStarted):
            self.training = True

    def on_output(self, change):
        """`change(n, output)`: the output the loss sees instead (None keeps it), for the n-th training forward."""
        def hook(module, args, output):
            if self._counts(module):
                self.forwards += 1
                self.unet = module
                return change(self.forwards, output)
            return None

        self.handles.append(torch.nn.modules.module.register_module_forward_hook(hook))

    def before(self, check):
        """`check(latents)` before each training forward; it may raise, as an allocator out of memory does."""
        def hook(module, args):
            if self._counts(module):
                check(args[0])

        self.handles.append(torch.nn.modules.module.register_module_forward_pre_hook(hook))

    def _counts(self, module) -> bool:
        return self.training and type(module).__name__ == "UNet2DConditionModel" and torch.is_grad_enabled()

    def trained(self) -> dict:
        """The UNet's trainable tensors as they are now."""
        return {n: p.detach().clone() for n, p in self.unet.named_parameters() if p.requires_grad}

    def remove(self):
        for handle in self.handles:
            handle.remove()


@pytest.fixture
def unet_hooks():
    hooks = UNetHooks()
    yield hooks
    hooks.remove()


# -- stopped on purpose -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stop, method", [("SIGTERM", "dreambooth"), ("cancel token", "dreambooth_lora")])
def test_a_stop_during_a_step_checkpoints_marks_the_run_and_resume_gives_the_same_weights(
        workspace, straight, unet_hooks, stop, method):
    """A SIGTERM (full DreamBooth, with its weight average) or a cancel token (DreamBooth LoRA) during step 3: the
    step finishes, a checkpoint is written, interrupted.json says so; --resume finishes with the uninterrupted
    run's weights and removes the marker."""
    out = workspace / f"stopped-{method}"
    token = CancelToken()

    def stop_during_step_3(n, output):
        if n == 3 and stop == "SIGTERM":
            os.kill(os.getpid(), signal.SIGTERM)  # the loop's handler: finish the step, checkpoint, stop
        elif n == 3:
            token.cancel()  # as the service does from another thread

    unet_hooks.on_output(stop_during_step_3)
    cfg = config(workspace, method, out)
    stopped = train(cfg, unet_hooks, cancel=token)
    assert isinstance(stopped.error, TrainingInterrupted), stopped.error
    assert str(stopped.error) == "stopped at step 3; checkpoint saved. Continue with: tunesmith train CONFIG --resume"
    assert [e.type for e in stopped.events][-2:] == ["checkpoint", "run_interrupted"]
    assert [p.name for p in complete_checkpoints(out)] == ["step-0000002", "step-0000003"]
    if method == "dreambooth":
        assert (out / "checkpoints" / "step-0000003" / "companion-ema.safetensors").is_file()  # the weight average
    assert json.loads((out / INTERRUPTED).read_text())["step"] == 3
    assert not (out / "adapter").exists() and not (out / "model").exists()
    unet_hooks.remove()

    resumed = train(cfg, resume=True)
    assert resumed.error is None, resumed.error
    assert resumed.of(ev.TrainingStarted)[0].step == 3 and not (out / INTERRUPTED).exists()
    reference = straight(method).run_dir
    assert_same_weights(out, reference)
    assert_same_losses(out, reference)


# -- nan / inf ----------------------------------------------------------------------------------------------------
def test_a_nan_loss_and_an_inf_gradient_are_dropped_and_named(workspace, unet_hooks):
    """Step 2's UNet prediction is nan (so its loss and gradients are); step 4's is fine but its gradient is inf.
    Neither step touches the weights; both are named; the run trains on and saves a finite LoRA."""
    def poison(n, output):
        if n == 2:
            return (output[0] * float("nan"),)
        if n == 4:
            output[0].register_hook(lambda gradient: gradient * float("inf"))
        return None

    unet_hooks.on_output(poison)
    after = {}
    trained = train(config(workspace, "lora", workspace / "nan"), unet_hooks,
                    on_step_end=lambda s: after.update({s.step: unet_hooks.trained()}))

    assert trained.error is None, trained.error
    skipped = trained.of(ev.StepSkipped)
    assert [(e.step, e.bad_steps) for e in skipped] == [(2, 1), (4, 2)]
    assert skipped[0].message == ("step 2: the loss or a gradient is not finite (nan/inf); the step was not applied "
                                  "(1 of at most 3)")
    for dropped in (2, 4):  # the weights after a dropped step are those before it
        assert all(torch.equal(after[dropped][k], after[dropped - 1][k]) for k in after[dropped])
    assert any(not torch.equal(after[3][k], after[2][k]) for k in after[3])  # the steps between still train
    # A dropped step has no step line of its own (it trained on nothing); its step_skipped event names it.
    assert [e.step for e in trained.of(ev.Step)] == [1, 3, 5]
    assert all_finite(saved_weights(trained.run_dir).values())


def test_a_dropped_step_logs_no_made_up_loss(workspace, unet_hooks):
    unet_hooks.on_output(lambda n, output: (output[0] * float("nan"),) if n == 2 else None)
    trained = train(config(workspace, "lora", workspace / "nan-logged", training={"max_steps": 2}), unet_hooks)
    assert trained.error is None, trained.error
    assert train_losses(trained.run_dir).get(2) != 0.0, "step 2 trained nothing; metrics.jsonl says its loss was 0.0"


def test_too_many_non_finite_steps_stop_full_dreambooth_without_poisoned_weights_or_average(workspace,
                                                                                               unet_hooks):
    """From step 3 on every prediction is nan: steps 3, 4 and 5 are dropped and the run stops at the third, with
    finite weights and a finite weight average in every checkpoint and no model saved."""
    from safetensors.torch import load_file

    unet_hooks.on_output(lambda n, output: (output[0] * float("nan"),) if n >= 3 else None)
    out = workspace / "nan-stop"
    trained = train(config(workspace, "dreambooth", out), unet_hooks)

    assert isinstance(trained.error, TunesmithError)
    assert str(trained.error).startswith("training stopped at step 5: 3 steps had a non-finite loss or gradient, "
                                         "none of them applied")
    assert [(e.step, e.bad_steps) for e in trained.of(ev.StepSkipped)] == [(3, 1), (4, 2), (5, 3)]
    assert trained.of(ev.RunFailed)[0].message == str(trained.error)
    checkpoints = complete_checkpoints(out)
    assert [p.name for p in checkpoints] == ["step-0000002", "step-0000004"]
    for part in ("trainable.safetensors", "companion-ema.safetensors"):  # the weights, and their average
        before, after = (load_file(folder / part) for folder in checkpoints)
        assert all(torch.equal(before[k], after[k]) for k in before), part  # steps 3 and 4 changed nothing
        assert all_finite(before.values()) and all_finite(after.values()), part
    assert not (out / "model").exists() and not (out / "model.safetensors").exists()
    assert not (out / "report.json").exists()


# -- disk full ----------------------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A real 16 MiB file system (tmpfs), where mounting is permitted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """Fill `disk` with one file until `leave` bytes are free; returns the file (delete it to free the space)."""
    import shutil

    ballast = disk / "ballast"
    with ballast.open("ab") as handle:
        handle.write(b"\0" * max(0, shutil.disk_usage(disk).free - leave))
    return ballast


def assert_checkpoints(out: Path, *names: str) -> None:
    """`names` are the checkpoints on disk, the last the latest (it verifies), and no partial one is left."""
    assert [p.name for p in complete_checkpoints(out)] == list(names)
    assert not list((out / "checkpoints").glob(".tmp-*"))
    assert latest_checkpoint(out, print).name == names[-1]


@pytest.mark.parametrize("where", ["refused before writing", "the write itself fills the disk"])
def test_a_full_disk_at_a_checkpoint_keeps_the_previous_one(workspace, straight, small_disk, monkeypatch, where):
    """DreamBooth LoRA writing into a 16 MiB tmpfs that is filled after checkpoint 2: checkpoint 4 is refused by the
    free-space check (or, with the check fooled, the write runs out of space); one message names the folder and the
    space; checkpoint 2 is untouched. Space freed, --resume finishes with the uninterrupted run's LoRA."""
    from tunesmith.train import checkpoint

    out = small_disk / "run"
    if where != "refused before writing":
        monkeypatch.setattr(checkpoint, "_check_space", lambda *args: None)
    ballast = []
    cfg = config(workspace, "dreambooth_lora", out)
    full = train(cfg, on_step_end=lambda s: ballast.append(fill(small_disk, 256 * KIB if where.startswith("refused")
                                                                   else 64 * KIB)) if s.step == 2 else None)

    assert isinstance(full.error, TunesmithError), full.error
    assert str(full.error).startswith(f"not enough disk space to save checkpoint {out / 'checkpoints' / 'step-0000004'}"
                                      ": it needs about ")
    assert str(full.error).endswith(" is free; step-0000002 is still the latest checkpoint; free some space (or set "
                                    "output_dir to a larger disk) and continue with --resume")
    assert_checkpoints(out, "step-0000002")
    assert not (out / "adapter").exists()
    if where != "refused before writing":
        return
    ballast[0].unlink()
    resumed = train(cfg, resume=True)
    assert resumed.error is None, resumed.error
    assert_same_weights(out, straight("dreambooth_lora").run_dir)


def test_a_full_disk_while_saving_the_weight_average_keeps_the_previous_checkpoint(workspace, straight, monkeypatch):
    """Full DreamBooth with ema: true; the disk fills while checkpoint 4's weight average is written (safetensors'
    own error after half the file). One message names the folder and the space, checkpoint 2 (its average
    complete) stays the latest, and the resumed run saves the uninterrupted run's model."""
    from safetensors import SafetensorError

    from tunesmith.train import checkpoint

    real_save_file, averages = checkpoint.save_file, []

    def save_file(tensors, path, *args, **kwargs):
        real_save_file(tensors, path, *args, **kwargs)
        if Path(path).name == "companion-ema.safetensors":
            averages.append(path)
            if len(averages) == 2:
                Path(path).write_bytes(Path(path).read_bytes()[: Path(path).stat().st_size // 2])
                raise SafetensorError(NO_SPACE)

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    out = workspace / "ema-disk-full"
    cfg = config(workspace, "dreambooth", out)
    full = train(cfg)
    monkeypatch.undo()
    assert isinstance(full.error, TunesmithError), full.error
    assert str(full.error).startswith(f"not enough disk space to save checkpoint {out}/checkpoints/step-0000004: ")
    assert_checkpoints(out, "step-0000002")
    resumed = train(cfg, resume=True)
    assert resumed.error is None, resumed.error
    assert resumed.of(ev.TrainingStarted)[0].step == 2
    assert_same_weights(out, straight("dreambooth").run_dir)


def test_a_full_disk_while_saving_the_final_lora_leaves_no_half_file(workspace, straight, small_disk):
    """The disk fills after the final held-out loss, as the LoRA file is written. Wanted: the last checkpoint intact,
    one message naming the folder and the space, no half-written adapter/pytorch_lora_weights.safetensors, and
    --resume (space freed) saving the uninterrupted run's LoRA."""
    out = small_disk / "run"
    ballast = []

    def fill_before_saving(event):
        if isinstance(event, ev.Evaluation) and event.step == 5:  # the final one: training is over
            ballast.append(fill(small_disk, 16 * KIB))

    cfg = config(workspace, "dreambooth_lora", out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            run(cfg, on_event=fill_before_saving)
            error = None
        except Exception as exc:  # noqa: BLE001 -- asserted below
            error = exc
    assert error is not None, "the LoRA fitted; the test needs a smaller disk"
    assert_checkpoints(out, "step-0000002", "step-0000004")
    assert not (out / "adapter" / "pytorch_lora_weights.safetensors").exists(), "a half-written LoRA file was left"
    assert isinstance(error, TunesmithError) and str(error).startswith(
        f"not enough disk space to save {out / 'adapter'}"), error
    ballast[0].unlink()
    resumed = train(cfg, resume=True)
    assert resumed.error is None, resumed.error
    assert_same_weights(out, straight("dreambooth_lora").run_dir)


def test_a_full_disk_while_exporting_leaves_no_half_file(straight, small_disk):
    """What `tunesmith export RUN --format kohya --out FILE` runs, onto a full disk. Wanted: one message (a
    TunesmithError: the CLI prints it without a traceback) naming the file and the space, and no half-written file."""
    from tunesmith.export.diffusion_run import export_diffusion_run

    run_dir = straight("dreambooth_lora").run_dir
    fill(small_disk, 8 * KIB)
    out = small_disk / "dog.safetensors"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as raised:  # noqa: PT011 -- which one is asserted below
            export_diffusion_run(run_dir, out, "kohya", "fp32")
    assert not out.exists(), "a half-written export was left"
    assert isinstance(raised.value, TunesmithError), raised.value
    assert str(raised.value).startswith(f"not enough disk space to write {out}"), raised.value


# -- out of memory ------------------------------------------------------------------------------------------------
AUTO = {"training": {"batch_size": "auto"}}


@pytest.fixture(scope="module")
def cut_run(workspace):
    """DreamBooth LoRA under batch_size: auto on a "device" where, from step 3 on, a UNet forward of more than 2
    images (each drawn batch: 2 subject + 2 class images) runs out of memory, as the CPU allocator reports it."""
    hooks = UNetHooks()
    steps, sizes, refused = [], [], []  # steps finished, images per training forward, forwards refused

    def allocator(latents):
        if len(steps) >= 2 and latents.shape[0] > 2:
            refused.append(latents.shape[0])
            raise RuntimeError(CPU_OOM)
        sizes.append(latents.shape[0])

    hooks.before(allocator)
    try:
        trained = train(config(workspace, "dreambooth_lora", workspace / "cut", **AUTO), hooks,
                        on_step_end=steps.append)
    finally:
        hooks.remove()
    return trained, sizes, refused


def test_an_out_of_memory_step_halves_the_micro_batch_and_keeps_the_batch(cut_run, straight):
    trained, sizes, refused = cut_run
    assert trained.error is None, trained.error
    cuts = trained.of(ev.BatchSizeReduced)
    assert [(e.step, e.micro_batch, e.gradient_accumulation) for e in cuts] == [(3, 1, 2)]
    assert cuts[0].reason == "step 3 ran out of memory with micro-batches of 2"
    assert refused == [4]  # only step 3's first try; later steps start cut
    assert sizes == [4, 4, 2, 2, 2, 2, 2, 2]  # 1 subject + 1 class image per forward from step 3 on
    # The same images per optimizer step (2 subject + 2 class) and the same schedule as the run that never ran out.
    reference = straight("dreambooth_lora", **AUTO)
    step_of = lambda run_: [(e.step, e.seen, e.learning_rate) for e in run_.of(ev.Step)]  # noqa: E731
    assert step_of(trained) == step_of(reference)
    state = json.loads((trained.run_dir / "checkpoints" / "step-0000004" / "state.json").read_text())
    assert state["micro_batches"] == 2  # a resumed run starts cut


def test_a_cut_step_trains_on_the_same_noise_as_the_uncut_step(cut_run, straight):
    trained, _, _ = cut_run
    reference = straight("dreambooth_lora", **AUTO)
    assert_same_losses(trained.run_dir, reference.run_dir, rel=1e-5)
    # Up to float rounding: a cut step sums its gradient in two parts, and Adam divides by the gradient's own size,
    # which magnifies that rounding where a gradient is near zero (lora_A's, while lora_B is still near its zero
    # start). Measured: 1.4e-5 at most, at a learning rate of 5e-3; another noise draw moves weights by ~the rate.
    assert_same_weights(trained.run_dir, reference.run_dir, atol=1e-4)


def test_an_image_pair_that_never_fits_ends_the_run_with_the_memory_plan(workspace):
    """Nothing fits, not even the activation probe's one image pair: the plan refuses the run before training, in one
    message with its numbers and what needs less (the probe's out-of-memory error is the CPU allocator's)."""
    hooks = UNetHooks(from_the_start=True)

    def allocator(latents):
        raise RuntimeError(CPU_OOM)

    hooks.before(allocator)
    try:
        trained = train(config(workspace, "dreambooth_lora", workspace / "never-fits", **AUTO), hooks)
    finally:
        hooks.remove()
    message = str(trained.error)
    assert isinstance(trained.error, TunesmithError)
    assert message.startswith("dreambooth_lora needs more than the device holds: weights, gradients and optimizer "
                              "state ~")
    assert "one example at 32 px ran out of memory" in message and "\n" not in message
    assert "data.max_length" not in message  # a language-model key: the advice names diffusion's
    assert not trained.of(ev.Step)  # refused before any training step
