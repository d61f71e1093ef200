"""Prepared sets are reused by fingerprint: the input files' bytes, the settings, the format and the tokenizer.

A folder holds a complete preparation when its manifest (prepared.json, written last) carries the
fingerprint; change any input byte or setting and the fingerprint changes, so a stale set is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tunesmith.cache import cache_root

PREPARE_VERSION = 1  # bump when a step changes what it writes
MANIFEST = "prepared.json"
OUTPUTS = ("train.jsonl", "validation.jsonl", "test.jsonl", "rejected.jsonl", "pii_audit.jsonl",
           "report.json", "report.md", "report.html", MANIFEST)


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(inputs: list, settings, fmt: str, tokenizer_id: str) -> str:
    parts = {
        "version": PREPARE_VERSION,
        "inputs": [{"path": i.path, "role": i.role, "weight": i.weight, "sha256": file_digest(i.path)} for i in inputs],
        "settings": settings.model_dump(mode="json"),
        "format": fmt,
        "tokenizer": tokenizer_id,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def cached_folder(key: str) -> Path:
    return cache_root() / "prepared" / key


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def publish(work: Path, target: Path) -> None:
    """Move a finished preparation from its work folder into `target`, manifest last, so a reader never sees a
    half-written set under a valid manifest; outputs of an earlier preparation that this one lacks are removed."""
    target.mkdir(parents=True, exist_ok=True)
    (target / MANIFEST).unlink(missing_ok=True)
    for name in OUTPUTS:
        if name != MANIFEST:
            if (work / name).exists():
                os.replace(work / name, target / name)
            else:
                (target / name).unlink(missing_ok=True)
    os.replace(work / MANIFEST, target / MANIFEST)
