"""LoRA exports (kohya and diffusers/PEFT) reload with diffusers' load_lora_weights, every key used, same image."""

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tunesmith.errors import ModelError
from tunesmith.export import kohya
from tunesmith.export.diffusion_lora import export_diffusers_lora, pipeline_lora, sample_image, verify_lora_file

SLOW = pytest.mark.slow  # the SD 1.x variant of each check stays in the fast suite


def trained(tiny_model, lora, family, **options):
    return lora(tiny_model(family).pipeline, **options)


@pytest.mark.parametrize("family", ["sd1", pytest.param("sd2", marks=SLOW), pytest.param("sdxl", marks=SLOW)])
def test_kohya_export_reloads_every_layer(tiny_model, lora, tmp_path, family):
    pipe = trained(tiny_model, lora, family)
    before = sample_image(pipe)
    path = kohya.export_kohya(pipe, tmp_path / "lora.safetensors", family)

    state = load_file(path)
    layers = pipeline_lora(pipe)
    assert sum(k.endswith(".lora_down.weight") for k in state) == sum(len(v) for v in layers.values())
    prefixes = {k.split("_")[1] for k in state}
    assert prefixes == ({"unet", "te1", "te2"} if family == "sdxl" else {"unet", "te"})
    with safe_open(str(path), "pt") as handle:
        assert handle.metadata()["ss_network_module"] == "networks.lora"
    # the check leaves the pipeline as it found it: one adapter, drawing the same image
    assert pipe.get_list_adapters()["unet"] == ["default"]
    np.testing.assert_array_equal(sample_image(pipe), before)


def test_kohya_names_follow_sd_scripts(tiny_model, lora):
    sd1, _ = kohya.to_kohya(trained(tiny_model, lora, "sd1"), "sd1")
    for key in ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight",
                "lora_unet_up_blocks_1_attentions_2_transformer_blocks_0_attn2_to_out_0.lora_up.weight",
                "lora_unet_mid_block_attentions_0_proj_in.alpha",
                "lora_te_text_model_encoder_layers_1_self_attn_q_proj.lora_down.weight",
                "lora_te_text_model_encoder_layers_0_mlp_fc2.alpha"):
        assert key in sd1, key


@pytest.mark.slow
def test_sdxl_kohya_names_are_the_original_unet_names(tiny_model, lora):
    # sd-scripts trains SDXL on the original (SGM) UNet: down block 1 = input blocks 4-5, up block 0 = output 0-2
    sdxl, _ = kohya.to_kohya(trained(tiny_model, lora, "sdxl"), "sdxl")
    for key in ("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight",
                "lora_unet_input_blocks_1_0_in_layers_2.lora_down.weight",
                "lora_unet_input_blocks_7_1_transformer_blocks_1_ff_net_0_proj.alpha",
                "lora_unet_middle_block_1_proj_out.lora_up.weight",
                "lora_unet_middle_block_2_emb_layers_1.lora_up.weight",
                "lora_unet_output_blocks_0_1_transformer_blocks_0_attn2_to_k.lora_down.weight",
                "lora_te1_text_model_encoder_layers_0_self_attn_k_proj.lora_down.weight",
                "lora_te2_text_model_encoder_layers_1_mlp_fc1.lora_up.weight"):
        assert key in sdxl, key


def test_alpha_keeps_the_layer_scale(tiny_model, lora):
    pipe = trained(tiny_model, lora, "sd1")  # UNet alpha 8 / r 4; text encoders rsLoRA alpha 4 / sqrt(r 2)
    state, _ = kohya.to_kohya(pipe, "sd1")
    assert float(state["lora_unet_mid_block_attentions_0_proj_in.alpha"]) == pytest.approx(8.0)
    assert float(state["lora_te_text_model_encoder_layers_0_mlp_fc1.alpha"]) == pytest.approx(4 / 2**0.5 * 2)


@pytest.mark.slow
def test_half_precision_kohya_export(tiny_model, lora, tmp_path):
    pipe = trained(tiny_model, lora, "sdxl")
    path = kohya.export_kohya(pipe, tmp_path / "lora.safetensors", "sdxl", dtype=torch.float16)
    assert {v.dtype for v in load_file(path).values()} == {torch.float16}


@pytest.mark.slow
def test_wrong_names_are_caught(tiny_model, lora, tmp_path, monkeypatch):
    pipe = trained(tiny_model, lora, "sd1")
    right = kohya.KohyaNames.__call__

    def misname(self, component, module):  # a bug that drops the block index, as broken exporters do
        name = right(self, component, module)
        return name.replace("_attentions_0_", "_attentions_") if "up_blocks_1_attentions_0_" in name else name

    monkeypatch.setattr(kohya.KohyaNames, "__call__", misname)
    with pytest.raises(ModelError, match=r"lora.safetensors: .*(ignored|unexpected|not correctly renamed)"):
        kohya.export_kohya(pipe, tmp_path / "lora.safetensors", "sd1")


@pytest.mark.slow
def test_changed_scale_is_caught(tiny_model, lora, tmp_path):
    pipe = trained(tiny_model, lora, "sd1", text_encoders=False)
    state, stored = kohya.to_kohya(pipe, "sd1")
    key = "lora_unet_mid_block_attentions_0_proj_in.alpha"
    state[key] = state[key] * 2
    save_file(state, str(tmp_path / "lora.safetensors"))
    with pytest.raises(ModelError, match=r"lora_unet_mid_block_attentions_0_proj_in came back with different weights "
                                         r"or scale \(scale 2 -> 4\)"):
        verify_lora_file(pipe, tmp_path / "lora.safetensors", stored, describe=kohya.KohyaNames(pipe, "sd1"))


def test_missing_layers_are_caught(tiny_model, lora, tmp_path):
    pipe = trained(tiny_model, lora, "sd1", text_encoders=False)
    state, stored = kohya.to_kohya(pipe, "sd1")
    lost = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    for suffix in (".lora_down.weight", ".lora_up.weight", ".alpha"):
        del state[lost + suffix]
    save_file(state, str(tmp_path / "lora.safetensors"))
    with pytest.raises(ModelError, match=rf"1 of \d+ unet LoRA layers were ignored .* e.g. {lost}"):
        verify_lora_file(pipe, tmp_path / "lora.safetensors", stored, describe=kohya.KohyaNames(pipe, "sd1"))


@pytest.mark.parametrize("family", ["sd1", pytest.param("sdxl", marks=SLOW)])
def test_diffusers_format_export_reloads(tiny_model, lora, tmp_path, family):
    pipe = trained(tiny_model, lora, family)
    path = export_diffusers_lora(pipe, tmp_path / "lora")
    assert path.name == "pytorch_lora_weights.safetensors"
    fresh = tiny_model(family).pipeline
    fresh.load_lora_weights(str(path))
    np.testing.assert_allclose(sample_image(fresh), sample_image(pipe), atol=1e-5)


def test_export_needs_an_adapter_and_a_safetensors_name(tiny_model, lora, tmp_path):
    pipe = tiny_model("sd1").pipeline
    with pytest.raises(ModelError, match="the pipeline has no LoRA adapter 'default' to export"):
        kohya.export_kohya(pipe, tmp_path / "lora.safetensors", "sd1")
    with pytest.raises(ModelError, match=r"--out .*lora.ckpt: a kohya LoRA is one .safetensors file"):
        kohya.export_kohya(lora(pipe), tmp_path / "lora.ckpt", "sd1")
