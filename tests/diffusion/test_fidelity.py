"""Fidelity metrics: the arithmetic on known embeddings, and tiny random local encoders built from configs."""

import numpy as np
import pytest
import torch
from PIL import Image

from tunesmith.errors import ModelError
from tunesmith.evaluate.fidelity import (ClipEncoder, DinoEncoder, fidelity_scores, language_drift,
                                         mean_paired_cosine, mean_pairwise_cosine)


def test_pairwise_cosine_on_known_embeddings():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    # cosines: (a0,b0)=1, (a0,b1)=1/sqrt2, (a1,b0)=0, (a1,b1)=1/sqrt2 -> mean (1 + sqrt2) / 4
    assert mean_pairwise_cosine(a, b) == pytest.approx((1 + 2**0.5) / 4)
    assert mean_pairwise_cosine(a, -a) == pytest.approx(-0.5)  # (-1 + 0 + 0 - 1) / 4
    assert mean_paired_cosine(a, b) == pytest.approx((1 + 2**-0.5) / 2)
    with pytest.raises(ValueError, match=r"equal shapes, got \(2, 2\) and \(1, 2\)"):
        mean_paired_cosine(a, b[:1])


@pytest.fixture(scope="module")
def encoders(encoder_dirs):
    clip_dir, dino_dir = encoder_dirs
    return ClipEncoder(clip_dir), DinoEncoder(dino_dir)


def images(seed, n=2):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]


def test_scores_are_the_arithmetic_of_the_embeddings(encoders):
    clip, dino = encoders
    generated, real = images(1, 3), images(2, 2)
    prompts = ["a photo of sks dog", "sks dog on the beach", "sks dog in a bucket"]
    scores = fidelity_scores(generated, real, prompts, clip=clip, dino=dino)
    assert set(scores) == {"dino", "clip_i", "clip_t"}
    assert scores["dino"] == pytest.approx(mean_pairwise_cosine(dino.images(generated), dino.images(real)))
    assert scores["clip_i"] == pytest.approx(mean_pairwise_cosine(clip.images(generated), clip.images(real)))
    with torch.no_grad():
        model = clip.model
        pixels = clip.processor(images=generated, return_tensors="pt")["pixel_values"]
        image_features = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
        tokens = clip.tokenizer(prompts, padding=True, return_tensors="pt")
        text_features = model.text_projection(model.text_model(**tokens).pooler_output)
    expected = torch.nn.functional.cosine_similarity(image_features, text_features).mean()
    assert scores["clip_t"] == pytest.approx(float(expected), abs=1e-5)


def test_identical_images_score_one(encoders):
    clip, dino = encoders
    one = images(3, 1)
    scores = fidelity_scores(one, one, clip=clip, dino=dino)
    assert scores["dino"] == pytest.approx(1.0, abs=1e-5) and scores["clip_i"] == pytest.approx(1.0, abs=1e-5)
    assert language_drift(one * 2, one * 2, dino) == pytest.approx(1.0, abs=1e-5)
    assert language_drift(images(4), images(5), dino) < 1.0
    with pytest.raises(ValueError, match="language drift pairs images by seed: 2 before, 1 after"):
        language_drift(images(4), one, dino)


def test_encoder_folders_must_exist_locally(tmp_path):
    with pytest.raises(ModelError, match=r"CLIP encoder: .*nowhere is not a local model folder .* downloads nothing"):
        ClipEncoder(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"DINO encoder: .* could not be loaded"):
        DinoEncoder(tmp_path)
