"""The diffusion sections of the one schema: `method:` and `data:` follow the family of `model:`."""

from pathlib import Path

import pytest

from tunesmith.config.diffusion import DiffusionDataConfig
from tunesmith.config.load import build_config, load_config
from tunesmith.config.schema import DataConfig
from tunesmith.errors import ConfigError
from tunesmith.methods.diffusion.dreambooth_lora import DreamBoothLoraMethod
from tunesmith.methods.diffusion.lora import DiffusionLoraMethod
from tunesmith.methods.llm.lora import LoraMethod
from tunesmith.models.diffusion_tiny import TINY_ALIAS

EXAMPLE = Path(__file__).parents[3] / "examples" / "sd-dreambooth-lora" / "config.yaml"


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "subject"
    folder.mkdir()
    return folder


def sd(images, method=None, **data):
    raw = {"model": TINY_ALIAS, "data": {"images": str(images), **data}}
    return raw if method is None else {**raw, "method": method}


def error_of(raw: dict) -> str:
    with pytest.raises(ConfigError) as raised:
        build_config(raw, source="run.yaml")
    return str(raised.value)


def test_the_issue_yaml_shape_validates(images):
    config = build_config({
        "model": TINY_ALIAS,
        "data": {"images": str(images), "instance_prompt": "a photo of sks dog", "class_prompt": "a photo of a dog",
                 "class_images": str(images.parent / "class"), "num_class_images": 100, "resolution": 512},
        "method": {"name": "dreambooth_lora", "r": 4, "train_text_encoder": False, "prior_loss_weight": 1.0},
        "training": {"max_steps": 500, "learning_rate": 1.0e-4, "batch_size": 1, "gradient_accumulation": 4},
        "validation": {"prompts": ["a photo of sks dog in a bucket"], "every": 100, "seed": 0, "n": 4},
    })

    assert isinstance(config.data, DiffusionDataConfig) and isinstance(config.method, DreamBoothLoraMethod)
    assert config.family == "diffusion" and config.validation.every == 100
    assert (config.method.r, config.method.prior_loss_weight) == (4, 1.0)


def test_lora_means_the_model_familys_lora(images, tmp_path):
    assert isinstance(build_config(sd(images, {"name": "lora"})).method, DiffusionLoraMethod)
    assert isinstance(build_config(sd(images)).method, DiffusionLoraMethod)  # the default method, too
    llm = build_config({"data": {"train": "train.jsonl"}, "method": {"name": "lora"}})
    assert isinstance(llm.method, LoraMethod) and isinstance(llm.data, DataConfig) and llm.family == "llm"


@pytest.mark.parametrize(("method", "rate"), [("lora", 1e-4), ("dreambooth", 5e-6), ("dreambooth_lora", 1e-4)])
def test_each_diffusion_method_gets_its_default_learning_rate(images, method, rate):
    config = build_config(sd(images, {"name": method}, instance_prompt="a photo of sks dog"))

    assert config.training.learning_rate == rate


def test_a_diffusion_method_on_a_language_model_is_one_error():
    assert error_of({"data": {"train": "x"}, "method": {"name": "dreambooth"}}) == (
        "run.yaml: invalid configuration\n"
        "  method.name: dreambooth is a diffusion model method, but smollm2-135m-instruct is a language model; use one "
        "of full, freeze, lora, qlora, ia3, prompt_tuning, prefix_tuning, p_tuning"
    )


def test_a_language_model_method_on_stable_diffusion_is_one_error(images):
    assert error_of(sd(images, {"name": "qlora"})) == (
        "run.yaml: invalid configuration\n"
        f"  method.name: qlora is a language model method, but {TINY_ALIAS} is a diffusion model; use one of lora, "
        "dreambooth, dreambooth_lora"
    )


def test_a_missing_images_folder_is_named(tmp_path):
    missing = tmp_path / "nope"

    assert error_of(sd(missing)) == (
        "run.yaml: invalid configuration\n"
        f"  data.images: {missing} does not exist; expected a folder of images with optional same-name .txt captions "
        "or a metadata.jsonl"
    )


def test_a_finished_runs_config_reads_back_without_its_images(tmp_path):
    config = build_config(sd(tmp_path / "moved-away"), check_paths=False)

    assert config.data.images == str(tmp_path / "moved-away")


def test_language_model_data_keys_on_stable_diffusion_are_unknown_keys_with_the_valid_ones(images):
    message = error_of(sd(images, train="train.jsonl"))

    assert "  data.train: unknown key; valid keys here: bucket_step, buckets, cache_latents, " in message


def test_an_option_of_a_close_method_is_pointed_at(images):
    assert "  method.prior_loss_weight: unknown key for method lora; it is an option of dreambooth, dreambooth_lora" \
        in error_of(sd(images, {"name": "lora", "prior_loss_weight": 0.5}))


def test_prior_preservation_needs_a_dreambooth_method_and_a_subject_prompt(images):
    assert error_of(sd(images, {"name": "lora"}, class_prompt="a photo of a dog")) == (
        "run.yaml: invalid configuration\n"
        "  data.class_prompt: prior preservation is part of dreambooth and dreambooth_lora, not lora; use one of "
        "them or remove data.class_prompt"
    )
    assert error_of(sd(images, {"name": "dreambooth"})) == (
        "run.yaml: invalid configuration\n"
        "  data.instance_prompt: dreambooth trains on one subject prompt with a rare token, e.g. 'a photo of sks "
        "dog'; set it"
    )


def test_class_images_without_a_class_prompt_and_odd_resolutions_are_refused(images):
    assert "  data.class_images: prior preservation needs data.class_prompt too" in error_of(
        sd(images, {"name": "dreambooth_lora"}, instance_prompt="sks", class_images=str(images)))
    assert "  data.resolution: 500 is not a multiple of data.bucket_step (64)" in error_of(sd(images, resolution=500))


def test_text_encoder_rate_needs_a_trained_text_encoder(images):
    assert "  method.text_encoder_lr: used only with train_text_encoder: true (got 1e-05)" in error_of(
        sd(images, {"name": "lora", "text_encoder_lr": 1e-5}))


def test_language_model_only_sections_are_refused_for_diffusion_and_grids_for_language_models(images):
    assert "  stages: is for language-model runs; a diffusion model run is a single run from pretrained weights" in \
        error_of({**sd(images), "stages": [{"name": "a"}]})
    assert "  validation: sample grids are for diffusion runs" in error_of(
        {"data": {"train": "x"}, "validation": {"prompts": ["a"]}})


def test_image_folders_are_relative_to_the_config_file(tmp_path):
    (tmp_path / "subject").mkdir()
    path = tmp_path / "run.yaml"
    path.write_text(f"model: {TINY_ALIAS}\ndata: {{images: subject, class_images: class, class_prompt: a dog, "
                    "instance_prompt: sks dog}\nmethod: {name: dreambooth_lora}\n")

    config = load_config(path)

    assert (config.data.images, config.data.class_images) == (str(tmp_path / "subject"), str(tmp_path / "class"))


def test_the_example_config_validates():
    config = load_config(EXAMPLE)

    assert config.family == "diffusion" and config.method.name == "dreambooth_lora"
    assert len(list(Path(config.data.images).glob("*.png"))) == 8
    assert EXAMPLE.read_text().startswith("# Run: ")
