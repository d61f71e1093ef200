"""What one LoRA training forward keeps for backward, by module: the bytes behind a step's activation memory.

    python benchmarks/llm/saved_activations.py --workload cooking
    python benchmarks/llm/saved_activations.py --compare-src /tmp/before/src    # this checkout against an earlier one

The run is lora_vs_trl.py's tunesmith run (same model, LoRA, settings and workloads) through the public
`tunesmith.run.run`, stopped after two optimizer steps. During step 2's first micro-batch (step 1 lets the LoRA
layers learn which of them share an input) a `saved_tensors_hooks` pack hook sees every tensor autograd keeps for
backward; each storage is counted once, parameters not at all, and charged to the innermost module running when it
was saved (layer numbers folded: `layers.*.mlp`); what the training loss's own module saves (the fused lm_head and
cross-entropy) is "CausalLMLoss itself". With
--compare-src, the same count runs again with the tunesmith source in that folder (e.g. from
`git archive HEAD src | tar -x -C /tmp/before`), and the table puts the two side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # as a script, only this file's folder would be on sys.path

import torch  # noqa: E402

from benchmarks.common import machine  # noqa: E402
from benchmarks.common.llm_job import add_job_options, job_settings  # noqa: E402
from benchmarks.common.report import write_stamped  # noqa: E402
from benchmarks.llm import lora_vs_trl  # noqa: E402

JOB_OPTIONS = ["workload", "max_examples", "batch_size", "max_length", "precision", "seed", "tunesmith_set"]
OUTSIDE = "outside modules"  # saved while no module runs: not seen with tunesmith's loss module
MIB = 2**20


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:  # one count for --compare-src: the job settings in, the count out, beside them
        job = argparse.Namespace(**json.loads(args.child.read_text()))
        args.child.with_suffix(".count.json").write_text(json.dumps(count_saved(job)))
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    info = machine.describe(device)
    print(machine.summary_line(info), flush=True)
    counts = {"this checkout": count_saved(args)}
    if args.compare_src:
        counts[str(args.compare_src)] = _count_in_child(args)
    path = write_stamped("llm/saved_activations", {"settings": counts["this checkout"]["settings"],
                                                   "counts": counts},
                         args.output, name=f"saved_activations-{args.workload}", machine_info=info)
    print(f"\n{markdown(counts)}\n\nresults: {path}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Bytes one tunesmith LoRA training forward saves for backward.")
    add_job_options(parser, JOB_OPTIONS, choices={"workload": lora_vs_trl.WORKLOADS})
    parser.add_argument("--compare-src", type=Path, metavar="DIR",
                        help="also count with the tunesmith source in DIR (a src folder holding tunesmith/)")
    parser.add_argument("--output", type=Path, help="results JSON (default benchmarks/results/saved_activations-...)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # job settings JSON, for --compare-src
    args = parser.parse_args(argv)
    if args.compare_src and not (args.compare_src / "tunesmith" / "__init__.py").is_file():
        parser.error(f"--compare-src {args.compare_src}: expected a src folder holding tunesmith/__init__.py")
    return args


def _count_in_child(args: argparse.Namespace) -> dict:
    """The same count in a child whose tunesmith comes from --compare-src, with this run's job settings."""
    settings = Path(tempfile.mkdtemp(prefix="saved_activations-")) / "job.json"
    settings.write_text(json.dumps({name: getattr(args, name) for name in JOB_OPTIONS}))
    env = {**os.environ, "PYTHONPATH": str(args.compare_src)}
    subprocess.run([sys.executable, __file__, "--child", str(settings)], env=env, check=True)
    return json.loads(settings.with_suffix(".count.json").read_text())


# -- the count -----------------------------------------------------------------------------------------------
def count_saved(args: argparse.Namespace) -> dict:
    import tunesmith
    import tunesmith.run as tunesmith_run

    workdir = Path(tempfile.mkdtemp(prefix="saved_activations-"))
    job = lora_vs_trl.make_job(job_settings(args, max_test_examples=0), workdir)
    config = lora_vs_trl.tunesmith_config(
        {**job, "tunesmith_set": [*job["tunesmith_set"], "training.max_steps=2"]}, workdir / "run")
    counter = SavedCounter()

    def on_step_end(state) -> None:
        if state.step == 1:
            counter.start()
        elif state.step == 2:
            counter.stop()

    tunesmith_run.run(config, overwrite=True, on_step_end=on_step_end)
    return {"source": str(Path(tunesmith.__file__).parent), "settings": job, **counter.summary()}


class SavedCounter:
    """Between start() and stop(): the saved-for-backward storages of the first top-level module forward (the
    backbone) and what follows it until the next one, by the innermost module running when each was saved."""

    def __init__(self):
        self.stack: list[torch.nn.Module] = []
        self.names: dict[torch.nn.Module, str] = {}
        # Not tunesmith.train.saved_activations' count: --compare-src runs this file with another tunesmith source,
        # which must not change the counter (the unit test holds the two equal).
        self.parameters: set[int] = set()
        self.seen: set[int] = set()
        self.by_module: dict[str, list] = defaultdict(lambda: [0, 0, {}])  # bytes, tensors, {shape/dtype: bytes}
        self.root = ""  # the top-level module's class: the training loss, around the backbone and the head
        self.batch: list[int] = []  # [rows, length] of the counted micro-batch
        self.counting = self.done = False

    def start(self) -> None:
        self._handles = [torch.nn.modules.module.register_module_forward_pre_hook(self._enter),
                         torch.nn.modules.module.register_module_forward_hook(self._leave)]
        self._saved = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor)
        self._saved.__enter__()

    def stop(self) -> None:
        self._saved.__exit__(None, None, None)
        for handle in self._handles:
            handle.remove()

    def _enter(self, module, args) -> None:
        if not self.stack and not self.done:
            if self.counting:  # the next micro-batch: its activations live apart from the first's
                self.counting, self.done = False, True
            else:
                self.counting = True
                self.names = {m: name for name, m in module.named_modules()}
                self.root = type(module).__name__
                self.parameters = {p.untyped_storage().data_ptr() for p in module.parameters()}
        if self.counting and not self.batch and isinstance(module, torch.nn.Embedding):
            self.batch = list(args[0].shape)  # the token ids: the backbone is called with keywords only
        self.stack.append(module)

    def _leave(self, module, args, output) -> None:
        self.stack.pop()

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        pointer, added = storage.data_ptr(), storage.nbytes()
        if not self.counting or not added or pointer in self.parameters or pointer in self.seen:
            return tensor
        self.seen.add(pointer)
        where = _folded(self.names.get(self.stack[-1], "")) if self.stack else OUTSIDE
        entry = self.by_module[where or f"{self.root} itself"]
        entry[0] += added
        entry[1] += 1
        kind = f"{tuple(tensor.shape)} {str(tensor.dtype).removeprefix('torch.')}"
        entry[2][kind] = entry[2].get(kind, 0) + added
        return tensor

    def summary(self) -> dict:
        if not self.by_module:
            raise SystemExit("the run ended before step 2: give it at least 2 optimizer steps of data")
        total = sum(entry[0] for entry in self.by_module.values())
        rows = [{"module": name, "bytes": b, "mib": round(b / MIB, 2), "tensors": n,
                 "largest": max(kinds, key=kinds.get)}
                for name, (b, n, kinds) in sorted(self.by_module.items(), key=lambda item: -item[1][0])]
        tokens = self.batch[0] * self.batch[1] if len(self.batch) == 2 else None
        return {"batch": self.batch, "total_bytes": total, "total_mib": round(total / MIB, 2),
                "kib_per_token": round(total / 1024 / tokens, 1) if tokens else None, "modules": rows}


def _folded(name: str) -> str:
    """model.base_model.model.model.layers.7.mlp.up_proj.lora_A.default -> layers.*.mlp.up_proj.lora_A.default:
    layer numbers folded, the PEFT and task wrappers' prefix dropped."""
    return re.sub(r"\.\d+(?=\.|$)", ".*", re.sub(r"^model\.base_model\.model\.model\.", "", name))


def markdown(counts: dict[str, dict]) -> str:
    labels = list(counts)
    mib = {label: {row["module"]: row["mib"] for row in count["modules"]} for label, count in counts.items()}
    modules = sorted({m for rows in mib.values() for m in rows}, key=lambda m: -max(r.get(m, 0) for r in mib.values()))
    # The largest tensor of each module's row, from the first count that has the row.
    largest = {row["module"]: row["largest"] for count in reversed(counts.values()) for row in count["modules"]}
    lines = [f"| module | {' | '.join(f'MiB ({label})' for label in labels)} | largest tensor |",
             f"|---|{'---:|' * len(labels)}---|"]
    for module in modules:
        cells = " | ".join(f"{mib[label][module]:,.1f}" if module in mib[label] else "-" for label in labels)
        lines.append(f"| {module} | {cells} | {largest[module]} |")
    totals = " | ".join(f"**{counts[label]['total_mib']:,.1f}**" for label in labels)
    batches = ", ".join(f"{label}: {count['batch']}, {count['kib_per_token']} KiB a token"
                        for label, count in counts.items())
    lines.append(f"| **total** | {totals} | batch [rows, tokens]: {batches} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
