"""The kohya key scheme on SD 1.5's real architecture (random weights from the shipped configs; ~4 GB fp32)."""

import importlib.util
from pathlib import Path

import pytest

FULL_SIZE = Path(__file__).resolve().parents[2] / "benchmarks" / "diffusion" / "full_size.py"


@pytest.mark.slow
def test_sd15_kohya_lora_reloads_with_no_ignored_key(tmp_path):
    spec = importlib.util.spec_from_file_location("full_size", FULL_SIZE)
    full_size = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(full_size)

    result = full_size.kohya_round_trip("sd1", tmp_path / "sd15.safetensors")  # raises if a layer is ignored
    # what every sd-scripts SD 1.5 LoRA holds: 16 transformers x 12 layers in the UNet, 12 x 6 in CLIP-L
    assert result["kohya_modules"]["lora_unet_"] == 192 == result["trained_layers"]["unet"]
    assert result["kohya_modules"]["lora_te_"] == 72 == result["trained_layers"]["text_encoder"]
    assert all(loss == loss for loss in result["losses"])  # finite, not NaN
