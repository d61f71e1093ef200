"""Loading SD models offline: diffusers folders, single-file checkpoints in the original layout, the shipped configs."""

import json
import shutil

import numpy as np
import pytest
import torch

from tunesmith.errors import ModelError
from tunesmith.models.diffusion import (FAMILIES, clip_tokenizer, detect_family, load_diffusion, model_fingerprint,
                                        shipped_config)
from tunesmith.models.diffusion_layout import pipeline_to_original, save_single_file

SLOW = pytest.mark.slow  # the SD 1.x variant of each check stays in the fast suite


def config_only(folder, target):
    """A copy of a diffusers folder without its weights: what `config=` needs for a non-standard architecture."""
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("*.safetensors"))
    return target


def test_tokenizer_is_openai_clip():
    tokenizer = clip_tokenizer()
    # ids of OpenAI's CLIP tokenizer (openai/clip-vit-large-patch14) for this prompt
    assert tokenizer("a photo of a dog").input_ids == [49406, 320, 1125, 539, 320, 1929, 49407]
    assert len(tokenizer) == 49408 and tokenizer.model_max_length == 77
    assert clip_tokenizer(pad_token="!").pad_token_id == 0


@pytest.mark.parametrize("family, sizes", [
    ("sd1", {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}),
    pytest.param("sd2", {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840}, marks=SLOW),
    pytest.param("sdxl", {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480,
                          "text_encoder_2": 694_659_840}, marks=SLOW),
])
def test_shipped_configs_build_the_published_architectures(family, sizes):
    # Parameter counts of SD 1.5, SD 2.1 and SDXL base 1.0; built on the meta device, so no memory is used.
    import diffusers
    import transformers
    from accelerate import init_empty_weights

    folder = shipped_config(FAMILIES[family])
    index = json.loads((folder / "model_index.json").read_text())
    for component, expected in sizes.items():
        library, class_name = index[component]
        cls = getattr(diffusers if library == "diffusers" else transformers, class_name)
        with init_empty_weights():
            if library == "diffusers":
                model = cls.from_config(cls.load_config(folder / component))
            else:
                model = cls(cls.config_class.from_pretrained(folder / component))
        assert sum(p.numel() for p in model.parameters()) == expected, component


@pytest.mark.parametrize("family, prediction", [("sd1", "epsilon"), pytest.param("sd2", "v_prediction", marks=SLOW),
                                                pytest.param("sdxl", "epsilon", marks=SLOW)])
def test_diffusers_folder_loads_with_its_family(tiny_dirs, family, prediction):
    model = load_diffusion(tiny_dirs[family])
    assert model.family.name == family
    assert model.prediction_type == prediction
    assert type(model.pipeline).__name__ == model.family.pipeline


@pytest.mark.slow
def test_prediction_type_override(tiny_sd2_dir):
    model = load_diffusion(tiny_sd2_dir, prediction_type="epsilon")
    assert model.prediction_type == "epsilon" == model.pipeline.scheduler.config.prediction_type
    with pytest.raises(ModelError, match="prediction_type: 'x0' is not one of epsilon, v_prediction"):
        load_diffusion(tiny_sd2_dir, prediction_type="x0")


@pytest.mark.parametrize("family", ["sd1", pytest.param("sd2", marks=SLOW), pytest.param("sdxl", marks=SLOW)])
def test_single_file_round_trip(tiny_dirs, tiny_model, tmp_path, sample, family):
    original = tiny_model(family).pipeline
    checkpoint = tmp_path / "model.safetensors"
    save_single_file(original, checkpoint, family)

    from safetensors import safe_open

    with safe_open(str(checkpoint), "pt") as handle:
        keys = list(handle.keys())
    assert detect_family(keys).name == family
    assert all(k.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.", "conditioner."))
               for k in keys)

    loaded = load_diffusion(checkpoint, config=config_only(tiny_dirs[family], tmp_path / "configs"))
    assert loaded.family.name == family
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if getattr(original, name, None) is None:
            continue
        want, got = getattr(original, name).state_dict(), getattr(loaded.pipeline, name).state_dict()
        assert want.keys() == got.keys(), name
        assert all(torch.equal(want[k], got[k]) for k in want), name
    np.testing.assert_array_equal(sample(original), sample(loaded.pipeline))


def test_single_file_layout_matches_the_original_names(tiny_model):
    state = pipeline_to_original(tiny_model("sd1").pipeline, "sd1")
    # names every SD 1.x checkpoint has (layers_per_block=2: input block 3 downsamples, output block 2 upsamples)
    for key in ("model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight",
                "model.diffusion_model.input_blocks.3.0.op.weight",
                "model.diffusion_model.middle_block.1.proj_in.weight",
                "model.diffusion_model.middle_block.2.in_layers.0.weight",
                "model.diffusion_model.output_blocks.2.1.conv.weight",
                "model.diffusion_model.output_blocks.3.0.skip_connection.weight",
                "model.diffusion_model.time_embed.0.weight", "model.diffusion_model.out.2.weight",
                "first_stage_model.encoder.mid.attn_1.q.weight", "first_stage_model.decoder.up.0.block.0.conv1.weight",
                "cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight"):
        assert key in state, key
    assert state["first_stage_model.encoder.mid.attn_1.q.weight"].ndim == 4  # 1x1 convolutions, as in the original


@pytest.mark.slow
def test_single_file_of_another_architecture_needs_config(tiny_model, tmp_path):
    checkpoint = tmp_path / "tiny.safetensors"
    save_single_file(tiny_model("sd1").pipeline, checkpoint, "sd1")
    with pytest.raises(ModelError, match=r"could not load it as an SD 1.x checkpoint: .*set config: to a diffusers"):
        load_diffusion(checkpoint)  # the shipped SD 1.5 configs do not fit the tiny weights


@pytest.mark.slow
def test_pickle_checkpoint_needs_allow_pickle(tiny_sd_dir, tiny_model, tmp_path):
    original = tiny_model("sd1").pipeline
    state = pipeline_to_original(original, "sd1")
    checkpoint = tmp_path / "model.ckpt"
    torch.save({"state_dict": state}, checkpoint)
    with pytest.raises(ModelError, match=r"model.ckpt: a pickle checkpoint can run code when loaded; convert it to "
                                         r"\.safetensors, or pass --allow-pickle"):
        load_diffusion(checkpoint, config=tiny_sd_dir)
    loaded = load_diffusion(checkpoint, allow_pickle=True, config=config_only(tiny_sd_dir, tmp_path / "configs"))
    assert torch.equal(loaded.pipeline.unet.conv_in.weight, original.unet.conv_in.weight)


# A pickle payload (its __reduce__ writes the canary) planted where a diffusion model's weights belong: it never
# runs, and the refusal is tunesmith's one sentence, not torch's text (which offers unsafe loading, in colour) or
# diffusers' "Unable to load weights".
WEIGHTS_ONLY = ("{}: its pickle weights ask to run code or build objects other than tensors, which tunesmith's "
                "weights-only loader refuses even with --allow-pickle; convert them to safetensors where you trust "
                "them")


@pytest.fixture
def canary(tmp_path):
    path = tmp_path / "canary"
    yield path
    assert not path.exists(), "a planted payload ran"


def test_a_payload_in_a_pickle_checkpoint_never_runs(tmp_path, canary):
    from tests.unit.models.test_hostile_files import plant

    checkpoint = tmp_path / "model.ckpt"
    plant(checkpoint, canary)
    with pytest.raises(ModelError, match="a pickle checkpoint can run code when loaded"):
        load_diffusion(checkpoint)
    with pytest.raises(ModelError) as info:
        load_diffusion(checkpoint, allow_pickle=True)
    assert str(info.value) == WEIGHTS_ONLY.format(checkpoint)


def test_a_payload_in_a_pickle_only_diffusers_folder_never_runs(tiny_sd_dir, tmp_path, canary):
    from safetensors.torch import load_file

    from tests.unit.models.test_hostile_files import plant

    folder = shutil.copytree(tiny_sd_dir, tmp_path / "pickled")
    for weights in folder.glob("*/*.safetensors"):  # every component's weights as the pickle its library reads
        name = "pytorch_model.bin" if weights.name == "model.safetensors" else weights.stem + ".bin"
        if weights.parent.name == "unet":
            plant(weights.with_name(name), canary)
        else:
            torch.save(load_file(weights), weights.with_name(name))
        weights.unlink()
    with pytest.raises(ModelError) as info:
        load_diffusion(folder)
    assert str(info.value) == (
        f"{folder}: weights are only in pickle files (text_encoder/pytorch_model.bin, "
        "unet/diffusion_pytorch_model.bin, vae/diffusion_pytorch_model.bin), which can run code when loaded; "
        "convert them to safetensors, or pass --allow-pickle if you trust their source")
    with pytest.raises(ModelError) as info:
        load_diffusion(folder, allow_pickle=True)
    assert str(info.value) == WEIGHTS_ONLY.format(folder)


@pytest.mark.parametrize("keys, message", [
    (["conditioner.embedders.0.model.positional_embedding"], "SDXL refiner"),
    (["down_blocks.0.resnets.0.conv1.weight"], "diffusers-named or LoRA weights"),
    (["foo.weight"], "not a Stable Diffusion 1.x / 2.x / SDXL checkpoint"),
])
def test_detect_family_refuses_other_checkpoints(keys, message):
    with pytest.raises(ModelError, match=message):
        detect_family(keys, "x.safetensors")


def test_bad_model_paths(tmp_path):
    with pytest.raises(ModelError, match="model not found: .*nowhere"):
        load_diffusion(tmp_path / "nowhere")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ModelError, match="no model_index.json; expected a diffusers pipeline folder"):
        load_diffusion(tmp_path / "folder")
    (tmp_path / "model.gguf").write_bytes(b"x")
    with pytest.raises(ModelError, match=r"expected a \.safetensors checkpoint .* not a '\.gguf' file"):
        load_diffusion(tmp_path / "model.gguf")
    (tmp_path / "broken.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="broken.safetensors: not a readable safetensors file"):
        load_diffusion(tmp_path / "broken.safetensors")


def test_fingerprint_follows_the_weights(tiny_sd_dir, tmp_path):
    copy = shutil.copytree(tiny_sd_dir, tmp_path / "copy")
    assert model_fingerprint(copy) == model_fingerprint(tiny_sd_dir)  # a moved copy keeps its identity
    weights = next(copy.glob("unet/*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert model_fingerprint(copy) != model_fingerprint(tiny_sd_dir)
