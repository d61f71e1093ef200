"""Loaded models for serving, for text and images alike: each base model once, the LoRA adapters of tuned runs
over it, at most `capacity` tuned models loaded, the least recently used evicted.

As LoRAX does, adapters of one base share its weights, and a request picks its adapter (or none, for the base
itself); the active adapter is state of the model, so one request at a time uses a loaded model, under its lock.
Tuned runs that cannot share a base are loaded whole, with a lock of their own. What a base is, how a tuned run
is opened and what a request is handed are the family's (inference.py for language models, images.py for Stable
Diffusion); the cache, its eviction and the retry when an adapter is evicted between lookup and use are here.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

RETRIES = 3


class Evicted(Exception):
    """The adapter was evicted between lookup and use; load it again."""


class SharedBase(Protocol):
    lock: threading.Lock

    def add(self, name: str, source: Path) -> None: ...

    def remove(self, name: str) -> None: ...

    def using(self, adapter: str | None) -> AbstractContextManager[Any]:
        """Holds the lock and yields the model with `adapter` active (None: the base itself); raises Evicted when
        the adapter is not loaded."""


@dataclass
class Tuned:
    details: Any  # what the family hands a request besides the model (system prompt, drawing defaults ...)
    base: SharedBase | None = None  # a shared base and the adapter's name on it
    adapter: str | None = None
    whole: Any = None  # or a model of its own, with its lock
    lock: threading.Lock = field(default_factory=threading.Lock)


class AdapterCache:
    """`open_tuned(cache, run_dir) -> Tuned` opens a run, called under the cache's lock: a run that shares a base
    takes it from `cache.shared_base(spec)`, names its adapter with `cache.new_adapter_name()` and adds it."""

    def __init__(self, capacity: int, make_base: Callable[[str], SharedBase],
                 open_tuned: Callable[[AdapterCache, Path], Tuned]):
        self.capacity = max(1, capacity)
        self._lock = threading.Lock()  # guards loading and eviction; a request holds its model's own lock
        self._make_base, self._open_tuned = make_base, open_tuned
        self._bases: dict[str, SharedBase] = {}
        self._tuned: OrderedDict[str, Tuned] = OrderedDict()
        self._names = (f"a{i}" for i in itertools.count(1))  # PEFT adapter names may not hold '.' or ':'

    def loaded(self) -> list[str]:
        return list(self._tuned)

    def load_base(self, spec: str) -> SharedBase:
        with self._lock:
            return self.shared_base(spec)

    def shared_base(self, spec: str) -> SharedBase:
        """The loaded base for `spec` (loaded now if need be); the caller holds the cache's lock."""
        if spec not in self._bases:
            self._bases[spec] = self._make_base(spec)
        return self._bases[spec]

    def new_adapter_name(self) -> str:
        return next(self._names)

    def load_tuned(self, model_id: str, run_dir: Path) -> Tuned:
        with self._lock:
            if model_id in self._tuned:
                self._tuned.move_to_end(model_id)
                return self._tuned[model_id]
            entry = self._open_tuned(self, Path(run_dir))
            self._tuned[model_id] = entry
            while len(self._tuned) > self.capacity:
                _evict(self._tuned.popitem(last=False)[1])
            return entry

    @contextmanager
    def using_base(self, spec: str) -> Iterator[tuple[SharedBase, Any]]:
        base = self.load_base(spec)
        with base.using(None) as model:
            yield base, model

    @contextmanager
    def using_tuned(self, model_id: str, run_dir: Path) -> Iterator[tuple[Tuned, Any]]:
        """The tuned run's entry and its model with its adapter active, while the request holds the model."""
        for attempt in range(RETRIES):
            entry = self.load_tuned(model_id, run_dir)
            if entry.base is None:
                with entry.lock:
                    yield entry, entry.whole
                return
            try:
                with entry.base.using(entry.adapter) as model:
                    yield entry, model
                return
            except Evicted:
                if attempt == RETRIES - 1:
                    raise


def _evict(entry: Tuned) -> None:
    if entry.base is not None:
        with entry.base.lock:  # not while one of its requests runs
            entry.base.remove(entry.adapter)
