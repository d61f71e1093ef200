"""generate and export pick the run's model family from its config.yaml; the other family's options are refused."""

import pytest
import yaml
from typer.testing import CliRunner

from tunesmith.cli.main import app
from tunesmith.models.diffusion_tiny import TINY_ALIAS
from tunesmith.models.family import run_family


def run_folder(folder, model):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": model, "data": {"train": "x.jsonl"}}))
    return folder


def test_the_family_of_a_run_comes_from_its_config(tmp_path):
    assert run_family(run_folder(tmp_path / "sd", TINY_ALIAS)) == "diffusion"
    assert run_family(run_folder(tmp_path / "llm", "smollm2-135m-instruct")) == "llm"
    assert run_family(tmp_path / "no-run-here") == "llm"  # the language-model loaders then say what is missing


@pytest.mark.parametrize(("command", "option"), [
    (["generate", "--prompt", "hi", "--n", "2"], "--n: is for diffusion runs"),
    (["export", "--out", "x.safetensors", "--format", "kohya"], "--format kohya: is for diffusion runs"),
])
def test_diffusion_options_on_a_language_model_run_are_refused(tmp_path, command, option):
    folder = run_folder(tmp_path, "smollm2-135m-instruct")

    result = CliRunner().invoke(app, [command[0], str(folder), *command[1:]])

    assert result.exit_code != 0
    assert str(result.exception).startswith(option), result.exception
