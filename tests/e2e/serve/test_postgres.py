"""The same code on a real PostgreSQL: concurrent claims (FOR UPDATE SKIP LOCKED) never hand out one job twice,
and two worker processes share one queue."""

import threading

import pytest

from tunesmith.serve import claims
from tunesmith.serve.db import make_engine, now, session_factory
from tunesmith.serve.tables import QUEUED, Job, Tenant

from .conftest import FAST_RUN, TINY_LORA, Processes, all_events, wait_finished

pytestmark = pytest.mark.slow


def test_concurrent_claims_on_postgres_take_each_job_once(fresh_postgres):
    engine = make_engine(fresh_postgres)
    with session_factory(engine)() as session, session.begin():
        tenant = Tenant(id="org-1", name="acme", created_at=now())
        session.add(tenant)
        session.flush()
        session.add_all(Job(id=f"ftjob-{i}", tenant_seq=tenant.seq, model="tiny", training_file="file-1", method={},
                            hyperparameters={}, status=QUEUED, created_at=now(), result_files=[]) for i in range(200))
    taken: dict[str, list[str]] = {}
    lock = threading.Lock()

    def work(name):
        sessions = session_factory(make_engine(fresh_postgres))
        while (job := claims.claim_next(sessions, name, 30, ["tiny"])) is not None:
            with lock:
                taken.setdefault(job.id, []).append(name)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(taken) == 200 and all(len(names) == 1 for names in taken.values())
    assert len({names[0] for names in taken.values()}) > 1  # the workers really competed


def test_two_worker_processes_share_the_queue_on_postgres(tmp_path, tiny_model_dir, fresh_postgres, chat_file):
    home = tmp_path / "home"
    home.mkdir()
    started = Processes(home, tiny_model_dir, fresh_postgres)
    try:
        client = started.server("--no-worker").client(started.key("acme"))
        started.worker()
        started.worker()
        with open(chat_file, "rb") as handle:
            file_id = client.files.create(file=handle, purpose="fine-tune").id
        run = {**FAST_RUN, "training": {**FAST_RUN["training"], "max_steps": 2}, "eval": {"compare_base": False,
                                                                                           "metrics": ["perplexity"]}}
        jobs = [client.fine_tuning.jobs.create(model="tiny", training_file=file_id, method=TINY_LORA,
                                               extra_body={"tunesmith": run}).id for _ in range(2)]
        assert [wait_finished(client, job).status for job in jobs] == ["succeeded"] * 2
        starts = [[e.message for e in all_events(client, job) if "started on worker" in e.message] for job in jobs]
        assert all(len(s) == 1 and s[0].endswith("(attempt 1)") for s in starts)
    finally:
        started.stop_all()
