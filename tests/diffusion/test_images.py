"""Image folders, captions, bad files, transforms, buckets and the bucket sampler."""

import json

import numpy as np
import pytest
from PIL import Image

from tunesmith.data.images.buckets import BucketBatchSampler, assign_bucket, bucket_sizes
from tunesmith.data.images.dataset import ImageDataset
from tunesmith.data.images.folder import read_image_folder
from tunesmith.data.images.settings import ImageSettings
from tunesmith.data.images.transform import load_rgb, prepare
from tunesmith.errors import ConfigError, DataError

SMALL = dict(resolution=64, bucket_step=8, min_bucket_side=32, min_size=16)


def picture(path, width, height, colour=(200, 30, 30)):
    """A left-to-right gradient, so crops and flips are visible in the pixels."""
    ramp = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None].repeat(height, 0)
    pixels = np.concatenate([ramp, np.full((height, width, 1), colour[1], np.uint8), 255 - ramp], axis=2)
    Image.fromarray(pixels).save(path)
    return path


def test_captions_from_txt_metadata_and_default(tmp_path):
    picture(tmp_path / "a.png", 64, 64)
    picture(tmp_path / "b.png", 64, 64)
    picture(tmp_path / "c.jpg", 64, 64)
    (tmp_path / "a.txt").write_text("a photo of sks dog, sitting\n")
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "b.png", "text": "sks dog running"}) + "\n")
    records, bad = read_image_folder(tmp_path, ImageSettings(**SMALL), default_caption="a photo of sks dog")
    assert [(r.path.name, r.caption) for r in records] == [
        ("a.png", "a photo of sks dog, sitting"), ("b.png", "sks dog running"), ("c.jpg", "a photo of sks dog")]
    assert bad == []


def test_missing_caption_names_the_file(tmp_path):
    picture(tmp_path / "a.png", 64, 64)
    with pytest.raises(DataError, match=r"a.png: no caption; add a.txt, a line in metadata.jsonl, or set "
                                        r"data.instance_prompt"):
        read_image_folder(tmp_path, ImageSettings(**SMALL))


def test_bad_metadata_line_is_named(tmp_path):
    picture(tmp_path / "a.png", 64, 64)
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png", "text": "x"}\n{"file_name": "a.png"}\n')
    with pytest.raises(DataError, match=r"metadata.jsonl, line 2: no caption; expected one of the keys text, caption"):
        read_image_folder(tmp_path, ImageSettings(**SMALL))


def bad_folder(tmp_path):
    picture(tmp_path / "good.png", 64, 48)
    picture(tmp_path / "tiny.png", 12, 40)
    (tmp_path / "notes.png").write_text("this is not an image")
    picture(tmp_path / "whole.jpg", 64, 64)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])  # a download that stopped half way
    return tmp_path


def test_bad_images_are_named_and_skipped(tmp_path):
    with pytest.warns(UserWarning, match="skipped 3 bad image"):
        records, bad = read_image_folder(bad_folder(tmp_path), ImageSettings(**SMALL), default_caption="x")
    assert [r.path.name for r in records] == ["good.png", "whole.jpg"]
    reasons = {b.path.name: b.reason for b in bad}
    assert reasons["tiny.png"] == "12x40 is smaller than data.min_size (16 px on the shorter side)"
    assert reasons["notes.png"] == "not an image PIL can read"
    assert reasons["cut.jpg"].startswith("unreadable or truncated image")


def test_bad_images_refused_on_error(tmp_path):
    with pytest.raises(DataError, match=r"cut.jpg: unreadable or truncated image .* \(set data.on_bad_image: skip"):
        read_image_folder(bad_folder(tmp_path), ImageSettings(**SMALL, on_bad_image="error"), default_caption="x")


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="data.on_bad_image: 'ignore' is not one of skip, error"):
        ImageSettings(on_bad_image="ignore")
    with pytest.raises(ConfigError, match="data.random_flip: 1.5 is not a probability"):
        ImageSettings(random_flip=1.5)
    with pytest.raises(ConfigError, match=r"data.resolution: 500 is not a multiple of data.bucket_step \(64\)"):
        ImageSettings(resolution=500)


def test_exif_orientation_and_rgb(tmp_path):
    image = Image.new("RGB", (40, 20), (10, 200, 10))
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    image.save(tmp_path / "turned.jpg", exif=exif)
    assert load_rgb(tmp_path / "turned.jpg").size == (20, 40)
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert load_rgb(tmp_path / "clear.png").getpixel((0, 0)) == (255, 255, 255)  # transparency becomes white
    Image.new("L", (8, 8), 90).save(tmp_path / "grey.png")
    assert load_rgb(tmp_path / "grey.png").mode == "RGB"


def test_resize_crop_and_flip(tmp_path):
    path = picture(tmp_path / "wide.png", 128, 64)
    centre = prepare(path, (32, 32))
    assert centre.pixels.shape == (3, 32, 32) and centre.pixels.dtype == np.float32
    assert -1.0 <= centre.pixels.min() and centre.pixels.max() <= 1.0
    assert centre.original_size == (64, 128) and centre.crop_top_left == (0, 16)  # 64x32 resized, centre of width
    flipped = prepare(path, (32, 32), flip=True)
    np.testing.assert_allclose(flipped.pixels, centre.pixels[:, :, ::-1], atol=1e-6)
    import random

    crops = {prepare(path, (32, 32), center_crop=False, rng=random.Random(s)).crop_top_left for s in range(8)}
    assert len(crops) > 1 and all(top == 0 and 0 <= left <= 32 for top, left in crops)


def test_bucket_sizes_keep_the_area_on_the_step_grid():
    settings = ImageSettings(resolution=512)
    sizes = bucket_sizes(settings)
    assert sizes[0] == (512, 512)
    assert {(576, 448), (448, 576), (640, 384), (768, 320), (1024, 256)} <= set(sizes)
    assert all(w % 64 == 0 and h % 64 == 0 and w * h <= 512 * 512 for w, h in sizes)


def test_bucketing_groups_sizes():
    settings = ImageSettings(**SMALL)
    assert assign_bucket(640, 480, settings) == assign_bucket(800, 600, settings) == (72, 56)
    assert assign_bucket(480, 640, settings) == (56, 72)
    assert assign_bucket(1000, 1000, settings) == (64, 64)
    # 20x20 may grow only 2x (max_upscale): a 40x40 bucket of its own, not 64x64
    assert assign_bucket(20, 20, settings) == (40, 40)
    assert assign_bucket(20, 20, ImageSettings(**SMALL, max_upscale=4.0)) == (64, 64)
    assert assign_bucket(640, 480, ImageSettings(**SMALL, buckets=False)) == (64, 64)


def test_sampler_batches_come_from_one_bucket_in_a_repeatable_order(tmp_path):
    shapes = [(64, 48)] * 5 + [(48, 64)] * 3 + [(64, 64)] * 4
    for i, (w, h) in enumerate(shapes):
        picture(tmp_path / f"{i:02d}.png", w, h)
    records, _ = read_image_folder(tmp_path, ImageSettings(**SMALL), default_caption="x")
    dataset = ImageDataset(records, ImageSettings(**SMALL, seed=3))
    sampler = dataset.sampler(batch_size=2)
    epochs = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        epochs.append(list(sampler))
        for batch in epochs[-1]:
            assert len({dataset.buckets[i] for i in batch}) == 1
        assert sorted(i for batch in epochs[-1] for i in batch) == list(range(12))
        assert len(epochs[-1]) == len(sampler) == 3 + 2 + 2
    assert epochs[0] != epochs[1]
    sampler.set_epoch(0)
    assert list(sampler) == epochs[0]
    assert dataset.epoch == 0  # the sampler tells the dataset, whose augmentations follow the epoch
    again = BucketBatchSampler(dataset.buckets, 2, seed=3)
    assert list(again) == epochs[0]


def test_dataset_items_follow_bucket_and_epoch(tmp_path):
    for i in range(3):
        picture(tmp_path / f"{i}.png", 96, 64)
    records, _ = read_image_folder(tmp_path, ImageSettings(**SMALL), default_caption="sks")
    settings = ImageSettings(**SMALL, random_flip=0.5, caption_dropout=0.5, center_crop=False)
    dataset = ImageDataset(records, settings)
    width, height = dataset.buckets[0]
    assert (width, height) == (80, 48)  # 96x64 (3:2) -> the 5:3 bucket nearest its shape
    assert dataset[0]["pixels"].shape == (3, height, width)
    draws = []
    for epoch in range(6):
        dataset.set_epoch(epoch)
        first = dataset[0]
        dataset.set_epoch(epoch)
        assert np.array_equal(first["pixels"].numpy(), dataset[0]["pixels"].numpy())  # repeatable
        draws.append((first["caption"], first["crop_top_left"], float(first["pixels"][0, 0, 0])))
    assert len(set(draws)) > 1
    assert {caption for caption, _, _ in draws} <= {"sks", ""}
