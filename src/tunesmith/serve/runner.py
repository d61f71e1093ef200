"""One job's training process: `python -m tunesmith.serve.runner ...`, started by a worker for each job.

It builds the job's RunConfig and calls `tunesmith.finetune`, storing every event of the core's stream as a job
event (and each checkpoint as a job checkpoint). A watcher thread reads the job's state every poll: a cancel
sets the CancelToken, so training stops after the current step and keeps its checkpoint; a lost claim or a dead
worker ends this process at once, since another worker may already be resuming the job. A crash here (an
exception, OOM, a segfault) ends only this process; the worker marks the job failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from tunesmith.serve.db import make_engine, now, session_factory
from tunesmith.serve.event_log import add_core_event, add_event
from tunesmith.serve.files import add_result_file, file_path
from tunesmith.serve.ids import new_id
from tunesmith.serve.job_spec import run_config
from tunesmith.serve.settings import ServeSettings
from tunesmith.serve.tables import CANCELLED, FAILED, RUNNING, SUCCEEDED, Checkpoint, Job, StoredFile, Tenant

EXIT_INTERRUPTED = 75  # stopped by a signal, not a cancel: the worker puts the job back in the queue
EXIT_LOST = 76  # the claim moved to another worker, or this process's worker died
REPORT_FILES = ("report.md", "report.json")


def fine_tuned_model_id(job: Job, tenant_name: str) -> str:
    return f"ft:{job.model}:{tenant_name}:{job.suffix or ''}:{job.id.removeprefix('ftjob-')}"


class JobRun:
    def __init__(self, settings: ServeSettings, job_id: str, worker_id: str, base_model: str):
        self.settings, self.worker_id, self.base_model = settings, worker_id, base_model
        self.sessions = session_factory(make_engine(settings.db_url))
        with self.sessions() as session:
            self.job = session.query(Job).filter(Job.id == job_id).one()
            self.tenant_name = session.get(Tenant, self.job.tenant_seq).name
            files = {f.id: f for f in session.query(StoredFile).filter(
                StoredFile.id.in_([self.job.training_file, self.job.validation_file]))}
        self.train = file_path(settings, files[self.job.training_file])
        self.validation = file_path(settings, files[self.job.validation_file]) if self.job.validation_file else None
        self.run_dir = settings.runs_dir / self.job.id
        self.known_paths = {str(self.train): self.job.training_file, str(self.run_dir): self.job.id,
                            str(base_model): self.job.model, str(settings.home): "<server>"}
        if self.validation:
            self.known_paths[str(self.validation)] = self.job.validation_file
        self.last = {"loss": None, "val_loss": None, "seen": None}
        self.parent = os.getppid()

    def execute(self) -> int:
        import tunesmith

        token = tunesmith.CancelToken()
        threading.Thread(target=self._watch, args=(token,), daemon=True).start()
        try:
            config = run_config(self.job.method, self.job.extension, self.job.seed, base_model=self.base_model,
                                train=self.train, validation=self.validation, output_dir=self.run_dir)
            resume = self._resumable(config)
            result = tunesmith.finetune(config, on_event=self._store, cancel=token, resume=resume, overwrite=not resume)
        except tunesmith.TrainingInterrupted:
            return 0 if token.cancelled else EXIT_INTERRUPTED
        except tunesmith.TunesmithError as error:
            self._finish(FAILED, error={"code": "training_error", "message": str(error), "param": None})
            return 0
        except Exception as error:  # a bug, not a user mistake: keep the traceback in the job's log
            traceback.print_exc()
            self._finish(FAILED, error={"code": "internal_error", "message": f"{type(error).__name__}: {error}",
                                        "param": None})
            return 0
        self._publish(Path(result.run_dir))
        return 0

    def _resumable(self, config) -> bool:
        """Whether an earlier attempt left something to continue: a complete checkpoint (or, for refinement
        rounds, finished rounds the pipeline reuses). Otherwise the run starts over in a clean folder."""
        from tunesmith.train.checkpoint import complete_checkpoints

        started = self.run_dir.is_dir() and any(self.run_dir.iterdir())
        resume = bool(complete_checkpoints(self.run_dir)) or (config.refine is not None and started)
        if resume:
            self._event(f"Resuming from the last checkpoint on worker {self.worker_id}")
        elif started:
            self._event("Starting over: the earlier attempt saved no checkpoint", level="warn")
        return resume

    # -- events ----------------------------------------------------------------------------------------
    def _store(self, event) -> None:
        data = event.to_dict()
        kind = data.get("type")
        if kind == "step":
            self.last["loss"] = data.get("loss")
            if data.get("unit") == "tokens":
                self.last["seen"] = data.get("seen")
        elif kind == "evaluation":
            self.last["val_loss"] = data.get("val_loss")
        with self.sessions() as session, session.begin():
            add_core_event(session, self.job.seq, data, self.known_paths)
            if kind == "checkpoint":
                session.add(Checkpoint(id=new_id("ftckpt"), job_seq=self.job.seq, step=data["step"],
                                       created_at=now(), train_loss=self.last["loss"],
                                       valid_loss=self.last["val_loss"]))

    def _event(self, message: str, level: str = "info") -> None:
        with self.sessions() as session, session.begin():
            add_event(session, self.job.seq, message, level=level)

    # -- the job's state -------------------------------------------------------------------------------
    def _watch(self, token) -> None:
        while True:
            time.sleep(self.settings.poll_seconds)
            if os.getppid() != self.parent:
                os._exit(EXIT_LOST)  # the worker died: its claim will expire and another worker resumes
            try:
                with self.sessions() as session:
                    status, worker = session.query(Job.status, Job.worker_id).filter(Job.seq == self.job.seq).one()
            except SQLAlchemyError:  # a database hiccup: look again at the next poll
                continue
            if status == CANCELLED:
                token.cancel()
            elif status != RUNNING or worker != self.worker_id:
                os._exit(EXIT_LOST)

    def _finish(self, status: str, publish: Path | None = None, **values) -> bool:
        """Move the job from running (under this worker) to its end state; with `publish`, the run's report
        becomes result files in the same transaction. False if the job was cancelled meanwhile."""
        with self.sessions() as session, session.begin():
            job = session.scalar(select(Job).where(Job.seq == self.job.seq, Job.status == RUNNING,
                                                   Job.worker_id == self.worker_id).with_for_update())
            if job is None:
                return False
            if publish is not None:
                job.result_files = [add_result_file(session, self.settings, job.tenant_seq, publish / name).id
                                    for name in REPORT_FILES if (publish / name).is_file()]
            for key, value in values.items():
                setattr(job, key, value)
            job.status, job.finished_at, job.lease_expires_at = status, now(), None
            add_event(session, job.seq, values["error"]["message"] if status == FAILED
                      else "The job has successfully completed", level="error" if status == FAILED else "info")
            return True

    def _publish(self, run_dir: Path) -> None:
        """Succeed: the report becomes result files, the tuned model gets its ft: id."""
        self._finish(SUCCEEDED, publish=run_dir, fine_tuned_model=fine_tuned_model_id(self.job, self.tenant_name),
                     trained_tokens=_trained_tokens(run_dir, self.last["seen"]))


def _trained_tokens(run_dir: Path, last_seen: int | None) -> int | None:
    report = run_dir / "report.json"
    if report.is_file():
        tokens = json.loads(report.read_text()).get("meta", {}).get("train_tokens")
        if tokens is not None:
            return int(tokens)
    return last_seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tunesmith.serve.runner")
    parser.add_argument("--db", required=True)
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--job", required=True)
    parser.add_argument("--worker", required=True)
    parser.add_argument("--base-model", required=True, help="the model spec the job's base model name stands for")
    parser.add_argument("--poll-seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    settings = ServeSettings(home=args.home, db_url=args.db, poll_seconds=args.poll_seconds)
    return JobRun(settings, args.job, args.worker, args.base_model).execute()


if __name__ == "__main__":
    sys.exit(main())
