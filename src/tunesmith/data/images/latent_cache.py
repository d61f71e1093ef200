"""Encode images with the VAE (and captions with the text encoders) once, and reuse the result across runs.

The key covers everything the encoding depends on: the model's fingerprint, every image's bytes and the size it
is prepared at, the crop setting and the encoder version; change any of them and a new entry is written, so a
stale one is never read. Latents are cached as the VAE's latent distribution (mean and log-variance), so each step
still samples from it exactly as when encoding afresh. Random crops or flips make a fixed latent wrong, so the
latent cache is off while they are on; the text cache is off while a text encoder trains. Entries are safetensors.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from tunesmith.cache import cache_root
from tunesmith.data.images.settings import ImageSettings
from tunesmith.data.images.transform import prepare

ENCODER_VERSION = 1  # bump when transform.py changes what an image becomes
ENCODE_BATCH = 4


def latent_caching_allowed(settings: ImageSettings) -> tuple[bool, str]:
    """(allowed, why not): a latent cached once is only right when every epoch prepares the image alike."""
    if settings.image_augmentations:
        return False, f"latent cache off: {', '.join(settings.image_augmentations)} changes the images every epoch"
    return True, ""


def cached_latents(vae, dataset, wanted: list[tuple[int, tuple[int, int]]], fingerprint: str,
                   ) -> dict[tuple[int, tuple[int, int]], torch.Tensor]:
    """Latent distribution parameters for each (index, (width, height)) of `dataset`, from the cache or the VAE."""
    wanted = sorted(set(wanted))
    key = _latent_key(dataset, wanted, fingerprint)
    path = cache_root() / "latents" / f"{key}.safetensors"
    if path.is_file():
        from safetensors.torch import load_file

        stored = load_file(str(path))
        return {item: stored[str(n)] for n, item in enumerate(wanted)}
    latents = encode_latents(vae, dataset, wanted)
    _save(path, {str(n): latents[item] for n, item in enumerate(wanted)})
    return latents


def encode_latents(vae, dataset, wanted) -> dict[tuple[int, tuple[int, int]], torch.Tensor]:
    """Fresh VAE latent-distribution parameters (2 x latent channels, h, w) per (index, size), batched by size."""
    out = {}
    by_size: dict[tuple[int, int], list[int]] = {}
    for index, size in wanted:
        by_size.setdefault(size, []).append(index)
    with torch.no_grad():
        for size, indices in by_size.items():
            for start in range(0, len(indices), ENCODE_BATCH):
                chunk = indices[start : start + ENCODE_BATCH]
                images = [prepare(dataset.records[i].path, size).pixels for i in chunk]  # centre crop, no flip
                pixels = torch.from_numpy(np.stack(images)).to(vae.device, vae.dtype)
                parameters = vae.encode(pixels).latent_dist.parameters.float().cpu()
                out.update({(i, size): p.contiguous() for i, p in zip(chunk, parameters)})
    return out


def cached_text_embeddings(encode: Callable[[list[str]], dict[str, torch.Tensor]], captions: list[str],
                           fingerprint: str, name: str) -> dict[str, dict[str, torch.Tensor]]:
    """{caption: {tensor name: tensor}} for every caption, from the cache or from `encode` (a batch of captions ->
    tensors with the batch first, e.g. prompt_embeds and, for SDXL, pooled_prompt_embeds). `name` tells encoders
    apart (e.g. the family)."""
    captions = sorted(set(captions))
    digest = hashlib.sha256(json.dumps([fingerprint, name, captions, ENCODER_VERSION]).encode()).hexdigest()[:32]
    path = cache_root() / "text_embeddings" / f"{digest}.safetensors"
    if path.is_file():
        from safetensors.torch import load_file

        stored = load_file(str(path))
    else:
        stored = {}
        with torch.no_grad():
            for start in range(0, len(captions), ENCODE_BATCH):
                batch = captions[start : start + ENCODE_BATCH]
                for tensor_name, values in encode(batch).items():
                    for offset, value in enumerate(values):
                        stored[f"{start + offset}.{tensor_name}"] = value.float().cpu().contiguous()
        _save(path, stored)
    out: dict[str, dict[str, torch.Tensor]] = {caption: {} for caption in captions}
    for key, value in stored.items():
        number, tensor_name = key.split(".", 1)
        out[captions[int(number)]][tensor_name] = value
    return out


def _latent_key(dataset, wanted, fingerprint: str) -> str:
    digest = hashlib.sha256()
    settings = dataset.settings
    digest.update(json.dumps([fingerprint, settings.center_crop, ENCODER_VERSION]).encode())
    hashes: dict[int, str] = {}
    for index, size in wanted:
        if index not in hashes:
            hashes[index] = _file_hash(dataset.records[index].path)
        digest.update(f"\0{hashes[index]}:{size[0]}x{size[1]}".encode())
    return digest.hexdigest()[:32]


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _save(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)  # atomic: a reader never sees half an entry
