"""`tunesmith serve`, `tunesmith worker` and `tunesmith keys`: the fine-tuning service and its API keys."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

HOME_HELP = "folder for the database, uploaded files and runs (default: $TUNESMITH_HOME, else a per-user data folder)"
DB_HELP = "database URL (default: SQLite under --home); e.g. postgresql://user@host/tunesmith"
MODEL_HELP = ("offer a base model as NAME=PATH: a model folder, a .gguf file, a diffusers folder, an SD .safetensors "
              "checkpoint, or tunesmith-tiny-sd (no path needed); repeatable")


# Shared by `serve` and `worker`: how many processes a job trains on.
DEVICES_PER_JOB = typer.Option(1, "--devices-per-job", min=1, help="processes (one per GPU) a job trains on unless "
                               "its config sets distributed.processes")
MAX_DEVICES_PER_JOB = typer.Option(None, "--max-devices-per-job", min=1, help="the most a job may ask for (default: "
                                   "this machine's GPUs, else its CPU cores)")


def _settings(home, db, models=(), **options):
    from tunesmith.serve.settings import make_settings

    return make_settings(home, db, list(models or ()), **options)


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_command(
        home: Optional[Path] = typer.Option(None, "--home", help=HOME_HELP),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8000, "--port"),
        model: Optional[list[str]] = typer.Option(None, "--model", help=MODEL_HELP),
        upload_limit_mb: float = typer.Option(512, "--upload-limit-mb", min=0.001,
                                              help="largest file one upload may be"),
        lease_seconds: float = typer.Option(30, "--lease-seconds", min=1, help="a job whose worker is silent "
                                            "this long is re-queued and resumed elsewhere"),
        poll_seconds: float = typer.Option(1, "--poll-seconds", min=0.05, help="how often workers look for work"),
        worker: bool = typer.Option(True, "--worker/--no-worker", help="run one worker in this process"),
        adapter_cache: int = typer.Option(4, "--adapter-cache", min=1, help="tuned models kept loaded for inference"),
        pipeline_cache: int = typer.Option(2, "--pipeline-cache", min=1,
                                           help="diffusion models kept loaded for image generation"),
        archive_max_files: int = typer.Option(10_000, "--archive-max-files", min=1,
                                              help="images and captions one uploaded image archive may hold"),
        archive_max_mb: float = typer.Option(4096, "--archive-max-mb", min=0.001,
                                             help="what one image archive may unpack to"),
        devices_per_job: int = DEVICES_PER_JOB,
        max_devices_per_job: Optional[int] = MAX_DEVICES_PER_JOB,
    ) -> None:
        """The OpenAI-shaped fine-tuning API (files, jobs, events, checkpoints, inference) and one worker."""
        import uvicorn

        from tunesmith.serve.app import create_app

        settings = _settings(home, db, model, upload_limit=int(upload_limit_mb * 1024 * 1024),
                             lease_seconds=lease_seconds, poll_seconds=poll_seconds, adapter_cache=adapter_cache,
                             pipeline_cache=pipeline_cache, archive_max_files=archive_max_files,
                             archive_max_bytes=int(archive_max_mb * 1024 * 1024), devices_per_job=devices_per_job,
                             max_devices_per_job=max_devices_per_job)
        typer.echo(f"tunesmith serve: http://{host}:{port} (home {settings.home})", err=True)
        uvicorn.run(create_app(settings, run_worker=worker), host=host, port=port, log_level="warning")

    @app.command("worker")
    def worker_command(
        home: Optional[Path] = typer.Option(None, "--home", help=HOME_HELP + "; shared with the server"),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
        model: Optional[list[str]] = typer.Option(None, "--model", help=MODEL_HELP),
        jobs: int = typer.Option(1, "--jobs", min=1, help="jobs this worker runs at the same time"),
        lease_seconds: float = typer.Option(30, "--lease-seconds", min=1),
        poll_seconds: float = typer.Option(1, "--poll-seconds", min=0.05),
        devices_per_job: int = DEVICES_PER_JOB,
        max_devices_per_job: Optional[int] = MAX_DEVICES_PER_JOB,
    ) -> None:
        """Run jobs from the server's queue (more workers, on this machine or others sharing database and storage)."""
        import logging
        import signal

        from tunesmith.serve.worker import Worker

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        settings = _settings(home, db, model, lease_seconds=lease_seconds, poll_seconds=poll_seconds,
                             devices_per_job=devices_per_job, max_devices_per_job=max_devices_per_job)
        runner = Worker(settings, max_jobs=jobs)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: runner.stop())
        runner.run()

    keys = typer.Typer(help="API keys: each belongs to a tenant; only its hash is stored.", no_args_is_help=True)
    app.add_typer(keys, name="keys")

    @keys.command("create")
    def keys_create(
        tenant: str = typer.Option(..., "--tenant", help="the tenant the key acts for (created if new)"),
        admin: bool = typer.Option(False, "--admin", help="the key may also list every tenant and its usage"),
        home: Optional[Path] = typer.Option(None, "--home", help=HOME_HELP),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Create a key and print it once, alone on the last line; it cannot be shown again."""
        from tunesmith.serve.db import make_engine, session_factory
        from tunesmith.serve.keys import create_key

        settings = _settings(home, db).prepare()
        with session_factory(make_engine(settings.db_url))() as session:
            key, row = create_key(session, tenant, admin)
            session.commit()
        typer.echo(f"created {'admin ' if admin else ''}key {row.id} for tenant {tenant}; it is shown only now:")
        typer.echo(key)

    @keys.command("list")
    def keys_list(home: Optional[Path] = typer.Option(None, "--home", help=HOME_HELP),
                  db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
        """Key ids, tenants and state (never the keys)."""
        from tunesmith.serve.db import make_engine, session_factory
        from tunesmith.serve.keys import list_keys

        with session_factory(make_engine(_settings(home, db).prepare().db_url))() as session:
            for key, tenant in list_keys(session):
                state = "revoked" if key.revoked_at else "active"
                typer.echo(f"{key.id}  {tenant.name}  {'admin' if key.admin else 'tenant'}  {state}")

    @keys.command("revoke")
    def keys_revoke(key_id: str = typer.Argument(..., help="a key id from `tunesmith keys list`"),
                    home: Optional[Path] = typer.Option(None, "--home", help=HOME_HELP),
                    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
        """Revoke a key: requests with it get 401 from now on."""
        from tunesmith.serve.db import make_engine, session_factory
        from tunesmith.serve.keys import revoke_key

        with session_factory(make_engine(_settings(home, db).prepare().db_url))() as session:
            revoke_key(session, key_id)
            session.commit()
        typer.echo(f"revoked {key_id}")
