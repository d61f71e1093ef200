"""Where a server keeps its database, uploaded files and runs, and which base models it offers (language models and
Stable Diffusion pipelines alike: a job trains the family of the base it names)."""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.config.schema import EMBEDDED_DEFAULT
from tunesmith.errors import ConfigError
from tunesmith.models.diffusion_tiny import TINY_ALIAS
from tunesmith.models.family import model_family

MIB = 1024 * 1024
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Built by tunesmith, not read from a path: the embedded language model and the tiny Stable Diffusion pipeline.
BUILT_IN_MODELS = (EMBEDDED_DEFAULT, TINY_ALIAS)
MODEL_KINDS = ("a model folder, a .gguf file, a diffusers folder, a .safetensors Stable Diffusion checkpoint or "
               f"{TINY_ALIAS}")


def default_home() -> Path:
    """$TUNESMITH_HOME, else the per-user data folder ($XDG_DATA_HOME/tunesmith or ~/.local/share/tunesmith)."""
    if os.environ.get("TUNESMITH_HOME"):
        return Path(os.environ["TUNESMITH_HOME"])
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "tunesmith"


@functools.cache
def machine_devices() -> int:
    """This machine's GPUs, else its CPU cores. Counting them imports torch (seconds): once a process."""
    import torch

    return torch.cuda.device_count() or os.cpu_count() or 1


@dataclass(frozen=True)
class ServeSettings:
    home: Path
    db_url: str
    models: dict[str, str] = field(default_factory=lambda: {EMBEDDED_DEFAULT: EMBEDDED_DEFAULT})
    upload_limit: int = 512 * MIB  # bytes of one uploaded file
    lease_seconds: float = 30.0  # a running job whose worker has not renewed this long is re-queued
    poll_seconds: float = 1.0  # how often workers look for jobs and runners look for a cancel
    adapter_cache: int = 4  # tuned models kept loaded for inference
    pipeline_cache: int = 2  # tuned diffusion models kept loaded for image generation
    archive_max_files: int = 10_000  # images and captions in one uploaded image archive
    archive_max_bytes: int = 4096 * MIB  # what one image archive may unpack to
    devices_per_job: int = 1  # processes (one per GPU) a job trains on unless its config asks for a number
    max_devices_per_job: int | None = None  # the most a job may ask for; None: this machine's GPUs, or CPU cores

    def family(self, name: str) -> str:
        """"llm" or "diffusion": what the base model `name` is."""
        return model_family(self.models[name])

    def device_limit(self) -> int:
        return self.max_devices_per_job if self.max_devices_per_job is not None else machine_devices()

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
    def class_images_dir(self) -> Path:
        """DreamBooth class images each tenant's jobs draw (and reuse), apart from other tenants'."""
        return self.home / "class_images"

    def class_images_for(self, tenant_seq: int) -> Path:
        return self.class_images_dir / f"tenant-{tenant_seq}"

    @property
    def reports_dir(self) -> Path:
        """Data reports of uploaded files, made when the web UI first shows one."""
        return self.home / "reports"

    def prepare(self) -> "ServeSettings":
        for folder in (self.home, self.files_dir, self.runs_dir, self.logs_dir, self.reports_dir,
                       self.class_images_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def make_settings(home: Path | None = None, db_url: str | None = None, models: list[str] = (),
                  **options) -> ServeSettings:
    home = Path(home or default_home()).expanduser().resolve()
    return ServeSettings(home=home, db_url=db_url or f"sqlite:///{home / 'tunesmith.db'}",
                         models=parse_models(models), **options)


def parse_models(items: list[str]) -> dict[str, str]:
    """The embedded default plus each `--model NAME=PATH` (see MODEL_KINDS; the built-in names need no path)."""
    models = {EMBEDDED_DEFAULT: EMBEDDED_DEFAULT}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise ConfigError(f"--model {item!r}: expected NAME=PATH, e.g. --model cooking=/models/smollm2-cooking "
                              f"or --model sd=/models/sd15")
        if not SAFE_NAME.match(name):
            raise ConfigError(f"--model {item!r}: the name may use letters, digits, '.', '_' and '-' (up to 64)")
        if path in BUILT_IN_MODELS:
            models[name] = path
            continue
        if not Path(path).expanduser().exists():
            raise ConfigError(f"--model {item!r}: {path} does not exist; expected {MODEL_KINDS}")
        models[name] = str(Path(path).expanduser().resolve())
    return models
