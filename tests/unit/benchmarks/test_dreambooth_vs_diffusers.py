"""The DreamBooth benchmark's own logic: the reduced SD 1.5 configs, the rate arithmetic, the run order, both tools'
settings being the same, and its image folders. No timings (benchmarks/results/ holds those)."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks" / "diffusion"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load("dreambooth_vs_diffusers")
reduced = bench.reduced_sd15
TINY = reduced.Widths(unet=(32, 32, 64, 64), vae=(32, 32, 32, 32), text=24)


def test_only_the_widths_differ_from_sd15():
    sd15, cut = reduced.sd15_configs(), reduced.reduced_configs()
    changed = {"unet": {"block_out_channels", "cross_attention_dim", "attention_head_dim"},
               "vae": {"block_out_channels"}, "scheduler": set(),
               "text_encoder": {"hidden_size", "intermediate_size", "projection_dim", "num_attention_heads"}}
    for part, keys in changed.items():
        assert {k for k in sd15[part] if sd15[part][k] != cut[part][k]} == keys
    widths = reduced.Widths()
    assert cut["unet"]["block_out_channels"] == list(widths.unet)
    assert cut["unet"]["cross_attention_dim"] == cut["text_encoder"]["hidden_size"] == widths.text
    assert cut["text_encoder"]["intermediate_size"] == 4 * widths.text
    # heads cut with the width: as wide as SD 1.5's text heads, within a factor 1.25 of its UNet heads
    assert widths.text // cut["text_encoder"]["num_attention_heads"] == 768 // 12
    sd15_heads = [w // sd15["unet"]["attention_head_dim"] for w in sd15["unet"]["block_out_channels"]]
    heads = [w // cut["unet"]["attention_head_dim"] for w in cut["unet"]["block_out_channels"]]
    assert all(0.8 <= mine / theirs <= 1.25 for mine, theirs in zip(heads, sd15_heads))


@pytest.mark.parametrize("widths, message", [
    (reduced.Widths(unet=(64, 128, 256)), "need 4 multiples of 32"),
    (reduced.Widths(vae=(32, 64, 96, 100)), "need 4 multiples of 32"),
    (reduced.Widths(text=100), "multiple of the 3 heads"),
    (reduced.Widths(unet=(32, 64, 96, 96), unet_heads=3), "must split into 3 heads"),
])
def test_widths_the_architecture_cannot_take_are_refused(widths, message):
    with pytest.raises(ValueError, match=message):
        reduced.reduced_configs(widths)


def test_the_pipeline_keeps_sd15s_depth_and_is_the_same_for_a_seed():
    import torch

    first, second = (reduced.build_pipeline(TINY, seed=3, resolution=64) for _ in range(2))
    assert len(first.unet.down_blocks) == 4 and first.unet.config.layers_per_block == 2
    assert first.text_encoder.config.num_hidden_layers == 12 and first.vae_scale_factor == 8
    assert list(first.unet.config.block_out_channels) == [32, 32, 64, 64]
    for a, b in zip(first.unet.parameters(), second.unet.parameters()):
        assert torch.equal(a, b)


@pytest.mark.slow  # ~6 CPU s a count: every op of SD 1.5's depth goes through Python meta kernels
def test_flop_shares_scale_with_the_image_but_not_the_caption():
    configs = reduced.reduced_configs(TINY)
    small, large = (reduced.flop_shares(configs, side) for side in (64, 128))
    assert sum(part["share"] for part in small.values()) == pytest.approx(1.0, abs=1e-3)
    assert large["text_encode"]["gflops"] == small["text_encode"]["gflops"]  # 77 tokens whatever the image size
    assert large["vae_encode"]["gflops"] >= 4 * small["vae_encode"]["gflops"]  # 4x the pixels (and attention)
    assert large["unet_forward_backward"]["gflops"] >= 4 * small["unet_forward_backward"]["gflops"]


def _run(tool, steps, wall, cpu, rss=1000.0, batch_size=2):
    return {"tool": tool, "steps": steps, "images": bench.images_trained(steps, batch_size), "wall_seconds": wall,
            "cpu_seconds": cpu, "peak_rss_mib": rss}


def test_marginal_rates_cancel_what_both_runs_spend_once():
    # 4 steps of 2 subject + 2 class images = 16 images; 12 steps = 48: 32 more images in 80 s (32 CPU s) more.
    rates = bench.marginal_rates(_run("tunesmith", 4, 100.0, 40.0), _run("tunesmith", 12, 180.0, 72.0))
    assert rates["images_per_s"] == pytest.approx(0.4)
    assert rates["images_per_cpu_s"] == pytest.approx(1.0)
    assert rates["startup_seconds"] == pytest.approx(60.0)  # 100 s less the 40 s its 16 images took


def test_a_rate_the_load_made_unmeasurable_is_none():
    # The 12-step run took less wall time than the 4-step one (the load fell): no wall rate, the CPU rate stands.
    rates = bench.marginal_rates(_run("diffusers", 4, 100.0, 40.0), _run("diffusers", 12, 99.0, 56.0))
    assert rates["images_per_s"] is None and rates["startup_seconds"] is None
    assert rates["images_per_cpu_s"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="must differ in steps"):
        bench.marginal_rates(_run("diffusers", 4, 100.0, 40.0), _run("diffusers", 4, 120.0, 50.0))


def test_summary_takes_median_rates_and_the_largest_peak():
    runs = [_run("tunesmith", 4, 100, 40, 900), _run("diffusers", 4, 100, 40, 1000),
            _run("diffusers", 12, 260, 104, 1100), _run("tunesmith", 12, 180, 72, 950),
            _run("tunesmith", 4, 100, 40, 920), _run("diffusers", 4, 100, 40, 1000),
            _run("diffusers", 12, 180, 72, 1050), _run("tunesmith", 12, 140, 56, 940)]
    summary = bench.summarise(runs, {"tunesmith": 0.5, "diffusers": 0.6})
    assert summary["tunesmith"]["images_per_s"] == pytest.approx((32 / 80 + 32 / 40) / 2)
    assert summary["diffusers"]["images_per_cpu_s"] == pytest.approx((32 / 64 + 32 / 32) / 2)
    assert summary["tunesmith"]["peak_rss_mib"] == 950 and summary["diffusers"]["peak_rss_mib"] == 1100
    runs[7]["wall_seconds"] = 90  # the second tunesmith pair's wall rate is lost; the median is the first's
    assert bench.summarise(runs, {"tunesmith": 0.5, "diffusers": 0.6})["tunesmith"]["images_per_s"] == 32 / 80
    assert summary["diffusers"]["held_out_loss"] == 0.6


def test_runs_alternate_tools_and_lengths():
    assert bench.schedule(4, 2) == [("tunesmith", 4), ("diffusers", 4), ("diffusers", 12), ("tunesmith", 12)] * 2


def _setup(tmp_path):
    folders = {name: tmp_path / name for name in ("pipeline", "subject", "held-out", "class")}
    for folder in folders.values():
        folder.mkdir()
    (folders["pipeline"] / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    return bench.Setup(folders["pipeline"], folders["subject"], folders["held-out"], folders["class"], resolution=256,
                       batch_size=2, rank=4, learning_rate=1e-4, num_class_images=8, prior_loss_weight=0.5, seed=0)


def test_both_tools_get_the_same_settings(tmp_path):
    from tunesmith.config.load import build_config

    setup = _setup(tmp_path)
    config = build_config(bench.tunesmith_config(setup, 12, tmp_path / "run"), source="test")
    command = bench.peer_command(Path("venv"), setup, 12, tmp_path / "out")
    flag = {name: value for name, value in zip(command, command[1:]) if name.startswith("--")}
    assert int(flag["--max_train_steps"]) == config.training.max_steps == 12
    assert int(flag["--train_batch_size"]) == config.training.batch_size == 2
    assert float(flag["--learning_rate"]) == config.training.learning_rate == 1e-4
    assert int(flag["--rank"]) == config.method.r and config.method.alpha is None  # alpha = rank, as the peer's
    assert int(flag["--resolution"]) == config.data.resolution == 256
    assert float(flag["--prior_loss_weight"]) == config.method.prior_loss_weight == 0.5
    assert flag["--class_prompt"] == config.data.class_prompt
    assert flag["--instance_prompt"] == config.data.instance_prompt
    assert flag["--class_data_dir"] == config.data.class_images and flag["--instance_data_dir"] == config.data.images
    assert int(flag["--num_class_images"]) == config.data.num_class_images
    assert flag["--lr_scheduler"] == config.training.lr_scheduler == "constant"
    assert float(flag["--adam_weight_decay"]) == config.training.weight_decay
    assert float(flag["--max_grad_norm"]) == config.training.max_grad_norm
    assert int(flag["--seed"]) == config.training.seed
    assert "--center_crop" in command and config.data.center_crop and not config.data.random_flip
    assert command[:8] == ["venv/bin/accelerate", "launch", "--cpu", "--num_processes", "1", "--mixed_precision",
                           "no", str(bench.PEER_SCRIPT)]
    assert config.training.precision == "fp32"


def test_tunesmith_overrides_are_typed(tmp_path):
    config = bench.tunesmith_config(_setup(tmp_path), 4, tmp_path / "run",
                                    ["training.batch_size=4", "data.cache_latents=false", "method.dropout=0.1",
                                     "training.optimizer=adamw"])
    assert config["training"]["batch_size"] == 4 and config["data"]["cache_latents"] is False
    assert config["method"]["dropout"] == 0.1 and config["training"]["optimizer"] == "adamw"


def test_image_folders_hold_images_only_and_held_out_is_new(tmp_path):
    from PIL import Image

    images = bench.dreambooth_images
    subject = images.subject_images(tmp_path / "subject")
    held_out = images.held_out_images(tmp_path / "held-out")
    classes = images.class_images(tmp_path / "class", 3, 64)
    for folder in ("subject", "held-out", "class"):  # the peer opens every file of its folders as an image
        assert all(path.suffix == ".png" for path in (tmp_path / folder).iterdir())
    assert len(subject) == 8 and len(held_out) == 4 and len(classes) == 3
    assert {Image.open(path).size for path in classes} == {(64, 64)}
    subject_bytes = {path.read_bytes() for path in subject}
    assert not subject_bytes & {path.read_bytes() for path in held_out}
    assert len({path.read_bytes() for path in classes}) == 3


def test_the_peers_loop_time_is_read_from_its_first_complete_progress_bar():
    log = ("Steps:  50%|#####     | 6/12 [00:40<00:40, 6.7s/it, loss=2.3]\rSteps: 100%|##########| 12/12 "
           "[01:21<00:00, 6.8s/it, loss=2.3]\nModel weights saved\nSteps: 100%|##########| 12/12 [01:30<00:00]")
    assert bench.peer_loop_seconds(log, 12) == 81  # not the bar redrawn at the end, after saving
    assert bench.peer_loop_seconds("Steps: 100%|#| 3/3 [1:00:05<00:00, 6.7s/it]", 3) == 3605
    assert bench.peer_loop_seconds(log, 4) is None
