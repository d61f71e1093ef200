"""Loaded models for inference: each base model once, tuned LoRA adapters over it, evicted least recently used.

As LoRAX does, adapters of one base share its weights: the first tuned model of a base wraps it in a PeftModel,
later ones are added with `load_adapter`, and a request picks its adapter with `set_adapter` (or disables
adapters for the base itself). Tuned models that cannot share a base (full or freeze fine-tunes, a quantised
qlora base, prompt-learning methods) are loaded whole with `load_trained`. At most `capacity` tuned models stay
loaded; one generation runs at a time per loaded model, since the active adapter is state of the model.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SHARED_PEFT_TYPES = ("LORA",)
RETRIES = 3


class _Evicted(Exception):
    """The adapter was evicted between lookup and use; load it again."""


@dataclass
class Generator:
    """What a request generates with, while it holds the model's lock."""

    model: object
    tokenizer: object
    system: str | None = None  # the system message a tuned model was trained with, for chats that give none


class _Base:
    """A base model, and the PeftModel over it while it hosts adapters (named a1, a2, ...: PEFT adapter names
    may not hold the '.' and ':' of model ids)."""

    def __init__(self, spec: str):
        from tunesmith.models.load import load_causal_lm, load_tokenizer, resolve_model

        source = resolve_model(spec)
        self.tokenizer = load_tokenizer(source)
        self.model = on_device(load_causal_lm(source)).eval()
        self.peft = None
        self.lock = threading.Lock()

    def add(self, name: str, folder: Path) -> None:
        from peft import PeftModel

        from tunesmith.models.load import check_adapter_folder

        check_adapter_folder(folder)  # safetensors only, as everywhere in tunesmith
        if self.peft is None:
            self.peft = PeftModel.from_pretrained(self.model, folder, adapter_name=name)
        else:
            self.peft.load_adapter(folder, adapter_name=name)
        self.peft.eval()

    def remove(self, name: str) -> None:
        if list(self.peft.peft_config) == [name]:  # the last adapter: back to the plain base
            self.model = self.peft.unload()
            self.peft = None
        else:
            self.peft.delete_adapter(name)

    @contextmanager
    def generating(self, adapter: str | None) -> Iterator[object]:
        with self.lock:
            if self.peft is None and adapter is None:
                yield self.model
            elif adapter is None:  # the base itself
                with self.peft.disable_adapter():
                    yield self.peft
            else:
                if self.peft is None or adapter not in self.peft.peft_config:
                    raise _Evicted(adapter)
                self.peft.set_adapter(adapter)
                yield self.peft


@dataclass
class _Tuned:
    system: str | None
    base: _Base | None = None  # shared base and the adapter's name on it
    adapter: str | None = None
    whole: object = None  # or a model of its own, with its tokenizer and lock
    tokenizer: object = None
    lock: threading.Lock | None = None


class ModelCache:
    def __init__(self, capacity: int):
        self.capacity = max(1, capacity)
        self._lock = threading.Lock()  # guards loading and eviction; generation holds the model's own lock
        self._bases: dict[str, _Base] = {}
        self._tuned: OrderedDict[str, _Tuned] = OrderedDict()
        self._names = (f"a{i}" for i in itertools.count(1))

    def loaded(self) -> list[str]:
        return list(self._tuned)

    @contextmanager
    def base(self, spec: str) -> Iterator[Generator]:
        base = self.load_base(spec)
        with base.generating(None) as model:
            yield Generator(model, base.tokenizer)

    @contextmanager
    def tuned(self, model_id: str, run_dir: Path) -> Iterator[Generator]:
        for attempt in range(RETRIES):
            entry = self.load_tuned(model_id, run_dir)
            if entry.base is None:
                with entry.lock:
                    yield Generator(entry.whole, entry.tokenizer, entry.system)
                return
            try:
                with entry.base.generating(entry.adapter) as model:
                    yield Generator(model, entry.base.tokenizer, entry.system)
                return
            except _Evicted:
                if attempt == RETRIES - 1:
                    raise

    def load_base(self, spec: str) -> _Base:
        with self._lock:
            if spec not in self._bases:
                self._bases[spec] = _Base(spec)
            return self._bases[spec]

    def load_tuned(self, model_id: str, run_dir: Path) -> _Tuned:
        from tunesmith.config.load import load_config
        from tunesmith.data.system_prompt import load_system_prompt
        from tunesmith.methods import registry

        with self._lock:
            if model_id in self._tuned:
                self._tuned.move_to_end(model_id)
                return self._tuned[model_id]
            config = load_config(run_dir / "config.yaml")
            entry = _Tuned(system=load_system_prompt(run_dir))
            adapter = run_dir / "adapter"
            method = registry.of(config.method)
            if _peft_type(adapter) in SHARED_PEFT_TYPES and not method.quantized_base(config.method):
                if config.model not in self._bases:
                    self._bases[config.model] = _Base(config.model)
                entry.base, entry.adapter = self._bases[config.model], next(self._names)
                with entry.base.lock:
                    entry.base.add(entry.adapter, adapter)
            else:
                from tunesmith.models.load import load_trained

                entry.whole, entry.tokenizer = load_trained(run_dir)
                on_device(entry.whole)
                entry.lock = threading.Lock()
            self._tuned[model_id] = entry
            while len(self._tuned) > self.capacity:
                self._evict(self._tuned.popitem(last=False)[1])
            return entry

    @staticmethod
    def _evict(entry: _Tuned) -> None:
        if entry.base is not None:
            with entry.base.lock:  # not while one of its requests is generating
                entry.base.remove(entry.adapter)


def on_device(model):
    """Generate where training would run: on the GPU when there is one. A quantised model stays where
    bitsandbytes placed it."""
    import torch

    if torch.cuda.is_available() and not getattr(model, "is_quantized", False):
        model.to("cuda")
    return model


def _peft_type(adapter: Path) -> str | None:
    config = adapter / "adapter_config.json"
    return json.loads(config.read_text()).get("peft_type") if config.is_file() else None
