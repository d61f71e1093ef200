"""The review web app: FastAPI routes over one run's answers and its vote log; no state beyond the files."""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from tunesmith.errors import TunesmithError
from tunesmith.review import pages
from tunesmith.review.items import ReviewItem, read_run_answers
from tunesmith.review.sides import CHOICES, choice_for, tuned_side, winner_of
from tunesmith.review.summary import tally, write_review_summary
from tunesmith.review.votes import VOTES_FILE, VoteStore, latest_votes, new_vote, normalise_reviewer


def create_app(run_dir: Path, against: str | None = None) -> FastAPI:
    """The app for reviewing run_dir's tuned answers against one baseline (None: few_shot if present, else zero_shot).

    Reading the answers here, before the server starts, lets a missing or malformed file fail as one clear message.
    Links and redirects stay under the path the app is mounted at (its ASGI root_path), so it works both at the root
    of `tunesmith review`'s server and mounted inside `tunesmith serve`.
    """
    run_dir = Path(run_dir)
    answers = read_run_answers(run_dir)
    review_set = answers.compared_with(against)
    items = review_set.items
    position = {item.id: index for index, item in enumerate(items)}
    store = VoteStore(run_dir / VOTES_FILE)
    # One vote at a time: its line and the summary it changes are written together, in order.
    recording = threading.Lock()
    run_name = run_dir.resolve().name
    app = FastAPI(title=f"tunesmith review: {run_name}", docs_url=None, redoc_url=None, openapi_url=None)

    def votes_by(reviewer: str) -> dict[int, dict]:
        """The reviewer's counted votes by item: the latest, and only those cast on the answers the run has now."""
        current = {item.id: item.fingerprint for item in items}
        return {
            item_id: vote for (item_id, name), vote in latest_votes(store.read(), review_set.against).items()
            if name == reviewer and current.get(item_id) == vote.get("fingerprint")
        }

    def next_unvoted(after: int, mine: dict[int, dict]) -> ReviewItem | None:
        """The first item after position `after` (wrapping round) that the reviewer has not voted on."""
        for step in range(1, len(items) + 1):
            item = items[(after + step) % len(items)]
            if item.id not in mine:
                return item
        return None

    def to_next(reviewer: str, after: int, root: str) -> RedirectResponse:
        following = next_unvoted(after, votes_by(reviewer))
        target = (pages.item_url(following.id, reviewer, root) if following
                  else pages.url(root, f"/done{pages.reviewer_query(reviewer)}"))
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(TunesmithError)
    def user_error(request: Request, exc: TunesmithError) -> HTMLResponse:
        return HTMLResponse(pages.error_page(str(exc), _root(request)), status_code=400)

    @app.get("/", response_class=HTMLResponse)
    def start(request: Request, reviewer: str | None = None):
        root = _root(request)
        if reviewer is None:
            return HTMLResponse(pages.name_page(run_name, root=root))
        try:
            name = normalise_reviewer(reviewer)
        except TunesmithError as exc:
            return HTMLResponse(pages.name_page(run_name, str(exc), reviewer, root), status_code=400)
        return to_next(name, -1, root)

    @app.get("/items/{item_id}", response_class=HTMLResponse)
    def show_item(request: Request, item_id: int, reviewer: str | None = None):
        root = _root(request)
        if reviewer is None:
            return RedirectResponse(pages.url(root, "/"), status_code=303)
        name = normalise_reviewer(reviewer)
        if item_id not in position:
            return HTMLResponse(pages.error_page(f"no item {item_id} in {review_set.source}", root), status_code=404)
        index, mine = position[item_id], votes_by(name)
        side = tuned_side(item_id, name)
        saved = mine.get(item_id)
        return pages.item_page(
            run_name, items[index], position=index + 1, total=len(items), voted=len(mine), reviewer=name,
            tuned_on=side, saved_choice=choice_for(saved["winner"], side) if saved else None,
            saved_comment=saved.get("comment", "") if saved else "",
            previous_id=items[index - 1].id if index > 0 else None,
            next_id=items[index + 1].id if index + 1 < len(items) else None, root=root,
        )

    @app.post("/items/{item_id}/vote")
    def vote(request: Request, item_id: int, reviewer: str = Form(...), choice: str = Form(...),
             comment: str = Form("")):
        root = _root(request)
        name = normalise_reviewer(reviewer)
        if item_id not in position:
            return HTMLResponse(pages.error_page(f"no item {item_id} in {review_set.source}", root), status_code=404)
        if choice not in CHOICES:
            raise TunesmithError(f"choice {choice!r}: pick one of {', '.join(CHOICES)}")
        item = items[position[item_id]]
        # The side is recomputed here, never taken from the form, so a vote's meaning can't be forged or mixed up.
        side = tuned_side(item_id, name)
        record = new_vote(
            against=review_set.against, item_id=item_id, fingerprint=item.fingerprint, reviewer=name, choice=choice,
            tuned_side=side, winner=winner_of(choice, side), comment=comment,
        )
        with recording:
            store.append(record)
            write_review_summary(answers, store.read(), review_set.against)
        return to_next(name, position[item_id], root)

    @app.get("/done", response_class=HTMLResponse)
    def done(request: Request, reviewer: str):
        return pages.done_page(normalise_reviewer(reviewer), len(items), items[0].id, _root(request))

    @app.get("/tally", response_class=HTMLResponse)
    def tally_view(request: Request):
        return pages.tally_page(run_name, tally(review_set, store.read()), _root(request))

    @app.get("/summary.json")
    def summary_json():
        return JSONResponse(tally(review_set, store.read()))

    return app


def _root(request: Request) -> str:
    """The path the app is mounted at ('' at the root of its own server)."""
    return request.scope.get("root_path", "")
