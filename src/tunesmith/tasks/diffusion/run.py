"""A single Stable Diffusion run: load the pipeline -> class images (prior preservation) -> apply the method ->
the diffusion task -> the one loop (checkpoints, exact resume, held-out denoising loss) -> save the LoRA or the
full model -> sample grids -> report.json / report.md."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from accelerate.utils import set_seed

from tunesmith import events as ev
from tunesmith.methods import memory
from tunesmith.methods.lora_folded_scales import lora_scales_folded
from tunesmith.methods.parameters import parameter_counts
from tunesmith.models.diffusion import load_diffusion
from tunesmith.provenance import config_text
from tunesmith.run import RunResult
from tunesmith.tasks.diffusion.activation_memory import plan_activations
from tunesmith.tasks.diffusion.data import RunImages, run_images
from tunesmith.tasks.diffusion.report import write_report
from tunesmith.tasks.diffusion.task import DiffusionTask
from tunesmith.tasks.diffusion.trained import save_trained
from tunesmith.tasks.diffusion.validation import SampleGrids, run_sampling
from tunesmith.train.distributed import broadcast_from_main, shards_model
from tunesmith.train.loop import train
from tunesmith.train.optimizer import STATE_BYTES


def train_and_score(config, method, accelerator, run_dir, resume, console, events, cancel, on_step_end):
    main = accelerator.is_main_process
    events.emit(ev.RunStarted(run_dir=run_dir, config=config.model_dump(mode="json")))
    set_seed(config.training.seed)
    model = load_diffusion(config.model, config.allow_pickle)
    model.pipeline.to(accelerator.device)
    with accelerator.main_process_first():  # rank 0 draws the class images; the others then find them
        images = run_images(config, model, on_progress=_class_progress(console) if main else None)

    set_seed(config.training.seed)  # LoRA's initialisation must not depend on whether class images were drawn
    model = method.apply(model, config.method, None)
    with accelerator.main_process_first():  # and encodes the latent and text caches the others read
        task = DiffusionTask(model, images.train, images.validation, images.classes,
                             objective=config.method.objective(), text_encoder_lr=config.method.text_encoder_lr,
                             cache_latents=config.data.cache_latents)
    trainable, total = parameter_counts(task.model)
    need = memory.estimate(task.model, STATE_BYTES[config.training.optimizer])
    if getattr(config.method, "ema", False):  # the weight average: one more fp32 copy of what trains
        need = dataclasses.replace(need, optimizer=need.optimizer + 4 * trainable)
    activations = broadcast_from_main(accelerator, _activations(config, task, need, accelerator) if main else None)
    if activations is not None and activations.checkpointing:
        gradient_checkpointing(True, model.pipeline)  # every rank does what rank 0 measured and chose
    plan = _plan(config, method, model, images, task, accelerator, trainable, total, need, activations)
    console.print(_plan_line(plan, need, activations))
    events.emit(ev.Planned(plan=plan))
    memory.check_fits_diffusion(method.name, need, accelerator.device, method.is_adapter, activations)

    every = config.validation.every if config.validation else None
    grids = SampleGrids(model.pipeline, run_sampling(config, model.family, images.train), Path(run_dir) / "samples",
                        accelerator.autocast, console, every) if main else None
    average = _weight_average(config, task) if main else None

    def after_step(state):
        if grids is not None:
            grids.after_step(state.step)
        if on_step_end is not None:
            on_step_end(state)

    def resumed(event):  # the loop has loaded the checkpoint: draw its step's grid if the killed run did not
        if grids is not None and isinstance(event, ev.TrainingStarted) and event.resumed and event.step > 0:
            grids.resumed(event.step)

    started = time.perf_counter()
    losses = _TrainLosses()
    for subscriber in (losses, resumed):
        events.subscribe(subscriber)
    try:
        with lora_scales_folded(task.model, enabled=not shards_model(accelerator)):
            result = train(task, config.training, run_dir, accelerator, events=events, resume=resume, cancel=cancel,
                           checkpoint_files={"config.yaml": config_text(config)}, on_step_end=after_step,
                           memory_plan=f"{memory.describe(need)} + {memory.describe_activations(activations)}",
                           companions={"ema": average} if average is not None else None)
    finally:
        for subscriber in (losses, resumed):
            events.unsubscribe(subscriber)
    train_seconds = time.perf_counter() - started

    output, report = Path(run_dir), None
    if main:
        if average is not None:
            average.copy_to_weights()  # what is saved (and drawn) is the average
        output = save_trained(model, method, config, run_dir)
        console.print(f"saved {output}")
        grids.final()
        meta = {
            "model": config.model, "family": model.family.label, "method": method.name, "steps": result.state.step,
            "images_per_second": round(result.state.seen / max(result.state.elapsed, 1e-9), 3),
            "train_images": len(images.train), "class_images": len(images.classes) if images.classes else None,
            "final_train_loss": losses.last, "final_val_loss": result.val_loss,
            "val_loss_on": "data.validation_images" if images.held_out else "the training images (fixed noise)",
            "trainable_params": trainable, "total_params": total,
            "learning_rate": result.learning_rate or config.training.learning_rate,
            "precision": plan["precision"], "train_seconds": round(train_seconds, 1), "output": str(output),
        }
        report = write_report(run_dir, meta, grids.saved)
        console.print(f"report: {report}")
    return broadcast_from_main(accelerator, RunResult(Path(run_dir), {}, output, result.val_loss, report))


class _TrainLosses:
    """The last logged training loss (for the report)."""

    last: float | None = None

    def __call__(self, event) -> None:
        if isinstance(event, ev.Step):
            self.last = event.loss


def _class_progress(console):
    def say(done: int, total: int) -> None:
        console.print(f"class images: drew {done} of {total} with the base model")

    return say


def _weight_average(config, task: DiffusionTask):
    if not getattr(config.method, "ema", False):
        return None
    from tunesmith.tasks.diffusion.ema import WeightAverage

    return WeightAverage([p for p in task.model.parameters() if p.requires_grad], config.method.ema_decay)


def _activations(config, task: DiffusionTask, need, accelerator):
    """The measured activations and the checkpointing choice (turned on where chosen); None when the weights and
    training state alone do not fit, which leaves nothing to measure."""
    available = memory.device_memory(accelerator.device)
    if need.total > memory.HEADROOM * available:
        return None
    return plan_activations(config.training.gradient_checkpointing, task, config.training, need.total, available,
                            lambda: gradient_checkpointing(True, task.pipeline), accelerator.autocast)


def gradient_checkpointing(requested, pipeline) -> bool:
    """With `True`, checkpoint the UNet's (and trained text encoders') activations: backward recomputes them."""
    if requested is not True:
        return False
    pipeline.unet.enable_gradient_checkpointing()
    for encoder in (pipeline.text_encoder, getattr(pipeline, "text_encoder_2", None)):
        if encoder is not None and any(p.requires_grad for p in encoder.parameters()):
            encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return True


def _plan(config, method, model, images: RunImages, task, accelerator, trainable, total, need, activations) -> dict:
    precision = "fp32" if accelerator.mixed_precision == "no" else accelerator.mixed_precision
    measured = activations is not None and activations.total is not None
    return {
        "method": method.name, "model": config.model, "family": model.family.label,
        "prediction_type": model.prediction_type, "trainable": trainable, "total": total,
        "memory_gib": round(need.total / memory.GIB, 3),
        "activations_gib": round(activations.total / memory.GIB, 3) if measured else None,
        "gradient_checkpointing": bool(activations and activations.checkpointing), "precision": precision,
        "device": str(accelerator.device), "processes": accelerator.num_processes,
        "optimizer": config.training.optimizer,
        "learning_rate": config.training.learning_rate, "text_encoder_learning_rate": config.method.text_encoder_lr,
        "train": len(images.train), "validation": len(images.validation),
        "class_images": len(images.classes) if images.classes else 0,
        "prior_loss_weight": task.objective.prior_loss_weight if images.classes else None,
        "resolution": images.train.settings.resolution, "caching": task.notes,
    }


def _plan_line(plan: dict, need, activations) -> str:
    rate = plan["learning_rate"]
    rate = f"{rate:g}" if isinstance(rate, float) else str(rate)
    if plan["text_encoder_learning_rate"]:
        rate += f" (text encoder {plan['text_encoder_learning_rate']:g})"
    prior = (f" + {plan['class_images']} class images (prior weight {plan['prior_loss_weight']:g})"
             if plan["class_images"] else "")
    processes = f" x {plan['processes']} processes" if plan["processes"] > 1 else ""
    reason = f" ({activations.reason})" if activations is not None else ""
    return (
        f"[bold]plan[/]: {plan['method']} on {plan['model']} ({plan['family']}, {plan['prediction_type']}) | "
        f"trainable {plan['trainable']:,} / {plan['total']:,} ({100 * plan['trainable'] / plan['total']:.2f}%) | "
        f"{plan['optimizer']} lr {rate} | memory {memory.describe(need)} + {memory.describe_activations(activations)} "
        f"| gradient checkpointing {'on' if plan['gradient_checkpointing'] else 'off'}{reason} | {plan['train']} "
        f"images{prior} at {plan['resolution']} px | {', '.join(plan['caching'])} | precision {plan['precision']} on "
        f"{plan['device']}{processes}"
    )
