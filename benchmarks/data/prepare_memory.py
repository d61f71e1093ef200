"""`tunesmith data prepare` memory on large generated corpora: peak RSS and examples/s per size, growth per row.

    python benchmarks/data/prepare_memory.py                            # 10,000 and 100,000 chats
    python benchmarks/data/prepare_memory.py --chats 10000 1000000      # a million (hours on a small shared machine)
    python benchmarks/data/prepare_memory.py --chats 20000 --pii        # with Presidio redaction (slower)
    python benchmarks/data/prepare_memory.py --chats 100000 --structures 1000000   # and the per-row parts at 1M

`--structures ROWS` also measures, in a child of its own, only what grows with the number of rows, at ROWS
rows and without the text work (which a small machine needs hours for at a million rows): the deduplication
index filled with 17 random hashes per row (what 128 permutations give) and looked up, then pass two's
split (labels, near-duplicate groups), mixing weights and oversampling, and the report's statistics of ROWS
short examples that each bring a new word (so the vocabulary has to switch to its estimate).

The corpus is benchmarks/data/corpus.py's messy chats (seeded). Each size runs in its own child process, so no
size's memory counts against another's; redaction is off unless --pii (it costs time, not memory that grows).
Per size it records: seconds and examples/s of the prepare() call, and its CPU seconds (the steadier figure on
a shared machine, where the wall clock waits for other jobs); RSS before the call (imports); the peak of
pass one (check, repair, clean, dedup, staging) and of pass two (split, split files, report), each from the
kernel's high-water mark reset as the pass starts; the process's peak, the larger of those and wait4's figure
(which, the mark being reset, covers only the last part); the deduplication index's entries and bytes at the
end of pass one; and the seconds spent in deduplication calls. The growth per row is (peak at the largest size
- peak at the smallest) / (rows between them).
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

from benchmarks.common.measure import run_child  # noqa: E402
from benchmarks.common.report import machine, write_results  # noqa: E402
from benchmarks.data.corpus import generate  # noqa: E402

MIB = 2**20


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child(args)
        return
    if args.structures_child:
        structures_child(args.structures_child, Path(args.result))
        return
    load = {"before": os.getloadavg()[0]}  # the machine may be shared: the timings only mean something beside it
    work = Path(tempfile.mkdtemp(prefix="prepare-memory-"))
    runs = {}
    structures = run_structures(args.structures, work) if args.structures else None
    for chats in sorted(args.chats):
        corpus = work / f"chats-{chats}.jsonl"
        planted = generate(corpus, chats, args.seed)
        result, log = work / f"{chats}.json", work / f"{chats}.log"
        command = [sys.executable, __file__, "--child", "--corpus", str(corpus), "--out", str(work / f"out-{chats}"),
                   "--result", str(result)] + (["--pii"] if args.pii else [])
        process = run_child(command, log)
        if process.returncode:
            raise SystemExit(f"{chats} chats failed; see {log}")
        run = json.loads(result.read_text())
        peak = max(process.peak_rss_mib, run["pass_one_peak_rss_mib"], run["pass_two_peak_rss_mib"])
        runs[str(chats)] = {**run, "planted": planted, "peak_rss_mib": round(peak, 1)}
        print(f"{chats}: {runs[str(chats)]}", flush=True)
        corpus.unlink()  # a million chats is ~0.8 GiB; the next size writes its own
    load["after"] = os.getloadavg()[0]
    payload = {"benchmark": "prepare_memory", "seed": args.seed, "pii": args.pii, "machine": machine(),
               "load_average": load, "runs": runs, "growth": growth(runs), "structures": structures}
    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    output = Path(args.output) if args.output else REPO / "benchmarks" / "results" / f"prepare-memory-cpu-{stamp}.json"
    write_results(output, payload)
    print(table(runs))
    print(f"growth: {payload['growth']}")
    print(f"structures: {structures}")
    print(f"results: {output}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, nargs="+", default=[10_000, 100_000], help="corpus sizes to run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pii", action="store_true", help="redact personal data too (Presidio; much slower)")
    parser.add_argument("--structures", type=int, metavar="ROWS", help="also measure the per-row parts at ROWS rows")
    parser.add_argument("--output", help="results JSON (default: benchmarks/results/prepare-memory-cpu-STAMP.json)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--structures-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def child(args: argparse.Namespace) -> None:
    from tunesmith.config.prepare import PrepareConfig
    from tunesmith.data.prepare import Input, pipeline, prepare

    stages = {"rss_before_mib": _status_mib("VmRSS")}
    dedup_seconds = _time_calls(pipeline.Deduplicator, ("exact_match", "near_match", "remember"))
    _record_passes(pipeline._Preparation, stages)
    settings = PrepareConfig.model_validate({} if args.pii else {"pii": {"enabled": False}})
    _reset_peak()
    started, cpu_started = time.perf_counter(), time.process_time()
    prepared = prepare([Input(args.corpus)], settings, args.out)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    report = json.loads((prepared.folder / "report.json").read_text())
    records, dedup = report["steps"]["check"]["records"], report["steps"]["dedup"]
    Path(args.result).write_text(json.dumps({
        "records": records, "seconds": round(seconds, 1), "examples_per_second": round(records / seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1), "examples_per_cpu_second": round(records / cpu_seconds, 1),
        "dedup_seconds": round(dedup_seconds[0], 1), **stages, "counts": prepared.manifest["counts"],
        "exact_duplicates": dedup["exact"], "near_duplicates": dedup["near"],
        "vocabulary": report["overall"]["vocabulary"],
    }))


def run_structures(rows: int, work: Path) -> dict:
    result, log = work / "structures.json", work / "structures.log"
    process = run_child([sys.executable, __file__, "--structures-child", str(rows), "--result", str(result)], log)
    if process.returncode:
        raise SystemExit(f"the structures at {rows} rows failed; see {log}")
    out = json.loads(result.read_text())
    parts = (out["index_peak_rss_mib"], out["split_peak_rss_mib"], out["stats_peak_rss_mib"])
    return {**out, "peak_rss_mib": round(max(process.peak_rss_mib, *parts), 1)}


def structures_child(rows: int, result: Path) -> None:
    import numpy as np

    from tunesmith.config.prepare import PrepareConfig
    from tunesmith.data.formats import Example
    from tunesmith.data.prepare.hash_index import HashIndex
    from tunesmith.data.prepare.lengths import Lengths
    from tunesmith.data.prepare.pipeline import Input, _Preparation
    from tunesmith.data.prepare.stats import SplitStats

    out = {"rows": rows, "rss_before_mib": _status_mib("VmRSS")}
    rng = np.random.default_rng(0)
    _reset_peak()
    started, index = time.perf_counter(), HashIndex()
    for start in range(0, rows, 10_000):
        for key, hashes in enumerate(rng.integers(0, 2**63, size=(min(10_000, rows - start), 17),
                                                  dtype=np.uint64).tolist(), start):
            index.add(hashes, key)
    out["index_seconds"] = round(time.perf_counter() - started, 1)
    out["index_entries"], out["index_mib"] = len(index), round(index.nbytes / MIB, 1)
    out["index_peak_rss_mib"] = _status_mib("VmHWM")
    probes = rng.integers(0, 2**63, size=(2_000, 16), dtype=np.uint64)
    started = time.perf_counter()
    for probe in probes:
        index.keys(probe)
    out["lookup_us"] = round(1e6 * (time.perf_counter() - started) / len(probes), 1)
    del index
    work = Path(tempfile.mkdtemp(prefix="structures-"))
    settings = PrepareConfig.model_validate({"pii": {"enabled": False}, "augment": {"target_ratio": 0.5}})
    preparation = _Preparation([Input("train.jsonl")], settings, "chat", None, work)
    preparation.label_names = ["common", "usual", "rare", "rarer", "rarest"]
    labels = rng.choice(5, size=rows, p=[0.5, 0.3, 0.1, 0.07, 0.03])
    columns = {"roles": np.full(rows, 3), "labels": labels, "sources": np.zeros(rows),  # all from the training file
               "groups": np.where(rng.random(rows) < 0.02, np.maximum(np.arange(rows) - 1, 0), np.arange(rows))}
    for name, values in columns.items():  # 2% of the rows kept beside the row before them (similar examples)
        numbers = getattr(preparation, name)
        numbers.frombytes(values.astype(numbers.typecode).tobytes())
    del columns
    _reset_peak()
    started = time.perf_counter()
    copies = preparation._copies(preparation._splits())
    out["split_seconds"] = round(time.perf_counter() - started, 1)
    out["split_peak_rss_mib"] = _status_mib("VmHWM")
    out["written"] = int(copies.sum())
    _reset_peak()
    stats, started = SplitStats(settings.report), time.perf_counter()
    for key, label in enumerate(labels.tolist()):
        stats.add(Example(text=f"row {key} id{key}"), Lengths(key % 300, key % 1_000, 0), str(label), "train.jsonl")
    summary = stats.summary()
    out["stats_seconds"] = round(time.perf_counter() - started, 1)
    out["stats_peak_rss_mib"] = _status_mib("VmHWM")
    out["vocabulary"], out["vocabulary_estimated"] = summary["vocabulary"], summary["vocabulary_estimated"]
    result.write_text(json.dumps(out))


def _record_passes(preparation: type, stages: dict) -> None:
    """Read the peak RSS when pass one ends, and again when pass two ends (the mark reset between them)."""
    finish = preparation._finish

    def recorded(self, key):
        stages["pass_one_peak_rss_mib"] = _status_mib("VmHWM")
        stages["index_entries"] = self.dedup.index_entries
        stages["index_mib"] = round(self.dedup.index_bytes / MIB, 1)
        self.dedup = None  # as _finish does first: pass two's mark should start without the index
        _reset_peak()
        manifest = finish(self, key)
        stages["pass_two_peak_rss_mib"] = _status_mib("VmHWM")
        return manifest

    preparation._finish = recorded


def _time_calls(cls: type, names: tuple[str, ...]) -> list[float]:
    """Wrap methods of cls to add up the seconds spent in them; returns the running total (a one-item list)."""
    total = [0.0]
    for name in names:
        method = getattr(cls, name)

        def timed(*args, _method=method, **kwargs):
            started = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                total[0] += time.perf_counter() - started

        setattr(cls, name, timed)
    return total


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux)


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)  # reported in kB
    raise RuntimeError(f"/proc/self/status has no {field} line")


def growth(runs: dict) -> dict | None:
    """Bytes of peak RSS per extra row, between the smallest and the largest size."""
    if len(runs) < 2:
        return None
    small, large = runs[min(runs, key=int)], runs[max(runs, key=int)]
    rows = large["records"] - small["records"]
    per_row = {key: round((large[key] - small[key]) * MIB / rows, 1)
               for key in ("peak_rss_mib", "pass_one_peak_rss_mib", "pass_two_peak_rss_mib", "index_mib")}
    return {"from": small["records"], "to": large["records"], "bytes_per_row": per_row}


def table(runs: dict) -> str:
    lines = ["| chats | seconds | examples/s | CPU s | examples/CPU s | dedup s | RSS before MiB | pass one peak MiB | "
             "pass two peak MiB | peak MiB | index entries | index MiB |", "|---:|" + "---:|" * 11]
    for chats, run in runs.items():
        lines.append(f"| {int(chats):,} | {run['seconds']} | {run['examples_per_second']} | {run['cpu_seconds']} | "
                     f"{run['examples_per_cpu_second']} | {run['dedup_seconds']} | "
                     f"{run['rss_before_mib']} | {run['pass_one_peak_rss_mib']} | {run['pass_two_peak_rss_mib']} | "
                     f"{run['peak_rss_mib']} | {run['index_entries']:,} | {run['index_mib']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
