"""Server-rendered HTML for the review: name form, one item with answers A and B, the tally.

Every piece of text that comes from a model, a dataset or a reviewer goes through `esc` (html.escape with quotes), so an
answer holding markup shows as text and cannot run script in a reviewer's browser. Every link is under `root`: the
path the app is mounted at (the ASGI root_path; `tunesmith serve` mounts a job's review under its page), empty when it
is the root of its own server (`tunesmith review`).
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from tunesmith.review.items import ReviewItem
from tunesmith.review.summary import agreement_line, headline
from tunesmith.review.votes import MAX_COMMENT

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
.prompt, .answer { white-space: pre-wrap; border: 1px solid #ccc; border-radius: 6px; padding: 0.75rem; }
.prompt { background: #f6f6f6; }
.answers { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; margin: 1rem 0; }
.error { color: #a00; font-weight: bold; }
.muted { color: #666; }
textarea { width: 100%; min-height: 4rem; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
td:first-child, th:first-child { text-align: left; }
nav a { margin-right: 1rem; }
"""


def esc(text) -> str:
    return escape(str(text), quote=True)


def reviewer_query(reviewer: str) -> str:
    return f"?reviewer={quote(reviewer)}"


def url(root: str, path: str) -> str:
    """`path` (absolute within the review) under the mount point `root`."""
    return root.rstrip("/") + path


def item_url(item_id: int, reviewer: str, root: str = "") -> str:
    return url(root, f"/items/{item_id}{reviewer_query(reviewer)}")


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def name_page(run_name: str, error: str | None = None, reviewer: str = "", root: str = "") -> str:
    problem = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
    return _page(f"Review {run_name}", f"""
<h1>Blind review of {esc(run_name)}</h1>
<p>Each page shows a prompt and two answers, A and B, from two different systems. Pick the better one (or a tie);
which system is on which side changes from item to item.</p>
{problem}
<form method="get" action="{esc(url(root, '/'))}">
  <label for="reviewer">Your name</label>
  <input id="reviewer" name="reviewer" value="{esc(reviewer)}" required maxlength="60" autofocus>
  <button type="submit">Start reviewing</button>
</form>
<p><a href="{esc(url(root, '/tally'))}">Tally</a></p>""")


def _answer(label: str, text: str) -> str:
    shown = esc(text) if text.strip() else '<em class="muted">(empty answer)</em>'
    return f'<section><h2>Answer {label}</h2><div class="answer" id="answer-{label}">{shown}</div></section>'


def item_page(run_name: str, item: ReviewItem, *, position: int, total: int, voted: int, reviewer: str,
              tuned_on: str, saved_choice: str | None, saved_comment: str, previous_id: int | None,
              next_id: int | None, root: str = "") -> str:
    texts = {tuned_on: item.tuned, ("B" if tuned_on == "A" else "A"): item.baseline}
    labels = {"A": "A better", "B": "B better", "tie": "Tie"}
    radios = "\n".join(
        f'<label><input type="radio" name="choice" value="{value}" required'
        f'{" checked" if value == saved_choice else ""}> {text}</label>'
        for value, text in labels.items()
    )
    links = ([f'<a href="{esc(item_url(previous_id, reviewer, root))}">&larr; previous</a>']
             if previous_id is not None else [])
    links += [f'<a href="{esc(item_url(next_id, reviewer, root))}">next &rarr;</a>'] if next_id is not None else []
    links.append(f'<a href="{esc(url(root, "/tally"))}">tally</a>')
    saved = '<p class="muted">You voted on this item; saving again replaces that vote.</p>' if saved_choice else ""
    return _page(f"Item {position} of {total}", f"""
<nav>{' '.join(links)}</nav>
<p class="muted">Reviewing as <strong id="who">{esc(reviewer)}</strong>
(<a href="{esc(url(root, '/'))}">change</a>) &middot;
item {position} of {total} &middot; you have voted on {voted}</p>
<h2>Prompt</h2>
<div class="prompt" id="prompt">{esc(item.prompt)}</div>
<div class="answers">{_answer("A", texts["A"])}{_answer("B", texts["B"])}</div>
{saved}
<form method="post" action="{esc(url(root, f'/items/{item.id}/vote'))}">
  <input type="hidden" name="reviewer" value="{esc(reviewer)}">
  <fieldset><legend>Which answer is better?</legend>
  {radios}
  </fieldset>
  <p><label for="comment">Comment (optional)</label><br>
  <textarea id="comment" name="comment" maxlength="{MAX_COMMENT}">{esc(saved_comment)}</textarea></p>
  <button type="submit">Save vote</button>
</form>""")


def done_page(reviewer: str, total: int, first_id: int, root: str = "") -> str:
    return _page("All items reviewed", f"""
<h1>Thank you, {esc(reviewer)}</h1>
<p>You have voted on all {total} items. See the <a href="{esc(url(root, '/tally'))}">tally</a>, or
<a href="{esc(item_url(first_id, reviewer, root))}">go back to the first item</a> to change a vote.</p>""")


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def tally_page(run_name: str, summary: dict, root: str = "") -> str:
    outcomes = summary["outcomes"]
    rows = "\n".join(
        f"<tr><td>{esc(name)}</td><td>{row['votes']}</td><td>{row['tuned']}</td><td>{row['baseline']}</td>"
        f"<td>{row['tie']}</td></tr>"
        for name, row in summary["reviewers"].items()
    )
    verdicts = {"tuned": "tuned better", "baseline": f"{summary['against']} better", "tie": "tie"}
    notes = "\n".join(
        f"<li>item {vote['item']}, {esc(vote['reviewer'])} ({esc(verdicts[vote['winner']])}): "
        f"{esc(vote['comment'])}</li>"
        for vote in summary["comments"]
    )
    ci = summary["ci95"] or (None, None)
    stale = (f'<p class="muted">{summary["stale_votes"]} votes were cast on answers this run no longer has and are '
             f"not counted.</p>" if summary["stale_votes"] else "")
    return _page(f"Tally: {run_name}", f"""
<nav><a href="{esc(url(root, '/'))}">review</a></nav>
<h1>Tally: tuned vs {esc(summary['against'])}</h1>
<p id="headline">{esc(headline(summary))}</p>
<table>
<tr><th>measure</th><th>value</th></tr>
<tr><td>tuned win rate (ties count half)</td><td id="win-rate">{_percent(summary['win_rate'])}</td></tr>
<tr><td>95% confidence interval (Wilson)</td><td id="ci">{_percent(ci[0])} – {_percent(ci[1])}</td></tr>
<tr><td>items reviewed / items</td><td>{summary['items_reviewed']} / {summary['items']}</td></tr>
<tr><td>votes</td><td id="votes">{summary['votes']}</td></tr>
<tr><td>tuned better</td><td>{outcomes['tuned']}</td></tr>
<tr><td>{esc(summary['against'])} better</td><td>{outcomes['baseline']}</td></tr>
<tr><td>tie</td><td>{outcomes['tie']}</td></tr>
</table>
<p class="muted">{esc(summary['method'])}.</p>
{stale}
<h2>Reviewers</h2>
<table id="reviewers">
<tr><th>reviewer</th><th>votes</th><th>tuned better</th><th>baseline better</th><th>tie</th></tr>
{rows}
</table>
<h2>Agreement</h2>
<p id="agreement">{esc(agreement_line(summary['agreement']))}</p>
<h2>Comments</h2>
<ul id="comments">{notes}</ul>""")


def error_page(message: str, root: str = "") -> str:
    return _page("Review error", f'<p class="error" role="alert">{esc(message)}</p>'
                                 f'<p><a href="{esc(url(root, "/"))}">back</a></p>')
