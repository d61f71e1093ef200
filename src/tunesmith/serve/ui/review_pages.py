"""The blind human review (tunesmith.review) of a succeeded job's answers, mounted at /ui/jobs/{job_id}/review/.

A job's review app is made on first visit from its run folder (eval/examples.jsonl, else report.json) and kept; the
signed-in tenant must own the job, and votes (POST) must come from the review's own pages. The review builds its
links and redirects under the ASGI root_path, which the mount sets to this job's review path.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from tunesmith.errors import TunesmithError
from tunesmith.serve.api.errors import ApiError
from tunesmith.serve.job_store import get_job, run_dir
from tunesmith.serve.tables import SUCCEEDED
from tunesmith.serve.ui.access import from_own_page, page_caller
from tunesmith.serve.ui.session import needs_origin_check

MOUNT = "/ui/jobs/{job_id}/review"
KEPT = 16  # review apps kept loaded (each holds one run's answers)


def reviewable(folder: Path) -> bool:
    """Whether the run folder holds answers the review can show (the same reading the review app does)."""
    from tunesmith.review.items import read_run_answers

    try:
        read_run_answers(folder)
    except TunesmithError:
        return False
    return True


class ReviewMount:
    """The ASGI app behind MOUNT: checks who asks, then hands the request to that job's review app."""

    def __init__(self):
        self._apps: OrderedDict[str, ASGIApp] = OrderedDict()
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        caller = await run_in_threadpool(page_caller, request)
        if needs_origin_check(request):
            from_own_page(request)
        app = await run_in_threadpool(self._app_for, request, caller, scope["path_params"]["job_id"])
        await app(scope, receive, send)

    def _app_for(self, request: Request, caller, job_id: str) -> ASGIApp:
        with request.app.state.readers() as session:
            job = get_job(session, caller, job_id)
        if job.status != SUCCEEDED:
            raise ApiError(404, f"job {job_id} has {job.status}; only a succeeded job's answers can be reviewed")
        with self._lock:
            if job_id not in self._apps:
                from tunesmith.review.app import create_app

                try:
                    self._apps[job_id] = create_app(run_dir(request.app.state.settings, job))
                except TunesmithError as error:
                    raise ApiError(404, str(error).replace(str(request.app.state.settings.home), "<server>")) from None
                while len(self._apps) > KEPT:
                    self._apps.popitem(last=False)
            self._apps.move_to_end(job_id)
            return self._apps[job_id]
