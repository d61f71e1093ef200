"""LoRA SFT throughput, memory and quality: tunesmith vs TRL SFTTrainer + PEFT, in one invocation.

    python benchmarks/llm/lora_vs_trl.py --quick                     # smoke test: 16 examples, one run per tool
    python benchmarks/llm/lora_vs_trl.py --repeats 3                 # the measurement; run it on a quiet machine
    python benchmarks/llm/lora_vs_trl.py --workload short --repeats 3   # generated ~86-token JSON-extraction rows

Both tools train the embedded SmolLM2-135M-Instruct on the same chat data with the same LoRA config,
learning rate and schedule, epochs, batch size, precision, seed and completion-only loss. Runs alternate
(tunesmith, TRL, TRL, tunesmith, ...) and each is a child process of its own, so every peak is per run. Before
the runs the machine is measured (common/machine.py), and each tool's tokens/s is also given as a fraction of the
machine's LoRA ceiling. "After step 1" columns leave the first optimizer step out: on some machines (this
project's EPYC-AVX2 host) the first touch of fresh memory costs ~2 s/GiB and makes step 1 two to three times slower in
both tools, which on a short benchmark hides the steady speed a long run has.
benchmarks/README.md says what each number means and where the comparison is not like for like.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # as a script, only this file's folder would be on sys.path

import torch  # noqa: E402
import yaml  # noqa: E402

from benchmarks.common import machine  # noqa: E402
from benchmarks.common.evaluate import completion_perplexity, read_chats  # noqa: E402
from benchmarks.common.llm_job import JOB_DEFAULTS, add_job_options, run_alternating  # noqa: E402
from benchmarks.common.measure import Phase, run_child  # noqa: E402
from benchmarks.common.report import RESULTS, Column, markdown_table, medians, ratios, write_stamped  # noqa: E402
from benchmarks.llm import patches, short_rows  # noqa: E402
from tunesmith.models.embedded import EMBEDDED_ALIAS, embedded_model_dir  # noqa: E402

TOOLS = ("tunesmith", "trl")
EXAMPLE = REPO / "examples" / "cooking-assistant"
WORKLOADS = ("cooking", "short")  # the cooking-assistant chats (~141 tokens), or short_rows.py's (~86)
LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}
LOSS_WINDOW = 10  # the final training loss is the mean over this many last logged steps
NEVER = 10**9  # a step interval that turns off tunesmith's mid-run evaluation and checkpoints
QUICK = {"repeats": 1, "max_examples": 16, "max_test_examples": 16}
FULL = {"repeats": 3, "max_examples": None, "max_test_examples": None}
# HF_*_OFFLINE: neither tool may reach the network during a measurement.
CHILD_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
COLUMNS = [
    Column("tokens_per_s", "tokens/s", ".1f"),
    Column("ceiling_fraction", "of ceiling", ".1%"),
    Column("ceiling_fraction_cpu", "of ceiling, CPU time", ".1%"),
    Column("steady_tokens_per_s", "tokens/s after step 1", ".1f"),
    Column("steady_ceiling_fraction", "of ceiling after step 1", ".1%"),
    Column("first_step_seconds", "step 1 s", ".1f"),
    Column("train_seconds", "train s", ".1f"),
    Column("train_cpu_seconds", "train CPU s", ".1f"),
    Column("optimizer_steps", "optimizer steps", ".0f"),
    Column("peak_rss_mib", "peak RSS MiB", ".0f"),
    Column("train_peak_rss_mib", "train-phase peak RSS MiB", ".0f"),
    Column("peak_gpu_mib", "peak GPU MiB", ".0f"),
    Column("final_train_loss", "final train loss", ".4f"),
    Column("test_perplexity", "test perplexity", ".3f"),
]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        run_job(args.child, json.loads(Path(args.job).read_text()), Path(args.result))
    else:
        compare(args)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="LoRA SFT on the embedded model: tunesmith vs TRL SFTTrainer + PEFT (tokens/s, memory, quality)."
    )
    parser.add_argument("--repeats", type=int, help="runs per tool (default 3; 1 with --quick)")
    add_job_options(parser, list(JOB_DEFAULTS),
                    choices={"workload": WORKLOADS, "tunesmith_patch": sorted(patches.PATCHES)})
    parser.add_argument(
        "--output", type=Path,
        help="results JSON (default benchmarks/results/lora_vs_trl-<device>-<time>.json; a temp folder with --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: 16 train and test examples, one run per tool")
    parser.add_argument("--child", choices=TOOLS, help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


# -- the parent: prepare data, run the children, summarise ------------------------------------------------
def compare(args: argparse.Namespace) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    workdir = Path(tempfile.mkdtemp(prefix="lora_vs_trl-"))
    job = make_job(args, workdir)
    print(f"measuring the machine ({device.type}) ...", flush=True)
    capability = machine_capability(device, job["precision"])
    print(f"{machine.summary_line(capability)}\n{ceiling_line(capability)} = {machine.CEILING_FORMULA}", flush=True)
    job_path = workdir / "job.json"
    job_path.write_text(json.dumps(job, indent=2))
    print(f"{len(TOOLS) * args.repeats} runs on {device.type}, logs in {workdir}", flush=True)

    def after(index: int, total: int, result: dict) -> None:
        result.update(ceiling_fractions(result, capability))
        print(
            f"[{index}/{total}] {result['tool']}: {result['tokens_per_s']:.1f} tokens/s "
            f"({result['ceiling_fraction']:.1%} of ceiling), {result['train_seconds']:.1f} s, "
            f"{result['optimizer_steps']} steps, peak RSS {result['peak_rss_mib']:.0f} MiB, "
            f"final loss {result['final_train_loss']:.4f}, test perplexity {result['test_perplexity']:.3f}, "
            f"load {result['load_average'][0]:.1f}",
            flush=True,
        )

    runs = run_alternating(TOOLS, args.repeats, workdir,
                           lambda tool, stem, label: run_tool(tool, job_path, stem, label), after)

    columns = [column for column in COLUMNS if device.type == "cuda" or column.key != "peak_gpu_mib"]
    summary = {tool: medians(runs, tool, [column.key for column in columns]) for tool in TOOLS}
    ratio = ratios(summary["tunesmith"], summary["trl"])
    table = markdown_table(summary, columns, "tunesmith / trl", ratio)
    capability["load_average_after"] = machine.load_average()
    print(f"\nmedians over {args.repeats} run(s) per tool:\n{table}\n{machine.summary_line(capability)}\n"
          f"{ceiling_line(capability)}; load average after {capability['load_average_after'][0]:.1f}")

    workload = "" if args.workload == "cooking" else f"-{args.workload}"
    output = write_stamped("llm/lora_vs_trl", {
        "settings": {
            **job, "train_examples": len(read_chats(job["train"])), "test_examples": len(read_chats(job["test"]))
        },
        "medians": summary,
        "ratio_tunesmith_over_trl": ratio,
        "table": table,
        "runs": runs,
    }, args.output, name=f"lora_vs_trl{workload}", machine_info=capability,
        folder=workdir if args.quick else RESULTS)  # smoke tests stay out of the repo
    print(f"results: {output}")


def make_job(args: argparse.Namespace, workdir: Path) -> dict:
    """What every child trains on and with: the workload's (subset) files and the settings shared by both tools."""
    embedded_model_dir()  # converts the GGUF on first use, so no measured run pays for it
    train, test = workload_files(args.workload, workdir / "workload")
    return {
        "workload": args.workload,
        "train": str(_subset(args.train or train, args.max_examples, workdir / "train.jsonl")),
        "test": str(_subset(args.test or test, args.max_test_examples, workdir / "test.jsonl")),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "learning_rate": args.learning_rate,
        "precision": resolve_precision(args.precision),
        "seed": args.seed,
        "gradient_checkpointing": args.gradient_checkpointing,
        "tunesmith_set": args.tunesmith_set,
        "tunesmith_patch": args.tunesmith_patch,
        "trl_set": args.trl_set,
    }


def workload_files(workload: str, folder: Path) -> tuple[Path, Path]:
    """(train, test) chat JSONL of a workload; the short rows are generated into `folder`."""
    if workload == "short":
        return short_rows.write(folder)
    return EXAMPLE / "train.jsonl", EXAMPLE / "test.jsonl"


def resolve_precision(requested: str) -> str:
    """auto -> bf16 where the device runs it natively (tunesmith's own rule), else fp32; both tools get the result."""
    if requested != "auto":
        return requested
    from tunesmith.train.precision import resolve_precision as tunesmith_precision

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return "fp32" if tunesmith_precision("auto", device) == "no" else "bf16"


def machine_capability(device: torch.device, precision: str) -> dict:
    """The machine (common/machine.py) and its LoRA ceiling for the embedded model at the run's precision."""
    info = machine.describe(device)
    info["parameters"] = embedded_parameters()
    info["ceiling_formula"] = machine.CEILING_FORMULA
    info["ceilings_tokens_per_s"] = {
        name: round(machine.lora_ceiling(measured["gflops"], info["parameters"]), 1)
        for name, measured in info["matmul"].items()
    }
    info["ceiling_precision"] = precision
    info["ceiling_tokens_per_s"] = info["ceilings_tokens_per_s"][precision]
    per_cpu_s = info["matmul"][precision].get("gflops_per_cpu_s")  # CPU only
    info["ceiling_tokens_per_cpu_s"] = per_cpu_s and round(machine.lora_ceiling(per_cpu_s, info["parameters"]), 1)
    return info


def ceiling_line(capability: dict) -> str:
    per_cpu_s = capability["ceiling_tokens_per_cpu_s"]
    return (f"LoRA ceiling ({capability['ceiling_precision']}): {capability['ceiling_tokens_per_s']:.1f} tokens/s"
            + (f", {per_cpu_s:.1f} tokens per CPU second" if per_cpu_s else ""))


def ceiling_fractions(result: dict, capability: dict) -> dict:
    """A run's tokens/s over the ceiling, in wall time and (CPU) in CPU time: tokens per CPU second of the run over
    the matmul's FLOPs per CPU second, which a busy machine changes least."""
    ceiling = capability["ceiling_tokens_per_s"]
    steady = result.get("steady_tokens_per_s")
    fractions = {"ceiling_fraction": result["tokens_per_s"] / ceiling, "ceiling_fraction_cpu": None,
                 "steady_ceiling_fraction": steady and steady / ceiling}
    if capability.get("ceiling_tokens_per_cpu_s") and result.get("train_cpu_seconds"):
        fractions["ceiling_fraction_cpu"] = (
            result["tokens"] / result["train_cpu_seconds"] / capability["ceiling_tokens_per_cpu_s"]
        )
    return fractions


def embedded_parameters() -> int:
    """Parameters of the embedded model (the tied lm_head counted once: its product is the embedding's matrix)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(embedded_model_dir()))
    return sum(parameter.numel() for parameter in model.parameters())


def run_tool(tool: str, job_path: Path, stem: Path, label: str, env: dict[str, str] | None = None) -> dict:
    """One child run of `tool` on the job (`env` added to its environment); its result with the child's peak RSS,
    wall time and the load average."""
    load = machine.load_average()
    command = [sys.executable, __file__, "--child", tool, "--job", str(job_path), "--result", f"{stem}.json"]
    child = run_child(command, stem.with_suffix(".log"), env={**os.environ, **CHILD_ENV, **(env or {})})
    if child.returncode != 0:
        tail = "\n".join(stem.with_suffix(".log").read_text().splitlines()[-30:])
        sys.exit(f"{label} failed with exit code {child.returncode}:\n{tail}")
    result = json.loads(Path(f"{stem}.json").read_text())
    result.update(peak_rss_mib=child.peak_rss_mib, wall_seconds=child.wall_seconds, load_average=load,
                  load_average_after=machine.load_average())
    return result


def _subset(source: Path, limit: int | None, target: Path) -> Path:
    """The first `limit` conversations of source, checked to be single-reply chats (see train_trl)."""
    chats = read_chats(source)[:limit]
    for number, messages in enumerate(chats, 1):
        if [m["role"] for m in messages].count("assistant") != 1 or messages[-1]["role"] != "assistant":
            sys.exit(f"{source}: conversation {number} must have exactly one assistant message, at the end")
    target.write_text("".join(json.dumps({"messages": messages}) + "\n" for messages in chats))
    return target


# -- a child: train one tool, measure, score ---------------------------------------------------------------
@dataclass
class Trained:
    model: torch.nn.Module
    phase: Phase
    # The prepared training examples' own lengths, without padding. Training runs whole epochs and every
    # epoch feeds each example once, padded or packed, so epochs x this is the sum of the attention-mask
    # ones over all training batches.
    epoch_tokens: int
    steps: int
    losses: list[float]  # per logged step
    config: dict  # the tool's effective settings, for the results file
    # Per optimizer step, from the tool's own log: (seconds into training at the step's end, tokens trained so
    # far, attention-mask ones). Only differences are used, so each tool's own clock start does not matter.
    step_ends: list[tuple[float, int]]
    reported_tokens: int | None = None  # the tool's own count of input tokens, where it keeps one (TRL)


def run_job(tool: str, job: dict, result_path: Path) -> None:
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix=f"lora_vs_trl-{tool}-") as output_dir:
        trained = (train_tunesmith if tool == "tunesmith" else train_trl)(job, Path(output_dir))
        # The same tokenizer and scoring code for both tools, outside the timed phase.
        tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
        started = time.perf_counter()
        scores = completion_perplexity(trained.model, tokenizer, job["test"], batch_size=job["batch_size"])
        eval_seconds = time.perf_counter() - started
    phase, tokens = trained.phase, job["epochs"] * trained.epoch_tokens
    result_path.write_text(json.dumps({
        "tool": tool,
        "tokens": tokens,
        "reported_tokens": trained.reported_tokens,
        "train_seconds": phase.seconds,
        "train_cpu_seconds": phase.cpu_seconds,
        "tokens_per_s": tokens / phase.seconds,
        **after_first_step(trained.step_ends),
        "optimizer_steps": trained.steps,
        "final_train_loss": statistics.mean(trained.losses[-LOSS_WINDOW:]),
        "train_losses": trained.losses,
        "train_peak_rss_mib": phase.peak_rss_mib,
        "peak_gpu_mib": phase.peak_gpu_mib,
        **scores,
        "eval_seconds": eval_seconds,
        "parameter_dtype": str(next(trained.model.parameters()).dtype),
        "config": trained.config,
    }, indent=2))


def after_first_step(step_ends: list[tuple[float, int]]) -> dict:
    """Each step's seconds and tokens, and the steady speed: tokens of steps 2..N over the time from step 1's end
    to step N's (None for a one-step run)."""
    ends = [(0.0, 0)] + step_ends
    seconds = [later[0] - earlier[0] for earlier, later in zip(ends, ends[1:])]
    tokens = [later[1] - earlier[1] for earlier, later in zip(ends, ends[1:])]
    return {
        "steady_tokens_per_s": sum(tokens[1:]) / sum(seconds[1:]) if len(seconds) >= 2 else None,
        "first_step_seconds": seconds[0] if seconds else None,
        "step_seconds": seconds,
        "step_tokens": tokens,
    }


def tunesmith_config(job: dict, output_dir: Path):
    """tunesmith's RunConfig matching the peer's settings; --tunesmith-set overrides come last."""
    from tunesmith.config.load import apply_override, build_config

    raw = {
        "model": EMBEDDED_ALIAS,
        "data": {"train": job["train"], "format": "chat", "max_length": job["max_length"], "validation_split": 0.0},
        "method": {"name": "lora", **LORA},
        "training": {
            "epochs": job["epochs"],
            "batch_size": job["batch_size"],
            "gradient_accumulation": 1,
            "learning_rate": job["learning_rate"],
            "lr_scheduler": "cosine",
            "warmup_steps": 0,
            "weight_decay": 0.0,
            "max_grad_norm": 1.0,
            "precision": job["precision"],
            "gradient_checkpointing": job["gradient_checkpointing"],
            "seed": job["seed"],
            "train_on": "completions",
            "log_every": 1,
            "eval_every": NEVER,
            "save_every": NEVER,
        },
        # No validation or test data: run() scores nothing, and this benchmark scores both tools the same way.
        "eval": {"compare_base": False},
        "output_dir": str(output_dir),
    }
    for item in job["tunesmith_set"]:
        apply_override(raw, item)
    return build_config(raw, source="lora_vs_trl tunesmith config")


def train_tunesmith(job: dict, output_dir: Path) -> Trained:
    import tunesmith.run as tunesmith_run
    import tunesmith.tasks.causal_lm.run as llm_run
    from tunesmith.train.metrics_log import read_metrics

    patches.apply(job.get("tunesmith_patch", []))
    config = tunesmith_config(job, output_dir)
    if config.training.max_steps or config.training.epochs != job["epochs"]:
        raise ValueError("set the training length with --epochs only: tokens/s counts whole epochs")

    # run() is the public API; wrapping the loop it calls times the training phase alone, as for the peer
    # (not loading, tokenizing or saving), and hands over the model and the examples it trained on.
    seen = {}
    loop = llm_run.train

    def measured_loop(*args, **kwargs):
        bound = inspect.signature(loop).bind(*args, **kwargs)
        with Phase() as phase:
            result = loop(*args, **kwargs)
        task = bound.arguments["task"]
        seen.update(phase=phase, result=result, model=task.model, train_set=task.train_set)
        return result

    llm_run.train = measured_loop
    tunesmith_run.run(config, overwrite=True)
    records = [record for record in read_metrics(output_dir / "metrics.jsonl") if record["type"] == "train"]
    return Trained(
        model=seen["model"],
        phase=seen["phase"],
        epoch_tokens=sum(len(example["input_ids"]) for example in seen["train_set"]),
        steps=seen["result"].state.step,
        losses=[record["loss"] for record in records],
        config=config.model_dump(mode="json"),
        step_ends=[(record["elapsed"], record["tokens_seen"]) for record in records],  # log_every is 1
    )


def trl_config(job: dict, output_dir: Path) -> dict:
    """SFTConfig arguments matching tunesmith's run; --trl-set overrides come last."""
    settings = {
        "output_dir": str(output_dir),
        "num_train_epochs": job["epochs"],
        "per_device_train_batch_size": job["batch_size"],
        "gradient_accumulation_steps": 1,
        "learning_rate": job["learning_rate"],
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0,
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "bf16": job["precision"] == "bf16",  # SFTConfig defaults to bf16=True, so fp32 must say so
        "use_cpu": not torch.cuda.is_available(),
        "gradient_checkpointing": job["gradient_checkpointing"],  # SFTConfig defaults to True; tunesmith to False
        "seed": job["seed"],
        "max_length": job["max_length"],
        "completion_only_loss": True,
        "assistant_only_loss": False,
        "packing": False,
        "logging_steps": 1,
        "save_strategy": "no",
        "eval_strategy": "no",
        "report_to": "none",
    }
    for item in job["trl_set"]:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--trl-set {item!r}: expected KEY=VALUE, e.g. --trl-set packing=true")
        settings[key.strip()] = yaml.safe_load(value)
    if settings.get("max_steps", -1) > 0 or settings["num_train_epochs"] != job["epochs"]:
        raise ValueError("set the training length with --epochs only: tokens/s counts whole epochs")
    return settings


def train_trl(job: dict, output_dir: Path) -> Trained:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    class StepClock(TrainerCallback):
        """Seconds from the training loop's start to each optimizer step's end (after the optimizer and the
        scheduler, before logging), as tunesmith's `elapsed`."""

        def __init__(self):
            self.start = 0.0
            self.ends: dict[int, float] = {}

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.ends[state.global_step] = time.perf_counter() - self.start

    folder = embedded_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)  # fp32 master weights, as tunesmith
    # SmolLM2's chat template has no {% generation %} markers and TRL ships no training template for it, so
    # assistant_only_loss cannot mask it. As conversational prompt/completion pairs, completion_only_loss
    # trains the reply and its end-of-turn tokens: the same tokens tunesmith trains on single-reply chats.
    dataset = Dataset.from_list([{"prompt": chat[:-1], "completion": chat[-1:]} for chat in read_chats(job["train"])])
    settings = trl_config(job, output_dir)
    lora = LoraConfig(
        r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
        target_modules=LORA["target_modules"], task_type="CAUSAL_LM",
    )
    clock = StepClock()
    trainer = SFTTrainer(
        model=model, args=SFTConfig(**settings), train_dataset=dataset, processing_class=tokenizer, peft_config=lora,
        callbacks=[clock],
    )
    with Phase() as phase:
        trainer.train()
    history = trainer.state.log_history
    # num_tokens: TRL's running count of attention-mask ones, logged at every step (logging_steps=1)
    tokens_at = {entry["step"]: int(entry["num_tokens"]) for entry in history if "num_tokens" in entry}
    return Trained(
        model=trainer.model,
        phase=phase,
        epoch_tokens=sum(len(ids) for ids in trainer.train_dataset["input_ids"]),
        steps=trainer.state.global_step,
        losses=[entry["loss"] for entry in history if "loss" in entry],
        config=settings,
        step_ends=[(clock.ends[step], tokens_at[step]) for step in sorted(clock.ends) if step in tokens_at],
        reported_tokens=max((int(entry["num_tokens"]) for entry in history if "num_tokens" in entry), default=None),
    )


if __name__ == "__main__":
    main()
