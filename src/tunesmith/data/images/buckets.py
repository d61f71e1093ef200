"""Aspect-ratio buckets: images keep their shape instead of being cropped square, and a batch is one size.

Bucket sizes keep about resolution^2 pixels with sides that are multiples of `bucket_step`, like kohya's
(e.g. 512x512, 576x448, 640x384 ... for 512). An image goes to the bucket nearest its aspect ratio among those it
can cover without being enlarged more than `max_upscale`; an image too small for all of them gets a bucket of
its own shape at the largest size allowed, so it is never blown up past the limit.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Sampler

from tunesmith.data.images.settings import ImageSettings

MAX_ASPECT = 4.0  # sides further apart than this make buckets of a handful of pixels' height


def bucket_sizes(settings: ImageSettings) -> list[tuple[int, int]]:
    """All (width, height) buckets for `settings.resolution`, squarest first."""
    step, area = settings.bucket_step, settings.resolution**2
    low = min(settings.min_bucket_side, settings.resolution)
    sizes = set()
    width = low
    while width <= area // low:
        height = min((area // width) // step * step, area // low)
        if height >= low and max(width, height) / min(width, height) <= MAX_ASPECT:
            sizes.add((width, height))
        width += step
    return sorted(sizes, key=lambda s: (abs(math.log(s[0] / s[1])), -s[0]))


def assign_bucket(width: int, height: int, settings: ImageSettings,
                  sizes: list[tuple[int, int]] | None = None) -> tuple[int, int]:
    """The bucket for an image of `width` x `height`."""
    if not settings.buckets:
        sizes = [(settings.resolution, settings.resolution)]
    sizes = sizes or bucket_sizes(settings)
    aspect = math.log(width / height)
    fitting = [s for s in sizes if max(s[0] / width, s[1] / height) <= settings.max_upscale + 1e-9]
    if fitting:
        return min(fitting, key=lambda s: (abs(math.log(s[0] / s[1]) - aspect), -s[0] * s[1]))
    # Too small for every bucket: its own shape, as large as the upscale limit allows, on the step grid.
    step = settings.bucket_step
    if not settings.buckets:
        side = max(step, int(min(width, height) * settings.max_upscale) // step * step)
        return side, side
    return (max(step, int(width * settings.max_upscale) // step * step),
            max(step, int(height * settings.max_upscale) // step * step))


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of one bucket each, in an order fixed by (seed, epoch), which resume relies on.

    Each epoch shuffles the examples of every bucket, cuts them into batches (the last of a bucket may be
    short), and shuffles the batch order across buckets. `on_epoch` is told each new epoch (the dataset draws its
    augmentations from (seed, epoch, index), so they too repeat exactly on resume).
    """

    def __init__(self, buckets: list[tuple[int, int]], batch_size: int, seed: int, shuffle: bool = True,
                 on_epoch=None):
        self.batch_size, self.seed, self.shuffle, self.on_epoch = batch_size, seed, shuffle, on_epoch
        self.groups: dict[tuple[int, int], list[int]] = {}
        for index, bucket in enumerate(buckets):
            self.groups.setdefault(bucket, []).append(index)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.on_epoch is not None:
            self.on_epoch(epoch)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        batches = []
        for bucket in sorted(self.groups):
            members = self.groups[bucket]
            if self.shuffle:
                members = [members[i] for i in torch.randperm(len(members), generator=generator).tolist()]
            batches += [members[i : i + self.batch_size] for i in range(0, len(members), self.batch_size)]
        order = torch.randperm(len(batches), generator=generator).tolist() if self.shuffle else range(len(batches))
        for i in order:
            yield batches[i]

    def __len__(self) -> int:
        return sum(-(-len(members) // self.batch_size) for members in self.groups.values())
