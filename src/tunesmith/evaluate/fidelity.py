"""Subject fidelity of a tuned diffusion model, the DreamBooth paper's protocol (Ruiz et al., 2023, section 4.1).

- DINO: mean pairwise cosine similarity of DINO ViT embeddings (the CLS token) of generated vs real subject images;
  unlike CLIP it tells apart subjects of one class (two corgis), so it measures identity.
- CLIP-I: the same with CLIP image embeddings.
- CLIP-T: mean cosine similarity of each generated image with its prompt (prompt fidelity).
- Language drift: how similar class-prompt images ("a photo of a dog") are before and after training, pairing
  images drawn from the same seed; 1.0 means the class prior is intact.

Encoders come from local folders the user names (a transformers CLIPModel folder, a ViT/DINO or DINOv2 folder);
nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tunesmith.errors import ModelError

BATCH = 16


def mean_pairwise_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean cosine similarity over all pairs (row of `a`, row of `b`)."""
    a, b = torch.nn.functional.normalize(a.float(), dim=-1), torch.nn.functional.normalize(b.float(), dim=-1)
    return float((a @ b.T).mean())


def mean_paired_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean cosine similarity of row i of `a` with row i of `b`."""
    if a.shape != b.shape:
        raise ValueError(f"paired embeddings need equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1).mean())


class ClipEncoder:
    """Image and text embeddings from a local transformers CLIPModel folder (model, image processor, tokenizer)."""

    def __init__(self, folder: str | Path):
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        self.folder = _folder(folder, "CLIP")
        self.model = _load(lambda: CLIPModel.from_pretrained(self.folder, local_files_only=True), self.folder, "CLIP")
        self.processor = _load(lambda: AutoImageProcessor.from_pretrained(self.folder, local_files_only=True,
                                                                          backend="pil"), self.folder, "CLIP")
        self.tokenizer = _load(lambda: AutoTokenizer.from_pretrained(self.folder, local_files_only=True),
                               self.folder, "CLIP")
        self.model.eval()

    def images(self, images: list) -> torch.Tensor:
        return _batched(images, lambda chunk: self.model.get_image_features(
            pixel_values=self.processor(images=chunk, return_tensors="pt")["pixel_values"]).pooler_output)

    def texts(self, texts: list[str]) -> torch.Tensor:
        def encode(chunk):
            tokens = self.tokenizer(chunk, padding=True, truncation=True, return_tensors="pt")
            return self.model.get_text_features(input_ids=tokens["input_ids"],
                                                attention_mask=tokens["attention_mask"]).pooler_output

        return _batched(texts, encode)


class DinoEncoder:
    """CLS-token embeddings from a local ViT / DINO / DINOv2 folder (model and image processor)."""

    def __init__(self, folder: str | Path):
        from transformers import AutoImageProcessor, AutoModel

        self.folder = _folder(folder, "DINO")
        self.model = _load(lambda: AutoModel.from_pretrained(self.folder, local_files_only=True), self.folder, "DINO")
        self.processor = _load(lambda: AutoImageProcessor.from_pretrained(self.folder, local_files_only=True,
                                                                          backend="pil"), self.folder, "DINO")
        self.model.eval()

    def images(self, images: list) -> torch.Tensor:
        return _batched(images, lambda chunk: self.model(
            pixel_values=self.processor(images=chunk, return_tensors="pt")["pixel_values"]).last_hidden_state[:, 0])


def fidelity_scores(generated: list, real: list, prompts: list[str] | None = None, clip: ClipEncoder | None = None,
                    dino: DinoEncoder | None = None) -> dict[str, float]:
    """DINO, CLIP-I and (with `prompts`, one per generated image) CLIP-T, for the encoders given."""
    if not generated or not real:
        raise ValueError("fidelity needs at least one generated and one real image")
    scores = {}
    if dino is not None:
        scores["dino"] = mean_pairwise_cosine(dino.images(generated), dino.images(real))
    if clip is not None:
        generated_embeddings = clip.images(generated)
        scores["clip_i"] = mean_pairwise_cosine(generated_embeddings, clip.images(real))
        if prompts is not None:
            if len(prompts) != len(generated):
                raise ValueError(f"CLIP-T pairs each image with its prompt: {len(generated)} images, "
                                 f"{len(prompts)} prompts")
            scores["clip_t"] = mean_paired_cosine(generated_embeddings, clip.texts(prompts))
    return scores


def language_drift(before: list, after: list, encoder) -> float:
    """Mean similarity of class-prompt images drawn with the same seeds before and after training (1.0: no drift)."""
    if len(before) != len(after) or not before:
        raise ValueError(f"language drift pairs images by seed: {len(before)} before, {len(after)} after")
    return mean_paired_cosine(encoder.images(before), encoder.images(after))


def _batched(items: list, encode) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([encode(items[i : i + BATCH]) for i in range(0, len(items), BATCH)]).float()


def _folder(folder, kind: str) -> Path:
    path = Path(folder).expanduser()
    if not (path / "config.json").is_file():
        raise ModelError(f"{kind} encoder: {folder} is not a local model folder (expected config.json, weights and "
                         "the preprocessor files; tunesmith downloads nothing)")
    return path


def _load(load, folder: Path, kind: str):
    try:
        return load()
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelError(f"{kind} encoder: {folder} could not be loaded ({str(error).splitlines()[0]})") from None
