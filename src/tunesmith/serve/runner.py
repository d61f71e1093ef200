"""One job's training process: `python -m tunesmith.serve.runner ...`, started by a worker for each job.

It builds the job's RunConfig and calls `tunesmith.finetune`, storing every event of the core's stream as a job
event (and each checkpoint as a job checkpoint). A watcher thread reads the job's state every poll: a cancel
sets the CancelToken, so training stops after the current step and keeps its checkpoint; a lost claim or a dead
worker ends this process at once, since another worker may already be resuming the job. A crash here (an
exception, OOM, a segfault) ends only this process; the worker marks the job failed. With `--processes N` (N > 1)
this process launches torchrun and supervises N ranks, each a runner of this job (serve/ranks.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import traceback
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from tunesmith.serve import ranks
from tunesmith.serve.archives import member_names
from tunesmith.serve.db import make_engine, now, session_factory
from tunesmith.serve.event_log import add_core_event, add_event, scrub_text
from tunesmith.serve.exits import EXIT_INTERRUPTED, EXIT_LOST, EXIT_RANK_FAILED
from tunesmith.serve.files import add_result_file, data_path, is_image_archive
from tunesmith.serve.ids import new_id
from tunesmith.serve.job_cache import use_job_cache
from tunesmith.serve.job_spec import chosen_hyperparameters, job_config
from tunesmith.serve.settings import ServeSettings
from tunesmith.serve.tables import CANCELLED, FAILED, RUNNING, SUCCEEDED, Checkpoint, Job, StoredFile, Tenant
from tunesmith.train.launch import LaunchStopped

# What a run leaves that the tenant gets as result files: the report, and a diffusion run's final sample grid.
RESULT_FILES = ("report.md", "report.json", "samples/final.png")
TEXT_SUFFIXES = (".md", ".json")


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
        used = [files[self.job.training_file], *([files[self.job.validation_file]] if self.job.validation_file else [])]
        self.train = data_path(settings, used[0])
        self.validation = data_path(settings, used[1]) if len(used) > 1 else None
        self.run_dir = settings.runs_dir / self.job.id
        self.known_paths = {str(self.run_dir): self.job.id, str(base_model): self.job.model,
                            str(settings.class_images_for(self.job.tenant_seq)): "<class images>",
                            str(settings.home): "<server>"}
        for row in used:  # an archive's images by the names the tenant gave them
            path = data_path(settings, row)
            self.known_paths[str(path)] = row.id
            if is_image_archive(row):
                self.known_paths.update({server: f"{row.id}/{name}" for server, name in member_names(path).items()})
        self.last = {"loss": None, "seen": None}
        self.evaluated: dict[int, float | None] = {}  # validation loss by step
        self.saved: dict[int, str] = {}  # the id of the checkpoint this process stored at each step
        self.hyperparameters = dict(self.job.hyperparameters or {})
        self.config = None
        self.parent = os.getppid()
        self.trained = threading.Event()  # training has ended: from then on this process settles the job itself
        self.rank, self.world_size = ranks.rank(), ranks.world_size()

    def execute(self) -> int:
        """Train the job (alone, or as one rank of several) and settle it; the exit status for the worker."""
        import tunesmith

        token = tunesmith.CancelToken()
        threading.Thread(target=self._watch, args=(token,), daemon=True).start()
        try:
            result = self._train(token)
        except tunesmith.TrainingInterrupted:
            return 0 if token.cancelled else EXIT_INTERRUPTED
        except tunesmith.TunesmithError as error:
            return self._failed("training_error", str(error))
        except Exception as error:  # a bug, not a user mistake: keep the traceback in the job's log
            traceback.print_exc()
            return self._failed("internal_error", f"{type(error).__name__}: {error}")
        if self.rank == 0:
            self._publish(Path(result.run_dir))
        return 0

    def supervise(self, processes: int, argv: list[str]) -> int:
        """Run the job on `processes` ranks through torchrun and settle what they leave unsettled."""
        threading.Thread(target=self._watch, args=(None,), daemon=True).start()
        logs = self.settings.logs_dir
        ranks.clear_failures(logs, self.job.id, processes)
        self._event(f"Training on {processes} processes (torchrun, one per device)")
        try:
            exits = ranks.run_ranks(processes, argv, logs / f"{self.job.id}-torchrun")
        except LaunchStopped:
            return EXIT_INTERRUPTED
        verdict = ranks.verdict(exits, ranks.recorded_failures(logs, self.job.id, processes), processes)
        if verdict.error is not None:
            self._finish(FAILED, error=verdict.error)
        return verdict.exit_code

    def _failed(self, code: str, message: str) -> int:
        """Fail the job with this process's error. One rank of several leaves that to its supervisor, which knows
        which rank failed first."""
        message = scrub_text(message, self.known_paths)
        if self.world_size > 1:
            ranks.record_failure(self.settings.logs_dir, self.job.id, code, message)
            return EXIT_RANK_FAILED
        self._finish(FAILED, error={"code": code, "message": message, "param": None})
        return 0

    def _train(self, token):
        import tunesmith

        try:
            config = self.config = job_config(self.settings, self.job, self.base_model, self.train, self.validation)
            resume = self._resumable(config)
            return tunesmith.finetune(config, on_event=self._store, cancel=token, resume=resume, overwrite=not resume)
        finally:
            self.trained.set()

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
            self.evaluated[data["step"]] = data.get("val_loss")
        elif kind == "training_started":  # a refinement round counts its steps afresh
            self.evaluated, self.saved = {}, {}
        chosen = chosen_hyperparameters(self.hyperparameters, data, self.config)
        with self.sessions() as session, session.begin():
            add_core_event(session, self.job.seq, data, self.known_paths)
            if chosen is not None:  # what `auto` became, on the job once the run knows it
                self.hyperparameters = chosen
                session.execute(update(Job).where(Job.seq == self.job.seq).values(hyperparameters=chosen))
            # A checkpoint's validation loss is the evaluation at its own step, or none. The core evaluates the
            # last step after saving it, so an evaluation may arrive after its step's checkpoint and fill it in.
            if kind == "checkpoint":
                saved = self.saved[data["step"]] = new_id("ftckpt")
                session.add(Checkpoint(id=saved, job_seq=self.job.seq, step=data["step"], created_at=now(),
                                       train_loss=self.last["loss"], valid_loss=self.evaluated.get(data["step"])))
            elif kind == "evaluation" and data["step"] in self.saved:
                session.execute(update(Checkpoint).where(Checkpoint.id == self.saved[data["step"]])
                                .values(valid_loss=data.get("val_loss")))

    def _event(self, message: str, level: str = "info") -> None:
        if self.rank != 0:  # one voice, as in the core's events
            return
        with self.sessions() as session, session.begin():
            add_event(session, self.job.seq, message, level=level)

    # -- the job's state -------------------------------------------------------------------------------
    def _watch(self, token) -> None:
        """Until training ends: a cancel stops it (`token`: none for a supervisor, whose ranks watch for
        themselves); a dead parent (the worker, or a rank's supervisor) or a lost claim ends the process."""
        while not self.trained.wait(self.settings.poll_seconds):
            if os.getppid() != self.parent:
                os._exit(EXIT_LOST)  # the worker died: its claim will expire and another worker resumes
            try:
                with self.sessions() as session:
                    status, worker = session.query(Job.status, Job.worker_id).filter(Job.seq == self.job.seq).one()
            except SQLAlchemyError:  # a database hiccup: look again at the next poll
                continue
            if status == CANCELLED:
                if token is not None:
                    token.cancel()
            elif status in (SUCCEEDED, FAILED):
                return  # settled by this job's own processes (rank 0 publishing, the supervisor failing it)
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
                job.result_files = [add_result_file(session, self.settings, job.tenant_seq, Path(name).name,
                                                    self._result(publish / name)).id
                                    for name in RESULT_FILES if (publish / name).is_file()]
            for key, value in values.items():
                setattr(job, key, value)
            job.status, job.finished_at, job.lease_expires_at = status, now(), None
            add_event(session, job.seq, values["error"]["message"] if status == FAILED
                      else "The job has successfully completed", level="error" if status == FAILED else "info")
            return True

    def _result(self, path: Path) -> bytes:
        """A result file's bytes; in text, the server's paths become the ids the tenant knows (as in events)."""
        if path.suffix not in TEXT_SUFFIXES:
            return path.read_bytes()
        return scrub_text(path.read_text(encoding="utf-8"), self.known_paths).encode("utf-8")

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
    parser.add_argument("--processes", type=int, default=1, help="ranks to train on: more than 1 launches torchrun")
    args = parser.parse_args(argv)
    settings = ServeSettings(home=args.home, db_url=args.db, poll_seconds=args.poll_seconds)
    use_job_cache(settings, args.job)  # before the core caches anything from the tenant's data
    run = JobRun(settings, args.job, args.worker, args.base_model)
    if args.processes > 1 and run.world_size == 1:  # the supervisor; its ranks run this again under torchrun
        return run.supervise(args.processes, sys.argv[1:] if argv is None else argv)
    return run.execute()


if __name__ == "__main__":
    sys.exit(main())
