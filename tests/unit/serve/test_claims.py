"""Claims: each queued job is taken by exactly one worker; leases expire into the queue; crashes fail the job."""

import threading
import time

from tunesmith.serve import claims
from tunesmith.serve.db import make_engine, now, session_factory
from tunesmith.serve.tables import QUEUED, RUNNING, Job, JobEvent, Tenant


def queue_jobs(sessions, n, model="tiny"):
    with sessions() as session, session.begin():
        tenant = Tenant(id="org-1", name="acme", created_at=now())
        session.add(tenant)
        session.flush()
        for i in range(n):
            session.add(Job(id=f"ftjob-{i}", tenant_seq=tenant.seq, model=model, training_file="file-1", method={},
                            hyperparameters={}, status=QUEUED, created_at=now(), result_files=[]))


def test_concurrent_workers_never_claim_one_job_twice(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    queue_jobs(session_factory(make_engine(url)), 40)
    taken: dict[str, list[str]] = {}
    lock = threading.Lock()

    def work(name):
        sessions = session_factory(make_engine(url))  # one engine each, like separate processes
        while (job := claims.claim_next(sessions, name, 30, ["tiny"])) is not None:
            with lock:
                taken.setdefault(job.id, []).append(name)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(f"ftjob-{i}" for i in range(40))
    assert all(len(names) == 1 for names in taken.values())
    with session_factory(make_engine(url))() as session:
        assert {j.status for j in session.query(Job)} == {RUNNING}
        assert all(j.attempts == 1 and j.worker_id == taken[j.id][0] for j in session.query(Job))


def test_workers_claim_only_models_they_offer(tmp_path):
    sessions = session_factory(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    queue_jobs(sessions, 1, model="big")
    assert claims.claim_next(sessions, "w1", 30, ["tiny"]) is None
    assert claims.claim_next(sessions, "w2", 30, ["tiny", "big"]).id == "ftjob-0"


def test_an_expired_lease_puts_the_job_back_and_a_renewed_one_does_not(tmp_path):
    sessions = session_factory(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    queue_jobs(sessions, 2)
    dead = claims.claim_next(sessions, "dead", 0.01, ["tiny"])
    alive = claims.claim_next(sessions, "alive", 0.01, ["tiny"])
    time.sleep(0.05)
    assert claims.renew(sessions, alive.seq, "alive", 30)
    assert not claims.renew(sessions, alive.seq, "someone-else", 30)
    assert claims.requeue_expired(sessions) == [dead.id]
    with sessions() as session:
        job = session.get(Job, dead.seq)
        assert (job.status, job.worker_id, job.lease_expires_at) == (QUEUED, None, None)
        messages = [e.message for e in session.query(JobEvent).filter(JobEvent.job_seq == dead.seq)]
    assert messages[-1] == "Worker dead stopped renewing its claim; job re-queued to resume from its last checkpoint"
    again = claims.claim_next(sessions, "next", 30, ["tiny"])
    assert (again.id, again.attempts) == (dead.id, 2)
    assert not claims.renew(sessions, dead.seq, "dead", 30)  # the dead worker's claim is gone for good


def test_release_and_fail_act_only_for_the_claiming_worker(tmp_path):
    sessions = session_factory(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    queue_jobs(sessions, 2)
    first = claims.claim_next(sessions, "w1", 30, ["tiny"])
    second = claims.claim_next(sessions, "w1", 30, ["tiny"])
    error = {"code": "training_process_crashed", "message": "boom", "param": None}
    assert not claims.release(sessions, first.seq, "w2", "not mine")
    assert not claims.fail(sessions, second.seq, "w2", error, "boom")
    assert claims.release(sessions, first.seq, "w1", "shutting down")
    assert claims.fail(sessions, second.seq, "w1", error, "boom")
    with sessions() as session:
        assert session.get(Job, first.seq).status == QUEUED
        failed = session.get(Job, second.seq)
        assert (failed.status, failed.error) == ("failed", error)


def test_a_worker_renews_its_own_jobs_lease_before_it_requeues_expired_ones(tmp_path, tiny_model_dir):
    """A tick that came late (a slow database, an import) must not hand the worker's own running job back."""
    import subprocess
    import sys

    from tunesmith.serve.settings import make_settings
    from tunesmith.serve.worker import Worker, _Running

    settings = make_settings(tmp_path / "home", models=[f"tiny={tiny_model_dir}"], lease_seconds=3)
    worker = Worker(settings, max_jobs=1)
    queue_jobs(worker.sessions, 1)
    job = claims.claim_next(worker.sessions, worker.id, 0.01, ["tiny"])
    time.sleep(0.05)  # its lease has expired: the worker's last renewal was longer ago than a lease
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        worker.running[job.seq] = _Running(job.seq, job.id, process, time.monotonic() - 10)
        worker.tick()
        with worker.sessions() as session:
            held = session.get(Job, job.seq)
            assert (held.status, held.worker_id, held.attempts) == (RUNNING, worker.id, 1)
    finally:
        process.kill()
        process.wait()
