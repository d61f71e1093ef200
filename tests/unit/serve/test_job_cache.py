"""A job's runner caches what it derives from the tenant's data under --home, apart from the shared cache."""

import time

from tunesmith.cache import cache_root
from tunesmith.serve.job_cache import job_cache_dir, remove_caches_of_ended_jobs, remove_job_cache, use_job_cache
from tunesmith.serve.settings import make_settings
from tunesmith.serve.tables import Job
from tunesmith.serve.worker import Worker


def test_the_core_caches_in_the_jobs_folder_and_shares_only_converted_models(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    monkeypatch.setenv("TUNESMITH_CACHE", str(shared))
    settings = make_settings(tmp_path / "home")
    folder = use_job_cache(settings, "ftjob-1")
    assert folder == job_cache_dir(settings, "ftjob-1") and folder.is_relative_to(settings.home)
    assert cache_root() == folder  # what the core reads from now on, in this process and those it starts
    (cache_root() / "tokenized").mkdir()
    (cache_root() / "models" / "converted").mkdir()
    assert (shared / "models" / "converted").is_dir() and not (shared / "tokenized").exists()

    assert use_job_cache(settings, "ftjob-1") == folder  # a torchrun rank, started with the supervisor's setting
    remove_job_cache(settings, "ftjob-1")
    assert not folder.exists() and (shared / "models" / "converted").is_dir()


def test_a_worker_removes_the_caches_of_ended_jobs_that_no_process_holds(api, app, settings):
    """A job cancelled while queued to resume, or ended as its worker died, has no process of its own to remove its
    cache: the worker's sweep does, and leaves the caches of jobs still queued or still held by a runner."""
    states = {"queued": ("queued", None), "cancelled while queued": ("cancelled", None),
              "cancelled, runner still stopping": ("cancelled", time.time() + 60),
              "failed, worker died": ("failed", time.time() - 1)}
    ids = {}
    for name, (status, lease) in states.items():
        ids[name] = api.job()["id"]
        with app.state.sessions() as session:
            job = session.query(Job).filter(Job.id == ids[name]).one()
            job.status, job.lease_expires_at = status, lease
            session.commit()
        (job_cache_dir(settings, ids[name]) / "tokenized").mkdir(parents=True)

    Worker(settings, max_jobs=0).tick()  # claims nothing: the sweep alone
    left = {name for name, job_id in ids.items() if job_cache_dir(settings, job_id).exists()}
    assert left == {"queued", "cancelled, runner still stopping"}
    assert remove_caches_of_ended_jobs(app.state.sessions, settings) == []  # nothing more to sweep
