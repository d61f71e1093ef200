"""kill -9 in the fast set: the toy regression task of test_task_seam.py trained through the real loop, killed at 4
points (one of them in the middle of writing a checkpoint) and resumed each time, ends with the uninterrupted run's
weights and checkpoints.

The fork runner of tests/integration/test_kill_resume.py, without its runner process: this process has imported
torch and tunesmith already, so each attempt is a fork that arms one kill point, trains and SIGKILLs itself when the
point is reached (no handler, no `finally`, nothing flushed). An attempt takes a fraction of a second.
"""

import os
import random
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tests.integration.test_kill_resume import attempt, compare_checkpoints
from tests.unit.train.test_task_seam import accelerator, config, fresh_task
from tunesmith import events as ev
from tunesmith.train.checkpoint import complete_checkpoints
from tunesmith.train.loop import train

# 10 steps, a checkpoint every 3 (2 kept), an evaluation every 4. Attempt i is killed at point i (the Nth such event
# of that attempt); the attempt after the last point must finish.
POINTS = [
    ("checkpoint tensors", 1),  # checkpoint 3: trainable.safetensors half written -> the next attempt starts over
    ("checkpoint rename", 2),  # checkpoint 3 saved; checkpoint 6 complete, not yet renamed from .tmp-step-0000006
    ("optimizer step", 2),  # resumed from 3: step 5's gradients computed, not applied
    ("checkpoint prune", 1),  # resumed from 3: checkpoint 6 renamed, checkpoint 3 not yet pruned
]


class ToyRun:
    """What `attempt` forks: the toy task trained into `run_dir`, its final weights saved beside the checkpoints (the
    uninterrupted run keeps every checkpoint, so each of the killed run's has a twin)."""

    def __init__(self, run_dir: Path, keep: int = 2):
        self.run_dir, self.keep = run_dir, keep

    def __call__(self, _config, resume: bool, on_event, on_step_end=None):
        torch.set_num_threads(1)  # a forked child must not use a thread pool its parent may have started
        # pytest's capture replaced sys.stdout; the child's fd 1 is its log (attempt() points it there)
        sys.stdout = sys.stderr = os.fdopen(1, "w", buffering=1, closefd=False)
        random.seed(0)  # a fork reseeds Python's random from the OS; run() seeds it, the bare loop leaves it be
        task = fresh_task()  # a new process starts from fresh weights too
        train(task, config(keep_checkpoints=self.keep), self.run_dir, accelerator(), resume=resume,
              events=ev.EventStream([on_event]), on_step_end=on_step_end)
        save_file({k: v.contiguous() for k, v in task.model.state_dict().items()}, self.run_dir / "final.safetensors")


def test_kill_9_at_four_points_of_a_toy_run_resumes_to_the_same_weights(tmp_path):
    straight, killed = tmp_path / "uninterrupted", tmp_path / "killed"
    logs = tmp_path / "logs"
    logs.mkdir()
    assert attempt(ToyRun(straight, keep=100), None, None, False, logs / "uninterrupted.log")[0] == "finished"
    outcomes, differences = [], []
    for i, point in enumerate([*POINTS, None]):
        outcomes.append(attempt(ToyRun(killed), None, point, i > 0, logs / f"attempt-{i}.log")[0])
        differences.append(compare_checkpoints(killed, straight))
    log = [(logs / f"attempt-{i}.log").read_text() for i in range(len(POINTS) + 1)]
    assert outcomes == ["killed"] * len(POINTS) + ["finished"], log
    # What each kill left: nothing complete, then checkpoint 3 (6 unpublished), 3 again, then 3 and 6 (3 unpruned).
    assert [sorted(d) for d in differences] == [[], ["step-0000003"], ["step-0000003"],
                                                ["step-0000003", "step-0000006"], ["step-0000006", "step-0000009"]]
    for i, found in enumerate(differences):  # every checkpoint verifies and equals its uninterrupted twin
        assert all(d is not None and d <= 1e-6 for d in found.values()), (i, found)
    assert "starting over from step 0" in log[1]  # killed while writing its first checkpoint
    assert "removing" in log[1] and ".tmp-step-0000003" in log[1]
    assert "removing" in log[2] and ".tmp-step-0000006" in log[2]
    assert not list((killed / "checkpoints").glob(".tmp-*"))
    want, got = load_file(straight / "final.safetensors"), load_file(killed / "final.safetensors")
    assert want.keys() == got.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-6, rtol=0, msg=name)
    assert [p.name for p in complete_checkpoints(killed)] == ["step-0000006", "step-0000009"]
