"""SDXL kohya LoRA keys on the real SDXL base architecture: export, reload with diffusers, zero ignored keys.

    python benchmarks/diffusion/sdxl_kohya_keys.py [--family sdxl|sd1] [--out lora.safetensors]

Builds SDXL base's UNet (2.6 B parameters) and both text encoders from tunesmith's shipped configs with random
weights (no download), trains LoRA for two steps at 64 px, exports kohya fp16 and reloads it with
load_lora_weights; the export fails if any layer is ignored. Needs about 16 GB of RAM in fp32, which is why it is
a script and not a CI test (tests/diffusion/test_full_size_kohya.py does SD 1.5 there). Prints JSON with the
module counts, the two losses, timings and the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from full_size import kohya_round_trip  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="sdxl", choices=["sdxl", "sd1"])
    parser.add_argument("--out", type=Path, default=None, help="where to keep the LoRA file (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch) / f"{args.family}-kohya.safetensors"
        result = kohya_round_trip(args.family, out)
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
