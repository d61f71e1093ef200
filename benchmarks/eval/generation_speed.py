"""Evaluation speed: scoring base and tuned the way `tunesmith eval` does (batched, KV cache, left padding) against a
one-example-at-a-time `model.generate` loop, on the same prompts, greedy, same max_new_tokens.

    python benchmarks/eval/generation_speed.py                      # 100 cooking prompts, 128 new tokens
    python benchmarks/eval/generation_speed.py --examples 20 --max-new-tokens 32   # smoke test
    python benchmarks/eval/generation_speed.py --run runs/cooking-assistant        # a trained adapter as "tuned"

Without --run, "tuned" is the embedded SmolLM2-135M-Instruct with a fresh LoRA adapter (r=16 on all linear layers,
PEFT's default init: B = 0), so it answers like the base model and pays the adapter's compute. The base model is
that model with the adapter switched off, as in `tunesmith eval`. Prompts: the cooking-assistant test set, then
training examples up to --examples. Figures: batched generation alone, and the whole row scoring (that generation,
per-example perplexity and the text metrics), each against the loop's generation; wall and CPU seconds (the CPU
time of this process is the steadier figure on a shared machine).
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # as a script, only this file's folder would be on sys.path

import torch  # noqa: E402

from benchmarks.common.report import machine, write_results  # noqa: E402
from tunesmith.data.formats import load_examples  # noqa: E402
from tunesmith.evaluate.generate import _generation_kwargs, generate_texts  # noqa: E402
from tunesmith.evaluate.losses import model_context, token_losses  # noqa: E402
from tunesmith.evaluate.rows import cases, chosen_metrics  # noqa: E402
from tunesmith.config.eval_metrics import TaskMetrics  # noqa: E402

EXAMPLE = REPO / "examples" / "cooking-assistant"
METRICS = ["perplexity", "bleu", "rouge_l", "exact_match"]


def load_models(run: Path | None):
    from tunesmith.models.load import load_causal_lm, load_trained, load_tokenizer, resolve_model

    if run is not None:
        return load_trained(run)
    from peft import LoraConfig, get_peft_model

    source = resolve_model("smollm2-135m-instruct")
    model = get_peft_model(load_causal_lm(source), LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                              task_type="CAUSAL_LM"))
    return model.eval(), load_tokenizer(source)


@torch.no_grad()
def one_at_a_time(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """What a first evaluation script does: one generate call per prompt."""
    kwargs = _generation_kwargs(model, tokenizer, max_new_tokens)
    answers = []
    for prompt in prompts:
        inputs = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
        output = model.generate(**inputs, **kwargs)
        answers.append(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    return answers


def timed(function, *args) -> tuple[object, dict[str, float]]:
    """The result, with wall seconds and this process's CPU seconds: on a shared machine the CPU time is the steadier
    figure (other jobs stretch the wall time, not the work done)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--run", type=Path, help="a trained run to use as the tuned model")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    test, _ = load_examples(EXAMPLE / "test.jsonl")
    train, _ = load_examples(EXAMPLE / "train.jsonl")
    examples = (test + train)[: args.examples]
    model, tokenizer = load_models(args.run)
    row_cases = cases(examples, tokenizer, model_context(model))
    prompts = [case.prompt for case in row_cases]
    metrics = chosen_metrics(METRICS, TaskMetrics(), raw_text=False)
    generate_texts(model, tokenizer, prompts[:2], 4, 2)  # first-call set-up is not what is measured

    figures: dict[str, dict[str, float]] = {}
    answers: dict[str, list[str]] = {}
    references = [case.reference for case in row_cases]
    for name in ("base", "tuned"):
        with model.disable_adapter() if name == "base" else nullcontext():
            # Row scoring is these three steps (rows.score_row); timed apart so generation is compared alone too.
            answers[f"{name}_batched"], figures[f"{name}_batched"] = timed(
                generate_texts, model, tokenizer, prompts, args.max_new_tokens, args.batch_size)
            _, figures[f"{name}_perplexity"] = timed(token_losses, model, [case.encoded for case in row_cases])
            _, figures[f"{name}_metrics"] = timed(
                lambda: [m.statistics(answers[f"{name}_batched"], references) for m in metrics if m.statistics])
            answers[f"{name}_loop"], figures[f"{name}_loop"] = timed(
                one_at_a_time, model, tokenizer, prompts, args.max_new_tokens)
        for phase in ("batched", "perplexity", "metrics", "loop"):  # as it goes: a long run that dies keeps these
            print(f"{name} {phase}: {figures[f'{name}_{phase}']}", flush=True)
    clocks = ("wall", "cpu")
    total = {mode: {c: figures[f"base_{mode}"][c] + figures[f"tuned_{mode}"][c] for c in clocks}
             for mode in ("batched", "perplexity", "metrics", "loop")}
    total["scoring"] = {c: total["batched"][c] + total["perplexity"][c] + total["metrics"][c] for c in clocks}
    same = sum(a == b for name in ("base", "tuned")
               for a, b in zip(answers[f"{name}_batched"], answers[f"{name}_loop"]))
    summary = {f"{mode}_{clock}_s": round(total[mode][clock], 1) for mode in total for clock in clocks}
    summary |= {f"{mode}_vs_loop_{clock}": round(total[mode][clock] / total["loop"][clock], 3)
                for mode in ("batched", "scoring") for clock in clocks}
    summary |= {
        "identical_answers": f"{same}/{2 * len(prompts)}",
        "new_tokens": sum(len(tokenizer(a)["input_ids"]) for a in answers["base_batched"] + answers["tuned_batched"]),
    }
    print(f"{len(prompts)} prompts x base and tuned, max_new_tokens {args.max_new_tokens}, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads on {machine()['cpu']}")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    output = args.output or REPO / "benchmarks" / "results" / f"eval_generation-{device}-{stamp}.json"
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    write_results(output, {"machine": machine(), "settings": settings,
                           "seconds": {k: {c: round(v, 2) for c, v in t.items()} for k, t in figures.items()},
                           "threads": torch.get_num_threads(), "summary": summary})
    print(f"results: {output}")


if __name__ == "__main__":
    main()
