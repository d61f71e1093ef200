"""Loaded Stable Diffusion pipelines for image generation: each base once, tuned LoRA runs as adapters on it, full
DreamBooth runs whole; at most `capacity` tuned models stay loaded, the least recently used evicted.

As for language models (inference.py), LoRA runs of one base share its weights: a run's LoRA is loaded onto the
base pipeline under an adapter name of its own (`load_lora_weights`), a drawing turns it on with `set_adapters`
(or `disable_lora` for the base itself), and eviction deletes it. One drawing at a time per pipeline, since the
active adapter is state of the pipeline. A tuned model draws with its run's settings (the validation grids' steps,
guidance, negative prompt and size) unless a request says otherwise; image j is drawn from seed + j, as in the
run's grids.
"""

from __future__ import annotations

import base64
import io
import itertools
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

RETRIES = 3


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


class _Evicted(Exception):
    """The adapter was evicted between lookup and use; load it again."""


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
    def drawing(self, adapter: str | None, defaults: Settings) -> Iterator[Drawer]:
        with self.lock:
            if adapter is None:
                if self.adapters:
                    self.pipeline.disable_lora()
            elif adapter not in self.adapters:
                raise _Evicted(adapter)
            else:
                self.pipeline.enable_lora()
                self.pipeline.set_adapters(adapter)
            yield Drawer(self.pipeline, defaults)


@dataclass
class _Tuned:
    defaults: Settings
    base: _Base | None = None  # a LoRA run: the shared base and the adapter's name on it
    adapter: str | None = None
    whole: object = None  # a full DreamBooth run: a pipeline of its own, with its lock
    lock: threading.Lock | None = None


class PipelineCache:
    def __init__(self, capacity: int):
        self.capacity = max(1, capacity)
        self._lock = threading.Lock()  # guards loading and eviction; drawing holds the pipeline's own lock
        self._bases: dict[str, _Base] = {}
        self._tuned: OrderedDict[str, _Tuned] = OrderedDict()
        self._names = (f"a{i}" for i in itertools.count(1))

    def loaded(self) -> list[str]:
        return list(self._tuned)

    def load_base(self, spec: str) -> _Base:
        with self._lock:
            return self._base(spec)

    @contextmanager
    def base(self, spec: str) -> Iterator[Drawer]:
        base = self.load_base(spec)
        with base.drawing(None, base.defaults) as drawer:
            yield drawer

    @contextmanager
    def tuned(self, model_id: str, run_dir: Path) -> Iterator[Drawer]:
        for attempt in range(RETRIES):
            entry = self.load_tuned(model_id, run_dir)
            if entry.base is None:
                with entry.lock:
                    yield Drawer(entry.whole, entry.defaults)
                return
            try:
                with entry.base.drawing(entry.adapter, entry.defaults) as drawer:
                    yield drawer
                return
            except _Evicted:
                if attempt == RETRIES - 1:
                    raise

    def load_tuned(self, model_id: str, run_dir: Path) -> _Tuned:
        from tunesmith.export.diffusion_lora import DIFFUSERS_WEIGHT_NAME
        from tunesmith.tasks.diffusion import trained

        with self._lock:
            if model_id in self._tuned:
                self._tuned.move_to_end(model_id)
                return self._tuned[model_id]
            config = trained.run_config(run_dir)
            lora = Path(run_dir) / trained.ADAPTER / DIFFUSERS_WEIGHT_NAME
            if lora.is_file():
                base = self._base(config.model)
                entry = _Tuned(_run_defaults(config, base.family), base=base, adapter=next(self._names))
                with base.lock:
                    base.add(entry.adapter, lora)
            else:
                from tunesmith.serve.inference import on_device

                model, config = trained.load_trained(run_dir)
                entry = _Tuned(_run_defaults(config, model.family), whole=on_device(model.pipeline),
                               lock=threading.Lock())
            self._tuned[model_id] = entry
            while len(self._tuned) > self.capacity:
                self._evict(self._tuned.popitem(last=False)[1])
            return entry

    def _base(self, spec: str) -> _Base:
        if spec not in self._bases:
            self._bases[spec] = _Base(spec)
        return self._bases[spec]

    @staticmethod
    def _evict(entry: _Tuned) -> None:
        if entry.base is not None:
            with entry.base.lock:  # not while one of its drawings runs
                entry.base.remove(entry.adapter)


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
