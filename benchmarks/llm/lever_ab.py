"""One speed lever, measured alone: tunesmith with and without it, alternating, on the same job.

    python benchmarks/llm/lever_ab.py --workload short --max-examples 64 --patch adamw_fused
    python benchmarks/llm/lever_ab.py --workload short --max-examples 64 --set method.dropout=0
    python benchmarks/llm/lever_ab.py --off-src /tmp/before/src     # this checkout against an earlier one
    python benchmarks/llm/lever_ab.py --env THP_MEM_ALLOC_ENABLE=1     # an environment setting

"off" is tunesmith as lora_vs_trl.py runs it (with --off-src, the tunesmith source in that folder, e.g. from
`git archive HEAD src | tar -x -C /tmp/before`); "on" adds the lever: a patch from benchmarks/llm/patches.py (a change
not yet made in the source), tunesmith config overrides and/or environment variables, or this checkout's source
against --off-src. Runs alternate off, on, on, off, ... each in its own
child process (lora_vs_trl.py's tunesmith child), so drift on a shared machine hits both alike. Besides speed, the
table says whether the lever changed the results: the per-step training losses of the first off and on runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # as a script, only this file's folder would be on sys.path

import torch  # noqa: E402

from benchmarks.common import machine  # noqa: E402
from benchmarks.common.llm_job import add_job_options, job_settings, run_alternating  # noqa: E402
from benchmarks.common.report import markdown_table, medians, ratios, write_stamped  # noqa: E402
from benchmarks.llm import lora_vs_trl, patches  # noqa: E402

VARIANTS = ("off", "on")
# lora_vs_trl.py's columns a lever moves, with more digits where a lever's effect is small.
FINER = {"tokens_per_s": ".2f", "steady_tokens_per_s": ".2f", "final_train_loss": ".6f", "test_perplexity": ".4f"}
KEYS = ("tokens_per_s", "steady_tokens_per_s", "first_step_seconds", "train_seconds", "train_cpu_seconds", "train_peak_rss_mib", "final_train_loss",
        "test_perplexity")
_SHARED = {column.key: column for column in lora_vs_trl.COLUMNS}
COLUMNS = [replace(_SHARED[key], fmt=FINER.get(key, _SHARED[key].fmt)) for key in KEYS]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    workdir = Path(tempfile.mkdtemp(prefix="lever_ab-"))
    base = lora_vs_trl.make_job(job_settings(args), workdir)
    jobs = {"off": base, "on": {**base, "tunesmith_set": [*base["tunesmith_set"], *args.set],
                                "tunesmith_patch": [*base["tunesmith_patch"], *args.patch]}}
    lever = " ".join([*args.patch, *args.set, *args.env, *([f"source vs {args.off_src}"] if args.off_src else [])])
    print(f"lever: {lever}\nmeasuring the machine ({device.type}) ...", flush=True)
    info = machine.describe(device)
    print(machine.summary_line(info), flush=True)
    paths = {}
    for variant, job in jobs.items():
        paths[variant] = workdir / f"job-{variant}.json"
        paths[variant].write_text(json.dumps(job, indent=2))

    def launch(variant: str, stem: Path, label: str) -> dict:
        if variant == "off":
            env = {"PYTHONPATH": str(args.off_src)} if args.off_src else {}
        else:
            env = dict(setting.split("=", 1) for setting in args.env)
        return lora_vs_trl.run_tool("tunesmith", paths[variant], stem, label, env)

    def after(index: int, total: int, result: dict) -> None:
        print(f"[{index}/{total}] {result['tool']}: {result['tokens_per_s']:.2f} tokens/s, "
              f"{result['train_seconds']:.1f} s "
              f"({result['train_cpu_seconds']:.1f} CPU s), final loss {result['final_train_loss']:.6f}, "
              f"load {result['load_average'][0]:.1f}", flush=True)

    runs = run_alternating(VARIANTS, args.repeats, workdir, launch, after)

    summary = {variant: medians(runs, variant, [column.key for column in COLUMNS]) for variant in VARIANTS}
    ratio = ratios(summary["on"], summary["off"])
    table = markdown_table(summary, COLUMNS, "on / off", ratio)
    same = same_results(runs)
    print(f"\nlever: {lever}; medians over {args.repeats} run(s) each:\n{table}\n{same['summary']}")

    parts = [*args.patch, *args.set, *args.env, *(["source"] if args.off_src else [])]
    name = "-".join(part.replace("=", "_").replace(".", "_") for part in parts)
    output = write_stamped("llm/lever_ab", {
        "lever": lever,
        "settings": jobs,
        "medians": summary,
        "ratio_on_over_off": ratio,
        "same_results": same,
        "table": table,
        "runs": runs,
    }, args.output, name=f"lever_ab-{name}-{args.workload}",
        machine_info={**info, "load_average_after": machine.load_average()})
    print(f"results: {output}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="tunesmith with and without one speed lever, alternating.")
    parser.add_argument("--patch", action="append", default=[], choices=sorted(patches.PATCHES),
                        help="a lever from benchmarks/llm/patches.py, on in the 'on' runs (repeatable)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a tunesmith config override in the 'on' runs (repeatable)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable of the 'on' runs' process (repeatable)")
    parser.add_argument("--off-src", type=Path, metavar="DIR",
                        help="the 'off' runs import tunesmith from DIR (a src folder) instead of this checkout")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant")
    add_job_options(parser, ["workload", "max_examples", "max_test_examples", "batch_size", "precision",
                             "tunesmith_set"],
                    choices={"workload": lora_vs_trl.WORKLOADS}, workload="short", max_examples=64,
                    max_test_examples=16)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    if not args.patch and not args.set and not args.env and not args.off_src:
        parser.error("name the lever: --patch NAME, --set KEY=VALUE, --env NAME=VALUE and/or --off-src DIR")
    for setting in args.env:
        if "=" not in setting or not setting.split("=", 1)[0]:
            parser.error(f"--env {setting!r}: expected NAME=VALUE")
    if args.off_src and not (args.off_src / "tunesmith" / "__init__.py").is_file():
        parser.error(f"--off-src {args.off_src}: expected a src folder holding tunesmith/__init__.py")
    return args


def same_results(runs: list[dict]) -> dict:
    """Whether the first 'off' and 'on' runs logged the same per-step losses (and each variant repeats itself)."""
    first = {variant: next(run["train_losses"] for run in runs if run["tool"] == variant) for variant in VARIANTS}
    difference = max((abs(a - b) for a, b in zip(first["off"], first["on"])), default=0.0)
    repeatable = all(run["train_losses"] == first[run["tool"]] for run in runs)
    identical = first["off"] == first["on"]
    verdict = "identical" if identical else f"differ by up to {difference:.3g}"
    return {
        "identical": identical,
        "max_abs_loss_difference": difference,
        "each_variant_repeatable": repeatable,
        "summary": f"per-step training losses, off vs on: {verdict}; "
                   f"each variant {'repeats' if repeatable else 'does NOT repeat'} itself exactly",
    }


if __name__ == "__main__":
    main()
