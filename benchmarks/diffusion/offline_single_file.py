"""Offline single-file loading with the configs tunesmith ships: a full-size checkpoint read back with no config=.

    python benchmarks/diffusion/offline_single_file.py [--family sd1|sd2|sdxl] [--output results.json]

Builds the family's real architecture (UNet, text encoder(s) and VAE from tunesmith's shipped configs, random
weights, no download), writes it as one original-layout fp16 .safetensors file, frees it, and with HF_HUB_OFFLINE=1
loads the file with tunesmith's load_diffusion and no config=: the component configs and tokenizers must come from
what tunesmith ships. Checks the family, the prediction type, probe tensors of every component and the tokenizer
ids, then writes a results JSON (timings, file size, peak RSS). Full size is the only honest check (the shipped
configs must match a real checkpoint's shapes) and costs, for SD 1.5, 6.5 GiB peak RSS and 35 CPU seconds (77 s
wall on a quiet 2-core machine, 148 s on a busy one); SD 2.1 8.0 GiB; SDXL, built in fp32, more than 16 GiB:
too much for the test suite.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # as a script, only this file's folder would be on sys.path
os.environ["HF_HUB_OFFLINE"] = "1"  # before any hub client is imported: nothing may be fetched

import torch  # noqa: E402

from benchmarks.common.report import write_stamped  # noqa: E402
from benchmarks.diffusion.full_size import build  # noqa: E402

PREDICTIONS = {"sd1": "epsilon", "sd2": "v_prediction", "sdxl": "epsilon"}
PROMPT = "a photo of a dog"
PROBES = 4  # tensors compared per component, spread over its state dict


def probes(pipeline) -> dict[str, torch.Tensor]:
    """A few fp16 tensors of every component (first, last and between), by component and name."""
    chosen = {}
    for part in ("unet", "vae", "text_encoder", "text_encoder_2"):
        module = getattr(pipeline, part, None)
        if module is None:
            continue
        state = module.state_dict()
        names = list(state)
        for name in names[:: max(1, len(names) // PROBES)] + names[-1:]:
            chosen[f"{part}.{name}"] = state[name].detach().to(torch.float16).clone()
    return chosen


def token_ids(pipeline) -> list[list[int]]:
    tokenizers = [t for t in (pipeline.tokenizer, getattr(pipeline, "tokenizer_2", None)) if t is not None]
    return [t(PROMPT).input_ids for t in tokenizers]


def round_trip(family: str, folder: Path) -> dict:
    from tunesmith.models.diffusion import load_diffusion
    from tunesmith.models.diffusion_layout import save_single_file

    started = time.perf_counter()
    pipeline = build(family, shipped_vae=True)
    expected, ids = probes(pipeline), token_ids(pipeline)
    path = folder / f"{family}.safetensors"
    save_single_file(pipeline, path, family, dtype=torch.float16)
    del pipeline
    gc.collect()
    written = time.perf_counter()
    loaded = load_diffusion(path, dtype=torch.float16)  # no config=: the shipped configs and tokenizers
    read = time.perf_counter()
    got = probes(loaded.pipeline)
    mismatched = sorted(k for k, v in expected.items() if k not in got or not torch.equal(got[k], v))
    result = {
        "family": loaded.family.name, "prediction_type": loaded.prediction_type,
        "pipeline": type(loaded.pipeline).__name__, "file_mib": round(path.stat().st_size / 2**20),
        "probes_compared": len(expected), "probes_mismatched": mismatched,
        "token_ids": token_ids(loaded.pipeline), "token_ids_equal": token_ids(loaded.pipeline) == ids,
        "build_and_write_s": round(written - started, 1), "load_s": round(read - written, 1),
    }
    result["ok"] = (result["family"] == family and result["prediction_type"] == PREDICTIONS[family]
                    and not mismatched and result["token_ids_equal"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="sd1", choices=sorted(PREDICTIONS))
    parser.add_argument("--output", type=Path, default=None, help="results JSON (default: benchmarks/results/"
                                                                   "offline_single_file-FAMILY-cpu-TIME.json)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        result = round_trip(args.family, Path(scratch))
    result["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    output = write_stamped("diffusion/offline_single_file", {"result": result}, args.output,
                           name=f"offline_single_file-{args.family}")
    print(json.dumps(result, indent=2) + f"\nwritten: {output}")
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
