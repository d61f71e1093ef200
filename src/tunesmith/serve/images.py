"""Loaded Stable Diffusion pipelines for image generation (adapter_cache.py): LoRA runs share their base, full
DreamBooth runs are loaded whole.

A run's LoRA is loaded onto the base pipeline under an adapter name of its own (`load_lora_weights`), a drawing
turns it on with `set_adapters` (or `disable_lora` for the base itself), and eviction deletes it. A tuned model draws with its run's settings (the validation grids' steps,
guidance, negative prompt and size) unless a request says otherwise; image j is drawn from seed + j, as in the
run's grids.
"""

from __future__ import annotations

import base64
import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from tunesmith.serve.adapter_cache import AdapterCache, Evicted, Tuned


@dataclass(frozen=True)
class Settings:
    """How images are drawn: a model's defaults, then a request's choices."""

    size: int
    steps: int
    guidance_scale: float
    negative_prompt: str | None = None


@dataclass(frozen=True)
class Request:
    prompt: str
    n: int
    seed: int
    size: int | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    negative_prompt: str | None = None

    def settled(self, defaults: Settings) -> Settings:
        chosen = {key: value for key in ("size", "steps", "guidance_scale", "negative_prompt")
                  if (value := getattr(self, key)) is not None}
        return replace(defaults, **chosen)


@dataclass
class Drawer:
    """What a drawing uses, while it holds the pipeline's lock."""

    pipeline: object
    defaults: Settings

    def draw(self, request: Request) -> tuple[Settings, list[bytes]]:
        """The settings drawn with and `request.n` PNGs."""
        from tunesmith.tasks.diffusion.sampling import Sampling, draw

        settings = request.settled(self.defaults)
        sampling = Sampling(prompts=(request.prompt,), n=request.n, seed=request.seed, steps=settings.steps,
                            guidance_scale=settings.guidance_scale, size=settings.size,
                            negative_prompt=settings.negative_prompt)
        return settings, [_png(image) for image in draw(self.pipeline, sampling)[0]]


def b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


class _Base:
    """A base pipeline, and the LoRA adapters of tuned runs loaded onto it (named a1, a2, ...)."""

    def __init__(self, spec: str):
        from tunesmith.models.diffusion import load_diffusion
        from tunesmith.serve.inference import on_device
        from tunesmith.tasks.diffusion.sampling import Sampling

        model = load_diffusion(spec)
        self.pipeline = on_device(model.pipeline)
        self.family = model.family
        # The size the pipeline draws when given none: its UNet's sample size in pixels (512 for SD 1.5).
        native = self.pipeline.unet.config.sample_size * self.pipeline.vae_scale_factor
        self.defaults = Settings(native, Sampling.steps, Sampling.guidance_scale)
        self.adapters: set[str] = set()
        self.lock = threading.Lock()

    def add(self, name: str, weights: Path) -> None:
        with warnings.catch_warnings():  # PEFT warns that a second adapter joins the first: that is the point
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            self.pipeline.load_lora_weights(str(weights), adapter_name=name)
        self.adapters.add(name)

    def remove(self, name: str) -> None:
        self.pipeline.delete_adapters(name)
        self.adapters.discard(name)

    @contextmanager
    def using(self, adapter: str | None) -> Iterator[object]:
        with self.lock:
            if adapter is None:
                if self.adapters:
                    self.pipeline.disable_lora()
            elif adapter not in self.adapters:
                raise Evicted(adapter)
            else:
                self.pipeline.enable_lora()
                self.pipeline.set_adapters(adapter)
            yield self.pipeline


class PipelineCache(AdapterCache):
    def __init__(self, capacity: int):
        super().__init__(capacity, _Base, _open_tuned)

    @contextmanager
    def base(self, spec: str) -> Iterator[Drawer]:
        with self.using_base(spec) as (base, pipeline):
            yield Drawer(pipeline, base.defaults)

    @contextmanager
    def tuned(self, model_id: str, run_dir: Path) -> Iterator[Drawer]:
        with self.using_tuned(model_id, run_dir) as (entry, pipeline):
            yield Drawer(pipeline, entry.details)


def _open_tuned(cache: AdapterCache, run_dir: Path) -> Tuned:
    from tunesmith.export.diffusion_lora import DIFFUSERS_WEIGHT_NAME
    from tunesmith.serve.inference import on_device
    from tunesmith.tasks.diffusion import trained

    config = trained.run_config(run_dir)
    lora = run_dir / trained.ADAPTER / DIFFUSERS_WEIGHT_NAME
    if lora.is_file():
        base, name = cache.shared_base(config.model), cache.new_adapter_name()
        with base.lock:
            base.add(name, lora)
        return Tuned(_run_defaults(config, base.family), base=base, adapter=name)
    model, config = trained.load_trained(run_dir)  # a full DreamBooth run: a pipeline of its own
    return Tuned(_run_defaults(config, model.family), whole=on_device(model.pipeline))


def _run_defaults(config, family) -> Settings:
    """What the run's validation grids were drawn with."""
    from tunesmith.tasks.diffusion.sampling import Sampling

    section = config.validation
    size = (section.resolution if section else None) or config.data.resolution or family.resolution
    if section is None:
        return Settings(size, Sampling.steps, Sampling.guidance_scale)
    return Settings(size, section.steps, section.guidance_scale, section.negative_prompt)


def _png(image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
