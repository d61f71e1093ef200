"""`tunesmith models`, registered on a fresh typer app: the table, --json for scripts, --for CONFIG's ranking."""

import json

import pytest
from typer.testing import CliRunner

from tests.unit.cli.fresh_app import fresh_app
from tests.unit.models.test_catalogue import chat_file, hub_snapshot, save_tiny
from tunesmith.cli.models import register
from tunesmith.methods import registry


def app():
    return fresh_app(register)


@pytest.fixture(autouse=True)
def without_the_embedded_model(monkeypatch):
    """The embedded model (135M parameters, 30 blocks) would be planned for every method too: seconds per test."""
    import tunesmith.models.catalogue as catalogue

    monkeypatch.setattr(catalogue, "_embedded", lambda: [])


def invoke(args, tmp_path, shelf):
    env = {"TUNESMITH_MODELS": str(shelf), "HF_HUB_CACHE": str(tmp_path / "hub"), "COLUMNS": "250"}
    result = CliRunner().invoke(app(), ["models", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_json_lists_every_place_with_memory_per_method(tmp_path, tokenizer):
    shelf = tmp_path / "shelf"
    save_tiny(shelf / "mine", tokenizer, context=512, licence="mit")
    hub_snapshot(tmp_path / "hub", "acme/tiny-chat", lambda snapshot: save_tiny(snapshot, licence="apache-2.0"))
    listing = json.loads(invoke(["--json"], tmp_path, shelf))
    models = {model["name"]: model for model in listing["models"]}
    assert set(models) == {str(shelf / "mine"), "acme/tiny-chat"}
    mine = models[str(shelf / "mine")]
    assert (mine["found_in"], mine["context"], mine["licence"], mine["chat_template"]) == (
        "TUNESMITH_MODELS", 512, "mit", True)
    assert models["acme/tiny-chat"]["chat_template"] is False and models["acme/tiny-chat"]["found_in"] == "hf-cache"
    assert list(mine["methods"]) == registry.names("llm")
    assert all(fit["fits"] is True and fit["memory_gib"] > 0 for fit in mine["methods"].values())
    assert listing["device"]["type"] in ("cpu", "cuda") and listing["config"] is None
    assert all(model["rank"] is None for model in listing["models"])


def test_for_config_ranks_and_the_table_says_what_was_measured(tmp_path, tokenizer):
    shelf = tmp_path / "shelf"
    save_tiny(shelf / "short", tokenizer, context=16)
    save_tiny(shelf / "roomy", tokenizer, context=2048)
    data = chat_file(tmp_path / "train.jsonl", ["Simmer it for eighteen minutes, then rest it covered."])
    config = tmp_path / "config.yaml"
    config.write_text(f"model: {shelf / 'roomy'}\ndata:\n  train: {data}\nmethod:\n  name: lora\n  r: 2\n")

    listing = json.loads(invoke(["--for", str(config), "--json"], tmp_path, shelf))
    ranked = listing["models"]
    assert [model["name"] for model in ranked] == [str(shelf / "roomy"), str(shelf / "short")]
    assert ranked[0]["found_in"] == "config"  # the config names it; TUNESMITH_MODELS lists it too
    assert ranked[0]["context_fits"] is True and ranked[1]["context_fits"] is False
    assert ranked[0]["context_measured_with"] == "tokenizer" and ranked[0]["context_needed"] > 16
    assert listing["method"] == "lora" and listing["config"] == str(config)

    table = invoke(["--for", str(config)], tmp_path, shelf)
    assert f"Models for {config} (method lora)" in table
    assert "needed" in table and "qlora" in table and "activations are not counted" in table
