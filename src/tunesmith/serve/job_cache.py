"""Each job's own cache folder under --home, so nothing made from a tenant's data outlives the job elsewhere.

The core caches what it derives from training data (tokenized examples, image latents, caption embeddings,
prepared sets) under `TUNESMITH_CACHE`, by default one folder that every run on the machine shares. A job's runner
points it at `<home>/caches/<job>` instead, and the worker removes that folder once the job has ended. It sits
beside the run folder, not in it: a run that starts over clears its folder, and an empty run folder is how a runner
knows there is nothing to resume.

Per job rather than per tenant: the core names entries by a hash of their content, not by the file they came from,
so a tenant-wide cache could not tell which entries a deleted file left. A job's folder needs no such bookkeeping,
and a job resumed after its worker died (the folder is kept until the job ends) still reuses it. Converted base
models are the server's, not a tenant's: the job's `models` entry links to the shared folder, so each base is
converted once.

A job can also end with no process of its own to clean up after it: cancelled while queued to resume, or ended as
its worker died. Workers therefore sweep now and then (`remove_caches_of_ended_jobs`): the cache of a job that has
ended and that no worker holds (its lease cleared or expired) goes.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from sqlalchemy import select

from tunesmith.cache import cache_root
from tunesmith.serve.settings import ServeSettings
from tunesmith.serve.tables import FINISHED, Job

CACHE_ENV = "TUNESMITH_CACHE"


def job_cache_dir(settings: ServeSettings, job_id: str) -> Path:
    return settings.home / "caches" / job_id


def use_job_cache(settings: ServeSettings, job_id: str) -> Path:
    """Point the core's cache at the job's folder (this process and the ranks it starts inherit it)."""
    folder = job_cache_dir(settings, job_id)
    if os.environ.get(CACHE_ENV) == str(folder):  # a rank of a torchrun job: its supervisor set it up
        return folder
    shared_models = cache_root() / "models"
    shared_models.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    models = folder / "models"
    if not models.is_symlink():
        models.symlink_to(shared_models, target_is_directory=True)
    os.environ[CACHE_ENV] = str(folder)
    return folder


def remove_job_cache(settings: ServeSettings, job_id: str) -> None:
    """The job's cache, gone; the shared models it links to stay (rmtree removes a link, not what it points at)."""
    shutil.rmtree(job_cache_dir(settings, job_id), ignore_errors=True)


def remove_caches_of_ended_jobs(sessions, settings: ServeSettings) -> list[str]:
    """Remove the caches of jobs that have ended and that no worker holds; the ids of those removed."""
    root = settings.home / "caches"
    cached = [folder.name for folder in root.iterdir() if folder.is_dir()] if root.is_dir() else []
    if not cached:
        return []
    with sessions() as session:
        rows = session.execute(select(Job.id, Job.status, Job.lease_expires_at).where(Job.id.in_(cached))).all()
    ended = [job_id for job_id, status, lease in rows if status in FINISHED and (lease is None or lease < time.time())]
    for job_id in ended:
        remove_job_cache(settings, job_id)
    return ended
