"""Provenance: every run folder, checkpoint and export carries the resolved config and the tunesmith version that
made it, so any artefact says how it was made."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import yaml

from tunesmith.version import __version__

FILE = "config.yaml"


def config_text(config) -> str:
    """The resolved config as YAML, headed by a comment naming the tunesmith version (it loads as a config)."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    header = f"# written by tunesmith {__version__} on {stamp}\n"
    return header + yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def write_provenance(folder: Path, config, name: str = FILE) -> Path:
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_text(config))
    return path


def written_by(path: Path) -> str | None:
    """The tunesmith version named in a provenance file's header, if any."""
    first = Path(path).read_text().split("\n", 1)[0]
    prefix = "# written by tunesmith "
    return first[len(prefix):].split(" ", 1)[0] if first.startswith(prefix) else None
