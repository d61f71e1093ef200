"""Two creates with one Idempotency-Key racing each other, on a real PostgreSQL and on SQLite: the same body makes
one job (both answers name it), another body gets 409, never two jobs or a 500.

The race is forced: both requests wait at a barrier after they have looked the key up (and found nothing), so both
go on to write a job and the database's unique key has to settle it."""

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tunesmith.serve import job_store
from tunesmith.serve.api.errors import ApiError
from tunesmith.serve.db import make_engine, session_factory
from tunesmith.serve.files import add_file
from tunesmith.serve.job_spec import JobCreate
from tunesmith.serve.keys import create_key, find_caller
from tunesmith.serve.settings import make_settings
from tunesmith.serve.tables import IdempotencyKey, Job

pytestmark = pytest.mark.slow
RACERS = 2


@pytest.fixture(params=["postgresql", "sqlite"])
def service(request, tmp_path, tiny_model_dir, chat_file):
    db = request.getfixturevalue("fresh_postgres") if request.param == "postgresql" else None
    settings = make_settings(tmp_path / "home", db, models=[f"tiny={tiny_model_dir}"]).prepare()
    sessions = session_factory(make_engine(settings.db_url))
    with sessions() as session:
        key = create_key(session, "acme")[0]
        session.commit()
        caller = find_caller(session, key)
        upload = settings.files_dir / "incoming.jsonl"
        upload.write_bytes(Path(chat_file).read_bytes())
        file_id = add_file(session, settings, caller, upload, "train.jsonl", "fine-tune", upload.stat().st_size).id
        session.commit()
    return settings, caller, file_id


def race(monkeypatch, settings, caller, bodies: list[JobCreate]) -> tuple[list, int]:
    """Each body created from its own thread and engine (like separate server processes), all past the key lookup
    before any writes; returns each one's job id or error, and how often the key was looked up."""
    barrier = threading.Barrier(len(bodies), timeout=60)
    build, lookup = job_store.job_config, job_store._idempotent_job
    lookups = []

    def after_the_lookup(*args, **kwargs):
        barrier.wait()
        return build(*args, **kwargs)

    def counted_lookup(*args, **kwargs):
        lookups.append(1)
        return lookup(*args, **kwargs)

    monkeypatch.setattr(job_store, "job_config", after_the_lookup)
    monkeypatch.setattr(job_store, "_idempotent_job", counted_lookup)
    results: list = [None] * len(bodies)

    def create(index: int) -> None:
        with session_factory(make_engine(settings.db_url))() as session:
            try:
                results[index] = job_store.create_job(session, settings, caller, bodies[index], "retry-1").id
            except Exception as error:  # ApiError is an answer; anything else would be a 500
                results[index] = error

    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, len(lookups)


def counts(settings) -> tuple[int, int]:
    with session_factory(make_engine(settings.db_url))() as session:
        return session.scalar(select(func.count()).select_from(Job)), session.scalar(
            select(func.count()).select_from(IdempotencyKey))


def test_the_same_key_and_body_racing_make_one_job(service, monkeypatch):
    settings, caller, file_id = service
    body = JobCreate(model="tiny", training_file=file_id, suffix="a")
    results, lookups = race(monkeypatch, settings, caller, [body] * RACERS)
    assert all(isinstance(r, str) for r in results), results
    assert len(set(results)) == 1
    assert counts(settings) == (1, 1)
    assert lookups == RACERS + 1  # each looked first; the loser again, after the unique key refused its insert


def test_the_same_key_with_another_body_racing_is_refused(service, monkeypatch):
    settings, caller, file_id = service
    bodies = [JobCreate(model="tiny", training_file=file_id, suffix=suffix) for suffix in ("a", "b")]
    results, lookups = race(monkeypatch, settings, caller, bodies)
    made = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(made) == 1 and len(refused) == 1, results
    assert (refused[0].status, refused[0].code) == (409, "idempotency_key_reused")
    assert counts(settings) == (1, 1)
    assert lookups == RACERS + 1
