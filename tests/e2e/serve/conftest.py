"""Real servers and workers as separate processes on loopback, driven through the official openai client."""

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

# Short leases and polls so recovery happens in seconds; the code paths are those of the defaults.
LEASE = ["--lease-seconds", "3", "--poll-seconds", "0.2"]
# A run the tiny model finishes in seconds: LoRA, a handful of steps, a checkpoint every 2.
FAST_RUN = {"training": {"max_steps": 6, "batch_size": 4, "precision": "fp32", "log_every": 1, "save_every": 2,
                         "eval_every": 3, "learning_rate": 1e-2},
            "eval": {"max_new_tokens": 4, "metrics": ["perplexity"]}, "data": {"max_length": 128}}
TINY_LORA = {"type": "lora", "lora": {"r": 4, "alpha": 8}}


def long_run(steps: int, save_every: int = 5) -> dict:
    return {**FAST_RUN, "training": {**FAST_RUN["training"], "max_steps": steps, "save_every": save_every,
                                     "eval_every": 10_000}, "eval": {"compare_base": False, "metrics": ["perplexity"]}}


def cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunesmith", *args], capture_output=True, text=True, timeout=120,
                          **kwargs)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Processes:
    """Servers and workers started by a test; whatever is left is stopped at the end."""

    def __init__(self, home: Path, model_dir: Path, db: str | None):
        self.home, self.model_dir, self.db = home, model_dir, db
        self.started: list[subprocess.Popen] = []

    def _common(self) -> list[str]:
        return ["--home", str(self.home), "--model", f"tiny={self.model_dir}", *(["--db", self.db] if self.db else [])]

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen:
        with open(self.home / log, "ab") as output:
            process = subprocess.Popen([sys.executable, "-m", "tunesmith", *args], stdout=output,
                                       stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        self.started.append(process)
        return process

    def server(self, *extra: str) -> "Server":
        port = free_port()
        process = self._spawn(["serve", *self._common(), "--port", str(port), *LEASE, *extra], "server.log")
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            assert process.poll() is None, (self.home / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                    return Server(url, process)
            except httpx.HTTPError:
                time.sleep(0.3)
        raise AssertionError("the server did not come up in 120 s")

    def worker(self, *extra: str) -> subprocess.Popen:
        return self._spawn(["worker", *self._common(), *LEASE, *extra], "worker.log")

    def key(self, tenant: str, *extra: str) -> str:
        made = cli("keys", "create", "--tenant", tenant, "--home", str(self.home), *(["--db", self.db] if self.db
                                                                                       else []), *extra)
        assert made.returncode == 0, made.stderr
        return made.stdout.strip().splitlines()[-1]

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Server:
    def __init__(self, url: str, process: subprocess.Popen):
        self.url, self.process = url, process

    def client(self, key: str):
        from openai import OpenAI

        return OpenAI(api_key=key, base_url=f"{self.url}/v1", max_retries=0, timeout=120)


def wait_for(predicate, timeout: float = 300, what: str = "condition", interval: float = 0.3):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_finished(client, job_id: str, timeout: float = 300):
    return wait_for(lambda: (job := client.fine_tuning.jobs.retrieve(job_id)).status in (
        "succeeded", "failed", "cancelled") and job, timeout, f"{job_id} to finish")


def all_events(client, job_id: str) -> list:
    """Every event of the job, oldest first."""
    return list(client.fine_tuning.jobs.list_events(job_id, limit=100))[::-1]


def runner_pids(worker_id: str) -> list[int]:
    """Training processes still alive for a worker (read from /proc, so no extra package is needed); the ranks of a
    multi-process job are forked by its process, not counted here (test_torchrun.rank_pids)."""
    pids = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            args = Path(cmdline).read_bytes().split(b"\0")
        except OSError:
            continue
        if b"tunesmith.serve.runner" in args and worker_id.encode() in args:
            pids.append(int(cmdline.split("/")[2]))
    return pids


@pytest.fixture
def chat_file(tmp_path):
    from tests.conftest import write_chat_jsonl

    return write_chat_jsonl(tmp_path / "train.jsonl", 24)


@pytest.fixture
def processes(tmp_path, tiny_model_dir):
    home = tmp_path / "home"
    home.mkdir()
    started = Processes(home, tiny_model_dir, None)
    yield started
    started.stop_all()


def _postgres_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    return found[-1] if found and found[-1] else None


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL cluster on a Unix socket in a temporary folder (as the postgres user when root)."""
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed")
    pytest.importorskip("psycopg")
    folder = Path(tempfile.mkdtemp(prefix="tunesmith-pg-"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(folder, "postgres")
    port = str(free_port())
    subprocess.run([*as_user, initdb, "-D", str(folder / "data"), "-A", "trust", "-U", "postgres"], check=True,
                   capture_output=True)
    subprocess.run([*as_user, pg_ctl, "-D", str(folder / "data"), "-l", str(folder / "log"), "-w", "-o",
                    f"-k {folder} -p {port} -c listen_addresses='' -c fsync=off -c max_connections=200", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@/postgres?host={folder}&port={port}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(folder / "data"), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fresh_postgres(postgres_url):
    """An empty tunesmith database on the shared cluster for one test."""
    import sqlalchemy as sa

    name = f"t{os.getpid()}_{int(time.time() * 1000)}"
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"),
                              isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return postgres_url.replace("/postgres?", f"/{name}?")
