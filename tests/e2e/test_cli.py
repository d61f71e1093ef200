"""The command line as a user meets it: clear one-line errors, no tracebacks, exit code 2."""

import subprocess
import sys


def tunesmith(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tunesmith", *args], capture_output=True, text=True, cwd=cwd)


def test_config_error_is_one_message_without_traceback(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("data: {train: train.jsonl}\ntraining: {epoch: 2}\n")
    result = tunesmith("train", str(config))
    assert result.returncode == 2
    assert "training.epoch: unknown key; did you mean 'training.epochs'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_error_names_file_and_line(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{bad json\n')
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {{train: train.jsonl}}\noutput_dir: {tmp_path / 'run'}\n")
    result = tunesmith("train", str(config))
    assert result.returncode == 2, result.stderr
    assert "train.jsonl:2: invalid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_generate_on_a_folder_that_is_not_a_run(tmp_path):
    result = tunesmith("generate", str(tmp_path), "--prompt", "hi")
    assert result.returncode == 2
    assert "not a run folder (no config.yaml)" in result.stderr


def test_a_failing_data_parallel_run_exits_non_zero(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    config = tmp_path / "run.yaml"
    config.write_text("model: smollm2-135m-instruct\ndata: {train: train.jsonl}\n")
    result = tunesmith("train", str(config), "--nproc", "2", cwd=tmp_path)
    assert result.returncode != 0
    assert "train.jsonl:2" in result.stderr
