"""A single language-model run: resolve model and data -> score the base model -> apply the method -> train through
the one loop -> save -> score the tuned model on the same examples -> write report.json / report.md."""

from __future__ import annotations

import time
from pathlib import Path

from accelerate import Accelerator
from accelerate.utils import set_seed
from rich.console import Console

from tunesmith import events as ev
from tunesmith.config.schema import RunConfig
from tunesmith.data.splits import load_run_data
from tunesmith.data.system_prompt import save_system_prompt, training_system_prompt
from tunesmith.data.token_cache import encode_cached
from tunesmith.data.tokenize import text_blocks
from tunesmith.errors import TunesmithError
from tunesmith.methods import frozen_precision, memory
from tunesmith.methods.adapter_input_cast import adapter_inputs_in_compute_dtype
from tunesmith.methods.apply import apply_method, save_final
from tunesmith.methods.cpu_dropout import use_cpu_dropout
from tunesmith.methods.lora_folded_scales import lora_scales_folded
from tunesmith.methods.parameters import load_trainable_state, parameter_counts
from tunesmith.models.load import load_adapter, load_model_for_method, load_tokenizer, resolve_model
from tunesmith.provenance import config_text, write_provenance
from tunesmith.run import RunResult
from tunesmith.tasks.causal_lm.activation_memory import choose_gradient_checkpointing, probe_batch
from tunesmith.tasks.causal_lm.cpu_attention import cpu_attention
from tunesmith.tasks.causal_lm.cpu_rms_norm import cpu_rms_norm
from tunesmith.tasks.causal_lm.gated_mlp import gated_mlp_keeping_less
from tunesmith.tasks.causal_lm.run_scoring import RunScoring
from tunesmith.tasks.causal_lm.task import CausalLMTask, largest_micro_batch_tokens
from tunesmith.train.distributed import broadcast_from_main, local_world_size, shards_model
from tunesmith.train.loop import train
from tunesmith.train.optimizer import STATE_BYTES

NO_TRUNCATION = 2**31 - 1


def train_and_score(config, method, accelerator, run_dir, resume, console, events, cancel, on_step_end):
    main = accelerator.is_main_process
    events.emit(ev.RunStarted(run_dir=run_dir, config=config.model_dump(mode="json")))
    set_seed(config.training.seed)
    source = resolve_model(config.model, config.allow_pickle)
    tokenizer = load_tokenizer(source, config.trust_remote_code)
    data = load_run_data(config.data, tokenizer)  # the tokenizer measures data.prepare's token lengths
    if main:
        save_system_prompt(run_dir, training_system_prompt(data.train))
    encode = lambda examples: _encode(examples, data.format, tokenizer, config, console)  # noqa: E731
    train_set, val_set = encode(data.train), encode(data.validation)
    if not train_set:
        raise TunesmithError(f"{config.data.train}: no training examples left after truncation to data.max_length")

    model = load_model_for_method(source, config.method, config.trust_remote_code, accelerator.device,
                                  accelerator.mixed_precision, scratch=config.model_init == "scratch")
    task = CausalLMTask(model, train_set, val_set, tokenizer.pad_token_id)
    scoring = RunScoring.prepare(config, data, tokenizer, model, accelerator.autocast) if main else None
    if scoring:
        scoring.score_base(model, run_dir, resume, console, events)

    set_seed(config.training.seed)  # the method's initialisation must not depend on whether the base was scored
    model = _start_trainable(model, config, source.folder)
    task.model = model
    use_cpu_dropout(model, shared_masks=getattr(config.method, "shared_dropout_mask", False))  # a LoRA option
    trainable, total = parameter_counts(model)
    whole = memory.estimate(model, STATE_BYTES[config.training.optimizer])
    need = memory.per_process(whole, config.distributed, accelerator.num_processes, local_world_size())
    # Not under FSDP or DeepSpeed: their shards are made from the swapped weights and cannot be swapped back.
    sharded = shards_model(accelerator)
    fast_frozen = frozen_precision.applies_to(config.method) and not sharded
    # The activation probe runs under the same swaps as training, so the plan counts what training keeps.
    with (frozen_precision.frozen_in_compute_dtype(model, accelerator.mixed_precision, enabled=fast_frozen),
          adapter_inputs_in_compute_dtype(model, accelerator.mixed_precision, enabled=fast_frozen),
          lora_scales_folded(model, enabled=not sharded),
          cpu_attention(model, accelerator.device), cpu_rms_norm(model, accelerator.device),
          gated_mlp_keeping_less(model)):
        checkpointing = choose_gradient_checkpointing(
            config.training.gradient_checkpointing, model, probe_batch(train_set, task.eval_collator()),
            largest_micro_batch_tokens(train_set, config.training), need.total,
            memory.device_memory(accelerator.device), allowed=method.gradient_checkpointing,
            autocast=accelerator.autocast,
        )
        if checkpointing.enabled:
            _enable_gradient_checkpointing(model)
        memory_plan = _announce_plan(config, method, accelerator, need, checkpointing, (trainable, total),
                                     (len(train_set), len(val_set)), scoring, console, events)
        memory.check_fits(method.name, need, total, accelerator.device, loaded_weights=whole.weights)
        started = time.perf_counter()
        result = train(task, config.training, run_dir, accelerator, events=events, resume=resume, cancel=cancel,
                       checkpoint_files={"config.yaml": config_text(config)}, on_step_end=on_step_end,
                       memory_plan=memory_plan)
    train_seconds = time.perf_counter() - started
    model = task.model
    if result.trainable is not None:  # the trained model is sharded: rank 0 saves and scores a whole copy
        model = _whole_model(source, config, accelerator, result.trainable) if main else None
        result.trainable = None  # now in the model: do not hold a second copy while scoring
    output = save_final(model, tokenizer, config.method, run_dir) if main else run_dir
    if main:
        write_provenance(output, config)

    scores, report = {}, None
    if scoring:
        meta = {
            "model": config.model, "method": method.name, "eval_set": scoring.eval_name,
            "max_new_tokens": config.eval.max_new_tokens, "train_steps": result.state.step,
            "train_tokens": result.state.seen, "train_seconds": round(train_seconds, 1),
            "final_val_loss": result.val_loss, "trainable_params": trainable, "total_params": total,
            "precision": _precision(accelerator), "learning_rate": result.learning_rate,
        }
        scores, report = scoring.finish(model, run_dir, meta, console, events)
    # Pipelines (stages, refinement) decide on every rank from what rank 0 saved and scored.
    return broadcast_from_main(accelerator, RunResult(run_dir, scores, output, result.val_loss, report))


def _announce_plan(config, method, accelerator, need, checkpointing, parameters, examples, scoring, console,
                   events) -> str:
    """Print the plan line and emit the `plan` event; returns the memory plan ("X + activations ~Y GiB") that an
    out-of-memory error repeats."""
    (trainable, total), (n_train, n_validation) = parameters, examples
    activations = checkpointing.activation_bytes / memory.GIB
    memory_plan = f"{memory.describe(need)} + activations ~{activations:.2f} GiB"
    console.print(
        f"[bold]plan[/]: {method.name} on {config.model} | trainable {trainable:,} / {total:,} "
        f"({100 * trainable / total:.2f}%) | {config.training.optimizer} lr {_rate(config.training.learning_rate)} | "
        f"memory {memory_plan} | gradient checkpointing {'on' if checkpointing.enabled else 'off'} "
        f"({checkpointing.reason}) | {n_train} train, {n_validation} validation{_scored(scoring)} examples | "
        f"precision {_precision(accelerator)} on {accelerator.device}{_parallelism(accelerator)}"
    )
    events.emit(ev.Planned(plan={
        "method": method.name, "model": config.model, "trainable": trainable, "total": total,
        "optimizer": config.training.optimizer, "memory_gib": round(need.total / memory.GIB, 3),
        "activations_gib": round(activations, 3), "gradient_checkpointing": checkpointing.enabled,
        "precision": _precision(accelerator), "device": str(accelerator.device),
        "processes": accelerator.num_processes, "train": n_train, "validation": n_validation,
        **({scoring.eval_name: len(scoring.examples)} if scoring else {}),
    }))
    return memory_plan


def _rate(rate) -> str:
    return "auto (range test before training)" if rate == "auto" else f"{rate:g}"


def _scored(scoring) -> str:
    return f", {len(scoring.examples)} {scoring.eval_name}" if scoring else ""


def _precision(accelerator: Accelerator) -> str:
    return "fp32" if accelerator.mixed_precision == "no" else accelerator.mixed_precision  # accelerate says "no"


def _parallelism(accelerator: Accelerator) -> str:
    if accelerator.num_processes == 1:
        return ""
    return f" x {accelerator.num_processes} processes ({accelerator.distributed_type.value})"


def _encode(examples, fmt: str, tokenizer, config: RunConfig, console: Console) -> list[dict]:
    if fmt == "text":
        # Raw text is never truncated: whole documents are encoded, then cut into max_length blocks.
        encoded, _ = encode_cached(examples, tokenizer, NO_TRUNCATION, "all")
        return text_blocks(encoded, config.data.max_length)
    encoded, dropped = encode_cached(examples, tokenizer, config.data.max_length, config.training.train_on)
    if dropped:
        console.print(
            f"[yellow]warning[/]: {dropped} example(s) of {examples[0].source} dropped: their trained tokens all "
            f"lie beyond data.max_length={config.data.max_length}; raise it to keep them"
        )
    return encoded


def _start_trainable(model, config: RunConfig, tokenizer_path: Path):
    """Apply the method, or continue a previous adapter (multi-stage runs, refinement rounds)."""
    if not config.init_adapter:
        return apply_method(model, config.method, tokenizer_path=tokenizer_path)
    return load_adapter(model, config.init_adapter, config.allow_pickle, is_trainable=True)


def _whole_model(source, config: RunConfig, accelerator: Accelerator, trainable: dict):
    """The trained model, unsharded: the base reloaded, the method applied again (with the same seed, so what it
    derives from the base is the same), then the trained tensors gathered from the FSDP or ZeRO shards."""
    accelerator.free_memory()  # drop accelerate's references to the sharded model
    model = load_model_for_method(source, config.method, config.trust_remote_code, accelerator.device,
                                  accelerator.mixed_precision, scratch=config.model_init == "scratch")
    set_seed(config.training.seed)
    model = _start_trainable(model, config, source.folder)
    load_trainable_state(model, trainable)
    return model


def _enable_gradient_checkpointing(model) -> None:
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()  # frozen embeddings would otherwise cut the graph for adapters
    model.config.use_cache = False
