"""Captions to the UNet's text conditioning, exactly as the diffusers pipelines compute it at inference.

SD 1.x/2.x: the text encoder's last hidden state. SDXL: both encoders' penultimate hidden states side by side,
plus the second encoder's projected pooled output (which, with the size and crop ids, forms the added condition).
"""

from __future__ import annotations

import torch


def tokenize(tokenizers: list, captions: list[str]) -> list[torch.Tensor]:
    """Token ids per tokenizer, padded to its 77 positions (what the pipelines feed the encoders)."""
    return [t(captions, padding="max_length", max_length=t.model_max_length, truncation=True,
              return_tensors="pt").input_ids for t in tokenizers]


def encode_text(text_encoders: list, token_ids: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """{"prompt_embeds": (B, 77, D)} and, with two encoders (SDXL), {"pooled_prompt_embeds": (B, D2)}."""
    if len(text_encoders) == 1:
        return {"prompt_embeds": text_encoders[0](token_ids[0].to(text_encoders[0].device))[0]}
    hidden, pooled = [], None
    for encoder, ids in zip(text_encoders, token_ids):
        output = encoder(ids.to(encoder.device), output_hidden_states=True)
        hidden.append(output.hidden_states[-2])
        pooled = output[0]  # the last (projecting) encoder's pooled output, as the SDXL pipeline keeps it
    return {"prompt_embeds": torch.cat(hidden, dim=-1), "pooled_prompt_embeds": pooled}


def unread_modules(text_encoders: list) -> list[list[str]]:
    """Per encoder, the names of the modules whose output encode_text never reads: with two encoders (SDXL) the
    first one's last layer and final layer norm, since only its penultimate hidden state is used. Nothing may train
    there (under DDP a trained parameter without a gradient fails the step)."""
    if len(text_encoders) == 1:
        return [[]]
    # named by suffix: transformers' CLIP text models name them with or without a "text_model." prefix
    idle = (f"encoder.layers.{text_encoders[0].config.num_hidden_layers - 1}", "final_layer_norm")
    names = [name for name, _ in text_encoders[0].named_modules()
             if any(name == s or name.endswith("." + s) for s in idle)]
    return [names, []]


def time_ids(original_size, crop_top_left, target_size) -> torch.Tensor:
    """SDXL's micro-conditioning for one image: (original h, w, crop top, left, target h, w)."""
    return torch.tensor([*original_size, *crop_top_left, *target_size], dtype=torch.float32)
