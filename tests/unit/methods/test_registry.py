"""The method registry is keyed by (family, name): both families have a `lora`, each family lists its own methods."""

import pytest
from pydantic import BaseModel

from tunesmith.errors import ConfigError
from tunesmith.methods import registry
from tunesmith.methods.diffusion.lora import DiffusionLoraMethod
from tunesmith.methods.llm.lora import LoraMethod

LLM_METHODS = ["full", "freeze", "lora", "qlora", "ia3", "prompt_tuning", "prefix_tuning", "p_tuning"]


def test_each_family_lists_its_own_methods_and_llm_stays_the_default():
    assert registry.names() == LLM_METHODS
    assert registry.names("diffusion") == ["lora", "dreambooth", "dreambooth_lora"]
    assert [(m.family, m.name) for m in registry.methods(None)] == (
        [("llm", name) for name in LLM_METHODS] + [("diffusion", "lora"), ("diffusion", "dreambooth"),
                                                    ("diffusion", "dreambooth_lora")])


def test_both_loras_are_different_methods_with_their_own_defaults():
    llm, diffusion = registry.get("lora"), registry.get("lora", "diffusion")

    assert (llm.family, llm.options, llm.learning_rate) == ("llm", LoraMethod, 2e-4)
    assert (diffusion.family, diffusion.options, diffusion.learning_rate) == ("diffusion", DiffusionLoraMethod, 1e-4)
    assert registry.get("dreambooth", "diffusion").learning_rate == 5e-6


def test_a_validated_section_names_its_method_by_its_class():
    assert registry.of(LoraMethod()) is registry.get("lora")
    assert registry.of(DiffusionLoraMethod()) is registry.get("lora", "diffusion")
    assert registry.tag(registry.of(DiffusionLoraMethod())) == "diffusion:lora"


def test_an_unknown_name_lists_that_familys_methods():
    with pytest.raises(ConfigError) as raised:
        registry.get("qlora", "diffusion")

    assert str(raised.value) == "method.name: unknown method 'qlora'; expected one of lora, dreambooth, dreambooth_lora"


def test_a_second_method_under_a_taken_key_is_refused():
    class Other(BaseModel):
        name: str = "lora"

    twin = registry.Method(name="lora", family="diffusion", options=Other, learning_rate=1.0, summary="",
                           apply=lambda model, options, path: model, saves="adapter")
    with pytest.raises(ValueError, match="diffusion model method 'lora'"):
        registry.register(twin)
    assert registry.get("lora", "diffusion").options is DiffusionLoraMethod


def test_a_method_of_the_other_family_is_named_as_such():
    with pytest.raises(ConfigError) as raised:
        registry.check_family(registry.get("qlora"), "diffusion", "sd15.safetensors")

    assert str(raised.value) == ("method.name: qlora is a language model method, but sd15.safetensors is a diffusion "
                                 "model; use one of lora, dreambooth, dreambooth_lora")


def test_tunesmith_methods_lists_both_families():
    from typer.testing import CliRunner

    from tunesmith.cli.main import app

    result = CliRunner().invoke(app, ["methods"], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    rows = [line.split("│")[1:4] for line in result.output.splitlines() if line.startswith("│")]
    assert [[cell.strip() for cell in row] for row in rows] == (
        [["language model", name, f"{registry.get(name).learning_rate:g}"] for name in LLM_METHODS]
        + [["diffusion model", "lora", "0.0001"], ["diffusion model", "dreambooth", "5e-06"],
           ["diffusion model", "dreambooth_lora", "0.0001"]])
