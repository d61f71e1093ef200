"""A worker: checks new jobs, claims queued ones and runs each in its own process (tunesmith.serve.runner; a job
on several processes is launched by that process with torchrun).

Every poll it re-queues jobs whose worker died (expired leases), validates jobs waiting in validating_files,
renews the leases of its own jobs, collects finished processes and claims more work while it has room. A
training process that crashes fails only its job. On shutdown the worker asks its processes to stop (SIGTERM:
the current step finishes and is checkpointed) and puts their jobs back in the queue to be resumed.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from tunesmith.serve import claims
from tunesmith.serve.db import make_engine, session_factory
from tunesmith.serve.exits import EXIT_INTERRUPTED, EXIT_LOST
from tunesmith.serve.job_cache import remove_caches_of_ended_jobs, remove_job_cache
from tunesmith.serve.job_spec import JobSpecError, job_processes
from tunesmith.serve.settings import ServeSettings
from tunesmith.serve.validation import validate_pending
from tunesmith.train.launch import describe_exit

log = logging.getLogger("tunesmith.worker")
SHUTDOWN_GRACE_S = 60.0
CACHE_SWEEP_S = 60.0  # how often to look for caches of jobs that ended with no process of their own to remove them


@dataclass
class _Running:
    job_seq: int
    job_id: str
    process: subprocess.Popen
    renewed_at: float


class Worker:
    def __init__(self, settings: ServeSettings, worker_id: str | None = None, max_jobs: int = 1):
        self.settings = settings.prepare()
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
        self.max_jobs = max_jobs
        self.sessions = session_factory(make_engine(settings.db_url))
        self.running: dict[int, _Running] = {}
        self.stopping = threading.Event()
        self.swept_at = -CACHE_SWEEP_S

    def run(self) -> None:
        """Poll until stop() is called, then hand the running jobs back to the queue."""
        self.settings.device_limit()  # imports torch once, now: never while a claimed job's lease waits on it
        log.info("worker %s polling %s", self.id, self.settings.db_url.split("@")[-1])
        while not self.stopping.is_set():
            try:
                self.tick()
            except Exception:  # a database hiccup must not end the worker; the next poll tries again
                log.exception("worker %s: poll failed", self.id)
            self.stopping.wait(self.settings.poll_seconds)
        self._shut_down()

    def stop(self) -> None:
        self.stopping.set()

    def tick(self) -> None:
        self._collect_finished()
        self._renew_leases()  # before looking for expired leases: a slow tick must not expire this worker's own
        claims.requeue_expired(self.sessions)
        validate_pending(self.sessions, self.settings)
        if time.monotonic() - self.swept_at >= CACHE_SWEEP_S:
            remove_caches_of_ended_jobs(self.sessions, self.settings)
            self.swept_at = time.monotonic()
        while len(self.running) < self.max_jobs and not self.stopping.is_set():
            job = claims.claim_next(self.sessions, self.id, self.settings.lease_seconds, self.settings.models)
            if job is None:
                break
            self._start(job)

    def _start(self, job) -> None:
        try:  # checked when the job was validated, perhaps by a worker with more devices
            processes = job_processes(job.extension, self.settings.devices_per_job, self.settings.device_limit())
        except JobSpecError as error:
            claims.fail(self.sessions, job.seq, self.id, {"code": "invalid_parameter", "message": str(error),
                                                          "param": error.param}, str(error))
            return
        command = [sys.executable, "-m", "tunesmith.serve.runner", "--db", self.settings.db_url,
                   "--home", str(self.settings.home), "--job", job.id, "--worker", self.id,
                   "--base-model", self.settings.models[job.model], "--poll-seconds", str(self.settings.poll_seconds),
                   "--processes", str(processes)]
        with open(self.settings.logs_dir / f"{job.id}.log", "ab") as output:
            # Its own session: a Ctrl-C meant for the server reaches the worker, which stops jobs in order.
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        self.running[job.seq] = _Running(job.seq, job.id, process, time.monotonic())
        log.info("worker %s: started %s (pid %d)", self.id, job.id, process.pid)

    def _renew_leases(self) -> None:
        for item in self.running.values():
            if time.monotonic() - item.renewed_at >= self.settings.lease_seconds / 3:
                claims.renew(self.sessions, item.job_seq, self.id, self.settings.lease_seconds)
                item.renewed_at = time.monotonic()

    def _collect_finished(self) -> None:
        for seq, item in list(self.running.items()):
            code = item.process.poll()
            if code is None:
                continue
            del self.running[seq]
            self._settle(item, code)

    def _settle(self, item: _Running, code: int) -> None:
        if code == EXIT_INTERRUPTED:
            claims.release(self.sessions, item.job_seq, self.id, "Training stopped with the worker; job re-queued to "
                                                                 "resume from its last checkpoint")
        elif code not in (0, EXIT_LOST):
            how = describe_exit(code)
            message = (f"The training process ended with {how} (a crash, or out of memory); the server and other "
                       "jobs are unaffected")
            claims.fail(self.sessions, item.job_seq, self.id,
                        {"code": "training_process_crashed", "message": message, "param": None}, message)
        claims.clear_lease(self.sessions, item.job_seq, self.id)
        if code not in (EXIT_INTERRUPTED, EXIT_LOST):  # the job has ended: what it cached from the tenant's data goes
            remove_job_cache(self.settings, item.job_id)
        log.info("worker %s: %s ended (%s)", self.id, item.job_id, code)

    def _shut_down(self) -> None:
        for item in self.running.values():
            if item.process.poll() is None:
                item.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        for item in self.running.values():
            try:
                item.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                item.process.kill()
                item.process.wait()
            # Whatever way it ended, a job still running under this worker goes back to the queue.
            claims.release(self.sessions, item.job_seq, self.id, "The worker shut down; job re-queued to resume "
                                                                 "from its last checkpoint")
            claims.clear_lease(self.sessions, item.job_seq, self.id)
        self.running.clear()


def run_in_thread(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, name=f"worker-{worker.id}", daemon=True)
    thread.start()
    return thread
