"""`tunesmith data prepare` throughput and memory on a generated corpus of messy chats (benchmarks/data/corpus.py).

    python benchmarks/data/prepare_throughput.py                  # 10,000 chats: full, no redaction, reuse
    python benchmarks/data/prepare_throughput.py --chats 2000     # smoke test
    python benchmarks/data/prepare_throughput.py --chats 40000 --variants no_pii   # one size without redaction

How memory grows with the number of rows (100,000 and a million chats) is prepare_memory.py's job.

Each variant runs in its own child process, so imports and memory of one never count against another:
- full:    every step with its defaults (check, repair, clean, exact and near dedup, Presidio redaction, split,
           report with plots), lengths in words (no model);
- no_pii:  the same with pii.enabled: false, to show what redaction costs;
- reuse:   a second prepare of the full variant's inputs into the same folder (the fingerprint matches).
Throughput is records read / seconds of the prepare() call (imports excluded, Presidio's start-up included).
Peak RSS is the child's whole peak (wait4), and the prepare call's own peak (the high-water mark reset as it
starts). The results file records the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # as a script, only this file's folder would be on sys.path

from benchmarks.common.measure import Phase, run_child  # noqa: E402
from benchmarks.common.report import machine, write_results  # noqa: E402
from benchmarks.data.corpus import generate  # noqa: E402

VARIANTS = {"full": {}, "no_pii": {"pii": {"enabled": False}}, "reuse": {}}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child(args)
        return
    load = {"before": os.getloadavg()[0]}  # the machine may be shared: the figures only mean something beside it
    work = Path(tempfile.mkdtemp(prefix="prepare-bench-"))
    corpus = work / "chats.jsonl"
    planted = generate(corpus, args.chats, args.seed)
    runs = {}
    for variant in args.variants:
        out = work / ("out-full" if variant in ("full", "reuse") else f"out-{variant}")
        result = work / f"{variant}.json"
        command = [sys.executable, __file__, "--child", variant, "--corpus", str(corpus), "--out", str(out),
                   "--result", str(result)]
        process = run_child(command, work / f"{variant}.log")
        if process.returncode:
            raise SystemExit(f"{variant} failed; see {work / f'{variant}.log'}")
        runs[variant] = {**json.loads(result.read_text()), "peak_rss_mib": round(process.peak_rss_mib, 1)}
        print(f"{variant}: {runs[variant]}")
    load["after"] = os.getloadavg()[0]
    payload = {"benchmark": "prepare_throughput", "chats": args.chats, "seed": args.seed, "planted": planted,
               "machine": machine(), "load_average": load, "runs": runs}
    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    output = Path(args.output) if args.output else REPO / "benchmarks" / "results" / f"prepare-cpu-{stamp}.json"
    write_results(output, payload)
    print(table(runs))
    print(f"results: {output}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                        help="which to run (reuse needs full first)")
    parser.add_argument("--output", help="results JSON (default: benchmarks/results/prepare-cpu-STAMP.json)")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if "reuse" in args.variants and "full" not in args.variants:
        parser.error("--variants reuse needs full before it: it prepares the same inputs a second time")
    return args


def child(args: argparse.Namespace) -> None:
    from tunesmith.config.prepare import PrepareConfig
    from tunesmith.data.prepare import Input, prepare

    settings = PrepareConfig.model_validate(VARIANTS[args.child])
    with Phase() as phase:
        started = time.perf_counter()
        prepared = prepare([Input(args.corpus)], settings, args.out)
        seconds = time.perf_counter() - started
    report = json.loads((prepared.folder / "report.json").read_text())
    records = report["steps"]["check"]["records"]
    dedup = report["steps"]["dedup"]
    Path(args.result).write_text(json.dumps({
        "reused": prepared.reused, "records": records, "seconds": round(seconds, 2),
        "examples_per_second": round(records / seconds, 1), "prepare_peak_rss_mib": round(phase.peak_rss_mib, 1),
        "counts": prepared.manifest["counts"], "exact_duplicates": dedup["exact"], "near_duplicates": dedup["near"],
        "kept_together": dedup["kept_together"], "repairs": {k: v for k, v in report["steps"]["repair"].items()
                                                             if k != "samples"},
        "redacted": report["steps"]["pii"]["counts"], "invalid": report["steps"]["check"]["invalid"],
    }))


def table(runs: dict) -> str:
    lines = ["| variant | records | seconds | examples/s | prepare peak RSS MiB | process peak RSS MiB |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, run in runs.items():
        lines.append(f"| {name} | {run['records']:,} | {run['seconds']} | {run['examples_per_second']:,} | "
                     f"{run['prepare_peak_rss_mib']} | {run['peak_rss_mib']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
