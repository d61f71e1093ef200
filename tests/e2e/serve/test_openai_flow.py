"""The whole path through the official openai client: upload -> job -> events -> succeeded -> chat with ft:."""

import json

import httpx
import pytest

from tests.conftest import write_chat_jsonl

from .conftest import FAST_RUN, TINY_LORA, all_events, wait_finished, wait_for

pytestmark = pytest.mark.slow


def test_upload_train_watch_and_chat_with_the_tuned_model(processes, chat_file, tmp_path, monkeypatch):
    shared_cache = tmp_path / "shared-cache"  # the core's cache every run on the machine would share
    monkeypatch.setenv("TUNESMITH_CACHE", str(shared_cache))
    server = processes.server()
    key = processes.key("acme")
    client = server.client(key)
    with open(chat_file, "rb") as handle:
        uploaded = client.files.create(file=handle, purpose="fine-tune")
    assert (uploaded.status, uploaded.filename) == ("processed", "train.jsonl")
    with open(write_chat_jsonl(tmp_path / "valid.jsonl", 6, offset=3), "rb") as handle:
        validation = client.files.create(file=handle, purpose="fine-tune")

    job = client.fine_tuning.jobs.create(model="tiny", training_file=uploaded.id, validation_file=validation.id,
                                         suffix="cooking", seed=5, method=TINY_LORA,
                                         extra_body={"tunesmith": FAST_RUN})
    assert job.status == "validating_files" and job.seed == 5
    done = wait_finished(client, job.id)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:tiny:acme:cooking:{job.id.removeprefix('ftjob-')}"
    assert done.trained_tokens > 0 and done.finished_at >= done.created_at
    assert done.hyperparameters.n_epochs == 1 and done.hyperparameters.batch_size == 4

    events = all_events(client, job.id)
    messages = [e.message for e in events]
    assert messages[:2] == [f"Validating training file: {uploaded.id} and validation file: {validation.id}",
                            "Files validated, moving job to queued state"]
    assert messages[2].startswith("Fine-tuning job started on worker ")
    assert messages[-1] == "The job has successfully completed"
    steps = [e for e in events if e.type == "metrics" and e.data["type"] == "step"]
    assert [e.data["step"] for e in steps] == [1, 2, 3, 4, 5, 6]
    assert all(e.message == f"Step {e.data['step']}/6: training loss={e.data['loss']:.4f}" for e in steps)
    assert str(processes.home) not in json.dumps([e.data for e in events])  # no server paths leak
    started = next(e.data for e in events if e.data and e.data["type"] == "run_started")
    assert started["config"]["data"]["validation"] == validation.id  # the run evaluated on the uploaded file
    evaluations = {e.data["step"]: e.data["val_loss"] for e in events if e.data and e.data["type"] == "evaluation"}
    assert sorted(evaluations) == [3, 6]  # eval_every 3, and the last step

    checkpoints = {c.step_number: c.metrics for c in client.fine_tuning.jobs.checkpoints.list(job.id).data}
    assert sorted(checkpoints) == [2, 4, 6]
    assert all(metrics.train_loss is not None for metrics in checkpoints.values())
    # A checkpoint's validation loss is its own step's evaluation (the last one comes after the checkpoint).
    assert checkpoints[6].valid_loss == evaluations[6] and evaluations[6] != evaluations[3]
    assert checkpoints[2].valid_loss is None and checkpoints[4].valid_loss is None

    # Nothing the run derived from the tenant's data stays in the shared cache, nor in the job's own once it ended.
    wait_for(lambda: not (processes.home / "caches" / job.id).exists(), 30, "the job's cache to be removed")
    assert {entry.name for entry in shared_cache.iterdir()} <= {"models"}

    report = client.files.content(done.result_files[0]).text
    assert "perplexity" in report
    assert done.fine_tuned_model in [m.id for m in client.models.list()]
    client.files.delete(uploaded.id)
    assert not [path for root in (processes.home, shared_cache) for path in root.rglob("tokenized")]

    messages_in = [{"role": "user", "content": "How do I cook rice?"}]
    reply = client.chat.completions.create(model=done.fine_tuned_model, messages=messages_in, max_tokens=8,
                                           temperature=1, seed=0)
    assert reply.model == done.fine_tuned_model and reply.choices[0].message.role == "assistant"
    assert reply.usage.completion_tokens > 0
    pieces = client.chat.completions.create(model=done.fine_tuned_model, messages=messages_in, max_tokens=8,
                                            temperature=1, seed=0, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in pieces if c.choices) == reply.choices[0].message.content

    # The same events, live, as server-sent events.
    with httpx.stream("GET", f"{server.url}/v1/fine_tuning/jobs/{job.id}/events", params={"stream": "true"},
                      headers={"Authorization": f"Bearer {key}"}, timeout=60) as response:
        body = "".join(response.iter_text())
    streamed = [json.loads(line[6:])["id"] for line in body.splitlines()
                if line.startswith("data: ") and '"object"' in line]
    assert streamed == [e.id for e in events]
    assert body.rstrip().endswith('data: {"status": "succeeded"}')

    # A file that fails the data checks says where; a job on it fails with that message (one server for both:
    # starting servers and training processes is what makes these tests slow).
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
                   '{"messages": [{"role": "robot", "content": "beep"}]}\n')
    with open(bad, "rb") as handle:
        invalid = client.files.create(file=handle, purpose="fine-tune")
    assert invalid.status == "error" and invalid.status_details.startswith("bad.jsonl:2: ")
    failed = wait_finished(client, client.fine_tuning.jobs.create(model="tiny", training_file=invalid.id).id, 120)
    assert failed.status == "failed" and failed.error.code == "invalid_training_file"
    assert failed.error.param == "training_file" and "bad.jsonl:2: " in failed.error.message
