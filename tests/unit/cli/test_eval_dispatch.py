"""`tunesmith eval RUN` picks the evaluation of the run's model family."""

from typer.testing import CliRunner

from tests.unit.cli.fresh_app import fresh_app
from tunesmith.cli.eval import register
from tunesmith.errors import ConfigError


def app():
    return fresh_app(register)


def test_a_diffusion_run_needs_real_images(tmp_path, monkeypatch):
    (tmp_path / "pipe").mkdir()
    (tmp_path / "pipe" / "model_index.json").write_text("{}")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(f"model: {tmp_path / 'pipe'}\n")
    result = CliRunner().invoke(app(), ["eval", str(tmp_path / "run")])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == "--real-images: a diffusion run is scored against a folder of real subject images"


def test_a_diffusion_run_goes_to_the_fidelity_evaluation(tmp_path, monkeypatch):
    import tunesmith.evaluate.diffusion_eval as diffusion_eval

    (tmp_path / "pipe").mkdir()
    (tmp_path / "pipe" / "model_index.json").write_text("{}")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(f"model: {tmp_path / 'pipe'}\n")
    seen = {}

    def scored(run_dir, real_images, **options):
        seen.update(run_dir=run_dir, real_images=real_images, **options)
        return tmp_path / "run" / "eval" / "report.md"

    monkeypatch.setattr(diffusion_eval, "evaluate_diffusion_run", scored)
    result = CliRunner().invoke(app(), ["eval", str(tmp_path / "run"), "--real-images", str(tmp_path),
                                        "--clip", str(tmp_path / "clip"), "--prompt", "a sks ball", "--n", "2"])
    assert result.exit_code == 0, result.output
    assert seen["real_images"] == tmp_path and seen["clip"] == tmp_path / "clip" and seen["prompts"] == ["a sks ball"]
    assert seen["n"] == 2 and result.output.strip().endswith("report.md")


def test_a_language_model_run_keeps_its_evaluation(tmp_path):
    result = CliRunner().invoke(app(), ["eval", str(tmp_path)])
    assert "not a run folder (no config.yaml)" in str(result.exception)
