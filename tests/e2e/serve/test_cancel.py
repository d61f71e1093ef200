"""Cancel in each state: validating, queued and running jobs stop (a running one within seconds, keeping its last
checkpoint); finished jobs refuse."""

import time

import openai
import pytest

from .conftest import FAST_RUN, TINY_LORA, all_events, long_run, runner_pids, wait_for

pytestmark = pytest.mark.slow


def upload(client, path):
    with open(path, "rb") as handle:
        return client.files.create(file=handle, purpose="fine-tune").id


def start_job(client, file_id, run):
    return client.fine_tuning.jobs.create(model="tiny", training_file=file_id, method=TINY_LORA,
                                          extra_body={"tunesmith": run})


def test_cancel_while_validating_needs_no_worker(processes, chat_file):
    client = processes.server("--no-worker").client(processes.key("acme"))
    job = start_job(client, upload(client, chat_file), FAST_RUN)
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    with pytest.raises(openai.BadRequestError, match="has already cancelled"):
        client.fine_tuning.jobs.cancel(job.id)


def test_cancel_running_and_queued_jobs(processes, chat_file):
    client = processes.server().client(processes.key("acme"))
    file_id = upload(client, chat_file)
    running = start_job(client, file_id, long_run(100_000, save_every=5))
    queued = start_job(client, file_id, FAST_RUN)
    wait_for(lambda: client.fine_tuning.jobs.checkpoints.list(running.id).data, 300, "a first checkpoint")
    assert client.fine_tuning.jobs.retrieve(queued.id).status == "queued"  # one worker, busy with the other

    assert client.fine_tuning.jobs.cancel(queued.id).status == "cancelled"
    worker = next(e.message.split()[-3] for e in all_events(client, running.id) if "started on worker" in e.message)
    assert runner_pids(worker)
    stopped_at = time.time()
    assert client.fine_tuning.jobs.cancel(running.id).status == "cancelled"
    wait_for(lambda: not runner_pids(worker), 60, "the training process to end")
    assert time.time() - stopped_at < 30  # a step and a checkpoint, not the rest of 100,000 steps

    events = all_events(client, running.id)
    interrupted = [e for e in events if e.data and e.data.get("type") == "run_interrupted"]
    assert len(interrupted) == 1
    last = client.fine_tuning.jobs.checkpoints.list(running.id).data[0]
    assert last.step_number == interrupted[0].data["step"]  # the checkpoint written at the stop is kept
    steps = [e.data["step"] for e in events if e.type == "metrics" and e.data["type"] == "step"]
    assert max(steps) < 100_000
    assert client.fine_tuning.jobs.retrieve(running.id).status == "cancelled"
    assert not any("started on worker" in e.message for e in all_events(client, queued.id))

    # The worker is free again and takes new work.
    after = start_job(client, file_id, FAST_RUN)
    wait_for(lambda: any("started on worker" in e.message for e in all_events(client, after.id)), 60,
             "the worker to take the next job")
