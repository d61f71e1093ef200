"""Core events become job events: a readable message, OpenAI's level and type, and no server paths."""

from tunesmith import events
from tunesmith.serve.db import make_engine, now, session_factory
from tunesmith.serve.event_log import add_core_event
from tunesmith.serve.tables import Job, Tenant


def stored(tmp_path, event, known_paths):
    sessions = session_factory(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    with sessions() as session, session.begin():
        tenant = Tenant(id="org-1", name="acme", created_at=now())
        session.add(tenant)
        session.flush()
        job = Job(id="ftjob-1", tenant_seq=tenant.seq, model="tiny", training_file="file-1", method={},
                  hyperparameters={}, status="running", created_at=now(), result_files=[])
        session.add(job)
        session.flush()
        row = add_core_event(session, job.seq, event.to_dict(), known_paths)
        return row.message, row.level, row.type, row.data


def test_a_step_is_a_metrics_event_with_its_numbers(tmp_path):
    step = events.Step(step=3, total_steps=10, epoch=0, loss=2.5, learning_rate=1e-3, grad_norm=1.0,
                       throughput=100.0, unit="tokens", seen=300, elapsed_s=1.0, eta_s=2.0)
    message, level, kind, data = stored(tmp_path, step, {})
    assert (message, level, kind) == ("Step 3/10: training loss=2.5000", "info", "metrics")
    assert data["loss"] == 2.5 and data["type"] == "step" and data["seen"] == 300


def test_server_paths_are_replaced_by_what_the_tenant_knows(tmp_path):
    started = events.RunStarted(
        run_dir="/srv/home/runs/ftjob-1",
        config={"model": "/models/tiny", "method": {"name": "lora"}, "data": {"train": "/srv/home/files/file-1.jsonl"},
                "output_dir": "/srv/home/runs/ftjob-1"})
    known = {"/srv/home/files/file-1.jsonl": "file-1", "/models/tiny": "tiny", "/srv/home/runs/ftjob-1": "ftjob-1",
             "/srv/home": "<server>"}
    message, _, kind, data = stored(tmp_path, started, known)
    assert message == "Run started: lora on tiny" and kind == "message"
    assert data["config"] == {"model": "tiny", "method": {"name": "lora"}, "data": {"train": "file-1"}}
    assert "run_dir" not in data and "/srv" not in str(data)


def test_the_plan_is_one_line(tmp_path):
    plan = events.Planned(plan={"method": "lora", "trainable": 1234, "device": "cpu"})
    assert stored(tmp_path, plan, {})[0] == "Training plan: lora with 1,234 trainable parameters on cpu"


def test_an_event_with_unexpected_fields_is_still_stored(tmp_path):
    odd = events.Planned(plan={"method": "lora"})  # no trainable count
    message, level, kind, data = stored(tmp_path, odd, {})
    assert (message, level, kind, data["plan"]) == ("plan", "info", "message", {"method": "lora"})


def test_failures_are_errors_and_interruptions_warnings(tmp_path):
    assert stored(tmp_path, events.RunFailed(message="out of memory"), {})[:2] == ("out of memory", "error")


def test_interruptions_are_warnings(tmp_path):
    assert stored(tmp_path, events.RunInterrupted(step=4, message="stopped at step 4"), {})[:2] == (
        "stopped at step 4", "warn")
