"""`tunesmith eval RUN --real-images DIR` for a diffusion run: did the model learn the subject, and at what cost?

The tuned model draws `n` images of each prompt (the run's validation prompts, or its subject prompt) from seeds
seed .. seed+n-1. Against the real subject images they get DINO and CLIP-I (identity), against their prompts CLIP-T
(prompt fidelity); with a class prompt, the same seeds draw the class before and after training: language drift
(evaluate/fidelity.py has the definitions). Grids and eval/report.json + eval/report.md go into the run folder.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from tunesmith.atomic import write_text_atomic
from tunesmith.errors import ConfigError, DataError

EVAL_DIR = "eval"
LABELS = {"dino": "DINO (subject identity)", "clip_i": "CLIP-I (subject likeness)",
          "clip_t": "CLIP-T (prompt fidelity)", "language_drift": "class prior kept (1 = no drift)"}


def evaluate_diffusion_run(run_dir: Path, real_images: Path, clip: Path | None = None, dino: Path | None = None,
                           prompts: list[str] | None = None, n: int = 4, seed: int = 0,
                           steps: int | None = None) -> Path:
    """Score the run, write its eval folder and return eval/report.md. `clip`/`dino`: local encoder folders (a
    transformers CLIPModel folder; a DINO, DINOv2 or ViT folder), at least one."""
    from tunesmith.evaluate.fidelity import ClipEncoder, DinoEncoder, fidelity_scores, language_drift
    from tunesmith.tasks.diffusion.sampling import draw, grid
    from tunesmith.tasks.diffusion.trained import load_trained

    if clip is None and dino is None:
        raise ConfigError("--clip / --dino: name at least one local encoder folder (a CLIPModel folder, a DINO or "
                          "ViT folder); tunesmith downloads nothing")
    real = _real_images(Path(real_images))
    encoders = {"clip": ClipEncoder(clip) if clip else None, "dino": DinoEncoder(dino) if dino else None}
    model, config = load_trained(Path(run_dir))
    sampling = _sampling(config, model.family, prompts, n, seed, steps)
    folder = Path(run_dir) / EVAL_DIR
    folder.mkdir(parents=True, exist_ok=True)

    rows = draw(model.pipeline, sampling)
    grid(rows).save(folder / "samples.png")
    generated = [image for row in rows for image in row]
    per_image = [prompt for prompt, row in zip(sampling.prompts, rows) for _ in row]
    scores = fidelity_scores(generated, real, per_image, clip=encoders["clip"], dino=encoders["dino"])
    grids = ["samples.png"]
    if config.data.class_prompt:
        import dataclasses

        classes = dataclasses.replace(sampling, prompts=(config.data.class_prompt,))
        with _base_weights(model, config) as base:
            before = draw(base, classes)[0]
        after = draw(model.pipeline, classes)[0]
        grid([before, after]).save(folder / "class_before_after.png")
        grids.append("class_before_after.png")
        scores["language_drift"] = language_drift(before, after, encoders["dino"] or encoders["clip"])
    return _write(folder, scores, {"run": str(run_dir), "real_images": str(real_images), "real_count": len(real),
                                   "prompts": list(sampling.prompts), "images_per_prompt": sampling.n,
                                   "seeds": f"{sampling.seed}..{sampling.seed + sampling.n - 1}",
                                   "steps": sampling.steps, "clip": str(clip) if clip else None,
                                   "dino": str(dino) if dino else None}, grids)


def _sampling(config, family, prompts, n: int, seed: int, steps: int | None):
    from tunesmith.tasks.diffusion.sampling import Sampling

    section = config.validation
    chosen = prompts or (section.prompts if section else [config.data.instance_prompt or ""])
    size = (section.resolution if section and section.resolution else None) or config.data.resolution \
        or family.resolution
    return Sampling(prompts=tuple(chosen), n=n, seed=seed, steps=steps or (section.steps if section else 25),
                    guidance_scale=section.guidance_scale if section else 7.5, size=size,
                    negative_prompt=section.negative_prompt if section else None)


@contextmanager
def _base_weights(model, config):
    """The pipeline before training: the LoRA switched off, or (full runs) the base loaded beside it."""
    from tunesmith.methods import registry

    if registry.of(config.method).is_adapter:
        model.pipeline.disable_lora()
        try:
            yield model.pipeline
        finally:
            model.pipeline.enable_lora()
        return
    from tunesmith.models.diffusion import load_diffusion

    base = load_diffusion(config.model, config.allow_pickle).pipeline
    yield base.to(model.pipeline.device)


def _real_images(folder: Path) -> list:
    from tunesmith.data.images.folder import IMAGE_SUFFIXES
    from tunesmith.data.images.transform import load_rgb

    if not folder.is_dir():
        raise DataError(f"--real-images: {folder} is not a folder of the subject's images")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not paths:
        raise DataError(f"--real-images: {folder} has no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    return [load_rgb(path) for path in paths]


def _write(folder: Path, scores: dict, meta: dict, grids: list[str]) -> Path:
    write_text_atomic(folder / "report.json", json.dumps({"scores": scores, **meta, "grids": grids}, indent=2) + "\n")
    lines = ["# Subject fidelity", "", "| metric | value |", "|---|---|"]
    lines += [f"| {LABELS[name]} | {value:.4f} |" for name, value in scores.items()]
    lines += ["", "Cosine similarities of encoder embeddings (DreamBooth's protocol): higher is closer.", "",
              "| setting | value |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in meta.items() if value is not None]
    lines += ["", *[f"![{name}]({name})\n" for name in grids]]
    path = folder / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
