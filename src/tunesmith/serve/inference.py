"""Loaded language models for inference (adapter_cache.py): tuned LoRA adapters share their base.

The first tuned model of a base wraps it in a PeftModel, later ones are added with `load_adapter`, and a request
picks its adapter with `set_adapter` (or disables adapters for the base itself). Tuned models that cannot share a
base (full or freeze fine-tunes, a quantised qlora base, prompt-learning methods) are loaded whole with
`load_trained`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tunesmith.serve.adapter_cache import AdapterCache, Evicted, Tuned

SHARED_PEFT_TYPES = ("LORA",)


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
    def using(self, adapter: str | None) -> Iterator[object]:
        with self.lock:
            if self.peft is None and adapter is None:
                yield self.model
            elif adapter is None:  # the base itself
                with self.peft.disable_adapter():
                    yield self.peft
            else:
                if self.peft is None or adapter not in self.peft.peft_config:
                    raise Evicted(adapter)
                self.peft.set_adapter(adapter)
                yield self.peft


class ModelCache(AdapterCache):
    def __init__(self, capacity: int):
        super().__init__(capacity, _Base, _open_tuned)

    @contextmanager
    def base(self, spec: str) -> Iterator[Generator]:
        with self.using_base(spec) as (base, model):
            yield Generator(model, base.tokenizer)

    @contextmanager
    def tuned(self, model_id: str, run_dir: Path) -> Iterator[Generator]:
        with self.using_tuned(model_id, run_dir) as (entry, model):
            tokenizer, system = entry.details
            yield Generator(model, tokenizer, system)


def _open_tuned(cache: AdapterCache, run_dir: Path) -> Tuned:
    from tunesmith.config.load import load_config
    from tunesmith.data.system_prompt import load_system_prompt
    from tunesmith.methods import registry

    config = load_config(run_dir / "config.yaml")
    system = load_system_prompt(run_dir)
    adapter = run_dir / "adapter"
    if _peft_type(adapter) in SHARED_PEFT_TYPES and not registry.of(config.method).quantized_base(config.method):
        base, name = cache.shared_base(config.model), cache.new_adapter_name()
        with base.lock:
            base.add(name, adapter)
        return Tuned((base.tokenizer, system), base=base, adapter=name)
    from tunesmith.models.load import load_trained

    model, tokenizer = load_trained(run_dir)
    return Tuned((tokenizer, system), whole=on_device(model))


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
