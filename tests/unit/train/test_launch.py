"""The launcher reports every rank that failed, however the agent's poll ordered them: a rank killed outright
while another fails on the broken collective is named as killed, and ranks the agent stopped say so."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # forks ranks through the fork server (~10 s)

LAUNCH = """
import json, sys
from torch.distributed.run import run_script_path
from tunesmith.train.launch import launch

failures = launch(2, run_script_path, sys.argv[1], sys.argv[2])
print(json.dumps({f.rank: f.code for f in failures}))
"""

# Rank 1 kills itself; rank 0 ends with exit code 3 a moment later, so both may be found ended at one poll. Rank 0
# ignores the SIGTERM the agent sends it when a poll finds rank 1 dead first (how fast the agent is decides that),
# so it always ends with its own code.
KILLED = """
import os, signal, sys, time
from pathlib import Path
marker = Path(sys.argv[1])
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.environ["RANK"] == "1":
    marker.write_text("dying")
    os.kill(os.getpid(), signal.SIGKILL)
while not marker.exists():
    time.sleep(0.01)
time.sleep(0.05)
sys.exit(3)
"""

# Rank 0 fails at once while rank 1 is still busy: the agent stops rank 1 with SIGTERM.
STOPPED = """
import os, sys, time
if os.environ["RANK"] == "0":
    time.sleep(1)
    raise ValueError("a bad setting")
time.sleep(60)
"""


def launch(tmp_path, script: str) -> dict:
    path = tmp_path / "rank.py"
    path.write_text(script)
    result = subprocess.run([sys.executable, "-c", LAUNCH, str(path), str(tmp_path / "marker")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return {int(rank): code for rank, code in json.loads(result.stdout.strip().splitlines()[-1]).items()}


def test_a_killed_rank_is_reported_beside_the_one_that_failed_after_it(tmp_path):
    failures = launch(tmp_path, KILLED)
    assert failures[0] == 3
    assert failures[1] in (-9, None)  # -9 when the agent saw it first, None (killed outright) when it saw rank 0


def test_a_rank_stopped_after_another_failed_reports_the_sigterm(tmp_path):
    assert launch(tmp_path, STOPPED) == {0: 1, 1: -15}
