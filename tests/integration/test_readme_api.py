"""The README's Python API example runs as written: the demo config on the embedded SmolLM2-135M-Instruct, a few
steps, scored against the base, and the tuned model loads and answers."""

import json
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
    run_dir = tmp_path / "runs" / "api-demo"
    assert (run_dir / "adapter" / "config.yaml").is_file()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["base"]["n"] == report["tuned"]["n"] == 2
    assert report["meta"]["precision"] in ("bf16", "fp32")

    from tunesmith.evaluate.generate import generate_texts
    from tunesmith.models.load import load_trained

    model, tokenizer = load_trained(run_dir)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "How do I cook rice?"}], tokenize=False,
                                           add_generation_prompt=True)
    assert generate_texts(model, tokenizer, [prompt], max_new_tokens=4)[0].strip()
