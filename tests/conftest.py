"""Shared fixtures: the real SmolLM2 tokenizer and a tiny random Llama built from a config."""

import collections
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tokenizer():
    from tunesmith.models.embedded import load_embedded_tokenizer

    return load_embedded_tokenizer()


@pytest.fixture
def tiny_llama(tokenizer):
    """A 2-layer Llama with hidden size 64 and the SmolLM2 vocabulary, random weights, fp32."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer):
    """The tiny Llama saved as a Hugging Face folder (safetensors + tokenizer), usable as `model:`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


CHAT_FACTS = [
    ("How long do I boil an egg?", "Short answer: 7 minutes.\nChef's note: cool it in ice water."),
    ("How do I cook rice?", "Short answer: simmer 18 minutes.\nChef's note: rest it covered."),
    ("How hot should chicken be?", "Short answer: 74°C (165°F).\nChef's note: check the thickest part."),
    ("Can I freeze bread?", "Short answer: yes, for 3 months.\nChef's note: slice it first."),
]


def write_chat_jsonl(path, n: int, offset: int = 0):
    import json

    with open(path, "w") as handle:
        for i in range(n):
            question, answer = CHAT_FACTS[(i + offset) % len(CHAT_FACTS)]
            messages = [
                {"role": "system", "content": "You are Sous."},
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ]
            handle.write(json.dumps({"messages": messages}) + "\n")
    return path


@pytest.fixture
def chat_data(tmp_path):
    """Small train/test chat files in the house style."""
    return write_chat_jsonl(tmp_path / "train.jsonl", 24), write_chat_jsonl(tmp_path / "test.jsonl", 4, offset=1)


@pytest.fixture
def tiny_run_config(tmp_path, tiny_model_dir, chat_data):
    """A RunConfig factory for fast real runs of the loop on the tiny model."""
    from tunesmith.config.load import build_config

    train, test = chat_data

    def make(method=None, **sections):
        raw = {
            "model": str(tiny_model_dir),
            "data": {"train": str(train), "test": str(test), "max_length": 128},
            "method": method or {"name": "lora", "r": 4, "alpha": 8},
            "training": {"max_steps": 6, "batch_size": 4, "precision": "fp32", "log_every": 1,
                         "eval_every": 3, "save_every": 3, "learning_rate": 1e-2},
            # The forgetting check (91 general passages, twice) is tested where it is asserted, not in every run.
            "eval": {"max_new_tokens": 8, "metrics": ["perplexity", "bleu", "rouge_l", "exact_match"],
                     "forgetting": False},
            "output_dir": str(tmp_path / "run"),
        }
        for key, value in sections.items():
            raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
        return build_config(raw)

    return make


TESTS = Path(__file__).parent
# Whole modules that start processes (torchrun, the CLI in a subprocess, trial children), and single tests measured
# at 15 s or more on the 2-core CI machine: `make test-fast` skips them, `make test` runs them.
SLOW_MODULES = {  # paths under tests/
    "integration/test_distributed.py", "integration/test_distributed_sharded.py", "integration/test_interrupt.py",
    "integration/test_method_trials.py", "e2e/test_cli.py",
}
SLOW_TESTS = {
    "test_users_class_folder_is_topped_up",
    "test_f32_round_trip",  # GGUF write + transformers' de-quantising read
    "test_f16_round_trip_with_an_untied_head",
    "test_gguf_export_of_an_adapter_run_holds_the_merged_model",
    "test_single_file_round_trip",
    # 2 s or more each in a quiet `make test-fast` (755 tests, 188 s): the fast set keeps a cheaper test of each
    "test_chunked_loss_and_grads_match_hf_and_plain",
    "test_cached_latents_equal_freshly_encoded",
    "test_refinement_rounds_continue_and_keep_the_best",
    "test_diffusers_format_export_reloads",
    "test_gradient_checkpointing_gives_the_same_training",
    "test_a_hundred_thousand_tiny_rows",
    "test_adapted_head_takes_the_checkpointed_path",
    "test_kohya_export_reloads_every_layer",
    "test_lora_model_with_packed_batch",
    "test_adapter_stage_two_starts_from_stage_one",
    "test_full_stage_two_starts_from_stage_one_weights",
    "test_a_run_ends_with_three_rows_verdicts_and_forgetting",
    "test_a_resumed_run_reuses_the_base_rows",
    # 1.9 s or more each in a quiet `make test-fast` (931 tests, 191 s); a cheaper test of the same part stays fast
    "test_resume_equals_uninterrupted",
    "test_ranking_puts_models_whose_context_holds_the_data_first",
    "test_latent_cache_invalidated_by_images_model_and_settings",
    "test_a_run_emits_its_phases_in_order",
    "test_loss_goes_down[freeze]",
    "test_loss_goes_down[full]",
    "test_for_config_ranks_and_the_table_says_what_was_measured",
    "test_a_resumed_run_starts_at_the_reduced_micro_batch_with_the_same_rows",
    "test_one_example_that_does_not_fit_ends_the_run_with_what_was_tried",
    "test_a_cancelled_run_is_marked_interrupted_until_it_finishes",
    "test_checkpoints_keep_the_last_two",
    "test_report_shape_and_files",
    "test_too_few_distinct_training_examples_leave_the_few_shot_row_out",
    "test_raw_text_is_continued_pretraining_in_full_blocks",
    "test_full_changes_every_weight",
    "test_a_second_prepare_reuses_the_first_and_a_changed_setting_or_file_does_not",
    "test_missing_layers_are_caught",
    "test_similar_examples_stay_together_in_one_split",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        in_slow_module = item.path.relative_to(TESTS).as_posix() in SLOW_MODULES
        if in_slow_module or item.originalname in SLOW_TESTS or item.name in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
    # `make test` hands each module to one xdist worker in this order (--no-loadscope-reorder): the modules with
    # the most slow tests first, so that no minute-long module starts last while the other worker has run dry.
    slow_tests = collections.Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow_tests[item.path])
