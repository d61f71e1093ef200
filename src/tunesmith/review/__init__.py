"""Blind side-by-side human review of a run's answers: baseline vs tuned, sides shuffled, votes tallied.

`tunesmith.review.summary.review_summary(run_dir)` is the programmatic entry point for the tally.
"""
