"""Models: the base models and the tenant's tuned ones, and chat with a tuned model beside its base model (both
answer each message through POST /v1/chat/completions); diffusion models draw instead (ui/image_pages.py)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from tunesmith.serve.api import deps
from tunesmith.serve.api.models import find_model, require_family
from tunesmith.serve.job_store import run_dir
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


def job_family(settings: ServeSettings, job: Job) -> str:
    """The family a job trained: its base's, or (the base no longer offered) its run folder's."""
    from tunesmith.models.family import run_family

    return settings.family(job.model) if job.model in settings.models else run_family(run_dir(settings, job))


def use_link(model: str, family: str) -> str:
    """Where the UI uses a model: chat for a language model, the prompt box for a diffusion model."""
    return f"/ui/{'images' if family == 'diffusion' else 'chat'}?{urlencode({'model': model})}"


@router.get("/ui/models")
def models_page(request: Request, caller: Caller = Depends(page_caller), session: Session = Depends(deps.reader),
                settings: ServeSettings = Depends(deps.settings)):
    tuned = []
    for job in tuned_jobs(session, caller):
        family = job_family(settings, job)
        tuned.append({"id": job.fine_tuned_model, "base": job.model, "job_id": job.id, "created": job.finished_at,
                      "family": family, "link": use_link(job.fine_tuned_model, family)})
    bases = [{"name": name, "family": settings.family(name), "link": use_link(name, settings.family(name))}
             for name in settings.models]
    return render(request, "models.html", caller=caller, section="models", tuned=tuned, bases=bases)


@router.get("/ui/chat")
def chat_page(request: Request, model: str, caller: Caller = Depends(page_caller),
              session: Session = Depends(deps.reader), settings: ServeSettings = Depends(deps.settings)):
    require_family(find_model(session, caller, settings, model), "llm")
    if model in settings.models:
        panes = [Pane("base", "Base model", model)]
    else:
        job = session.scalar(select(Job).where(Job.tenant_seq == caller.tenant_seq, Job.status == SUCCEEDED,
                                               Job.fine_tuned_model == model))
        panes = [Pane("tuned", "Tuned model", model), Pane("base", f"Base model ({job.model})", job.model)]
    return render(request, "chat.html", caller=caller, section="models", panes=panes)
