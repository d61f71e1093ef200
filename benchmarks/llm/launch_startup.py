"""What starting a data-parallel run costs: `tunesmith train --nproc N` (ranks forked from a fork server that has
imported the training code once) against torchrun starting the same command as N fresh interpreters.

    python benchmarks/llm/launch_startup.py [--nproc 2] [--repeats 3]

Both run the same short LoRA job on the embedded SmolLM2-135M (2 steps, perplexity only), so what differs is how the
ranks start. Reported per variant, medians of alternating repeats: wall seconds and CPU seconds of the whole process
tree (the launcher, its fork server and every rank: what the machine spent; Linux only). Results:
benchmarks/results/launch_startup-<device>-<time>.json.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.common.report import write_stamped  # noqa: E402

EXAMPLE = ROOT / "examples" / "cooking-assistant" / "lora.yaml"
JOB = ["training.max_steps=2", "training.batch_size=2", "training.save_every=1000", "training.eval_every=1000",
       "data.max_length=128", "data.validation_split=0", "eval.compare_base=false", "eval.metrics=[perplexity]",
       "eval.max_examples=2"]
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def commands(nproc: int, output: Path) -> dict[str, list[str]]:
    train = ["train", str(EXAMPLE), "--overwrite", *[item for key in JOB for item in ("--set", key)],
             "--set", f"output_dir={output}"]
    return {
        "tunesmith --nproc": [sys.executable, "-m", "tunesmith", *train, "--nproc", str(nproc)],
        "torchrun": [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                     "-m", "tunesmith", *train],
    }


def become_subreaper() -> None:
    """Orphans under this process (the fork server outlives the launcher that started it and is never waited for)
    become its children, so reaping them counts their CPU time in RUSAGE_CHILDREN."""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit(f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(ctypes.get_errno())}")


def reap_all() -> None:
    while True:
        try:
            os.wait()
        except ChildProcessError:
            return


def measure(command: list[str], log: Path) -> dict:
    """Wall and CPU seconds of `command` and every process under it (all reaped, so counted in RUSAGE_CHILDREN)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(log, "w") as handle:
        code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - started
    reap_all()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise SystemExit(f"{command[2]} failed with exit code {code}; see {log}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    become_subreaper()
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="launch-startup-") as work:
        variants = commands(args.nproc, Path(work) / "run")
        for repeat in range(args.repeats):
            for name in (variants if repeat % 2 == 0 else reversed(list(variants))):  # alternate the order
                runs.setdefault(name, []).append(measure(variants[name], Path(work) / "log.txt"))
                print(f"{name}: {runs[name][-1]}", flush=True)
    medians = {name: {key: statistics.median(run[key] for run in items) for key in ("wall_s", "cpu_s")}
               for name, items in runs.items()}
    ratios = {key: round(medians["torchrun"][key] / medians["tunesmith --nproc"][key], 2) for key in ("wall_s", "cpu_s")}
    path = write_stamped("llm/launch_startup", {"nproc": args.nproc, "job": JOB, "runs": runs, "medians": medians,
                                                "torchrun_over_tunesmith": ratios})
    for name, values in medians.items():
        print(f"{name:>18}: {values['wall_s']:.1f} s wall, {values['cpu_s']:.1f} CPU s")
    print(f"torchrun / tunesmith: {ratios['wall_s']:.2f}x wall, {ratios['cpu_s']:.2f}x CPU; results: {path}")


if __name__ == "__main__":
    main()
