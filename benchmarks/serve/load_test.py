"""A bounded load test of `tunesmith serve` on loopback: clients upload, create jobs and poll for a fixed time.

    python benchmarks/serve/load_test.py                          # 50 clients for 60 s, results in benchmarks/results/
    python benchmarks/serve/load_test.py --clients 10 --seconds 5 --output /tmp/load.json   # a smoke test

The server is `tunesmith serve --no-worker` on SQLite in a fresh home, offering a tiny random Llama as `tiny`.
Without a worker the created jobs stay in validating_files: the load measured is the API's and the database's,
not training's (jobs take minutes each on a CPU and would only queue up). Clients are spread over 5 tenants; each
loops upload -> create (one create in five sent twice with its Idempotency-Key, as a client retrying after a
timeout would) -> retrieve, list and events of its job. Any non-2xx answer or failed request is an error.

Afterwards every tenant's job and file lists are read back whole: a created job missing from them is lost, one
listed twice or a retried create that made a second job is duplicated, one of another tenant's is a leak. Reported:
requests, errors, lost/duplicated/leaked counts, and p50/p95/p99/max latency per route. Exit status 1 on any error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # as a script, only this file's folder would be on sys.path

import httpx  # noqa: E402

from benchmarks.common.report import machine, write_results  # noqa: E402

TENANTS = 5
RETRY_EVERY = 5  # one create in five (the 1st, 6th, ...) is sent again with the same Idempotency-Key
JOB_BODY = {"model": "tiny", "method": {"type": "lora", "lora": {"r": 4}}, "tunesmith": {"training": {"max_steps": 2}}}


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    jobs: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # tenant -> job ids created
    files: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    retries: int = 0
    duplicated_by_retry: int = 0


def tiny_model(folder: Path) -> Path:
    """The tests' tiny Llama (2 layers, hidden size 64, the SmolLM2 vocabulary), saved as a model folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tunesmith.models.embedded import load_embedded_tokenizer

    tokenizer = load_embedded_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def make_keys(home: Path, model: Path) -> dict[str, str]:
    from tunesmith.serve.db import make_engine, session_factory
    from tunesmith.serve.keys import create_key
    from tunesmith.serve.settings import make_settings

    settings = make_settings(home, models=[f"tiny={model}"]).prepare()
    with session_factory(make_engine(settings.db_url))() as session:
        keys = {f"tenant{i}": create_key(session, f"tenant{i}")[0] for i in range(TENANTS)}
        session.commit()
    return keys


def start_server(home: Path, model: Path) -> tuple[str, subprocess.Popen]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(home / "server.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", "tunesmith", "serve", "--home", str(home), "--model",
                                f"tiny={model}", "--port", str(port), "--no-worker"], stdout=log,
                               stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited: {(home / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                return url, process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.terminate()
    raise SystemExit("the server did not come up in 120 s")


def chat_file(client: int, n: int) -> bytes:
    lines = []
    for i in range(8):
        messages = [{"role": "user", "content": f"client {client} upload {n} question {i}"},
                    {"role": "assistant", "content": f"answer {i}"}]
        lines.append(json.dumps({"messages": messages}))
    return ("\n".join(lines) + "\n").encode()


async def timed(tally: Tally, route: str, request) -> httpx.Response | None:
    start = time.perf_counter()
    try:
        response = await request
    except httpx.HTTPError as error:
        tally.errors.append(f"{route}: {type(error).__name__}: {error}")
        return None
    tally.latencies[route].append(time.perf_counter() - start)
    if not response.is_success:
        tally.errors.append(f"{route}: {response.status_code} {response.text[:200]}")
        return None
    return response


async def one_client(url: str, tenant: str, key: str, number: int, deadline: float, tally: Tally) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            uploaded = await timed(tally, "POST /v1/files", http.post(
                "/v1/files", files={"file": (f"c{number}-{n}.jsonl", chat_file(number, n))},
                data={"purpose": "fine-tune"}))
            if uploaded is None:
                continue
            tally.files[tenant].append(uploaded.json()["id"])
            body = {**JOB_BODY, "training_file": uploaded.json()["id"]}
            headers = {"Idempotency-Key": uuid.uuid4().hex}
            created = await timed(tally, "POST /v1/fine_tuning/jobs",
                                  http.post("/v1/fine_tuning/jobs", json=body, headers=headers))
            if created is None:
                continue
            job_id = created.json()["id"]
            tally.jobs[tenant].append(job_id)
            if n % RETRY_EVERY == 1:  # the first create of each client too, so short runs retry
                again = await timed(tally, "POST /v1/fine_tuning/jobs (retry)",
                                    http.post("/v1/fine_tuning/jobs", json=body, headers=headers))
                tally.retries += 1
                if again is not None and again.json()["id"] != job_id:
                    tally.duplicated_by_retry += 1
            await timed(tally, "GET /v1/fine_tuning/jobs/{id}", http.get(f"/v1/fine_tuning/jobs/{job_id}"))
            await timed(tally, "GET /v1/fine_tuning/jobs", http.get("/v1/fine_tuning/jobs", params={"limit": 20}))
            await timed(tally, "GET /v1/fine_tuning/jobs/{id}/events",
                        http.get(f"/v1/fine_tuning/jobs/{job_id}/events"))


def listed(url: str, key: str, path: str, limit: int) -> list[str]:
    """Every id in one of a tenant's lists, page after page."""
    ids, after = [], None
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
        while True:
            page = http.get(path, params={"limit": limit, **({"after": after} if after else {})})
            page.raise_for_status()
            body = page.json()
            ids += [item["id"] for item in body["data"]]
            if not body["has_more"]:
                return ids
            after = body["last_id"]


def check_lists(url: str, keys: dict[str, str], tally: Tally) -> dict:
    """Lost, duplicated and leaked jobs and files, from every tenant's lists read back whole."""
    counts = {"lost_jobs": 0, "duplicated_jobs": tally.duplicated_by_retry, "leaked_jobs": 0, "lost_files": 0,
              "duplicated_files": 0, "leaked_files": 0}
    for kind, path, limit, created in (("jobs", "/v1/fine_tuning/jobs", 100, tally.jobs),
                                       ("files", "/v1/files", 10000, tally.files)):
        everyone = {item for ids in created.values() for item in ids}
        for tenant, key in keys.items():
            ids = listed(url, key, path, limit)
            mine = set(created[tenant])
            counts[f"lost_{kind}"] += len(mine - set(ids))
            counts[f"duplicated_{kind}"] += len(ids) - len(set(ids))
            counts[f"leaked_{kind}"] += len((set(ids) - mine) & everyone)
    return counts


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return {"count": len(ms), "p50_ms": round(cuts[49], 1), "p95_ms": round(cuts[94], 1),
            "p99_ms": round(cuts[98], 1), "max_ms": round(ms[-1], 1)}


def run(url: str, keys: dict[str, str], clients: int, seconds: float) -> dict:
    """Load the server at `url` with `clients` clients for `seconds`, then check its lists; the results."""
    tally = Tally()
    tenants = list(keys)

    async def everyone() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(one_client(url, tenants[i % len(tenants)], keys[tenants[i % len(tenants)]], i,
                                          deadline, tally) for i in range(clients)))

    started = time.perf_counter()
    asyncio.run(everyone())
    elapsed = time.perf_counter() - started
    requests = sum(len(v) for v in tally.latencies.values()) + len(tally.errors)
    return {
        "clients": clients, "seconds": seconds, "elapsed_s": round(elapsed, 1), "requests": requests,
        "requests_per_s": round(requests / elapsed, 1), "errors": len(tally.errors), "error_samples": tally.errors[:20],
        "jobs_created": sum(len(v) for v in tally.jobs.values()),
        "files_uploaded": sum(len(v) for v in tally.files.values()),
        "idempotent_retries": tally.retries, **check_lists(url, keys, tally),
        "routes": {route: percentiles(values) for route, values in sorted(tally.latencies.items())},
    }


def markdown(results: dict) -> str:
    lines = ["| route | requests | p50 ms | p95 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|---:|"]
    for route, row in results["routes"].items():
        lines.append(f"| {route} | {row['count']} | {row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} | "
                     f"{row['max_ms']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--output", type=Path, default=None, help="results JSON (default: benchmarks/results/...)")
    parser.add_argument("--keep", type=Path, default=None, help="a new folder to keep the server's home and log in "
                        "(default: a temporary one, removed afterwards)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tunesmith-load-") as scratch:
        home = args.keep or Path(scratch) / "home"
        home.mkdir(parents=True)
        model = tiny_model(Path(scratch) / "tiny")
        keys = make_keys(home, model)
        url, server = start_server(home, model)
        try:
            results = run(url, keys, args.clients, args.seconds)
        finally:
            server.terminate()
            server.wait(timeout=60)
    results = {"benchmark": "serve_load", "date": datetime.now().isoformat(timespec="seconds"),
               "server": "tunesmith serve --no-worker: SQLite (WAL), one uvicorn process; jobs stay in "
                         "validating_files",
               "tenants": TENANTS, **results, "machine": machine()}
    output = args.output or REPO / "benchmarks" / "results" / f"serve_load-cpu-{datetime.now():%Y%m%d-%H%M}.json"
    write_results(output, results)
    print(markdown(results))
    print(f"\n{results['requests']} requests from {args.clients} clients in {results['elapsed_s']} s "
          f"({results['requests_per_s']}/s); errors {results['errors']}; jobs created {results['jobs_created']}, "
          f"lost {results['lost_jobs']}, duplicated {results['duplicated_jobs']}, leaked {results['leaked_jobs']}; "
          f"files lost {results['lost_files']}, duplicated {results['duplicated_files']}")
    print(f"results: {output}")
    bad = results["errors"] + sum(results[k] for k in results if k.startswith(("lost_", "duplicated_", "leaked_")))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
