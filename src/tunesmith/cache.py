"""Where tunesmith keeps what it can rebuild: converted models and tokenized datasets."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """~/.cache/tunesmith unless TUNESMITH_CACHE (or XDG_CACHE_HOME) says otherwise."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tunesmith"
    return Path(os.environ.get("TUNESMITH_CACHE", default))
