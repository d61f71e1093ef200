"""A job on two processes (torchrun, gloo on CPU, the tiny model): launched by its worker, its events from rank 0
only; a cancel stops every rank at a checkpoint; a rank killed outright fails the job naming that rank."""

import glob
import os
import re
import signal
from pathlib import Path

import pytest

from .conftest import FAST_RUN, TINY_LORA, all_events, long_run, runner_pids, wait_finished, wait_for

pytestmark = pytest.mark.slow

TWO = {"distributed": {"processes": 2}}


def rank_pids(worker_id: str) -> dict[int, int]:
    """{rank: pid} of the job's ranks still alive: the supervisor's descendants (forked through the fork server)
    that name themselves `tunesmith R/N`. The supervisor outlives its ranks (the agent ends them before it returns),
    so once it has gone they have too."""
    parents = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.split("/")[2])] = int(fields[1])
    supervisors = set(runner_pids(worker_id))

    def under_supervisor(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid in supervisors:
                return True
        return False

    found = {}
    for pid in filter(under_supervisor, parents):
        try:
            name = re.fullmatch(r"tunesmith (\d+)/\d+", Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            continue
        if name:
            found[int(name[1])] = pid
    return found


def kinds(events, kind):
    return [e.data for e in events if e.data and e.data.get("type") == kind]


def test_two_process_jobs_train_cancel_and_fail_as_one(processes, chat_file):
    client = processes.server().client(processes.key("acme"))
    with open(chat_file, "rb") as handle:
        file_id = client.files.create(file=handle, purpose="fine-tune").id

    def start(run):
        return client.fine_tuning.jobs.create(model="tiny", training_file=file_id, method=TINY_LORA,
                                              extra_body={"tunesmith": {**run, **TWO}})

    # Trained on two ranks; each step, checkpoint and event once (from rank 0).
    job = start(FAST_RUN)
    done = wait_finished(client, job.id, 600)
    assert done.status == "succeeded", done.error
    events = all_events(client, job.id)
    assert "Training on 2 processes (torchrun, one per device)" in [e.message for e in events]
    assert [plan["plan"]["processes"] for plan in kinds(events, "plan")] == [2]
    assert [step["step"] for step in kinds(events, "step")] == [1, 2, 3, 4, 5, 6]
    assert sorted(c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id).data) == [2, 4, 6]
    assert len(kinds(events, "run_finished")) == 1

    # A cancel reaches every rank: all stop at the same step, with one checkpoint there.
    job = start(long_run(100_000, save_every=5))
    wait_for(lambda: client.fine_tuning.jobs.checkpoints.list(job.id).data, 600, "a first checkpoint")
    worker = next(e.message.split()[-3] for e in all_events(client, job.id) if "started on worker" in e.message)
    assert sorted(rank_pids(worker)) == [0, 1]
    client.fine_tuning.jobs.cancel(job.id)
    wait_for(lambda: not runner_pids(worker), 120, "the supervisor and both ranks to end")
    events = all_events(client, job.id)
    stopped = kinds(events, "run_interrupted")
    assert len(stopped) == 1
    assert client.fine_tuning.jobs.checkpoints.list(job.id).data[0].step_number == stopped[0]["step"]
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"

    # A rank killed outright (as the OOM killer would) fails the job, named; the others are stopped.
    job = start(long_run(100_000, save_every=5))
    wait_for(lambda: client.fine_tuning.jobs.checkpoints.list(job.id).data, 600, "a first checkpoint")
    worker = next(e.message.split()[-3] for e in all_events(client, job.id) if "started on worker" in e.message)
    os.kill(wait_for(lambda: rank_pids(worker).get(1), 30, "rank 1"), signal.SIGKILL)
    failed = wait_finished(client, job.id, 120)
    assert failed.status == "failed" and failed.error.code == "training_process_crashed"
    # The agent names the signal when its poll finds rank 1 ended first; else rank 1 wrote no ending: killed outright.
    ended = "rank 1 of 2: the training process ended with "
    assert failed.error.message.startswith((ended + "signal SIGKILL", ended + "a signal it could not report"))
    wait_for(lambda: not runner_pids(worker), 120, "rank 0 and the supervisor to end")
