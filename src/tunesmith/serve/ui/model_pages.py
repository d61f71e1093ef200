"""Models: the base models and the tenant's tuned ones, and chat with a tuned model beside its base model (both
answer each message through POST /v1/chat/completions)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from tunesmith.serve.api import deps
from tunesmith.serve.api.errors import not_found
from tunesmith.serve.keys import Caller
from tunesmith.serve.settings import ServeSettings
from tunesmith.serve.tables import SUCCEEDED, Job
from tunesmith.serve.ui.access import page_caller
from tunesmith.serve.ui.templating import render

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Pane:
    role: str  # "tuned" or "base": the pane's element id
    label: str
    model: str


def tuned_jobs(session: Session, caller: Caller) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.tenant_seq == caller.tenant_seq, Job.status == SUCCEEDED,
                                                  Job.fine_tuned_model.is_not(None)).order_by(Job.seq.desc())))


@router.get("/ui/models")
def models_page(request: Request, caller: Caller = Depends(page_caller), session: Session = Depends(deps.reader),
                settings: ServeSettings = Depends(deps.settings)):
    tuned = [{"id": job.fine_tuned_model, "base": job.model, "job_id": job.id, "created": job.finished_at}
             for job in tuned_jobs(session, caller)]
    return render(request, "models.html", caller=caller, section="models", tuned=tuned, bases=list(settings.models))


@router.get("/ui/chat")
def chat_page(request: Request, model: str, caller: Caller = Depends(page_caller),
              session: Session = Depends(deps.reader), settings: ServeSettings = Depends(deps.settings)):
    if model in settings.models:
        panes = [Pane("base", "Base model", model)]
    else:
        job = session.scalar(select(Job).where(Job.tenant_seq == caller.tenant_seq, Job.status == SUCCEEDED,
                                               Job.fine_tuned_model == model))
        if job is None:
            raise not_found("model", model)
        panes = [Pane("tuned", "Tuned model", model), Pane("base", f"Base model ({job.model})", job.model)]
    return render(request, "chat.html", caller=caller, section="models", panes=panes)
