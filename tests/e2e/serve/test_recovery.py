"""Jobs survive their workers: a killed worker's job is resumed from its last checkpoint by another worker, and a
server restarted while a job runs loses nothing."""

import os
import signal

import pytest

from .conftest import FAST_RUN, TINY_LORA, all_events, long_run, runner_pids, wait_finished, wait_for

pytestmark = pytest.mark.slow


def upload(client, path):
    with open(path, "rb") as handle:
        return client.files.create(file=handle, purpose="fine-tune").id


def steps_of(events):
    return [e.data["step"] for e in events if e.type == "metrics" and e.data["type"] == "step"]


def started_on(events):
    return [e.message.split()[-3] for e in events if "started on worker" in e.message]


def test_a_killed_workers_job_is_resumed_from_its_checkpoint_by_another(processes, chat_file):
    client = processes.server("--no-worker").client(processes.key("acme"))
    first = processes.worker()
    job = client.fine_tuning.jobs.create(model="tiny", training_file=upload(client, chat_file), method=TINY_LORA,
                                         extra_body={"tunesmith": long_run(120, save_every=10)})
    wait_for(lambda: client.fine_tuning.jobs.checkpoints.list(job.id).data, 300, "a first checkpoint")
    dead = started_on(all_events(client, job.id))[0]
    first.send_signal(signal.SIGKILL)
    first.wait()
    wait_for(lambda: not runner_pids(dead), 30, "the dead worker's training process to end")
    saved = max(c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id, limit=100).data)

    processes.worker()
    done = wait_finished(client, job.id)
    assert done.status == "succeeded", done.error
    events = all_events(client, job.id)
    messages = [e.message for e in events]
    assert f"Worker {dead} stopped renewing its claim; job re-queued to resume from its last checkpoint" in messages
    workers = started_on(events)
    assert len(workers) == 2 and workers[0] == dead != workers[1]
    assert f"Resuming from the last checkpoint on worker {workers[1]}" in messages
    resumed = next(e.data for e in events if e.data and e.data.get("type") == "training_started" and e.data["resumed"])
    assert resumed["step"] == saved
    after = steps_of(events[messages.index(f"Resuming from the last checkpoint on worker {workers[1]}"):])
    assert after == list(range(saved + 1, 121))  # continued, not restarted


def test_a_server_restarted_while_a_job_runs_loses_nothing(processes, chat_file):
    server = processes.server()
    key = processes.key("acme")
    client = server.client(key)
    file_id = upload(client, chat_file)
    job = client.fine_tuning.jobs.create(model="tiny", training_file=file_id, method=TINY_LORA,
                                         extra_body={"tunesmith": long_run(120, save_every=10)})
    wait_for(lambda: client.fine_tuning.jobs.checkpoints.list(job.id).data, 300, "a first checkpoint")
    before = [e.id for e in all_events(client, job.id)]

    server.process.send_signal(signal.SIGTERM)  # the worker stops its job at a checkpoint and re-queues it
    assert server.process.wait(timeout=120) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once shut down

    client = processes.server().client(key)
    assert [f.id for f in client.files.list()] == [file_id]
    done = wait_finished(client, job.id)
    assert done.status == "succeeded", done.error
    events = all_events(client, job.id)
    assert [e.id for e in events][: len(before)] == before  # every earlier event kept, in order
    messages = [e.message for e in events]
    handed_back = messages.index("The worker shut down; job re-queued to resume from its last checkpoint")
    stopped = [e.data for e in events[:handed_back] if e.data and e.data.get("type") == "run_interrupted"]
    assert len(stopped) == 1  # stopped at a step boundary with a checkpoint, not killed
    resumed = next(e.data for e in events if e.data and e.data.get("type") == "training_started" and e.data["resumed"])
    assert resumed["step"] == stopped[0]["step"]
    assert len(started_on(events)) == 2
    assert steps_of(events)[-1] == 120
    assert [j.id for j in client.fine_tuning.jobs.list()] == [job.id]


def test_a_crashing_training_process_fails_only_its_job(processes, chat_file):
    client = processes.server().client(processes.key("acme"))
    file_id = upload(client, chat_file)
    job = client.fine_tuning.jobs.create(model="tiny", training_file=file_id, method=TINY_LORA,
                                         extra_body={"tunesmith": long_run(100_000)})
    wait_for(lambda: client.fine_tuning.jobs.checkpoints.list(job.id).data, 300, "a first checkpoint")
    (pid,) = runner_pids(started_on(all_events(client, job.id))[0])
    os.kill(pid, signal.SIGKILL)  # what the kernel's OOM killer does
    failed = wait_finished(client, job.id, timeout=60)
    assert failed.status == "failed"
    assert failed.error.code == "training_process_crashed"
    assert failed.error.message.startswith("The training process ended with signal SIGKILL")
    # The server and its worker carry on: the next job is taken.
    after = client.fine_tuning.jobs.create(model="tiny", training_file=file_id, method=TINY_LORA,
                                           extra_body={"tunesmith": FAST_RUN})
    wait_for(lambda: started_on(all_events(client, after.id)), 60, "the worker to take the next job")


def kind(event):
    return event.data.get("type") if event.data else None


def test_a_refine_job_whose_worker_died_resumes_in_its_round_without_retraining_the_finished_one(processes,
                                                                                                  chat_file):
    client = processes.server("--no-worker").client(processes.key("acme"))
    first = processes.worker()
    rounds = {**long_run(30, save_every=5), "refine": {"rounds": 2, "stop_when_no_gain": False},
              "data": {"max_length": 128, "validation_split": 0.2}}
    job = client.fine_tuning.jobs.create(model="tiny", training_file=upload(client, chat_file), method=TINY_LORA,
                                         extra_body={"tunesmith": rounds})

    def round_two_started(events):
        return next((i for i, e in enumerate(events) if kind(e) == "round_started" and e.data["index"] == 2), None)

    def in_round_two_with_a_checkpoint():
        events = all_events(client, job.id)
        second = round_two_started(events)
        return second is not None and any(kind(e) == "checkpoint" for e in events[second:])

    wait_for(in_round_two_with_a_checkpoint, 600, "a checkpoint in the second round")
    dead = started_on(all_events(client, job.id))[0]
    first.send_signal(signal.SIGKILL)
    first.wait()
    wait_for(lambda: not runner_pids(dead), 30, "the dead worker's training process to end")

    processes.worker()
    done = wait_finished(client, job.id, timeout=600)
    assert done.status == "succeeded", done.error
    events = all_events(client, job.id)
    messages = [e.message for e in events]
    workers = started_on(events)
    assert len(workers) == 2 and workers[0] == dead != workers[1]
    resumed_at = messages.index(f"Resuming from the last checkpoint on worker {workers[1]}")
    before, after = events[:resumed_at], events[resumed_at:]
    saved = max(e.data["step"] for e in before[round_two_started(before):] if kind(e) == "checkpoint")
    resumed = [e.data for e in after if kind(e) == "training_started"]
    assert [(r["resumed"], r["step"]) for r in resumed] == [(True, saved)]  # round 1 reused, round 2 continued
    assert steps_of(after) == list(range(saved + 1, 31))
    assert [e.data["index"] for e in after if kind(e) == "round_finished"] == [1, 2]
