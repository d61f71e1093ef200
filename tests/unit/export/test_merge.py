"""Merging adapters into their base (LoRA, DoRA, IA3, QLoRA after de-quantisation) and exporting runs."""

import pytest
import torch
import typer
from peft import IA3Config, LoraConfig, PeftModel, PromptTuningConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
from typer.testing import CliRunner

from tunesmith.cli import export as export_cli
from tunesmith.config.load import save_config
from tunesmith.config.schema import RunConfig
from tunesmith.errors import ModelError, TunesmithError
from tunesmith.export.merge import export_run, merge_adapter

TEXTS = ["How do I boil an egg so the yolk stays soft?", "Whisk the butter and flour into a smooth roux."]
# Random (not zero) B matrices and IA3 vectors, so the adapter really changes the outputs and merging matters.
ADAPTERS = {
    "lora": lambda: LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False),
    "dora": lambda: LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", use_dora=True, init_lora_weights=False),
    "ia3": lambda: IA3Config(task_type="CAUSAL_LM", init_ia3_weights=False),
}


def logits(model, input_ids):
    with torch.no_grad():
        return model(input_ids=input_ids).logits


@pytest.fixture
def input_ids(tokenizer):
    return torch.tensor([tokenizer(text)["input_ids"][:8] for text in TEXTS])


@pytest.fixture
def base_dir(tmp_path, tiny_llama, tokenizer):
    folder = tmp_path / "base"
    tiny_llama.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_run(tmp_path, base_dir, tokenizer, adapter_model=None, full_model=None):
    """A finished run folder as `tunesmith train` leaves it: config.yaml plus adapter/ or model/."""
    run = tmp_path / "run"
    run.mkdir()
    save_config(RunConfig(model=str(base_dir), data={"train": "train.jsonl"}), run / "config.yaml")
    folder = run / ("adapter" if adapter_model is not None else "model")
    (adapter_model if adapter_model is not None else full_model).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return run


@pytest.fixture
def lora_run(tmp_path, base_dir, tiny_llama, tokenizer, input_ids):
    """(run folder, logits of base+adapter) for a LoRA run on the tiny model."""
    model = get_peft_model(tiny_llama, ADAPTERS["lora"]()).eval()
    return make_run(tmp_path, base_dir, tokenizer, adapter_model=model), logits(model, input_ids)


@pytest.mark.parametrize("method", list(ADAPTERS))
def test_merge_equals_base_plus_adapter(tiny_llama, input_ids, method):
    model = get_peft_model(tiny_llama, ADAPTERS[method]()).eval()
    with model.disable_adapter():
        base = logits(model, input_ids)
    expected = logits(model, input_ids)
    assert (expected - base).abs().max() > 1e-3  # the adapter changes the outputs, so a skipped merge would show

    merged = merge_adapter(model)

    assert not isinstance(merged, PeftModel)
    assert not [name for name, _ in merged.named_parameters() if "lora_" in name or "ia3_" in name]
    torch.testing.assert_close(logits(merged, input_ids), expected, rtol=0, atol=1e-5)


def test_merge_check_fails_loudly_when_merged_weights_are_wrong(tiny_llama, monkeypatch):
    model = get_peft_model(tiny_llama, ADAPTERS["lora"]()).eval()
    # A broken merge: the adapter layers are removed without folding them into the weights.
    monkeypatch.setattr(model.base_model, "merge_and_unload", model.base_model.unload)

    with pytest.raises(TunesmithError, match=r"^merge check failed: the merged model's logits differ from base\+adapter"
                       r" by up to \d\S* \(allowed \d\S*\); the merged weights do not reproduce the adapter$"):
        merge_adapter(model)


def test_prompt_tuning_cannot_be_merged(tiny_llama):
    model = get_peft_model(tiny_llama, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))

    with pytest.raises(ModelError) as error:
        merge_adapter(model)

    assert str(error.value) == (
        "a prompt_tuning adapter cannot be merged: it adds learned virtual tokens to every prompt instead of changing "
        "weights, so there is nothing to fold into the base model; export the adapter folder instead (tunesmith "
        "export RUN --out DIR, without --merge or --format gguf)"
    )


def test_qlora_run_merges_into_a_dequantised_fp32_base(tmp_path, base_dir, tokenizer, input_ids):
    quantised = AutoModelForCausalLM.from_pretrained(
        base_dir, quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")
    )
    model = get_peft_model(quantised, ADAPTERS["lora"]()).eval()
    with pytest.raises(ModelError, match="^the base model's weights are quantised"):
        merge_adapter(model)
    run = make_run(tmp_path, base_dir, tokenizer, adapter_model=model)

    export_run(run, tmp_path / "out", merge=True)

    fp32_base = AutoModelForCausalLM.from_pretrained(base_dir)
    base = logits(fp32_base, input_ids)
    expected = logits(PeftModel.from_pretrained(fp32_base, run / "adapter").eval(), input_ids)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert (expected - base).abs().max() > 1e-3
    torch.testing.assert_close(logits(merged, input_ids), expected, rtol=0, atol=1e-5)


def test_adapter_only_export_copies_the_adapter_folder(tmp_path, lora_run):
    run, _ = lora_run

    files = export_run(run, tmp_path / "out")

    # The run's config travels along.
    source = sorted([*(run / "adapter").iterdir(), run / "config.yaml"], key=lambda path: path.name)
    assert [path.name for path in files] == [path.name for path in source]
    assert "adapter_model.safetensors" in [path.name for path in files]
    assert all(copy.read_bytes() == original.read_bytes() for copy, original in zip(files, source))


def test_merged_export_loads_with_plain_transformers(tmp_path, lora_run, tokenizer, input_ids):
    run, expected = lora_run

    files = export_run(run, tmp_path / "out", merge=True)

    names = {path.name for path in files}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert "adapter_config.json" not in names
    assert (tmp_path / "out" / "config.yaml").read_text() == (run / "config.yaml").read_text()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    torch.testing.assert_close(logits(merged, input_ids), expected, rtol=0, atol=1e-5)
    assert AutoTokenizer.from_pretrained(tmp_path / "out")(TEXTS)["input_ids"] == tokenizer(TEXTS)["input_ids"]
    assert not list(tmp_path.glob(".out*")), "the staging folder is renamed, not left behind"


def test_gguf_export_of_an_adapter_run_holds_the_merged_model(tmp_path, lora_run, input_ids):
    run, expected = lora_run

    files = export_run(run, tmp_path / "out", fmt="gguf", gguf_dtype="f32")

    assert files == [tmp_path / "out" / "config.yaml", tmp_path / "out" / "model-f32.gguf"]
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out", gguf_file="model-f32.gguf").eval()
    torch.testing.assert_close(logits(loaded, input_ids), expected, rtol=0, atol=1e-5)


def test_full_run_export_copies_the_model_folder(tmp_path, base_dir, tiny_llama, tokenizer):
    run = make_run(tmp_path, base_dir, tokenizer, full_model=tiny_llama)

    files = export_run(run, tmp_path / "out", merge=True)  # nothing to merge: the folder is already a full model

    assert [path.name for path in files] == sorted(["config.yaml", *(path.name for path in (run / "model").iterdir())])


def test_export_refuses_a_folder_that_is_not_empty(tmp_path, lora_run):
    run, _ = lora_run
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep me")

    with pytest.raises(ModelError) as error:
        export_run(run, tmp_path / "out", merge=True)

    assert str(error.value) == (
        f"{tmp_path / 'out'} already exists and is not an empty folder; choose a new folder or remove it"
    )
    assert (tmp_path / "out" / "notes.txt").read_text() == "keep me"


def test_cli_prints_what_was_written(tmp_path, lora_run):
    run, _ = lora_run
    app = typer.Typer()
    app.callback()(lambda: None)  # a group, so the verb is named as on the real command line
    export_cli.register(app)

    result = CliRunner().invoke(app, ["export", str(run), "--out", str(tmp_path / "out")])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"wrote {len(lines) - 1} files to {tmp_path / 'out'}"
    assert any(line.startswith("  adapter_model.safetensors  (") for line in lines[1:])
