"""The result of the latest call on an input tensor, for layers that read the same tensor one after another.

q, k and v of a Llama block (and gate and up) are called with the very same hidden-states tensor. Work that
depends only on that tensor (its dropout, its cast to the compute dtype) is done by the first layer and reused by
the next while the tensor is unchanged: the same object (held here, so its id cannot be reused), the same version
(an in-place change bumps it) and the same key (the dropout probability, the target dtype).
"""

from __future__ import annotations

import torch


class LatestResult:
    def __init__(self):
        self.entry: tuple[torch.Tensor, int, object, torch.Tensor] | None = None

    def get(self, x: torch.Tensor, key) -> torch.Tensor | None:
        entry = self.entry
        if entry is not None and entry[0] is x and entry[1] == x._version and entry[2] == key:
            return entry[3]
        return None

    def put(self, x: torch.Tensor, key, result: torch.Tensor) -> torch.Tensor:
        self.entry = (x, x._version, key, result)
        return result
