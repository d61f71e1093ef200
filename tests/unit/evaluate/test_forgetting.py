import re

import numpy as np
import pytest

from tunesmith.errors import DataError
from tunesmith.evaluate.bootstrap import paired_difference, resample_counts
from tunesmith.evaluate.forgetting import forgetting, general_passages, shipped_sample
from tunesmith.evaluate.metrics import PERPLEXITY


def test_the_shipped_sample_is_varied_plain_prose():
    passages, source = general_passages()
    text = shipped_sample().read_text()
    sentences = re.findall(r"[.?!](?:\s|$)", text)
    assert 150 <= len(sentences) <= 300
    assert len(passages) >= 30 and source == "tunesmith general-English sample"
    assert len(set(passages)) == len(passages)
    assert not re.search(r"[<>{}\[\]#|]", text)  # prose, not markup or code


def test_a_users_text_file_or_text_records_are_accepted_and_other_data_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("First paragraph.\n\nSecond one.\n")
    assert general_passages(tmp_path / "mine.txt") == (["First paragraph.", "Second one."], str(tmp_path / "mine.txt"))
    (tmp_path / "chat.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    with pytest.raises(DataError, match="chat.jsonl: --general needs plain text .* prompt_completion data"):
        general_passages(tmp_path / "chat.jsonl")


def losses(per_token: float, n: int = 40) -> np.ndarray:
    return np.array([[per_token * 20, 20.0]] * n)


@pytest.mark.parametrize(("tuned_loss", "flagged"), [(np.log(10.0 * 1.25), True), (np.log(10.0 * 1.05), False)])
def test_a_rise_above_the_threshold_is_flagged(tuned_loss, flagged):
    base, tuned = losses(np.log(10.0)), losses(tuned_loss)
    drift = paired_difference(PERPLEXITY, tuned, base, "base", resample_counts(40, 200, 0), 0.95)
    result = forgetting("sample", base, tuned, drift, threshold=0.10)
    assert result.base == pytest.approx(10.0)
    assert result.flagged is flagged
    line = result.line()
    if flagged:
        assert line.startswith("forgetting: perplexity on sample 10.00 -> 12.50 (+25.0%") and "10% threshold" in line
    else:
        assert line.startswith("no forgetting flagged: perplexity on sample 10.00 -> 10.50 (+5.0%")
    assert result.to_dict()["flagged"] is flagged


def test_a_fall_in_perplexity_is_said_as_such():
    base, tuned = losses(np.log(10.0)), losses(np.log(9.0))
    drift = paired_difference(PERPLEXITY, tuned, base, "base", resample_counts(40, 200, 0), 0.95)
    line = forgetting("sample", base, tuned, drift, threshold=0.10).line()
    assert line.startswith("no forgetting: perplexity on sample 10.00 -> 9.00 (-10.0%")
    assert "no harder for the tuned model" in line and "threshold" not in line
