"""The README's Python API example runs as written (on the embedded model, a few steps)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_readme_api_example_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- api-example:.*?-->\n```python\n(.*?)```", readme, re.S).group(1)
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the example's relative paths, runs/ left in tmp_path
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout.splitlines()  # event types, the progress lines, then the example's own print
    assert printed.index("run_started") < printed.index("plan") < printed.index("run_finished")
    last = next(line for line in reversed(printed) if line.endswith("report.md")).split()
    assert float(last[0]) >= 0 and last[1].endswith("runs/api-demo/adapter")
    assert (tmp_path / "runs" / "api-demo" / "adapter" / "config.yaml").is_file()
