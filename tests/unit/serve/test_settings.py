"""Where a server keeps its data (--home and its defaults) and which base models it offers (--model NAME=PATH)."""

from pathlib import Path

import pytest

from tunesmith.config.schema import EMBEDDED_DEFAULT
from tunesmith.errors import ConfigError
from tunesmith.models.diffusion_tiny import TINY_ALIAS
from tunesmith.serve.settings import default_home, make_settings, parse_models


@pytest.fixture
def no_home_env(monkeypatch, tmp_path):
    monkeypatch.delenv("TUNESMITH_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    return tmp_path


def test_tunesmith_home_comes_first(no_home_env, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(no_home_env / "xdg"))
    monkeypatch.setenv("TUNESMITH_HOME", str(no_home_env / "service"))
    assert default_home() == no_home_env / "service"


def test_an_empty_tunesmith_home_falls_back_to_the_per_user_data_folder(no_home_env, monkeypatch):
    monkeypatch.setenv("TUNESMITH_HOME", "")
    monkeypatch.setenv("XDG_DATA_HOME", str(no_home_env / "xdg"))
    assert default_home() == no_home_env / "xdg" / "tunesmith"


def test_without_either_the_home_is_under_the_users_local_share(no_home_env):
    assert default_home() == no_home_env / "user" / ".local" / "share" / "tunesmith"


def test_settings_put_sqlite_under_the_default_home_unless_told(no_home_env, monkeypatch):
    monkeypatch.setenv("TUNESMITH_HOME", str(no_home_env / "service"))
    settings = make_settings()
    assert settings.home == (no_home_env / "service").resolve()
    assert settings.db_url == f"sqlite:///{settings.home / 'tunesmith.db'}"
    assert make_settings(no_home_env / "other", "postgresql://db/x").db_url == "postgresql://db/x"


def test_the_embedded_default_is_always_offered_and_built_ins_need_no_path(tmp_path):
    models = parse_models([f"mine={tmp_path}", f"sd={TINY_ALIAS}"])
    assert models == {EMBEDDED_DEFAULT: EMBEDDED_DEFAULT, "mine": str(tmp_path.resolve()), "sd": TINY_ALIAS}


@pytest.mark.parametrize(("item", "words"), [
    ("cooking", "--model 'cooking': expected NAME=PATH, e.g. --model cooking=/models/smollm2-cooking"),
    ("cooking=", "--model 'cooking=': expected NAME=PATH"),
    ("=/models/x", "--model '=/models/x': the name may use letters, digits, '.', '_' and '-' (up to 64)"),
    ("a:b=/models/x", "--model 'a:b=/models/x': the name may use letters, digits"),
    ("g=/nonexistent/tiny.gguf", "--model 'g=/nonexistent/tiny.gguf': /nonexistent/tiny.gguf does not exist; "
                                 "expected a model folder, a .gguf file, "),
])
def test_a_bad_model_option_says_what_is_wrong(item, words):
    with pytest.raises(ConfigError) as raised:
        parse_models([item])
    assert str(raised.value).startswith(words)


def test_a_gguf_file_is_offered_as_a_language_model_jobs_train_on(tmp_path, tiny_llama, tokenizer):
    from tunesmith.export.gguf import write_gguf
    from tunesmith.serve.job_spec import run_config

    gguf = write_gguf(tiny_llama, tokenizer, tmp_path / "tiny.gguf", "f32")
    settings = make_settings(tmp_path / "home", models=[f"g={gguf}"])
    assert settings.models["g"] == str(Path(gguf).resolve()) and settings.family("g") == "llm"
    train = tmp_path / "train.jsonl"
    train.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    config = run_config({"type": "lora"}, None, None, base_model=settings.models["g"], train=train, validation=None,
                        output_dir=tmp_path / "run")
    assert config.model == settings.models["g"] and config.method.name == "lora"
