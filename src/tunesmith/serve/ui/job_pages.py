"""Jobs: the list, the new-job form (fields or pasted YAML), one job's page (live curves, events, checkpoints, the
before/after report, cancel)."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse

from tunesmith.serve.api import deps
from tunesmith.serve.api.errors import ApiError
from tunesmith.serve.files import FINE_TUNE, file_path
from tunesmith.serve.images import b64
from tunesmith.serve.job_spec import EXTENSION_SECTIONS, SUPERVISED, method_names
from tunesmith.serve.job_store import cancel_job, create_job, get_job, run_dir
from tunesmith.serve.keys import Caller
from tunesmith.serve.progress import estimated_finishes
from tunesmith.serve.settings import ServeSettings
from tunesmith.serve.tables import FINISHED, SUCCEEDED, Checkpoint, Job, StoredFile
from tunesmith.serve.ui.access import changing_caller, page_caller
from tunesmith.serve.ui.file_pages import tenant_files
from tunesmith.serve.ui.job_form import JobForm, JobFormError
from tunesmith.serve.ui.model_pages import job_family, use_link
from tunesmith.serve.ui.report_view import report_view
from tunesmith.serve.ui.review_pages import reviewable
from tunesmith.serve.ui.templating import render

router = APIRouter(include_in_schema=False)
SHOWN = 200  # the newest jobs listed
REPORT, GRID = "report.json", "final.png"


def method_name(job: Job) -> str:
    kind = job.method.get("type", SUPERVISED)
    if kind != SUPERVISED:
        return kind
    return ((job.extension or {}).get("method") or {}).get("name") or SUPERVISED


@router.get("/ui")
@router.get("/ui/")
def home():
    return RedirectResponse("/ui/jobs", status_code=303)


@router.get("/ui/jobs")
def jobs_page(request: Request, caller: Caller = Depends(page_caller), session: Session = Depends(deps.reader)):
    rows = session.scalars(select(Job).where(Job.tenant_seq == caller.tenant_seq).order_by(Job.seq.desc())
                           .limit(SHOWN)).all()
    return render(request, "jobs.html", caller=caller, section="jobs", jobs=[(job, method_name(job)) for job in rows])


def _form_page(request: Request, caller: Caller, settings: ServeSettings, form: JobForm, idempotency_key: str,
               status_code: int = 200, error: str | None = None):
    with request.app.state.readers() as session:
        files = [f for f in tenant_files(session, caller, FINE_TUNE) if f.status == "processed"]
    return render(request, "job_new.html", status_code, caller=caller, section="jobs", error=error, form=form,
                  models=list(settings.models), training_files=files, methods=[SUPERVISED, *method_names(None)],
                  sections=", ".join(dict.fromkeys(s for family in EXTENSION_SECTIONS.values() for s in family)),
                  idempotency_key=idempotency_key)


@router.get("/ui/jobs/new")
def new_job_page(request: Request, training_file: str = "", caller: Caller = Depends(page_caller),
                 settings: ServeSettings = Depends(deps.settings)):
    form = JobForm(model=next(reversed(settings.models)), training_file=training_file)  # the last --model given
    # The form carries its own Idempotency-Key: submitting it twice (a double click, a reload) makes one job.
    return _form_page(request, caller, settings, form, secrets.token_urlsafe(16))


@router.post("/ui/jobs")
async def create_job_from_form(request: Request, caller: Caller = Depends(changing_caller),
                               settings: ServeSettings = Depends(deps.settings)):
    fields = await request.form()
    form = JobForm.from_fields(fields)
    key = str(fields.get("idempotency_key", ""))[:255] or secrets.token_urlsafe(16)
    try:
        body = form.request()
        job_id = await deps.writing(request, lambda session: create_job(session, settings, caller, body, key).id)
    except (JobFormError, ApiError) as error:
        return await run_in_threadpool(_form_page, request, caller, settings, form, key, 400, str(error))
    return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)


@router.get("/ui/jobs/{job_id}")
def job_page(request: Request, job_id: str, caller: Caller = Depends(page_caller),
             session: Session = Depends(deps.reader), settings: ServeSettings = Depends(deps.settings)):
    job = get_job(session, caller, job_id)
    checkpoints = session.scalars(select(Checkpoint).where(Checkpoint.job_seq == job.seq)
                                  .order_by(Checkpoint.seq.desc()).limit(100)).all()
    results = session.scalars(select(StoredFile).where(StoredFile.id.in_(job.result_files or []),
                                                       StoredFile.tenant_seq == caller.tenant_seq)).all()
    report = next((report_view(file_path(settings, f)) for f in results if f.filename == REPORT), None)
    grid = next((b64(file_path(settings, f).read_bytes()) for f in results if f.filename == GRID), None)
    family = job_family(settings, job)
    return render(request, "job.html", caller=caller, section="jobs", job=job, method_name=method_name(job),
                  finished=job.status in FINISHED, estimated_finish=estimated_finishes(session, [job]).get(job.seq),
                  checkpoints=checkpoints, result_files=results, report=report, grid=grid,
                  use_link=use_link(job.fine_tuned_model, family) if job.fine_tuned_model else None,
                  diffusion=family == "diffusion",
                  reviewable=job.status == SUCCEEDED and reviewable(run_dir(settings, job)))


@router.post("/ui/jobs/{job_id}/cancel")
async def cancel_job_from_page(request: Request, job_id: str, caller: Caller = Depends(changing_caller)):
    await deps.writing(request, lambda session: cancel_job(session, caller, get_job(session, caller, job_id)))
    return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)
