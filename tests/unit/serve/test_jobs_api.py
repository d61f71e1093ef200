"""Jobs through the API: creation checks, idempotency, validation, cancel in each state, events, pagination."""

import json

import pytest

from tunesmith.serve import claims
from tunesmith.serve.tables import Job
from tunesmith.serve.validation import validate_pending

SMALL = {"training": {"max_steps": 2}}


def set_status(app, job_id, status, **values):
    with app.state.sessions() as session:
        job = session.query(Job).filter(Job.id == job_id).one()
        job.status = status
        for key, value in values.items():
            setattr(job, key, value)
        session.commit()


def test_a_new_job_is_validating_its_files(api):
    job = api.job(suffix="cooking", metadata={"team": "kitchen"}, seed=7,
                  method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}})
    assert job["object"] == "fine_tuning.job" and job["id"].startswith("ftjob-")
    assert (job["status"], job["model"], job["seed"], job["suffix"], job["metadata"]) == (
        "validating_files", "tiny", 7, "cooking", {"team": "kitchen"})
    assert job["hyperparameters"] == {"n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": "auto"}
    assert job["fine_tuned_model"] is None and job["result_files"] == [] and job["error"] is None
    events = api.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()["data"]
    assert [e["message"] for e in events] == [f"Validating training file: {job['training_file']}"]


def test_validation_queues_the_job_with_resolved_hyperparameters(api, app, settings):
    job = api.job(method={"type": "lora", "lora": {"r": 4, "hyperparameters": {"learning_rate_multiplier": 0.5,
                                                                                 "batch_size": 2}}})
    assert validate_pending(app.state.sessions, settings) == [job["id"]]
    queued = api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
    assert queued["status"] == "queued"
    assert queued["hyperparameters"] == {"n_epochs": 1, "batch_size": 2, "learning_rate_multiplier": 0.5}
    assert queued["method"]["lora"]["r"] == 4
    assert validate_pending(app.state.sessions, settings) == []  # moved once


def test_a_job_on_an_invalid_file_fails_validation_with_the_files_message(api, app, settings):
    bad = api.file_id(content=b'{"messages": [{"role": "user", "content": "hi"}]}\n', filename="bad.jsonl")
    job = api.create_job(bad).json()
    validate_pending(app.state.sessions, settings)
    failed = api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
    assert failed["status"] == "failed" and failed["finished_at"] is not None
    assert failed["error"]["code"] == "invalid_training_file"
    assert failed["error"]["param"] == "training_file"
    assert "bad.jsonl:1: " in failed["error"]["message"]


@pytest.mark.parametrize("body, param, words", [
    ({"model": "gpt-4o"}, "model",
     "model 'gpt-4o' is not offered by this server; offered: smollm2-135m-instruct, tiny"),
    ({"training_file": "file-nope"}, "training_file", "training_file: no such file: file-nope"),
    ({"validation_file": "file-nope"}, "validation_file", "validation_file: no such file: file-nope"),
    ({"tunesmith": {"output_dir": "/tmp/x"}}, "tunesmith.output_dir", "tunesmith.output_dir: set by the server"),
    ({"tunesmith": {"allow_pickle": True}}, "tunesmith.allow_pickle", "tunesmith.allow_pickle: set by the server"),
    ({"tunesmith": {"data": {"train": "/etc/passwd"}}}, "tunesmith.data.train", "tunesmith.data.train: data comes "),
    ({"tunesmith": {"training": {"epochz": 1}}}, "tunesmith", "training.epochz: unknown key; did you mean "
                                                             "'training.epochs'?"),
    ({"method": {"type": "dpo"}}, "method.type",
     "method.type: unknown language model method 'dpo'; expected supervised or one of"),
    ({"method": {"type": "supervised", "supervised": {"r": 8}}}, "method", "method.supervised takes only "),
    ({"method": {"type": "lora", "full": {}}}, "method", "method.full is given but method.type is 'lora'"),
    ({"seed": -1}, "seed", "seed: "),
    ({"hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs", "hyperparameters.n_epochs"),
    ({"surprise": 1}, "surprise", "surprise: unknown parameter"),
])
def test_bad_requests_name_the_parameter(api, body, param, words):
    training_file = body.pop("training_file", None) or api.file_id()
    response = api.create_job(training_file, **body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert words in error["message"]


def test_a_body_that_is_not_json_names_where_it_breaks_and_no_parameter(api):
    response = api.client.post("/v1/fine_tuning/jobs", content=b'{"model":',
                               headers={**api.auth(), "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] is None
    assert error["message"] == "the request body is not valid JSON (at character 9)"


def test_another_tenants_file_cannot_be_trained_on(api):
    theirs = api.file_id(tenant="globex")
    response = api.create_job(theirs)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == f"training_file: no such file: {theirs}"


def test_idempotency_key_returns_the_same_job_and_refuses_another_body(api):
    training_file = api.file_id()
    headers = {"Idempotency-Key": "retry-1"}
    first = api.create_job(training_file, headers=headers, suffix="a").json()
    again = api.create_job(training_file, headers=headers, suffix="a").json()
    assert again["id"] == first["id"]
    other = api.create_job(training_file, headers=headers, suffix="b")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert len(api.get("/v1/fine_tuning/jobs").json()["data"]) == 1
    # Keys are per tenant: another tenant's same key is a new job.
    theirs = api.create_job(api.file_id(tenant="globex"), tenant="globex", headers=headers, suffix="a").json()
    assert theirs["id"] != first["id"]


def test_cancel_while_validating_queued_and_running(api, app, settings):
    validating = api.job()
    queued = api.job()
    running = api.job()
    validate_pending(app.state.sessions, settings)
    # Claims go oldest first: the first job moves to running, the other stays queued.
    api.post(f"/v1/fine_tuning/jobs/{validating['id']}/cancel")
    claimed = claims.claim_next(app.state.sessions, "w1", 30, settings.models)
    assert claimed.id == queued["id"]
    set_status(app, running["id"], "running", worker_id="w2")
    for job, state in ((validating, "cancelled"), (queued, "running"), (running, "running")):
        assert api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["status"] == state
    for job in (queued, running):
        cancelled = api.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel").json()
        assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    messages = [e["message"] for e in api.get(f"/v1/fine_tuning/jobs/{running['id']}/events").json()["data"]]
    assert messages[0] == "Job cancelled; training stops after the current step and keeps its last checkpoint"


@pytest.mark.parametrize("state", ["succeeded", "failed", "cancelled"])
def test_a_finished_job_cannot_be_cancelled(api, app, state):
    job = api.job()
    set_status(app, job["id"], state)
    response = api.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        f"job {job['id']} has already {state}; only jobs that are validating, queued or running can be cancelled")
    assert api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["status"] == state


def test_jobs_and_events_paginate_newest_first(api, app, settings):
    jobs = [api.job()["id"] for _ in range(3)]
    page = api.get("/v1/fine_tuning/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in page["data"]] == jobs[::-1][:2] and page["has_more"]
    rest = api.get("/v1/fine_tuning/jobs", params={"after": page["data"][-1]["id"]}).json()
    assert [j["id"] for j in rest["data"]] == [jobs[0]] and not rest["has_more"]
    validate_pending(app.state.sessions, settings)
    api.post(f"/v1/fine_tuning/jobs/{jobs[0]}/cancel")
    events = api.get(f"/v1/fine_tuning/jobs/{jobs[0]}/events", params={"limit": 1}).json()
    assert [e["message"] for e in events["data"]] == ["Job cancelled"] and events["has_more"]
    older = api.get(f"/v1/fine_tuning/jobs/{jobs[0]}/events", params={"after": events["data"][0]["id"]}).json()
    training_file = api.get(f"/v1/fine_tuning/jobs/{jobs[0]}").json()["training_file"]
    assert [e["message"] for e in older["data"]] == [
        "Files validated, moving job to queued state", f"Validating training file: {training_file}"]
    # A cursor from another list is refused rather than silently ignored.
    assert api.get("/v1/fine_tuning/jobs", params={"after": events["data"][0]["id"]}).status_code == 400


def test_event_stream_sends_every_event_then_done(api, app, settings):
    job = api.job()
    validate_pending(app.state.sessions, settings)
    api.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    with api.client.stream("GET", f"/v1/fine_tuning/jobs/{job['id']}/events", params={"stream": "true"},
                           headers=api.auth()) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join(response.iter_text())
    blocks = [b for b in body.split("\n\n") if b.strip()]
    data = [json.loads(line[len("data: "):]) for b in blocks for line in b.splitlines() if line.startswith("data: ")]
    assert [d.get("message") for d in data[:-1]] == [
        f"Validating training file: {job['training_file']}", "Files validated, moving job to queued state",
        "Job cancelled"]
    assert blocks[-1].startswith("event: done") and data[-1] == {"status": "cancelled"}
    # Resuming after the second event sends only what came later.
    with api.client.stream("GET", f"/v1/fine_tuning/jobs/{job['id']}/events", params={"stream": "true"},
                           headers={**api.auth(), "Last-Event-ID": blocks[1].splitlines()[0][len("id: "):]}) as resumed:
        later = "".join(resumed.iter_text())
    assert "Job cancelled" in later and "Files validated" not in later


def test_deprecated_top_level_hyperparameters_are_accepted(api, app, settings):
    job = api.job(hyperparameters={"n_epochs": 3, "batch_size": 4})
    assert job["method"]["type"] == "supervised"
    assert job["hyperparameters"]["n_epochs"] == 3
    both = api.create_job(api.file_id(), hyperparameters={"n_epochs": 3}, method={"type": "supervised"})
    assert both.status_code == 400 and both.json()["error"]["param"] == "hyperparameters"


def test_validation_file_must_be_a_valid_upload_too(api, app, settings):
    validation = api.file_id(content=b"{oops\n", filename="val.jsonl")
    job = api.create_job(api.file_id(), validation_file=validation).json()
    validate_pending(app.state.sessions, settings)
    error = api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["error"]
    assert error["code"] == "invalid_validation_file" and "val.jsonl:1: invalid JSON" in error["message"]


def test_a_file_deleted_before_validation_fails_the_job(api, app, settings):
    training_file = api.file_id()
    job = api.create_job(training_file).json()
    set_status(app, job["id"], "failed")  # let the delete through, then put the job back to be validated
    api.client.delete(f"/v1/files/{training_file}", headers=api.auth())
    set_status(app, job["id"], "validating_files")
    validate_pending(app.state.sessions, settings)
    error = api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["error"]
    assert error == {"code": "invalid_training_file", "param": "training_file",
                     "message": f"training_file {training_file} was deleted before the job started"}


def core_step(step, time, eta_s):
    return {"type": "step", "time": time, "step": step, "total_steps": 10, "epoch": 0, "loss": 2.0,
            "learning_rate": 1e-4, "grad_norm": 1.0, "throughput": 100.0, "unit": "tokens", "seen": step * 100,
            "elapsed_s": 10.0 * step, "eta_s": eta_s}


def test_a_running_job_estimates_its_finish_from_its_latest_step(api, app):
    from tunesmith.serve.event_log import add_core_event

    job = api.job()
    set_status(app, job["id"], "running", worker_id="w1")
    assert api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["estimated_finish"] is None  # no step logged yet
    with app.state.sessions() as session:
        seq = session.query(Job.seq).filter(Job.id == job["id"]).scalar()
        add_core_event(session, seq, core_step(1, 1000.0, 90.0), {})
        add_core_event(session, seq, core_step(2, 1010.0, 85.6), {})
        add_core_event(session, seq, {"type": "evaluation", "time": 1020.0, "step": 2, "val_loss": 1.5,
                                      "metrics": {}}, {})
        session.commit()
    assert api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["estimated_finish"] == 1096  # 1010 + 85.6
    assert api.get("/v1/fine_tuning/jobs").json()["data"][0]["estimated_finish"] == 1096
    set_status(app, job["id"], "succeeded")
    assert api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["estimated_finish"] is None
