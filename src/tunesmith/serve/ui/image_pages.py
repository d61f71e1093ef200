"""Images: a prompt box for a diffusion model (a base, or a tuned one) whose answer is the page itself, the images
drawn by the same code as POST /v1/images/generations and shown inline (the page's CSP allows data: images)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, Form, Request
from pydantic import ValidationError
from sqlalchemy.orm import Session

from tunesmith.serve.api import deps
from tunesmith.serve.api.errors import ApiError, describe_validation
from tunesmith.serve.api.images import ImageRequest, ImagesResponse, generate
from tunesmith.serve.api.models import find_model, require_family
from tunesmith.serve.keys import Caller
from tunesmith.serve.settings import ServeSettings
from tunesmith.serve.ui.access import changing_caller, page_caller
from tunesmith.serve.ui.templating import render

router = APIRouter(include_in_schema=False)


@dataclass
class ImageForm:
    """What the person typed, kept as text so the page comes back as they left it."""

    prompt: str = ""
    n: str = "4"
    seed: str = ""
    size: str = ""
    steps: str = ""

    def request(self, model: str) -> ImageRequest:
        body = {"model": model, "prompt": self.prompt, "n": self.n}
        body.update({name: getattr(self, name) for name in ("seed", "steps") if getattr(self, name)})
        if self.size:
            body["size"] = f"{self.size}x{self.size}"  # the form asks for one side: images are square
        try:
            return ImageRequest.model_validate(body)
        except ValidationError as error:
            raise ApiError(400, describe_validation(error.errors())[1]) from None


def _page(request: Request, session: Session, caller: Caller, settings: ServeSettings, model: str, form: ImageForm,
          status_code: int = 200, drawn: ImagesResponse | None = None, error: str | None = None):
    named = find_model(session, caller, settings, model)
    require_family(named, "diffusion")
    return render(request, "images.html", status_code, caller=caller, section="models", model=model, form=form,
                  tuned=named.run_dir is not None, drawn=drawn, error=error)


@router.get("/ui/images")
def images_page(request: Request, model: str, caller: Caller = Depends(page_caller),
                session: Session = Depends(deps.reader), settings: ServeSettings = Depends(deps.settings)):
    return _page(request, session, caller, settings, model, ImageForm())


@router.post("/ui/images")
def draw_from_page(request: Request, model: str = Form(..., max_length=200), prompt: str = Form("", max_length=4000),
                   n: str = Form("4", max_length=4), seed: str = Form("", max_length=12),
                   size: str = Form("", max_length=6), steps: str = Form("", max_length=4),
                   caller: Caller = Depends(changing_caller), session: Session = Depends(deps.reader),
                   settings: ServeSettings = Depends(deps.settings)):
    form = ImageForm(*(value.strip() for value in (prompt, n, seed, size, steps)))
    try:
        drawn = generate(request, session, caller, settings, form.request(model))
    except ApiError as error:
        if error.status == 404:
            raise
        with request.app.state.readers() as again:  # generate() closed the session it was given
            return _page(request, again, caller, settings, model, form, 400, error=error.message)
    with request.app.state.readers() as again:
        return _page(request, again, caller, settings, model, form, drawn=drawn)
