"""The tally: win rate with ties as half, its Wilson interval, votes per reviewer, agreement, the written files."""

import json

import pytest

from tunesmith.review.items import read_run_answers
from tunesmith.review.summary import review_summary, summary_markdown, tally, write_review_summary
from tunesmith.review.votes import VoteStore, new_vote

from .test_items import example, write_examples


@pytest.fixture
def run_dir(tmp_path):
    write_examples(tmp_path, [example(i, zero_shot=f"z{i}", few_shot=f"f{i}", tuned=f"t{i}") for i in range(5)])
    return tmp_path


def cast(run_dir, votes, against="few_shot"):
    """Append (item, reviewer, winner[, comment]) votes to the run's log, with the fingerprints of its answers."""
    items = read_run_answers(run_dir).compared_with(against).by_id()
    store = VoteStore(run_dir / "review" / "votes.jsonl")
    for item_id, reviewer, winner, *comment in votes:
        store.append(new_vote(against=against, item_id=item_id, fingerprint=items[item_id].fingerprint,
                              reviewer=reviewer, choice="tie", tuned_side="A", winner=winner,
                              comment=comment[0] if comment else ""))
    return store.read()


TWO_REVIEWERS = [
    (0, "Ana", "tuned"), (1, "Ana", "tuned"), (2, "Ana", "baseline"), (3, "Ana", "tie", "both hedge"),
    (0, "Ben", "tuned"), (1, "Ben", "baseline"), (2, "Ben", "baseline"), (3, "Ben", "tie"), (4, "Ben", "tuned"),
]


def test_two_reviewers_hand_computed(run_dir):
    cast(run_dir, TWO_REVIEWERS)
    summary = review_summary(run_dir)
    # Item scores (mean of its votes; tie = 1/2): 1, 1/2, 0, 1/2, 1 -> 3 of 5 items; Wilson(3, 5) = [0.2307, 0.8824].
    assert summary["win_rate"] == pytest.approx(0.6)
    assert summary["ci95"] == pytest.approx([0.2307, 0.8824], abs=5e-5)
    assert (summary["items"], summary["items_reviewed"], summary["votes"]) == (5, 5, 9)
    assert summary["outcomes"] == {"tuned": 4, "baseline": 3, "tie": 2}
    assert summary["reviewers"] == {"Ana": {"votes": 4, "tuned": 2, "baseline": 1, "tie": 1},
                                    "Ben": {"votes": 5, "tuned": 2, "baseline": 2, "tie": 1}}
    # Items 0-3 have both: they agree on 3 of 4; Cohen's kappa = (3/4 - 5/16) / (1 - 5/16) = 7/11.
    agreement = summary["agreement"]
    assert agreement["kappa_kind"] == "cohen" and (agreement["items"], agreement["reviewers"]) == (4, 2)
    assert agreement["percent"] == pytest.approx(0.75)
    assert agreement["kappa"] == pytest.approx(7 / 11)
    assert summary["comments"] == [{"item": 3, "reviewer": "Ana", "winner": "tie", "comment": "both hedge"}]
    assert "ties count as half a win" in summary["method"]


def test_three_reviewers_use_fleiss_kappa(run_dir):
    cast(run_dir, [(0, "Ana", "tuned"), (0, "Ben", "tuned"), (0, "Cy", "tuned"),
                   (1, "Ana", "tuned"), (1, "Ben", "tuned"), (1, "Cy", "baseline"),
                   (2, "Ana", "tuned"), (2, "Ben", "baseline"), (2, "Cy", "tie")])
    agreement = review_summary(run_dir)["agreement"]
    # Per-item pair agreement 1, 1/3, 0 -> 4/9; Fleiss' kappa = -1/8 (see test_stats).
    assert agreement["kappa_kind"] == "fleiss" and agreement["reviewers"] == 3
    assert agreement["percent"] == pytest.approx(4 / 9)
    assert agreement["kappa"] == pytest.approx(-0.125)


def test_a_re_vote_replaces_the_earlier_one(run_dir):
    cast(run_dir, [(0, "Ana", "baseline"), (1, "Ana", "baseline"), (0, "Ana", "tuned")])
    summary = review_summary(run_dir)
    assert summary["votes"] == 2 and summary["outcomes"] == {"tuned": 1, "baseline": 1, "tie": 0}
    assert summary["win_rate"] == pytest.approx(0.5)


def test_votes_on_answers_a_new_evaluation_replaced_are_not_counted(run_dir):
    cast(run_dir, [(0, "Ana", "tuned"), (1, "Ana", "tuned")])
    write_examples(run_dir, [example(i, zero_shot=f"z{i}", few_shot=f"f{i}", tuned=f"new t{i}" if i == 1 else f"t{i}")
                             for i in range(5)])
    summary = review_summary(run_dir)
    assert (summary["votes"], summary["stale_votes"]) == (1, 1)


def test_each_baseline_is_tallied_on_its_own(run_dir):
    cast(run_dir, [(0, "Ana", "tuned")], against="few_shot")
    cast(run_dir, [(0, "Ana", "baseline"), (1, "Ana", "baseline")], against="zero_shot")
    assert review_summary(run_dir)["votes"] == 1
    assert review_summary(run_dir, "zero_shot")["win_rate"] == 0.0


def test_no_votes_yet(run_dir):
    summary = review_summary(run_dir)
    assert (summary["votes"], summary["win_rate"], summary["ci95"], summary["agreement"]) == (0, None, None, None)
    assert "no votes yet" in summary_markdown(summary)


def test_summary_files_hold_every_voted_baseline(run_dir):
    votes = cast(run_dir, TWO_REVIEWERS) + cast(run_dir, [(2, "Ana", "tuned")], against="zero_shot")
    answers = read_run_answers(run_dir)
    write_review_summary(answers, votes, "few_shot")
    written = json.loads((run_dir / "review" / "summary.json").read_text())
    assert set(written) == {"few_shot", "zero_shot"}
    assert written["few_shot"] == tally(answers.compared_with("few_shot"), votes)
    assert written["zero_shot"]["win_rate"] == 1.0
    report = (run_dir / "review" / "report.md").read_text()
    assert "## Human review: tuned vs few_shot" in report and "## Human review: tuned vs zero_shot" in report
    assert "tuned preferred on 60% of 5 reviewed items (95% CI 23%-88%; ties count half), 9 votes" in report
    assert "Cohen's kappa 0.64" in report and "| Ben | 5 | 2 | 2 | 1 |" in report
