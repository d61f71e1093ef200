"""The tally of a run's votes: the tuned model's win rate with a 95% interval, votes per reviewer, agreement.

`review_summary(run_dir)` is what other reports embed; `write_review_summary` keeps review/summary.json and
review/report.md current after every vote.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from statistics import mean

from tunesmith.atomic import write_text_atomic
from tunesmith.evaluate.row_names import ROW_LABELS
from tunesmith.review.items import ReviewSet, RunAnswers, read_run_answers
from tunesmith.review.stats import cohen_kappa, fleiss_kappa, item_agreement, wilson_interval
from tunesmith.review.votes import VOTES_FILE, WINNERS, VoteStore, latest_votes

SUMMARY_FILE = Path("review") / "summary.json"
REPORT_FILE = Path("review") / "report.md"
# A tie is half a win for each side, so the win rate stays a single number a reader can compare with 0.5.
_SCORE = {"tuned": 1.0, "tie": 0.5, "baseline": 0.0}
METHOD = (
    "ties count as half a win; each item counts once, scored by the mean of its reviewers' votes "
    "(tuned better 1, tie 0.5, baseline better 0); 95% Wilson score interval over the reviewed items"
)


def _counted(review_set: ReviewSet, votes: list[dict]) -> tuple[dict[int, list[dict]], int]:
    """The votes that count, grouped by item, and how many were cast on answers no longer in the run (stale)."""
    items = review_set.by_id()
    by_item: dict[int, list[dict]] = defaultdict(list)
    stale = 0
    for (item_id, _), vote in latest_votes(votes, review_set.against).items():
        item = items.get(item_id)
        if item is None or vote.get("fingerprint") != item.fingerprint:
            stale += 1
        else:
            by_item[item_id].append(vote)
    return dict(by_item), stale


def _agreement(by_item: dict[int, list[dict]]) -> dict | None:
    """Agreement on the items more than one reviewer judged: Cohen's kappa for two reviewers, Fleiss' for more."""
    shared = [votes for votes in by_item.values() if len(votes) > 1]
    if not shared:
        return None
    reviewers = {vote["reviewer"] for votes in shared for vote in votes}
    table = [[sum(vote["winner"] == winner for vote in votes) for winner in WINNERS] for votes in shared]
    if len(reviewers) == 2:
        first = min(reviewers)
        pairs = [tuple(v["winner"] for v in sorted(votes, key=lambda v: v["reviewer"] != first)) for votes in shared]
        kappa, kind = cohen_kappa(pairs), "cohen"
    else:
        kappa, kind = fleiss_kappa(table), "fleiss"
    return {
        "items": len(shared), "reviewers": len(reviewers),
        "percent": mean(item_agreement(row) for row in table), "kappa": kappa, "kappa_kind": kind,
    }


def tally(review_set: ReviewSet, votes: list[dict]) -> dict:
    """The summary of `votes` for the items of `review_set` (one baseline against the tuned model)."""
    by_item, stale = _counted(review_set, votes)
    counted = [vote for votes_on_item in by_item.values() for vote in votes_on_item]
    item_scores = [mean(_SCORE[vote["winner"]] for vote in votes_on_item) for votes_on_item in by_item.values()]
    reviewers: dict[str, Counter] = defaultdict(Counter)
    for vote in counted:
        reviewers[vote["reviewer"]][vote["winner"]] += 1
    outcomes = Counter(vote["winner"] for vote in counted)
    return {
        "against": review_set.against,
        "against_label": ROW_LABELS[review_set.against],
        "source": str(review_set.source),
        "items": len(review_set.items),
        "items_reviewed": len(by_item),
        "votes": len(counted),
        "outcomes": {winner: outcomes[winner] for winner in WINNERS},
        "win_rate": mean(item_scores) if item_scores else None,
        "ci95": list(wilson_interval(sum(item_scores), len(item_scores))) if item_scores else None,
        "method": METHOD,
        "reviewers": {
            name: {"votes": sum(counts.values()), **{winner: counts[winner] for winner in WINNERS}}
            for name, counts in sorted(reviewers.items())
        },
        "agreement": _agreement(by_item),
        "stale_votes": stale,
        "comments": [
            {"item": vote["item"], "reviewer": vote["reviewer"], "winner": vote["winner"], "comment": vote["comment"]}
            for vote in counted if vote.get("comment")
        ],
    }


def review_summaries(answers: RunAnswers, votes: list[dict], also: str | None = None) -> dict[str, dict]:
    """One summary per baseline that has votes (and `also`, the one being reviewed now), keyed by baseline."""
    wanted = {vote["against"] for vote in votes} | ({also} if also else set())
    return {name: tally(answers.compared_with(name), votes) for name in answers.baselines if name in wanted}


def review_summary(run_dir: Path, against: str | None = None) -> dict:
    """The tally of run_dir's votes against one baseline (default: few_shot where the run has it, else zero_shot)."""
    answers = read_run_answers(run_dir)
    return tally(answers.compared_with(against), VoteStore(Path(run_dir) / VOTES_FILE).read())


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def headline(summary: dict) -> str:
    """One sentence: how often the tuned answer won, with its interval, or that nobody has voted yet."""
    if summary["win_rate"] is None:
        return f"tuned vs {summary['against']}: no votes yet"
    low, high = summary["ci95"]
    return (
        f"tuned vs {summary['against']}: tuned preferred on {_percent(summary['win_rate'])} of "
        f"{_count(summary['items_reviewed'], 'reviewed item')} (95% CI {_percent(low)}-{_percent(high)}; "
        f"ties count half), {_count(summary['votes'], 'vote')}"
    )


def agreement_line(agreement: dict | None) -> str:
    if agreement is None:
        return "no item has votes from more than one reviewer yet"
    name = {"cohen": "Cohen's kappa", "fleiss": "Fleiss' kappa"}[agreement["kappa_kind"]]
    kappa = "undefined (every vote in one category)" if agreement["kappa"] is None else f"{agreement['kappa']:.2f}"
    return (
        f"{agreement['reviewers']} reviewers agree on {_percent(agreement['percent'])} of pairs over the "
        f"{agreement['items']} items more than one reviewed; {name} {kappa}"
    )


def summary_markdown(summary: dict) -> str:
    """A Markdown section for one comparison, for review/report.md or the evaluation report."""
    lines = [f"## Human review: tuned vs {summary['against']}", "",
             f"- baseline: {summary['against']}, {summary['against_label']}", f"- {headline(summary)}"]
    if summary["win_rate"] is not None:
        outcomes = summary["outcomes"]
        lines += [
            f"- votes: tuned better {outcomes['tuned']}, {summary['against']} better {outcomes['baseline']}, "
            f"tie {outcomes['tie']}",
            f"- agreement: {agreement_line(summary['agreement'])}",
            f"- method: {summary['method']}",
        ]
    if summary["stale_votes"]:
        lines.append(f"- not counted: {_count(summary['stale_votes'], 'vote')} on answers the run no longer has")
    if summary["reviewers"]:
        lines += ["", "| reviewer | votes | tuned better | baseline better | tie |", "|---|---:|---:|---:|---:|"]
        lines += [
            f"| {name} | {row['votes']} | {row['tuned']} | {row['baseline']} | {row['tie']} |"
            for name, row in summary["reviewers"].items()
        ]
    return "\n".join(lines) + "\n"


def write_review_summary(answers: RunAnswers, votes: list[dict], against: str) -> dict[str, dict]:
    """Write review/summary.json ({baseline: summary}) and review/report.md; return the summaries."""
    summaries = review_summaries(answers, votes, also=against)
    folder = answers.run_dir / SUMMARY_FILE.parent
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(answers.run_dir / SUMMARY_FILE, json.dumps(summaries, indent=2, ensure_ascii=False) + "\n")
    body = "\n".join(summary_markdown(summary) for summary in summaries.values())
    write_text_atomic(answers.run_dir / REPORT_FILE, f"# Review of {answers.run_dir.resolve().name}\n\n{body}")
    return summaries
