"""The bounded load test, small: 10 clients for a few seconds against a real server, with no errors and no job or
file lost, duplicated or shown to another tenant (benchmarks/serve/load_test.py; timings are its business)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

LOAD_TEST = Path(__file__).resolve().parents[3] / "benchmarks" / "serve" / "load_test.py"
ROUTES = {"POST /v1/files", "POST /v1/fine_tuning/jobs", "POST /v1/fine_tuning/jobs (retry)",
          "GET /v1/fine_tuning/jobs/{id}", "GET /v1/fine_tuning/jobs", "GET /v1/fine_tuning/jobs/{id}/events"}


@pytest.mark.slow
def test_ten_clients_lose_and_duplicate_nothing(tmp_path):
    output = tmp_path / "load.json"
    run = subprocess.run([sys.executable, str(LOAD_TEST), "--clients", "10", "--seconds", "5", "--output",
                          str(output)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["errors"] == 0, results["error_samples"]
    assert results["jobs_created"] >= 10 and results["files_uploaded"] == results["jobs_created"]
    assert results["idempotent_retries"] >= 10  # every client's first create is sent twice
    for check in ("lost_jobs", "duplicated_jobs", "leaked_jobs", "lost_files", "duplicated_files", "leaked_files"):
        assert results[check] == 0, check
    assert set(results["routes"]) == ROUTES
