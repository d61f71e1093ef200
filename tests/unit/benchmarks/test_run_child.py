"""run_child: a child's own peak RSS (not the high-water mark Linux copies from the parent at exec), its exit status
as subprocess gives it (negative for a signal), its output in the log and the environment passed on."""

import importlib.util
import os
import signal
import sys
from pathlib import Path

import pytest

# benchmarks/ is not a package on the test path: the module is loaded from its file, as the benchmark tests do
_spec = importlib.util.spec_from_file_location(
    "_bench_measure", Path(__file__).resolve().parents[3] / "benchmarks" / "common" / "measure.py")
measure = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # dataclasses look it up there
_spec.loader.exec_module(measure)
run_child = measure.run_child
MIB = 2**20
pytestmark = pytest.mark.slow  # every test starts processes


def _rss_mib() -> float:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_the_peak_is_the_childs_own_not_what_the_parent_holds(tmp_path):
    held = b"\x01" * (300 * MIB)  # written, so resident
    assert _rss_mib() > 300  # started straight from here, a child would inherit at least this as its peak
    child = run_child([sys.executable, "-c", "data = b'\\x01' * (50 * 2**20)"], tmp_path / "log.txt")
    assert child.returncode == 0
    assert 40 < child.peak_rss_mib < 150  # the interpreter and its 50 MiB
    assert len(held) == 300 * MIB  # held until the child had ended


def test_exit_codes_signals_output_and_environment_pass_through(tmp_path):
    log = tmp_path / "log.txt"
    code = "import os, sys; print(os.environ['PROBE']); sys.exit(3)"
    assert run_child([sys.executable, "-c", code], log, env={**os.environ, "PROBE": "passed on"}).returncode == 3
    assert log.read_text() == "passed on\n"
    killed = run_child([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"], log)
    assert killed.returncode == -signal.SIGTERM


def test_a_command_that_cannot_start_is_an_error_naming_it(tmp_path):
    log = tmp_path / "log.txt"
    with pytest.raises(RuntimeError, match="no-such-command-for-run-child could not be started"):
        run_child(["no-such-command-for-run-child"], log)
    assert "FileNotFoundError" in log.read_text()
