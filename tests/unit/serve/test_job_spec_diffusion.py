"""Diffusion jobs become diffusion RunConfigs (the server's image folders, the family's own sections and methods);
how many processes a job asks for; what `auto` hyperparameters become as the run's events arrive."""

import pytest

from tunesmith.serve.job_spec import JobSpecError, chosen_hyperparameters, job_processes, run_config

PATHS = {"base_model": "tunesmith-tiny-sd", "train": "/srv/files/file-1-images", "validation": None,
         "output_dir": "/srv/runs/ftjob-1", "class_images": "/srv/class_images/tenant-1", "check_paths": False}
SUBJECT = {"data": {"instance_prompt": "a photo of sks ball", "resolution": 64}}


def build(method=None, extension=None, **paths):
    return run_config(method or {"type": "supervised"}, extension, None, **{**PATHS, **paths})


def test_the_server_sets_the_image_folders_and_the_family_picks_the_method():
    config = build(extension={**SUBJECT, "validation": {"prompts": ["sks ball"], "n": 2}},
                   validation="/srv/files/file-2-images")
    assert (config.family, config.method.name, config.model) == ("diffusion", "lora", "tunesmith-tiny-sd")
    assert (config.data.images, config.data.validation_images) == ("/srv/files/file-1-images",
                                                                   "/srv/files/file-2-images")
    assert config.data.class_images is None  # no prior preservation, so nothing is drawn
    assert (config.data.resolution, config.validation.n) == (64, 2)


def test_dreambooth_draws_its_class_images_into_the_tenants_folder():
    config = build({"type": "dreambooth_lora", "dreambooth_lora": {"r": 4}},
                   {"data": {**SUBJECT["data"], "class_prompt": "a photo of a ball", "num_class_images": 4}})
    assert (config.method.name, config.method.r) == ("dreambooth_lora", 4)
    assert config.data.class_images == "/srv/class_images/tenant-1"


@pytest.mark.parametrize("extension, message", [
    ({"eval": {}}, "tunesmith.eval: not accepted in a job on a diffusion model; the sections it may set are method, "
                   "training, data, distributed, validation"),
    ({"refine": {}}, "tunesmith.refine: not accepted in a job on a diffusion model"),
    ({"data": {"format": "chat"}}, "tunesmith.data.format: not accepted in a job on a diffusion model; it may set "
                                   "instance_prompt, class_prompt"),
])
def test_only_the_diffusion_sections_and_data_options_are_accepted(extension, message):
    with pytest.raises(JobSpecError, match=message):
        build(extension=extension)


@pytest.mark.parametrize("key", ["images", "validation_images", "class_images"])
def test_image_folders_come_only_from_the_server(key):
    with pytest.raises(JobSpecError, match=f"tunesmith.data.{key}: data comes from training_file and "
                                           "validation_file \\(ids of image archives\\)") as caught:
        build(extension={"data": {key: "/etc"}})
    assert caught.value.param == f"tunesmith.data.{key}"


def test_a_language_model_method_is_not_a_diffusion_method():
    with pytest.raises(JobSpecError, match="method.type: unknown diffusion model method 'full'; expected supervised "
                                           "or one of lora, dreambooth, dreambooth_lora"):
        build({"type": "full"})


def test_processes_come_from_the_job_else_the_server_and_stay_within_its_devices():
    assert job_processes(None, 1, 8) == 1
    assert job_processes({"distributed": {"strategy": "ddp"}}, 2, 8) == 2
    assert job_processes({"distributed": {"processes": 4}}, 1, 8) == 4
    with pytest.raises(JobSpecError, match="tunesmith.distributed.processes: 16 processes, but this server runs a "
                                           "job on at most 8"):
        job_processes({"distributed": {"processes": 16}}, 1, 8)
    for bad in (0, "2", True, 1.5):
        with pytest.raises(JobSpecError, match="is not a whole number of processes"):
            job_processes({"distributed": {"processes": bad}}, 1, 8)
    # The count is the service's: the run's own distributed section never sees it.
    config = build(extension={**SUBJECT, "distributed": {"processes": 2, "strategy": "ddp"}})
    assert config.distributed.strategy == "ddp"


def test_auto_hyperparameters_take_the_values_the_run_chose():
    from tunesmith.config.load import build_config

    config = build_config({"model": "tunesmith-tiny-sd", "data": {"images": "x"}, "method": {"name": "lora"},
                           "training": {"batch_size": "auto", "learning_rate": "auto"}}, check_paths=False)
    shown = {"n_epochs": 1, "batch_size": "auto", "learning_rate_multiplier": "auto"}
    default = config.training.method_learning_rate
    chosen = chosen_hyperparameters(shown, {"type": "learning_rate_chosen", "rate": default * 3}, config)
    assert chosen == {**shown, "learning_rate": default * 3, "learning_rate_multiplier": 3.0}
    started = chosen_hyperparameters(chosen, {"type": "training_started"}, config)
    assert started["batch_size"] == config.training.examples_per_batch
    cut = chosen_hyperparameters(started, {"type": "batch_size_reduced", "micro_batch": 2,
                                           "gradient_accumulation": 4}, config)
    assert (cut["micro_batch_size"], cut["gradient_accumulation"], cut["batch_size"]) == (2, 4, started["batch_size"])
    assert chosen_hyperparameters(cut, {"type": "training_started"}, config) is None  # a resume changes nothing
    assert chosen_hyperparameters(cut, {"type": "step", "loss": 1.0}, config) is None
