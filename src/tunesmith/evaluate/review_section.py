"""The human review in the evaluation report: when RUN_DIR/review/ holds votes, each reviewed baseline's win rate with
its interval, ties, reviewers and their agreement (tallied by review/summary.py on the answers just written)."""

from __future__ import annotations

from pathlib import Path

from tunesmith.errors import TunesmithError


def review_section(run_dir: Path) -> dict | None:
    """report.json's `review` section ({"summaries": {baseline: tally}, "lines": [...]}), or None without votes.

    Call it after eval/examples.jsonl is written: votes count only on the answers they were cast on."""
    from tunesmith.review.items import read_run_answers
    from tunesmith.review.summary import headline, review_summaries
    from tunesmith.review.votes import VOTES_FILE, VoteStore

    votes = VoteStore(Path(run_dir) / VOTES_FILE).read()
    if not votes:
        return None
    try:
        answers = read_run_answers(run_dir)
    except TunesmithError as nothing:  # e.g. this evaluation generated no answers: the votes stay, uncounted
        return {"summaries": {}, "lines": [f"human review: {len(votes)} vote(s) not counted; {nothing}"]}
    summaries = review_summaries(answers, votes)
    if not summaries:
        voted = ", ".join(sorted({vote["against"] for vote in votes}))
        return {"summaries": {}, "lines": [f"human review: the votes are against {voted}, which this evaluation "
                                           "did not score; add it to --baselines to see the tally"]}
    return {"summaries": summaries, "lines": [headline(summary) for summary in summaries.values()]}
