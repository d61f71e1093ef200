"""A training run ends with the evaluation `tunesmith eval` writes: the base model zero-shot and few-shot, scored
before training, and the tuned model, with verdicts, forgetting and fit in RUN/eval/."""

import json

from tests.conftest import CHAT_FACTS
from tunesmith.run import run
from tunesmith.tasks.causal_lm.run_scoring import BASE_CACHE


def distinct_train(path):
    """Training chats worded apart from the test ones, so the few-shot row has examples to draw from."""
    path.write_text("".join(
        json.dumps({"messages": [{"role": "system", "content": "You are Sous."},
                                 {"role": "user", "content": f"{question} (asked {i} times)"},
                                 {"role": "assistant", "content": answer}]}) + "\n"
        for i in range(6) for question, answer in CHAT_FACTS))
    return path


def test_a_run_ends_with_three_rows_verdicts_and_forgetting(tiny_run_config, tmp_path, capsys):
    config = tiny_run_config(data={"train": str(distinct_train(tmp_path / "train.jsonl"))},
                             eval={"forgetting": True, "comparison": {"few_shot_k": 2, "bootstrap_resamples": 200}})
    result = run(config)
    document = json.loads((result.run_dir / "eval" / "report.json").read_text())
    assert list(document["rows"]) == ["zero_shot", "few_shot", "tuned"]
    assert {row["n"] for row in document["rows"].values()} == {4}
    assert len(document["few_shot"]["shots"]) == 2
    assert document["verdicts"] and "forgetting" in document
    # RunResult.scores and report.json are the same rows, under the names runs have always used.
    assert set(result.scores) == {"base", "few_shot", "tuned"}
    assert result.scores["base"]["perplexity"] == document["rows"]["zero_shot"]["perplexity"]
    assert result.scores["tuned"]["perplexity"] == document["rows"]["tuned"]["perplexity"]
    summary = json.loads((result.run_dir / "report.json").read_text())
    assert summary["few_shot"] == result.scores["few_shot"] and len(summary["samples"]) == 3
    assert result.report == result.run_dir / "eval" / "report.md"
    printed = capsys.readouterr().out
    assert all(verdict.split(":")[0] in printed.replace("\n", " ") for verdict in document["verdicts"])
    cached = json.loads((result.run_dir / BASE_CACHE).read_text())
    assert set(cached["rows"]) == {"zero_shot", "few_shot"} and len(cached["general"]) > 10


def test_too_few_distinct_training_examples_leave_the_few_shot_row_out(tiny_run_config, capsys):
    # The shared fixture's test questions are all in its training set: nothing is left to show as shots.
    result = run(tiny_run_config())
    assert set(result.scores) == {"base", "tuned"}
    assert "the few-shot row is left out" in capsys.readouterr().out


def test_a_resumed_run_reuses_the_base_rows(tiny_run_config, tmp_path):
    from tunesmith.train.loop import CancelToken, TrainingInterrupted

    config = tiny_run_config(data={"train": str(distinct_train(tmp_path / "train.jsonl"))},
                             eval={"comparison": {"few_shot_k": 2, "bootstrap_resamples": 200}})
    token = CancelToken()
    stop_at_4 = lambda state: token.cancel() if state.step == 4 else None  # noqa: E731
    try:
        run(config, cancel=token, on_step_end=stop_at_4)
    except TrainingInterrupted:
        pass
    cached = (tmp_path / "run" / BASE_CACHE).read_text()
    seen = []
    result = run(config, resume=True, on_event=seen.append)
    assert "base_scoring_started" not in [event.type for event in seen]  # read from base_scores.json instead
    assert (tmp_path / "run" / BASE_CACHE).read_text() == cached
    assert set(result.scores) == {"base", "few_shot", "tuned"}
