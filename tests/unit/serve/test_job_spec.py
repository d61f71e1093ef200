"""A job request becomes a RunConfig: OpenAI hyperparameters, tunesmith methods, and keys only the server sets."""

import pytest

from tunesmith.serve.job_spec import JobSpecError, resolved_hyperparameters, run_config

PATHS = {"base_model": "/models/tiny", "train": "/srv/files/file-1.jsonl", "validation": None,
         "output_dir": "/srv/runs/ftjob-1"}


def build(method=None, extension=None, seed=None, **paths):
    return run_config(method or {"type": "supervised"}, extension, seed, **{**PATHS, **paths})


def test_supervised_hyperparameters_map_to_training_keys():
    auto = build()
    config = build({"type": "supervised", "supervised": {"hyperparameters": {
        "n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 0.5}}}, seed=11)
    assert (config.method.name, config.training.epochs, config.training.batch_size, config.training.seed) == (
        "lora", 3, 4, 11)
    assert config.training.learning_rate == pytest.approx(auto.training.learning_rate * 0.5)
    assert resolved_hyperparameters(config) == {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 0.5}
    assert resolved_hyperparameters(auto) == {"n_epochs": 1, "batch_size": auto.training.batch_size,
                                              "learning_rate_multiplier": 1.0}


def test_the_server_sets_model_data_and_output():
    config = build(validation="/srv/files/file-2.jsonl")
    assert (config.model, config.data.train, config.data.validation, config.output_dir) == (
        "/models/tiny", "/srv/files/file-1.jsonl", "/srv/files/file-2.jsonl", "/srv/runs/ftjob-1")


def test_a_tunesmith_method_takes_its_options_and_the_extension_its_sections():
    config = build({"type": "lora", "lora": {"r": 4, "alpha": 8, "hyperparameters": {"n_epochs": 2}}},
                   {"training": {"max_steps": 5, "learning_rate": 1e-3}, "eval": {"max_new_tokens": 4},
                    "data": {"max_length": 64}})
    assert (config.method.r, config.method.alpha, config.training.epochs, config.training.max_steps) == (4, 8, 2, 5)
    assert (config.training.learning_rate, config.eval.max_new_tokens, config.data.max_length) == (1e-3, 4, 64)
    full = build({"type": "full"})
    assert full.method.name == "full"
    # The multiplier scales the config's own learning rate when it gives one.
    halved = build({"type": "supervised", "supervised": {"hyperparameters": {"learning_rate_multiplier": 0.5}}},
                   {"training": {"learning_rate": 1e-3}})
    assert halved.training.learning_rate == pytest.approx(5e-4)


@pytest.mark.parametrize("key", ["model", "output_dir", "init_adapter", "allow_pickle", "trust_remote_code"])
def test_keys_that_name_server_paths_or_run_code_are_refused(key):
    with pytest.raises(JobSpecError, match=f"tunesmith.{key}: set by ") as caught:
        build(extension={key: "x"})
    assert caught.value.param == f"tunesmith.{key}"


@pytest.mark.parametrize("extension, message", [
    ({"stages": []}, "tunesmith.stages: not accepted in a job on a language model; the sections it may set are "
                     "method, training, data, distributed, eval, refine"),
    ({"validation": {"prompts": ["x"]}}, "tunesmith.validation: not accepted in a job on a language model"),
    ({"sweep": {}}, "tunesmith.sweep: not accepted in a job"),
    ({"data": {"cache_dir": "/tmp"}}, "tunesmith.data.cache_dir: not accepted in a job on a language model; it may "
                                      "set format, max_length, validation_split"),
])
def test_only_allowlisted_sections_and_data_options_are_accepted(extension, message):
    with pytest.raises(JobSpecError, match=message):
        build(extension=extension)


@pytest.mark.parametrize("key", ["train", "validation", "test"])
def test_data_paths_come_only_from_file_ids(key):
    with pytest.raises(JobSpecError, match=f"tunesmith.data.{key}: data comes from training_file"):
        build(extension={"data": {key: "/etc/passwd"}})


def test_conflicting_method_names_are_refused():
    with pytest.raises(JobSpecError, match="method.type is 'full' but tunesmith.method.name is 'lora'; give one"):
        build({"type": "full"}, {"method": {"name": "lora"}})


def test_config_mistakes_come_back_with_the_configs_own_message():
    with pytest.raises(JobSpecError) as caught:
        build(extension={"training": {"batch_size": 0}})
    assert caught.value.param == "tunesmith"
    assert "training.batch_size" in str(caught.value)


def test_a_learning_rate_chosen_by_the_range_test_is_shown_as_auto_and_not_multiplied():
    auto = build(extension={"training": {"learning_rate": "auto"}})
    assert resolved_hyperparameters(auto)["learning_rate_multiplier"] == "auto"
    with pytest.raises(JobSpecError, match="learning_rate_multiplier multiplies a learning rate, but the tunesmith "
                                           "config sets training.learning_rate: auto"):
        build({"type": "supervised", "supervised": {"hyperparameters": {"learning_rate_multiplier": 0.5}}},
              extension={"training": {"learning_rate": "auto"}})
