"""Which model a request names: one of the server's base models, or a tuned (`ft:`) model of the caller's tenant;
and whether it is of the family the route draws with (language models chat, diffusion models draw)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunesmith.methods.registry import FAMILIES
from tunesmith.serve.api.errors import ApiError, not_found
from tunesmith.serve.job_store import run_dir
from tunesmith.serve.keys import Caller
from tunesmith.serve.settings import ServeSettings
from tunesmith.serve.tables import SUCCEEDED, Job

ROUTES = {"llm": "/v1/chat/completions or /v1/completions", "diffusion": "/v1/images/generations"}


@dataclass(frozen=True)
class Named:
    id: str
    family: str
    base: str | None = None  # a base model's spec (path or built-in name)
    run_dir: Path | None = None  # a tuned model's run folder


def find_model(session: Session, caller: Caller, settings: ServeSettings, model_id: str) -> Named:
    """The model `model_id` names for this caller; 404 (as for any other tenant's object) otherwise."""
    from tunesmith.models.family import run_family

    if model_id in settings.models:
        return Named(model_id, settings.family(model_id), base=settings.models[model_id])
    job = session.scalar(select(Job).where(Job.fine_tuned_model == model_id, Job.tenant_seq == caller.tenant_seq,
                                           Job.status == SUCCEEDED))
    if job is None:
        raise not_found("model", model_id)
    folder = run_dir(settings, job)
    return Named(model_id, run_family(folder), run_dir=folder)


def require_family(model: Named, family: str) -> None:
    if model.family != family:
        raise ApiError(400, f"model '{model.id}' is a {FAMILIES[model.family]}; use it with {ROUTES[model.family]}",
                       param="model", code="wrong_model_family")
