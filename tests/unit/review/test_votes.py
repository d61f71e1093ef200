"""The vote log: appends survive a restart, the latest vote counts, a crash's torn line is never a vote."""

import json
import threading

import pytest

from tunesmith.errors import DataError, TunesmithError
from tunesmith.review.votes import MAX_COMMENT, VoteStore, latest_votes, new_vote, normalise_reviewer


def _vote(item_id=0, reviewer="Ana", winner="tuned", against="few_shot", comment=""):
    return new_vote(against=against, item_id=item_id, fingerprint="f", reviewer=reviewer, choice="A",
                    tuned_side="A", winner=winner, comment=comment)


def test_votes_are_read_back_by_a_new_store(tmp_path):
    path = tmp_path / "review" / "votes.jsonl"
    first = VoteStore(path)
    first.append(_vote(0))
    first.append(_vote(1, winner="tie", comment="both fine"))
    restarted = VoteStore(path)
    read_back = [(v["item"], v["winner"], v["comment"]) for v in restarted.read()]
    assert read_back == [(0, "tuned", ""), (1, "tie", "both fine")]
    assert path.read_text().endswith("\n") and len(path.read_text().splitlines()) == 2


def test_the_latest_vote_per_item_and_reviewer_counts(tmp_path):
    store = VoteStore(tmp_path / "votes.jsonl")
    store.append(_vote(0, "Ana", "tuned"))
    store.append(_vote(0, "Ben", "baseline"))
    store.append(_vote(0, "Ana", "tie"))
    store.append(_vote(0, "Ana", "baseline", against="zero_shot"))
    latest = latest_votes(store.read(), "few_shot")
    assert {key: vote["winner"] for key, vote in latest.items()} == {(0, "Ana"): "tie", (0, "Ben"): "baseline"}
    assert len(store.read()) == 4  # the log keeps the replaced vote


def test_concurrent_appends_never_interleave(tmp_path):
    store = VoteStore(tmp_path / "votes.jsonl")
    long_comment = "x" * MAX_COMMENT  # lines longer than a pipe buffer

    def cast(reviewer):
        for item in range(25):
            store.append(_vote(item, reviewer, comment=long_comment))

    threads = [threading.Thread(target=cast, args=(name,)) for name in ("Ana", "Ben", "Cy", "Di")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    votes = store.read()
    assert len(votes) == 100 and all(vote["comment"] == long_comment for vote in votes)


def test_a_torn_last_line_is_ignored_and_cut_off_before_the_next_vote(tmp_path):
    path = tmp_path / "votes.jsonl"
    store = VoteStore(path)
    store.append(_vote(0))
    with open(path, "a") as handle:  # a crash in the middle of writing the second vote
        handle.write(json.dumps(_vote(1))[:30])
    assert [v["item"] for v in store.read()] == [0]
    store.append(_vote(2))
    assert [v["item"] for v in store.read()] == [0, 2]
    assert len(path.read_text().splitlines()) == 2


def test_a_hand_edited_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "votes.jsonl"
    path.write_text(json.dumps(_vote(0)))
    store = VoteStore(path)
    store.append(_vote(1))
    assert [v["item"] for v in store.read()] == [0, 1]


def test_a_broken_line_in_the_middle_names_file_and_line(tmp_path):
    path = tmp_path / "votes.jsonl"
    path.write_text(json.dumps(_vote(0)) + "\n{oops\n" + json.dumps(_vote(1)) + "\n")
    with pytest.raises(DataError, match=r"votes\.jsonl:2: invalid JSON"):
        VoteStore(path).read()


def test_a_vote_with_an_unknown_winner_is_refused(tmp_path):
    path = tmp_path / "votes.jsonl"
    path.write_text(json.dumps({**_vote(0), "winner": "A"}) + "\n")
    with pytest.raises(DataError, match=r"votes\.jsonl:1: 'winner' must be one of tuned, baseline, tie, got 'A'"):
        VoteStore(path).read()


def test_no_log_means_no_votes(tmp_path):
    assert VoteStore(tmp_path / "review" / "votes.jsonl").read() == []


def test_reviewer_names_are_normalised_and_checked():
    assert normalise_reviewer("  Ana   María ") == "Ana María"
    assert normalise_reviewer("o'neil-2") == "o'neil-2"
    for bad in ("", "   ", "<script>", "a" * 61, "-dash"):
        with pytest.raises(TunesmithError, match="reviewer name"):
            normalise_reviewer(bad)


def test_an_overlong_comment_is_refused():
    with pytest.raises(TunesmithError, match=f"comment: at most {MAX_COMMENT} characters"):
        _vote(comment="x" * (MAX_COMMENT + 1))
