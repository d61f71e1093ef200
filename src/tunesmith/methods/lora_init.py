"""PiSSA and OLoRA adapters saved as plain LoRA, so they load onto the original base model.

Both initialisations move part of each base weight into the adapter (W = W_res + B0 A0) and train on the
residual. An adapter saved as is would need W_res; PEFT instead rewrites the trained adapter as plain LoRA
of twice the rank (delta W = B A - B0 A0), given the starting adapter, which we keep from the start.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from tunesmith.methods.llm.lora import MUTATING_INITS, LoraOptions

INITIAL_ADAPTER = "tunesmith_initial_adapter"
WEIGHTS_FILE = "adapter_model.safetensors"


def remember_initial_adapter(model: nn.Module, method: LoraOptions) -> None:
    from peft import get_peft_model_state_dict

    if method.init in MUTATING_INITS:
        # Only the low-rank matrices: the conversion needs nothing else, and modules_to_save can be large.
        state = get_peft_model_state_dict(model)
        setattr(model, INITIAL_ADAPTER, {name: t.detach().clone() for name, t in state.items() if _low_rank(name)})


def save_adapter(model: nn.Module, folder: Path) -> None:
    initial = getattr(model, INITIAL_ADAPTER, None)
    if initial is None:
        model.save_pretrained(folder, safe_serialization=True)
        return
    from peft import get_peft_model_state_dict

    # Modules trained in full (modules_to_save), cloned because tied embeddings are one tensor under two names
    # and safetensors refuses shared memory.
    full = {name: t.clone() for name, t in get_peft_model_state_dict(model).items() if not _low_rank(name)}
    with tempfile.TemporaryDirectory() as tmp:
        initial_dir = Path(tmp) / "initial"
        initial_dir.mkdir()
        # PEFT loads the starting adapter whole (it writes the matching config itself) but uses only its
        # low-rank part, so the current full modules stand in for the starting ones.
        save_file({**initial, **full}, initial_dir / WEIGHTS_FILE)
        model.save_pretrained(
            folder, safe_serialization=True, path_initial_model_for_weight_conversion=str(initial_dir)
        )
    if full:
        # The conversion writes only the low-rank matrices; put the full modules back.
        weights = Path(folder) / WEIGHTS_FILE
        save_file({**load_file(weights), **full}, weights, metadata={"format": "pt"})


def _low_rank(name: str) -> bool:
    return ".lora_A." in name or ".lora_B." in name
