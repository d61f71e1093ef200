"""DreamBooth + LoRA with prior preservation: tunesmith vs diffusers' train_dreambooth_lora.py, in one invocation.

    python benchmarks/diffusion/dreambooth_vs_diffusers.py --quick     # smoke test: 1 and 3 steps at 128 px
    python benchmarks/diffusion/dreambooth_vs_diffusers.py             # the measurement: 4 and 12 steps at 256 px

Both tools train the same pipeline (SD 1.5's architecture at reduced width, random weights: reduced_sd15.py) on the
same subject images with the same class prompt and the same pre-made class-image folder (so neither draws class
images), at the same resolution, batch, steps, LoRA rank, learning rate, schedule, weight decay, clipping, seed and
precision (fp32). The peer is the unmodified script in ../shared/peers/diffusers/, run as
`accelerate launch --cpu --num_processes 1 --mixed_precision no`; tunesmith runs as `tunesmith train CONFIG`.
Both run in one virtual environment (the peer needs torchvision, which does not import beside the project's torch
wheel), made once by this script, so both use the same torch.

Measured, as tunesmith / diffusers ratios:
- training images/s: each tool runs at N and 3N steps; the extra images over the extra wall (and CPU) seconds of
  the whole process, so start-up, loading, caching and saving cancel out;
- peak RSS of each training process (wait4, benchmarks/common/measure.py);
- held-out denoising loss: each tool's LoRA file loaded into the same pipeline and scored by one function
  (tunesmith's held-out loss at fixed timesteps and noise) on subject images neither tool trained on.
benchmarks/diffusion/README.md has the setup, the figures and what they mean.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # as a script, only this file's folder would be on sys.path

from benchmarks.common import machine  # noqa: E402
from benchmarks.common.measure import run_child  # noqa: E402
from benchmarks.common.report import Column, markdown_table, ratios, write_results  # noqa: E402
from benchmarks.diffusion import dreambooth_images, reduced_sd15  # noqa: E402

TOOLS = ("tunesmith", "diffusers")
PEER_SCRIPT = REPO.parent / "shared" / "peers" / "diffusers" / "train_dreambooth_lora.py"
DEFAULT_VENV = Path.home() / ".cache" / "tunesmith" / "bench" / "diffusers-peer-venv"
PEER_TORCH = "2.14.1"
VENV_PACKAGES = ([f"torch=={PEER_TORCH}", "torchvision==0.29.1"],
                 ["diffusers", "transformers", "accelerate", "peft", "ftfy", "Jinja2"])
INSTANCE_PROMPT, CLASS_PROMPT = "a photo of sks ball", "a photo of a ball"
WEIGHT_DECAY, MAX_GRAD_NORM = 1e-2, 1.0  # the peer's defaults (adam_weight_decay, max_grad_norm), given to both
LORA_FILE = "pytorch_lora_weights.safetensors"  # what both tools write (diffusers' LoRA format)
NEVER = 10**9  # a step interval that turns off tunesmith's mid-run evaluation and checkpoints
# Neither tool may reach the network during a measurement.
CHILD_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
FULL = {"steps": 4, "resolution": 256}
QUICK = {"steps": 1, "resolution": 128}
COLUMNS = [
    Column("images_per_s", "images/s", ".3f"),
    Column("images_per_cpu_s", "images per CPU s", ".3f"),
    Column("in_loop_images_per_s", "in-loop images/s, own clock", ".3f"),
    Column("startup_cpu_seconds", "start-up + wind-down CPU s", ".1f"),
    Column("peak_rss_mib", "peak RSS MiB", ".0f"),
    Column("held_out_loss", "held-out loss", ".5f"),
]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    venv = args.peer_venv.expanduser()
    if Path(sys.prefix).resolve() != venv.resolve():  # run on in the venv, so everything uses one torch
        ensure_peer_venv(venv)
        python = venv / "bin" / "python"
        os.execv(python, [str(python), str(Path(__file__).resolve()), *(sys.argv[1:] if argv is None else argv)])
    compare(args, venv)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 and 3 steps at 128 px")
    parser.add_argument("--steps", type=int, help="N: each tool runs N and 3N optimizer steps (default 4)")
    parser.add_argument("--resolution", type=int, help="training resolution in px (default 256)")
    parser.add_argument("--batch-size", type=int, default=2, help="subject images per step (as many class images)")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--num-class-images", type=int, default=8)
    parser.add_argument("--prior-loss-weight", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every run (1: steadier on a "
                                                                 "shared machine)")
    parser.add_argument("--repeats", type=int, default=1, help="N/3N pairs per tool, alternating the tools")
    parser.add_argument("--peer-venv", type=Path, default=DEFAULT_VENV, help=f"default {DEFAULT_VENV}")
    parser.add_argument("--workdir", type=Path, help="where the runs go (default: a new temp folder, kept)")
    parser.add_argument("--output", type=Path, help="results JSON (default benchmarks/results/dreambooth_vs_"
                                                    "diffusers-cpu-<time>.json; the workdir with --quick)")
    parser.add_argument("--tunesmith-set", action="append", default=[], metavar="KEY=VALUE",
                        help="any tunesmith config key, applied last (a lever on or off); repeatable")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


# -- the peer's environment ---------------------------------------------------------------------------
def venv_commands(venv: Path) -> list[list[str]]:
    """How the shared environment is made: a venv, the torch/torchvision pair, the peer's packages, tunesmith."""
    pip = str(venv / "bin" / "pip")
    python = getattr(sys, "_base_executable", sys.executable)  # the interpreter under any venv this runs in
    return [[python, "-m", "venv", str(venv)], [pip, "install", *VENV_PACKAGES[0]],
            [pip, "install", *VENV_PACKAGES[1]], [pip, "install", "-e", str(REPO)]]


def ensure_peer_venv(venv: Path) -> None:
    """Make the venv unless it already imports everything; refuse one whose torch is not the pinned one."""
    check = [str(venv / "bin" / "python"), "-c",
             "import torch, torchvision, diffusers, peft, accelerate, tunesmith; print(torch.__version__)"]
    if (venv / "bin" / "python").is_file():
        found = subprocess.run(check, capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip().startswith(PEER_TORCH):
            return
    for command in venv_commands(venv):
        print("$ " + " ".join(command), flush=True)
        subprocess.run(command, check=True)
    found = subprocess.run(check, capture_output=True, text=True, check=True).stdout.strip()
    if not found.startswith(PEER_TORCH):  # `pip install -e .` must not have replaced torch
        raise SystemExit(f"{venv}: torch is {found} after installing tunesmith, expected {PEER_TORCH}")


# -- the two tools' commands --------------------------------------------------------------------------
@dataclass(frozen=True)
class Setup:
    """What both tools train on and with."""

    pipeline: Path
    subject: Path
    held_out: Path
    classes: Path
    resolution: int
    batch_size: int
    rank: int
    learning_rate: float
    num_class_images: int
    prior_loss_weight: float
    seed: int


def tunesmith_config(setup: Setup, steps: int, output_dir: Path, overrides: list[str] = ()) -> dict:
    """The tunesmith run config: dreambooth_lora with the peer's settings. The held-out folder is its validation
    set, so the run's own final held-out loss can be checked against the benchmark's scoring of its LoRA."""
    config = {
        "model": str(setup.pipeline),
        "data": {"images": str(setup.subject), "instance_prompt": INSTANCE_PROMPT, "class_prompt": CLASS_PROMPT,
                 "class_images": str(setup.classes), "num_class_images": setup.num_class_images,
                 "validation_images": str(setup.held_out), "resolution": setup.resolution, "center_crop": True,
                 "buckets": False},
        "method": {"name": "dreambooth_lora", "r": setup.rank, "prior_loss_weight": setup.prior_loss_weight},
        "training": {"max_steps": steps, "batch_size": setup.batch_size, "learning_rate": setup.learning_rate,
                     "lr_scheduler": "constant", "warmup_steps": 0, "weight_decay": WEIGHT_DECAY,
                     "max_grad_norm": MAX_GRAD_NORM, "precision": "fp32", "gradient_checkpointing": False,
                     "seed": setup.seed, "eval_every": NEVER, "save_every": NEVER, "log_every": 1},
        # The one grid a run always draws, made as cheap as it gets (it is start-up cost, the same at N and 3N).
        "validation": {"prompts": [INSTANCE_PROMPT], "n": 1, "steps": 1},
        "output_dir": str(output_dir),
    }
    from tunesmith.config.load import apply_overrides

    apply_overrides(config, list(overrides))  # as `tunesmith train --set KEY=VALUE` reads them
    return config


def tunesmith_command(venv: Path, config_path: Path) -> list[str]:
    return [str(venv / "bin" / "tunesmith"), "train", str(config_path)]


def peer_command(venv: Path, setup: Setup, steps: int, output_dir: Path) -> list[str]:
    """The peer as its README runs it, with prior preservation on the shared class folder and the shared settings
    (its defaults already match: constant schedule, AdamW weight decay 1e-2, clipping at 1.0, rank = alpha)."""
    return [str(venv / "bin" / "accelerate"), "launch", "--cpu", "--num_processes", "1", "--mixed_precision", "no",
            str(PEER_SCRIPT),
            "--pretrained_model_name_or_path", str(setup.pipeline), "--instance_data_dir", str(setup.subject),
            "--instance_prompt", INSTANCE_PROMPT, "--with_prior_preservation", "--class_data_dir", str(setup.classes),
            "--class_prompt", CLASS_PROMPT, "--num_class_images", str(setup.num_class_images),
            "--prior_loss_weight", str(setup.prior_loss_weight), "--resolution", str(setup.resolution),
            "--center_crop", "--train_batch_size", str(setup.batch_size), "--max_train_steps", str(steps),
            "--learning_rate", str(setup.learning_rate), "--lr_scheduler", "constant", "--lr_warmup_steps", "0",
            "--adam_weight_decay", str(WEIGHT_DECAY), "--max_grad_norm", str(MAX_GRAD_NORM),
            "--rank", str(setup.rank), "--seed", str(setup.seed), "--output_dir", str(output_dir)]


# -- runs -----------------------------------------------------------------------------------------------
def run_tool(tool: str, steps: int, setup: Setup, venv: Path, folder: Path, threads: int,
             overrides: list[str]) -> dict:
    """One training run in its own process and its own empty tunesmith cache (so every run encodes its latent
    and text caches afresh: the same start-up at N and 3N steps)."""
    folder.mkdir(parents=True)
    env = {**os.environ, **CHILD_ENV, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TUNESMITH_CACHE": str(folder / "cache")}
    if tool == "tunesmith":
        config_path = folder / "config.yaml"
        config_path.write_text(yaml.safe_dump(tunesmith_config(setup, steps, folder / "run", overrides)))
        command, lora = tunesmith_command(venv, config_path), folder / "run" / "adapter" / LORA_FILE
    else:
        command, lora = peer_command(venv, setup, steps, folder / "out"), folder / "out" / LORA_FILE
    load_before = machine.load_average()
    cpu_before = _children_cpu_seconds()
    child = run_child(command, folder / "log.txt", env=env)
    cpu_seconds = _children_cpu_seconds() - cpu_before  # the child and its own children (accelerate's trainer)
    if child.returncode != 0 or not lora.is_file():
        tail = "\n".join((folder / "log.txt").read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"{tool} at {steps} steps failed (exit {child.returncode}); {folder / 'log.txt'}:\n{tail}")
    result = {"tool": tool, "steps": steps, "images": images_trained(steps, setup.batch_size),
              "wall_seconds": round(child.wall_seconds, 2), "cpu_seconds": round(cpu_seconds, 2),
              "peak_rss_mib": round(child.peak_rss_mib, 1), "load_average_before": load_before,
              "load_average_after": machine.load_average(), "command": command, "lora": str(lora),
              "log": str(folder / "log.txt")}
    if tool == "tunesmith":
        result.update(_tunesmith_report(folder / "run"))
        if result["reported"]["steps"] != steps:  # the rates count steps x images a step
            raise SystemExit(f"tunesmith trained {result['reported']['steps']} steps, not {steps}: {folder}")
        result["in_loop_images_per_s"] = result["reported"]["images_per_second"]
    else:
        seconds = peer_loop_seconds((folder / "log.txt").read_text(errors="replace"), steps)
        result["in_loop_images_per_s"] = result["images"] / seconds if seconds else None
    return result


def peer_loop_seconds(log: str, steps: int) -> int | None:
    """The peer's training-loop seconds by its own clock: the elapsed time of the first complete tqdm "Steps" bar
    (a later one is redrawn when the bar closes, after saving). Whole seconds; None if the log has no such bar."""
    import re

    found = re.search(rf"Steps: 100%[^|]*\|[^|]*\| {steps}/{steps} \[(?:(\d+):)?(\d+):(\d+)<", log)
    if found is None:
        return None
    hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return 3600 * hours + 60 * minutes + seconds


def images_trained(steps: int, batch_size: int) -> int:
    """Images through the UNet in `steps` steps: each step trains batch_size subject images and as many class
    images (both tools put the pairs through one forward)."""
    return 2 * batch_size * steps


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # grows by each child's CPU time once it is waited for
    return usage.ru_utime + usage.ru_stime


def _tunesmith_report(run_dir: Path) -> dict:
    """What the tunesmith run says about itself: images it counted, its in-loop rate, its final held-out loss."""
    report = json.loads((run_dir / "report.json").read_text())
    return {"reported": {key: report.get(key) for key in ("steps", "images_per_second", "final_val_loss",
                                                         "final_train_loss", "train_seconds")}}


def schedule(steps: int, repeats: int) -> list[tuple[str, int]]:
    """(tool, steps) in run order: tunesmith N, diffusers N, diffusers 3N, tunesmith 3N, then again, so a drift in
    the machine's load falls on both tools and on both lengths alike."""
    one = [("tunesmith", steps), ("diffusers", steps), ("diffusers", 3 * steps), ("tunesmith", 3 * steps)]
    return one * repeats


def marginal_rates(short: dict, long: dict) -> dict:
    """Images per second (wall and CPU) of training alone: the extra images of the long run over its extra
    seconds. What both runs spend once (imports, loading, caches, saving, the final evaluation) cancels. A rate is
    None where the long run took no more seconds: on a shared machine a fall in the load can do that to wall time.
    """
    extra = long["images"] - short["images"]
    if extra <= 0:
        raise ValueError(f"{long['tool']}: the runs must differ in steps ({short['steps']} and {long['steps']})")
    wall, cpu = long["wall_seconds"] - short["wall_seconds"], long["cpu_seconds"] - short["cpu_seconds"]
    return {"images_per_s": extra / wall if wall > 0 else None,
            "images_per_cpu_s": extra / cpu if cpu > 0 else None,
            "startup_seconds": short["wall_seconds"] - short["images"] * wall / extra if wall > 0 else None,
            "startup_cpu_seconds": short["cpu_seconds"] - short["images"] * cpu / extra if cpu > 0 else None}


def summarise(runs: list[dict], held_out: dict[str, float]) -> dict[str, dict]:
    """Per tool: the median marginal rates over its N/3N pairs (None where none was measurable), its largest peak
    RSS, its held-out loss."""
    import statistics

    summary = {}
    for tool in TOOLS:
        mine = [run for run in runs if run["tool"] == tool]
        shortest = min(run["steps"] for run in mine)
        pairs = list(zip([r for r in mine if r["steps"] == shortest], [r for r in mine if r["steps"] != shortest]))
        rates = [marginal_rates(short, long) for short, long in pairs]
        summary[tool] = {key: statistics.median(values) if (values := [r[key] for r in rates if r[key] is not None])
                         else None for key in rates[0]}
        summary[tool]["pairs"] = rates
        in_loop = [run["in_loop_images_per_s"] for run in mine if run.get("in_loop_images_per_s")]
        summary[tool]["in_loop_images_per_s"] = statistics.median(in_loop) if in_loop else None
        summary[tool]["peak_rss_mib"] = max(run["peak_rss_mib"] for run in mine)
        summary[tool]["held_out_loss"] = held_out[tool]
    return summary


# -- scoring ---------------------------------------------------------------------------------------------
def held_out_losses(setup: Setup, loras: dict[str, Path | None], cache: Path) -> dict[str, float]:
    """Each LoRA (None: the base) loaded into a fresh copy of the pipeline and scored by held_out_loss."""
    os.environ["TUNESMITH_CACHE"] = str(cache)
    return {name: held_out_loss(setup, lora) for name, lora in loras.items()}


def held_out_loss(setup: Setup, lora: Path | None) -> float:
    """tunesmith's held-out denoising loss (the loop's validation: every held-out image at the five fixed
    timesteps and fixed noise, in batches of the run's size) of the pipeline with `lora` loaded by diffusers'
    load_lora_weights, the loader both tools' files are made for."""
    import torch

    from tunesmith.config.load import build_config
    from tunesmith.methods.diffusion.parts import freeze
    from tunesmith.models.diffusion import load_diffusion
    from tunesmith.tasks.diffusion.data import image_settings, instance_images, validation_images
    from tunesmith.tasks.diffusion.task import DiffusionTask
    from tunesmith.train.batching import EpochBatchSampler
    from tunesmith.train.evaluation import summed_loss

    config = build_config(tunesmith_config(setup, 1, Path(tempfile.gettempdir()) / "unused"), source="benchmark")
    model = load_diffusion(config.model)
    if lora is not None:
        model.pipeline.load_lora_weights(str(lora), adapter_name="default")
    freeze(model.pipeline)  # nothing trains: the text embeddings are cached as in a run
    settings = image_settings(config.data, model.family, config.training.seed)
    train = instance_images(config.data, settings)
    validation, _ = validation_images(config.data, settings, train)
    task = DiffusionTask(model, train, validation, objective=config.method.objective())
    loss_module, collator = task.loss_module().eval(), task.eval_collator()
    batches = []
    for indices in EpochBatchSampler(len(task.val_set), setup.batch_size, seed=0, shuffle=False):
        batch = collator([task.val_set[i] for i in indices])
        batches.append((batch, task.counts(batch).loss_units))
    total, units = summed_loss(loss_module, batches, torch.device("cpu"))
    return (total / units).item()


# -- the comparison ---------------------------------------------------------------------------------------
def prepare(args: argparse.Namespace, workdir: Path) -> tuple[Setup, dict]:
    """The pipeline folder and the three image folders; what they are, for the results file."""
    pipeline = reduced_sd15.save_pipeline(workdir / "pipeline", seed=args.seed, resolution=args.resolution)
    data = workdir / "data"
    counts = {"subject": len(dreambooth_images.subject_images(data / "subject")),
              "held_out": len(dreambooth_images.held_out_images(data / "held-out")),
              "class": len(dreambooth_images.class_images(data / "class", args.num_class_images, args.resolution))}
    setup = Setup(workdir / "pipeline", data / "subject", data / "held-out", data / "class", args.resolution,
                  args.batch_size, args.rank, args.learning_rate, args.num_class_images, args.prior_loss_weight,
                  args.seed)
    widths = reduced_sd15.Widths(**{k: tuple(v) if isinstance(v, list) else v
                                    for k, v in pipeline["widths"].items()})
    pipeline["flop_shares"] = {
        "sd15_at_512px": reduced_sd15.flop_shares(reduced_sd15.sd15_configs(), 512, args.rank),
        f"this_pipeline_at_{args.resolution}px": reduced_sd15.flop_shares(reduced_sd15.reduced_configs(widths),
                                                                          args.resolution, args.rank),
    }
    return setup, {"pipeline": pipeline, "images": counts}


def compare(args: argparse.Namespace, venv: Path) -> None:
    import torch

    torch.set_num_threads(args.threads)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dreambooth_vs_diffusers-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print("measuring the machine ...", flush=True)
    info = machine.describe(torch.device("cpu"))
    info["versions"].update({name: machine_version(name) for name in ("diffusers", "torchvision")})
    print(machine.summary_line(info), flush=True)
    setup, made = prepare(args, workdir)
    shares = made["pipeline"]["flop_shares"]
    print(f"pipeline: {made['pipeline']['description']}; parameters {made['pipeline']['parameters']}", flush=True)
    for name, parts in shares.items():
        print(f"  FLOPs per image, {name}: " + ", ".join(f"{part} {value['gflops']:.1f} G ({value['share']:.1%})"
                                                         for part, value in parts.items()), flush=True)

    order = schedule(args.steps, args.repeats)
    print(f"{len(order)} runs, logs in {workdir}; at {3 * args.steps} steps they are\n  tunesmith: "
          f"{shlex.join(tunesmith_command(venv, Path('RUN/config.yaml')))} (config.yaml in each run's folder)\n"
          f"  diffusers: {shlex.join(peer_command(venv, setup, 3 * args.steps, Path('OUT')))}", flush=True)
    runs = []
    for index, (tool, steps) in enumerate(order, 1):
        result = run_tool(tool, steps, setup, venv, workdir / f"{index:02d}-{tool}-{steps}", args.threads,
                          args.tunesmith_set)
        runs.append(result)
        print(f"[{index}/{len(order)}] {tool} {steps} steps: {result['wall_seconds']:.1f} s, "
              f"{result['cpu_seconds']:.1f} CPU s, peak RSS {result['peak_rss_mib']:.0f} MiB, "
              f"load {result['load_average_before'][0]:.1f} -> {result['load_average_after'][0]:.1f}", flush=True)

    last = {tool: next(run for run in reversed(runs) if run["tool"] == tool and run["steps"] == 3 * args.steps)
            for tool in TOOLS}
    print("scoring the LoRAs of the longest runs on the held-out images ...", flush=True)
    held_out = held_out_losses(setup, {"base": None, **{tool: Path(last[tool]["lora"]) for tool in TOOLS}},
                               workdir / "score-cache")
    summary = summarise(runs, held_out)
    # The scoring reloads tunesmith's file into a fresh pipeline; its run scored the same images in-process.
    scoring_check = {"tunesmith_run_final_val_loss": last["tunesmith"]["reported"]["final_val_loss"],
                     "benchmark_score_of_its_lora": held_out["tunesmith"]}
    ratio = ratios(*({column.key: summary[tool][column.key] for column in COLUMNS} for tool in TOOLS))
    table = markdown_table(summary, COLUMNS, "tunesmith / diffusers", ratio)
    info["load_average_after"] = machine.load_average()
    print(f"\n{table}\nheld-out loss of the untrained pipeline: {held_out['base']:.5f}; tunesmith's run scored its "
          f"own LoRA {scoring_check['tunesmith_run_final_val_loss']:.5f} in-process\n{machine.summary_line(info)}; "
          f"load average after {info['load_average_after'][0]:.1f}")

    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    folder = workdir if args.quick else REPO / "benchmarks" / "results"  # smoke tests stay out of the repo
    output = args.output or folder / f"dreambooth_vs_diffusers-cpu-{stamp}.json"
    write_results(output, {
        "benchmark": "diffusion/dreambooth_vs_diffusers",
        "created": datetime.now().isoformat(timespec="seconds"),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "machine": info,
        "environment": {"venv": str(venv), "made_with": [shlex.join(c) for c in venv_commands(venv)]},
        "settings": {**{k: str(v) if isinstance(v, Path) else v for k, v in setup.__dict__.items()},
                     "steps": [args.steps, 3 * args.steps], "repeats": args.repeats, "threads": args.threads,
                     "instance_prompt": INSTANCE_PROMPT, "class_prompt": CLASS_PROMPT, "weight_decay": WEIGHT_DECAY,
                     "max_grad_norm": MAX_GRAD_NORM, "precision": "fp32", "tunesmith_set": args.tunesmith_set,
                     "images_per_step": images_trained(1, args.batch_size),
                     "tunesmith_config": tunesmith_config(setup, 3 * args.steps, Path("RUN"), args.tunesmith_set),
                     "peer_command": shlex.join(peer_command(venv, setup, 3 * args.steps, Path("OUT")))},
        "made": made,
        "summary": summary,
        "held_out_loss_base": held_out["base"],
        "scoring_check": scoring_check,
        "ratio_tunesmith_over_diffusers": ratio,
        "table": table,
        "runs": runs,
    })
    print(f"results: {output}")


def machine_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
