"""Near-duplicate recall and index memory: the compact index against datasketch's own, and per num_perm.

    python benchmarks/data/dedup_recall.py                     # 2,000 planted pairs
    python benchmarks/data/dedup_recall.py --pairs 500         # smoke test

Each pair is a generated answer (40-80 words, benchmarks/data/corpus.py's vocabulary) and a copy with 1 to 16
words replaced, so the pairs' true Jaccard similarity (5-character shingles) spreads from ~0.5 to ~0.98. All
originals are indexed, then each copy is looked up: a pair at or above the 0.8 threshold that is not found is a
miss. Recall is shown per band of true similarity; precision is 1 by construction (every candidate is rechecked
with the true Jaccard; `found_below_threshold` counts any pair that got through anyway), and the cost of false
candidates shows in the time per lookup. Index memory is tracemalloc's count of what indexing the originals
allocated, per example (the texts themselves left out); for the compact index it includes the dict of entries
not yet flushed into its sorted arrays (up to 32,768 entries, ~100 bytes each), which a larger corpus amortises:
there each entry costs 12 bytes (`index_entries_per_example` x 12). "datasketch" is MinHashLSH with its
in-memory storage, as tunesmith used it before the compact index; "compact" is tunesmith's Deduplicator.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import tracemalloc
import zlib
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # as a script, only this file's folder would be on sys.path

from benchmarks.common.report import machine, write_results  # noqa: E402
from benchmarks.data.corpus import WORDS  # noqa: E402

BANDS = ((0.8, 0.85), (0.85, 0.9), (0.9, 0.95), (0.95, 1.01))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=2_000)
    parser.add_argument("--num-perm", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="results JSON (default: benchmarks/results/dedup-recall-cpu-STAMP.json)")
    args = parser.parse_args(argv)
    from datasketch import MinHashLSH  # noqa: F401  (imported before any measurement)

    from tunesmith.config.prepare import DedupSettings
    from tunesmith.data.prepare.dedup import jaccard, shingles

    pairs = planted_pairs(args.pairs, args.seed)
    settings = DedupSettings()
    truth = [jaccard(shingles(a, settings.shingle_size), shingles(b, settings.shingle_size)) for a, b in pairs]
    runs = {"datasketch/128": measure(DatasketchIndex(DedupSettings(num_perm=128)), pairs, truth, settings)}
    for num_perm in args.num_perm:
        runs[f"compact/{num_perm}"] = measure(CompactIndex(DedupSettings(num_perm=num_perm)), pairs, truth, settings)
        print(f"{num_perm}: {runs[f'compact/{num_perm}']}", flush=True)
    payload = {"benchmark": "dedup_recall", "pairs": args.pairs, "seed": args.seed, "threshold": settings.threshold,
               "shingle_size": settings.shingle_size, "machine": machine(),
               "pairs_per_band": {label(b): sum(b[0] <= t < b[1] for t in truth) for b in BANDS}, "runs": runs}
    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    output = Path(args.output) if args.output else REPO / "benchmarks" / "results" / f"dedup-recall-cpu-{stamp}.json"
    write_results(output, payload)
    print(table(payload))
    print(f"results: {output}")


def planted_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(40, 80))]
        copy = list(words)
        for position in rng.sample(range(len(copy)), rng.randint(1, 16)):
            copy[position] = rng.choice(WORDS)
        pairs.append((" ".join(words), " ".join(copy)))
    return pairs


class CompactIndex:
    def __init__(self, settings):
        from tunesmith.data.prepare.dedup import Deduplicator

        self.texts: list[str] = []
        self.dedup = Deduplicator(settings, lambda key: ("", self.texts[key]))

    @property
    def entries(self) -> int:
        return self.dedup.index_entries  # 12 bytes each once flushed from the pending dict

    def add(self, text: str) -> None:
        _, bands = self.dedup.near_match(("", text))
        self.dedup.remember(len(self.texts), ("", text), bands)
        self.texts.append(text)

    def found(self, text: str) -> int | None:
        match, _ = self.dedup.near_match(("", text))
        return None if match is None else match.key


class DatasketchIndex:
    """MinHashLSH with datasketch's in-memory storage, as dedup.py used it before the compact index."""

    entries = None  # Python dicts of sets: no fixed size per entry

    def __init__(self, settings):
        from datasketch import MinHash, MinHashLSH

        from tunesmith.data.prepare.dedup import LSH_WEIGHTS, MINHASH_SEED

        self.settings, self.texts = settings, []
        self.sketch = MinHash(num_perm=settings.num_perm, seed=MINHASH_SEED, hashfunc=zlib.crc32)  # reused, as before
        self.lsh = MinHashLSH(threshold=settings.threshold, num_perm=settings.num_perm, weights=LSH_WEIGHTS)

    def _sketch(self, own: set[str]):
        self.sketch.clear()  # the index copies band hashes on insert
        self.sketch.update_batch(map(str.encode, own))
        return self.sketch

    def add(self, text: str) -> None:
        from tunesmith.data.prepare.dedup import shingles

        self.lsh.insert(len(self.texts), self._sketch(shingles(text, self.settings.shingle_size)),
                        check_duplication=False)
        self.texts.append(text)

    def found(self, text: str) -> int | None:
        from tunesmith.data.prepare.dedup import jaccard, shingles

        size, own = self.settings.shingle_size, shingles(text, self.settings.shingle_size)
        close = [(jaccard(own, shingles(self.texts[key], size)), key) for key in self.lsh.query(self._sketch(own))]
        close = [pair for pair in close if pair[0] >= self.settings.threshold]
        return max(close)[1] if close else None


def measure(index, pairs: list[tuple[str, str]], truth: list[float], settings) -> dict:
    tracemalloc.start()
    for original, _ in pairs:
        index.add(original)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    texts = 8 * len(index.texts)  # the list of originals the lookups read back (the strings existed before)
    started = time.perf_counter()
    found = [index.found(copy) == key for key, (_, copy) in enumerate(pairs)]
    lookups = time.perf_counter() - started
    recall = {}
    for band in BANDS:
        members = [hit for hit, t in zip(found, truth) if band[0] <= t < band[1]]
        recall[label(band)] = round(sum(members) / len(members), 4) if members else None
    above = [hit for hit, t in zip(found, truth) if t >= settings.threshold]
    return {"recall_at_or_above_threshold": round(sum(above) / len(above), 4), "recall_by_similarity": recall,
            "found_below_threshold": sum(hit for hit, t in zip(found, truth) if t < settings.threshold),
            "index_bytes_per_example": round((held - texts) / len(pairs)),
            "index_entries_per_example": index.entries / len(pairs) if index.entries else None,
            "ms_per_lookup": round(1000 * lookups / len(pairs), 2)}


def label(band: tuple[float, float]) -> str:
    return f"{band[0]:.2f}-{min(band[1], 1.0):.2f}"


def table(payload: dict) -> str:
    bands = [label(b) for b in BANDS]
    lines = ["| index/num_perm | recall >= 0.8 | " + " | ".join(f"recall {b}" for b in bands)
             + " | bytes/example | ms/lookup |", "|---|" + "---:|" * (len(bands) + 3)]
    for name, run in payload["runs"].items():
        cells = [str(run["recall_by_similarity"][b]) for b in bands]
        lines.append(f"| {name} | {run['recall_at_or_above_threshold']} | " + " | ".join(cells)
                     + f" | {run['index_bytes_per_example']:,} | {run['ms_per_lookup']} |")
    lines.append("pairs per band: " + json.dumps(payload["pairs_per_band"]))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
