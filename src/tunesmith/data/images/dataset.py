"""Image examples for the diffusion task: each is prepared at its bucket's size with repeatable augmentations.

Augmentations (random crop, flip, caption dropout) are drawn from (seed, epoch, index): the same epoch gives the
same images, so resume continues exactly, while each epoch still sees new crops and flips.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from tunesmith.data.images.buckets import BucketBatchSampler, assign_bucket, bucket_sizes
from tunesmith.data.images.folder import ImageRecord
from tunesmith.data.images.settings import ImageSettings
from tunesmith.data.images.transform import centre_crop_origin, cover, prepare


class ImageDataset(Sequence):
    def __init__(self, records: list[ImageRecord], settings: ImageSettings, kind: str = "instance"):
        self.records, self.settings, self.kind = records, settings, kind  # kind: "instance" | "class" | ...
        sizes = bucket_sizes(settings) if settings.buckets else None
        self.buckets = [assign_bucket(r.width, r.height, settings, sizes) for r in records]
        self.epoch = 0
        self.latents: dict | None = None  # (index, size) -> cached latent distribution parameters

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        return self.item(index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def sampler(self, batch_size: int, shuffle: bool = True) -> BucketBatchSampler:
        return BucketBatchSampler(self.buckets, batch_size, self.settings.seed, shuffle, on_epoch=self.set_epoch)

    def item(self, index: int, size: tuple[int, int] | None = None, epoch: int | None = None) -> dict:
        """Example `index` prepared at `size` (width, height), by default its own bucket, as in `epoch`."""
        settings, record = self.settings, self.records[index]
        size = size or self.buckets[index]
        epoch = self.epoch if epoch is None else epoch
        rng = random.Random(f"{settings.seed}:{self.kind}:{epoch}:{index}")
        flip = rng.random() < settings.random_flip
        caption = "" if rng.random() < settings.caption_dropout else record.caption
        example = {"index": index, "kind": self.kind, "epoch": epoch, "caption": caption,
                   "target_size": (size[1], size[0])}
        cached = self.latents.get((index, size)) if self.latents is not None else None
        if cached is not None:  # cached only where nothing above is random (see latent_cache.caching_allowed)
            example.update(latent_parameters=cached, **self._conditioning(index, size))
            return example
        prepared = prepare(record.path, size, settings.center_crop, flip, rng)
        example.update(pixels=torch.from_numpy(prepared.pixels), original_size=prepared.original_size,
                       crop_top_left=prepared.crop_top_left)
        return example

    def _conditioning(self, index: int, size: tuple[int, int]) -> dict:
        # What prepare() reports for a centre crop, without decoding the image.
        record = self.records[index]
        return {"original_size": (record.height, record.width),
                "crop_top_left": centre_crop_origin(cover(record.width, record.height, size), size)}
