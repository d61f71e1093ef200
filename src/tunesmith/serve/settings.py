"""Where a server keeps its database, uploaded files and runs, and which base models it offers."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.config.schema import EMBEDDED_DEFAULT
from tunesmith.errors import ConfigError

MIB = 1024 * 1024
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def default_home() -> Path:
    """$TUNESMITH_HOME, else the per-user data folder ($XDG_DATA_HOME/tunesmith or ~/.local/share/tunesmith)."""
    if os.environ.get("TUNESMITH_HOME"):
        return Path(os.environ["TUNESMITH_HOME"])
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "tunesmith"


@dataclass(frozen=True)
class ServeSettings:
    home: Path
    db_url: str
    models: dict[str, str] = field(default_factory=lambda: {EMBEDDED_DEFAULT: EMBEDDED_DEFAULT})
    upload_limit: int = 512 * MIB  # bytes of one uploaded file
    lease_seconds: float = 30.0  # a running job whose worker has not renewed this long is re-queued
    poll_seconds: float = 1.0  # how often workers look for jobs and runners look for a cancel
    adapter_cache: int = 4  # tuned models kept loaded for inference

    @property
    def files_dir(self) -> Path:
        return self.home / "files"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def reports_dir(self) -> Path:
        """Data reports of uploaded files, made when the web UI first shows one."""
        return self.home / "reports"

    def prepare(self) -> "ServeSettings":
        for folder in (self.home, self.files_dir, self.runs_dir, self.logs_dir, self.reports_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def make_settings(home: Path | None = None, db_url: str | None = None, models: list[str] = (),
                  **options) -> ServeSettings:
    home = Path(home or default_home()).expanduser().resolve()
    return ServeSettings(home=home, db_url=db_url or f"sqlite:///{home / 'tunesmith.db'}",
                         models=parse_models(models), **options)


def parse_models(items: list[str]) -> dict[str, str]:
    """The embedded default plus each `--model NAME=PATH` (a model folder or a .gguf file)."""
    models = {EMBEDDED_DEFAULT: EMBEDDED_DEFAULT}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise ConfigError(f"--model {item!r}: expected NAME=PATH, e.g. --model cooking=/models/smollm2-cooking")
        if not SAFE_NAME.match(name):
            raise ConfigError(f"--model {item!r}: the name may use letters, digits, '.', '_' and '-' (up to 64)")
        if not Path(path).expanduser().exists():
            raise ConfigError(f"--model {item!r}: {path} does not exist; expected a model folder or a .gguf file")
        models[name] = str(Path(path).expanduser().resolve())
    return models
