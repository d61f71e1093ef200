"""Helpers for method tests: a fixed tiny batch, a few AdamW steps, parameter snapshots, a base on disk."""

import pytest
import torch
from pydantic import TypeAdapter

from tunesmith.config.schema import MethodConfig
from tunesmith.models.load import ModelSource
from tunesmith.tasks.causal_lm.loss import IGNORE_INDEX, causal_lm_loss

TEXTS = ["Whisk the eggs with a pinch of salt.", "Simmer the sauce for ten minutes, then season."]


@pytest.fixture(scope="session")
def batch(tokenizer):
    encoded = tokenizer(TEXTS, padding=True, return_tensors="pt")
    labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, IGNORE_INDEX)
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "labels": labels}


@pytest.fixture
def train_steps(batch):
    def run(model, steps: int = 10, lr: float = 1e-2) -> list[float]:
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=lr)
        losses = []
        for _ in range(steps):
            loss = causal_lm_loss(model, batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        return losses

    return run


def snapshot(model) -> dict[str, tuple[torch.Tensor, bool]]:
    return {name: (p.detach().clone(), p.requires_grad) for name, p in model.named_parameters()}


@pytest.fixture
def logits_of(batch):
    def run(model) -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    return run


@pytest.fixture(scope="session")
def make_method():
    """`make_method(name="lora", r=4)`: a method section validated as the config loader would."""
    adapter = TypeAdapter(MethodConfig)
    return lambda **spec: adapter.validate_python(spec)


@pytest.fixture
def tiny_llama_source(tiny_llama, tmp_path) -> ModelSource:
    """The tiny Llama saved as a model folder, for paths that load from disk (qlora quantises at load)."""
    folder = tmp_path / "tiny-llama"
    tiny_llama.save_pretrained(folder, safe_serialization=True)
    return ModelSource(str(folder), folder)
