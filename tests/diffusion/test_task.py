"""The diffusion task on tiny pipelines: loss composition, targets, weighting, caches, and the real training loop."""

import numpy as np
import pytest
import torch
from PIL import Image

from tunesmith.data.images.dataset import ImageDataset
from tunesmith.data.images.folder import read_image_folder
from tunesmith.data.images.settings import ImageSettings
from tunesmith.tasks.diffusion.collate import VALIDATION_TIMESTEPS
from tunesmith.tasks.diffusion.objective import DiffusionObjective
from tunesmith.tasks.diffusion.task import DiffusionTask
from tunesmith.tasks.diffusion.text import encode_text, tokenize

SMALL = dict(resolution=32, bucket_step=8, min_bucket_side=16, min_size=16)


def image_folder(path, n, seed, shapes=((32, 32),)):
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        w, h = shapes[i % len(shapes)]
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path / f"{i}.png")
    return path


def dataset(path, caption, kind="instance", **settings):
    settings = ImageSettings(**{**SMALL, **settings})
    records, _ = read_image_folder(path, settings, default_caption=caption)
    return ImageDataset(records, settings, kind=kind)


def frozen_with_lora(model, text=False):
    """The method's job, done by hand: LoRA on the UNet's attention (and text encoders), everything else frozen."""
    from peft import LoraConfig, inject_adapter_in_model

    pipe = model.pipeline
    for part in (pipe.unet, pipe.vae, pipe.text_encoder, getattr(pipe, "text_encoder_2", None)):
        if part is not None:
            part.requires_grad_(False)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    if text:
        inject_adapter_in_model(LoraConfig(r=2, target_modules=["q_proj", "v_proj"]), pipe.text_encoder)
    return model


@pytest.fixture
def folders(tmp_path):
    return image_folder(tmp_path / "instance", 2, 0), image_folder(tmp_path / "class", 3, 1)


def hand_loss(task, batch, rows, prediction_type="epsilon"):
    """The DreamBooth loss of `rows` of a collated batch, composed directly from diffusers' parts."""
    pipe = task.pipeline
    with torch.no_grad():
        if "latent_parameters" in batch:
            parameters = batch["latent_parameters"][rows]
        else:
            parameters = pipe.vae.encode(batch["pixels"][rows]).latent_dist.parameters
        mean, logvar = parameters.chunk(2, dim=1)
        latents = (mean + torch.exp(0.5 * logvar) * batch["latent_noise"][rows]) * pipe.vae.config.scaling_factor
        noise, t = batch["noise"][rows], batch["timesteps"][rows]
        alphas = task.scheduler.alphas_cumprod[t][:, None, None, None]
        noisy = alphas.sqrt() * latents + (1 - alphas).sqrt() * noise
        if "prompt_embeds" in batch:
            context = batch["prompt_embeds"][rows]
        else:
            context = pipe.text_encoder(batch["input_ids"][rows])[0]
        prediction = pipe.unet(noisy, t, context).sample
        wanted = noise if prediction_type == "epsilon" else alphas.sqrt() * noise - (1 - alphas).sqrt() * latents
        return ((prediction - wanted) ** 2).mean(dim=(1, 2, 3))


@pytest.mark.parametrize("cached", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_prior_preservation_adds_the_weighted_class_term(isolated_cache, tiny_model, folders, cached):
    instances, classes = folders
    task = DiffusionTask(frozen_with_lora(tiny_model("sd1")), dataset(instances, "a photo of sks dog"),
                         class_set=dataset(classes, "a photo of a dog", kind="class"),
                         objective=DiffusionObjective(prior_loss_weight=0.5), cache_latents=cached,
                         cache_text=cached)
    _, collator = task.train_batches(type("cfg", (), {"batch_size": 2})())
    batch = collator([task.train_set[0], task.train_set[1]])
    assert batch["instances"] == 2 and batch["weight"].tolist() == [1.0, 1.0, 0.5, 0.5]
    assert ("latent_parameters" in batch) == cached and ("prompt_embeds" in batch) == cached
    with torch.no_grad():
        loss = task.loss_module()(batch, task.counts(batch).loss_units)
    errors = hand_loss(task, batch, slice(0, 4))
    expected = errors[:2].mean() + 0.5 * errors[2:].mean()  # instance mean + prior_loss_weight * class mean
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert task.counts(batch).throughput == 4


@pytest.mark.slow
def test_cached_and_fresh_batches_give_the_same_loss(isolated_cache, tiny_model, folders):
    instances, classes = folders
    losses = []
    for cached in (False, True):
        task = DiffusionTask(frozen_with_lora(tiny_model("sd1")), dataset(instances, "sks dog"),
                             class_set=dataset(classes, "a dog", kind="class"), cache_latents=cached,
                             cache_text=cached)
        _, collator = task.train_batches(type("cfg", (), {"batch_size": 2})())
        with torch.no_grad():
            batch = collator([task.train_set[0], task.train_set[1]])
            losses.append(task.loss_module()(batch, 2))
    assert task.notes == ["latents cached", "text embeddings cached"]
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_v_prediction_regresses_the_velocity(isolated_cache, tiny_model, folders):
    task = DiffusionTask(frozen_with_lora(tiny_model("sd2")), dataset(folders[0], "sks dog"))
    assert task.objective.prediction_type == "v_prediction"
    batch = task.train_batches(type("cfg", (), {"batch_size": 2})())[1]([task.train_set[0], task.train_set[1]])
    with torch.no_grad():
        loss = task.loss_module()(batch, 2)
    torch.testing.assert_close(loss, hand_loss(task, batch, slice(0, 2), "v_prediction").mean(), rtol=1e-5, atol=1e-6)


def test_min_snr_weighting_and_noise_offset(isolated_cache, tiny_model, folders):
    model = frozen_with_lora(tiny_model("sd1"))
    plain = DiffusionTask(model, dataset(folders[0], "sks dog"))
    weighted = DiffusionTask(model, dataset(folders[0], "sks dog"), objective=DiffusionObjective(snr_gamma=5.0))
    items = [plain.train_set[0], plain.train_set[1]]
    batch = plain.train_batches(type("cfg", (), {"batch_size": 2})())[1](items)
    with torch.no_grad():
        errors = hand_loss(plain, batch, slice(0, 2))
        alphas = plain.scheduler.alphas_cumprod[batch["timesteps"]]
        snr = alphas / (1 - alphas)
        expected = (errors * torch.clamp(snr, max=5.0) / snr).sum() / 2
        torch.testing.assert_close(weighted.loss_module()(batch, 2), expected, rtol=1e-5, atol=1e-6)
    offset = DiffusionTask(model, dataset(folders[0], "sks dog"), objective=DiffusionObjective(noise_offset=0.1))
    shifted = offset.train_batches(type("cfg", (), {"batch_size": 2})())[1](items)
    difference = shifted["noise"] - batch["noise"]
    assert difference.abs().max() > 0
    # one offset per image and channel, constant over the pixels
    assert torch.allclose(difference, difference[:, :, :1, :1].expand_as(difference))


def test_draws_repeat_per_epoch_and_validation_is_fixed(isolated_cache, tiny_model, folders):
    task = DiffusionTask(frozen_with_lora(tiny_model("sd1")), dataset(folders[0], "sks dog"),
                         val_set=dataset(folders[1], "sks dog", kind="validation"))
    _, collator = task.train_batches(type("cfg", (), {"batch_size": 2})())
    first, again = collator([task.train_set[0]]), collator([task.train_set[0]])
    assert all(torch.equal(first[k], again[k]) for k in ("noise", "latent_noise", "timesteps"))
    task.train_set.set_epoch(1)
    later = collator([task.train_set[0]])
    assert not torch.equal(first["noise"], later["noise"])
    held_out = task.eval_collator()([task.val_set[0], task.val_set[1]])
    assert held_out["instances"] == 2 * len(VALIDATION_TIMESTEPS) and not held_out["min_snr"]
    assert held_out["timesteps"].tolist() == [100, 300, 500, 700, 900] * 2
    task.train_set.set_epoch(5)
    assert torch.equal(task.eval_collator()([task.val_set[0], task.val_set[1]])["noise"], held_out["noise"])


def test_blank_batches_add_nothing(isolated_cache, tiny_model, folders):
    task = DiffusionTask(frozen_with_lora(tiny_model("sd1")), dataset(folders[0], "sks dog"))
    batch = task.blank(task.train_batches(type("cfg", (), {"batch_size": 2})())[1]([task.train_set[0]]))
    loss = task.loss_module()(batch, 1)
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert all(p.grad is None or not p.grad.any() for p in task.model.parameters() if p.requires_grad)


@pytest.mark.slow
def test_sdxl_conditioning_matches_the_pipeline(isolated_cache, tiny_model, folders):
    model = frozen_with_lora(tiny_model("sdxl"))
    pipe = model.pipeline
    with torch.no_grad():
        ours = encode_text([pipe.text_encoder, pipe.text_encoder_2],
                           tokenize([pipe.tokenizer, pipe.tokenizer_2], ["a photo of sks dog"]))
        embeds, _, pooled, _ = pipe.encode_prompt("a photo of sks dog", do_classifier_free_guidance=False)
    torch.testing.assert_close(ours["prompt_embeds"], embeds)
    torch.testing.assert_close(ours["pooled_prompt_embeds"], pooled)
    task = DiffusionTask(model, dataset(folders[0], "sks dog", buckets=False))
    batch = task.train_batches(type("cfg", (), {"batch_size": 2})())[1]([task.train_set[0]])
    assert batch["time_ids"].tolist() == [[32.0, 32.0, 0.0, 0.0, 32.0, 32.0]]  # original, crop, target
    with torch.no_grad():
        assert torch.isfinite(task.loss_module()(batch, 1))


def test_parameter_groups_carry_the_text_encoder_rate(isolated_cache, tiny_model, folders):
    model = frozen_with_lora(tiny_model("sd1"), text=True)
    task = DiffusionTask(model, dataset(folders[0], "sks dog"), text_encoder_lr=1e-5)
    groups = task.param_groups(0.01, 1e-4)
    unet = {id(p) for p in model.pipeline.unet.parameters() if p.requires_grad}
    text = {id(p) for p in model.pipeline.text_encoder.parameters() if p.requires_grad}
    assert {id(p) for g in groups if g["lr"] == 1e-4 for p in g["params"]} == unet
    assert {id(p) for g in groups if g["lr"] == 1e-5 for p in g["params"]} == text
    assert "text embeddings not cached: a text encoder trains" in task.notes


def test_latent_cache_off_with_flips(isolated_cache, tiny_model, folders):
    task = DiffusionTask(frozen_with_lora(tiny_model("sd1")), dataset(folders[0], "sks", random_flip=0.5))
    assert task.notes[0].startswith("latent cache off: data.random_flip") and task.train_set.latents is None


def trained_task(tiny_model, folders):
    torch.manual_seed(0)
    instances, classes = folders
    return DiffusionTask(frozen_with_lora(tiny_model("sd1")), dataset(instances, "a photo of sks dog"),
                         val_set=dataset(instances, "a photo of sks dog", kind="validation"),
                         class_set=dataset(classes, "a photo of a dog", kind="class"))


@pytest.mark.slow
def test_trains_through_the_loop_and_resumes_exactly(isolated_cache, tiny_model, folders, tmp_path):
    from tunesmith import events as ev
    from tunesmith.config.training import TrainingConfig
    from tunesmith.train.distributed import reset_accelerate_state
    from tunesmith.train.loop import train

    def accelerator():
        from accelerate import Accelerator

        reset_accelerate_state()
        return Accelerator(cpu=True)

    config = TrainingConfig(max_steps=6, batch_size=2, learning_rate=1e-3, precision="fp32", log_every=1,
                            eval_every=100, save_every=3, lr_scheduler="constant", max_grad_norm=None)
    straight = trained_task(tiny_model, folders)
    lora = {n: p.detach().clone() for n, p in straight.model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in straight.model.named_parameters() if not p.requires_grad}
    seen = []
    straight_result = train(straight, config, tmp_path / "a", accelerator(), events=ev.EventStream([seen.append]))
    steps = [e for e in seen if isinstance(e, ev.Step)]
    assert {e.unit for e in steps} == {"images"} and steps[-1].seen == 6 * 4  # 2 instance + 2 class per step
    changed = {n for n, p in straight.model.named_parameters() if n in lora and not torch.equal(p, lora[n])}
    assert changed == set(lora)  # every LoRA tensor trained
    assert all(torch.equal(p, frozen[n]) for n, p in straight.model.named_parameters() if n in frozen)
    assert straight_result.val_loss is not None

    class Crash(Exception):
        pass

    def crash(state):
        if state.step == 4:
            raise Crash

    with pytest.raises(Crash):
        train(trained_task(tiny_model, folders), config, tmp_path / "b", accelerator(), on_step_end=crash)
    resumed = trained_task(tiny_model, folders)
    train(resumed, config, tmp_path / "b", accelerator(), resume=True)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)


@pytest.mark.slow
def test_loss_on_the_training_images_falls(isolated_cache, tiny_model, folders):
    task = trained_task(tiny_model, folders)
    task.model.unet.requires_grad_(True)  # as full DreamBooth: a random tiny UNet learns little through LoRA alone
    loss_module = task.loss_module()
    collator = task.eval_collator()
    batch = collator([task.val_set[0], task.val_set[1]])
    parameters = [p for p in task.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-3)
    with torch.no_grad():
        before = float(loss_module(batch, batch["instances"]))
    sampler, train_collator = task.train_batches(type("cfg", (), {"batch_size": 2})())
    for epoch in range(20):
        sampler.set_epoch(epoch)
        for indices in sampler:
            train_batch = train_collator([task.train_set[i] for i in indices])
            loss = loss_module(train_batch, train_batch["instances"])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    with torch.no_grad():
        after = float(loss_module(batch, batch["instances"]))
    assert after < before * 0.8, (before, after)
