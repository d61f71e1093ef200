"""Class images drawn when missing and reused when present; latent and text-embedding caches."""

import numpy as np
import pytest
import torch
from PIL import Image

from tunesmith.data.images import class_images, latent_cache
from tunesmith.data.images.class_images import ClassImageSpec, ensure_class_images
from tunesmith.data.images.dataset import ImageDataset
from tunesmith.data.images.folder import read_image_folder
from tunesmith.data.images.settings import ImageSettings
from tunesmith.data.images.transform import prepare

SMALL = dict(resolution=32, bucket_step=8, min_bucket_side=16, min_size=16)


class CountingPipeline:
    """The real pipeline, counting the images it is asked to draw."""

    def __init__(self, pipeline):
        self.pipeline, self.drawn = pipeline, 0

    def __call__(self, *args, **kwargs):
        self.drawn += kwargs["num_images_per_prompt"]
        return self.pipeline(*args, **kwargs)


@pytest.fixture
def counting(tiny_model):
    return CountingPipeline(tiny_model("sd1").pipeline)


def spec(count, prompt="a photo of a dog"):
    return ClassImageSpec(prompt=prompt, count=count, resolution=32, steps=2, batch_size=2)


def test_class_images_drawn_when_missing_and_reused(isolated_cache, counting):
    first = ensure_class_images(counting, spec(3), fingerprint="base-1")
    assert counting.drawn == 3 and len(first) == 3 and all(p.is_file() for p in first)
    assert Image.open(first[0]).size == (32, 32)
    assert ensure_class_images(counting, spec(3), fingerprint="base-1") == first
    assert counting.drawn == 3  # reused, nothing drawn
    more = ensure_class_images(counting, spec(4), fingerprint="base-1")
    assert more[:3] == first and counting.drawn == 4  # only the missing one
    other_model = ensure_class_images(counting, spec(3), fingerprint="base-2")
    assert set(other_model).isdisjoint(first) and counting.drawn == 7
    ensure_class_images(counting, spec(3, prompt="a photo of a cat"), fingerprint="base-1")
    assert counting.drawn == 10


def test_users_class_folder_is_topped_up(isolated_cache, counting, tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("mine-1.jpg", "mine-2.png"):
        Image.new("RGB", (32, 32), (20, 90, 160)).save(folder / name)
    Image.new("RGB", (32, 32)).save(folder / "tunesmith-class-0123456789ab-00000.png")  # drawn for another prompt
    paths = ensure_class_images(counting, spec(3), fingerprint="base-1", folder=folder)
    assert [p.name for p in paths[:2]] == ["mine-1.jpg", "mine-2.png"]
    assert paths[2].parent == folder and paths[2].name.startswith("tunesmith-class-")
    assert "0123456789ab" not in paths[2].name and counting.drawn == 1
    assert ensure_class_images(counting, spec(2), fingerprint="base-1", folder=folder) == paths[:2]
    assert counting.drawn == 1


@pytest.fixture
def image_set(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(40, 32), (32, 40), (32, 32)]):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    records, _ = read_image_folder(folder, ImageSettings(**SMALL), default_caption="sks")
    return ImageDataset(records, ImageSettings(**SMALL))


def test_cached_latents_equal_freshly_encoded(isolated_cache, tiny_model, image_set, monkeypatch):
    vae = tiny_model("sd1").pipeline.vae
    wanted = [(i, image_set.buckets[i]) for i in range(len(image_set))]
    cached = latent_cache.cached_latents(vae, image_set, wanted, "base-1")
    with torch.no_grad():
        for index, size in wanted:
            pixels = torch.from_numpy(prepare(image_set.records[index].path, size).pixels)[None]
            fresh = vae.encode(pixels).latent_dist.parameters[0]
            torch.testing.assert_close(cached[(index, size)], fresh, rtol=1e-5, atol=1e-5)

    def no_encoding(*args):
        raise AssertionError("encoded again although the cache holds these latents")

    monkeypatch.setattr(latent_cache, "encode_latents", no_encoding)
    again = latent_cache.cached_latents(vae, image_set, wanted, "base-1")
    assert all(torch.equal(again[k], cached[k]) for k in cached)
    # served from the cache, an example carries the latent distribution instead of pixels
    image_set.latents = again
    item = image_set[0]
    assert "pixels" not in item and torch.equal(item["latent_parameters"], cached[wanted[0]])
    assert item["crop_top_left"] == prepare(image_set.records[0].path, wanted[0][1]).crop_top_left


def test_latent_cache_invalidated_by_images_model_and_settings(isolated_cache, tiny_model, image_set, monkeypatch):
    vae = tiny_model("sd1").pipeline.vae
    wanted = [(0, image_set.buckets[0])]
    latent_cache.cached_latents(vae, image_set, wanted, "base-1")
    calls = []
    real = latent_cache.encode_latents
    monkeypatch.setattr(latent_cache, "encode_latents", lambda *a: calls.append(1) or real(*a))
    latent_cache.cached_latents(vae, image_set, wanted, "base-2")  # another model
    assert wanted[0][1] != (40, 24)
    latent_cache.cached_latents(vae, image_set, [(0, (40, 24))], "base-1")  # another size
    Image.new("RGB", (40, 32), (1, 2, 3)).save(image_set.records[0].path)  # the image changed
    latent_cache.cached_latents(vae, image_set, wanted, "base-1")
    assert len(calls) == 3


def test_latent_cache_off_while_pixels_are_augmented():
    assert latent_cache.latent_caching_allowed(ImageSettings(**SMALL, caption_dropout=0.1)) == (True, "")
    allowed, why = latent_cache.latent_caching_allowed(ImageSettings(**SMALL, random_flip=0.5, center_crop=False))
    assert not allowed
    assert why == ("latent cache off: random crop (data.center_crop: false), data.random_flip changes the images "
                   "every epoch")


def test_text_embeddings_cached_per_caption(isolated_cache):
    calls = []

    def encode(captions):
        calls.append(list(captions))
        return {"prompt_embeds": torch.stack([torch.full((2, 3), float(len(c))) for c in captions]),
                "pooled_prompt_embeds": torch.stack([torch.full((3,), float(len(c)) + 0.5) for c in captions])}

    captions = ["sks dog", "", "a photo of sks dog", "sks dog"]
    first = latent_cache.cached_text_embeddings(encode, captions, "base-1", "sd1")
    assert sorted(first) == ["", "a photo of sks dog", "sks dog"] and len(calls) == 1
    assert torch.equal(first["sks dog"]["prompt_embeds"], torch.full((2, 3), 7.0))
    assert torch.equal(first[""]["pooled_prompt_embeds"], torch.full((3,), 0.5))
    again = latent_cache.cached_text_embeddings(encode, captions, "base-1", "sd1")
    assert len(calls) == 1 and torch.equal(again["sks dog"]["prompt_embeds"], first["sks dog"]["prompt_embeds"])
    latent_cache.cached_text_embeddings(encode, captions + ["new"], "base-1", "sd1")
    assert len(calls) == 2


def test_generated_names_carry_the_key():
    key = spec(3).key("base-1")
    assert key != spec(3).key("base-2") != spec(3, prompt="x").key("base-1")
    assert class_images.GENERATED_PREFIX == "tunesmith-class-"
