"""Score one model on a held-out set: perplexity over the reference answers plus generation metrics.

The base and the tuned model go through this same function on the same examples, with greedy decoding
and the same max_new_tokens, so the before/after numbers are comparable.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from tunesmith.data.formats import Example
from tunesmith.data.tokenize import generation_prompt
from tunesmith.evaluate.generate import generate_texts
from tunesmith.evaluate.metrics import perplexity, text_metrics
from tunesmith.tasks.causal_lm.loss import count_label_tokens
from tunesmith.tasks.causal_lm.task import CausalLMLoss
from tunesmith.train.evaluation import summed_loss


def mean_token_loss(model, encoded: list[dict], collator, batch_size: int, autocast=nullcontext) -> float:
    """Token-mean cross-entropy over the trained (reference) tokens of `encoded`, in order, in eval mode."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    batches = (collator(encoded[start : start + batch_size]) for start in range(0, len(encoded), batch_size))
    total, tokens = summed_loss(CausalLMLoss(model), ((b, count_label_tokens(b["labels"])) for b in batches), device,
                                autocast)
    model.train(was_training)
    return float(total) / max(tokens, 1)


def score_model(
    model,
    tokenizer,
    examples: list[Example],
    encoded: list[dict],
    collator,
    metrics: list[str],
    max_new_tokens: int,
    batch_size: int,
    autocast: type[AbstractContextManager] | None = None,
) -> tuple[dict, list[str]]:
    """Return ({metric: value, "n": count}, generated answers in example order)."""
    autocast = autocast or nullcontext
    scores: dict = {"n": len(examples)}
    if "perplexity" in metrics:
        scores["perplexity"] = perplexity(mean_token_loss(model, encoded, collator, batch_size, autocast))
    text_names = [m for m in metrics if m != "perplexity"]
    predictions: list[str] = []
    if text_names:
        prompts, references = zip(*(generation_prompt(e, tokenizer) for e in examples))
        with autocast():
            predictions = generate_texts(model, tokenizer, list(prompts), max_new_tokens, batch_size)
        scores.update(text_metrics(predictions, list(references), text_names))
    return scores, predictions


def question_of(example: Example) -> str:
    """What a reader of the report should see as the question: the last user turn, or the prompt."""
    if example.messages:
        users = [m["content"] for m in example.messages if m["role"] == "user"]
        return users[-1] if users else ""
    return example.prompt or ""
