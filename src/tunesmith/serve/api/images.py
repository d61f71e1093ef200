"""`POST /v1/images/generations` in OpenAI's shape, for the server's diffusion base models and the caller's tuned
diffusion models (`ft:`); images come back as base64 PNGs. `seed`, `steps`, `guidance_scale` and `negative_prompt`
are tunesmith's: image j is drawn from seed + j, so a seed draws the same images again."""

from __future__ import annotations

import re
import secrets
import time
from contextlib import AbstractContextManager

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session

from tunesmith.serve import images
from tunesmith.serve.api import deps
from tunesmith.serve.api.errors import documented
from tunesmith.serve.api.models import find_model, require_family
from tunesmith.serve.keys import Caller
from tunesmith.serve.settings import ServeSettings

router = APIRouter(tags=["images"], responses=documented(400, 401, 404))
SIZE = re.compile(r"^(\d{1,4})x(\d{1,4})$")
MAX_SIDE = 2048
SIDE_STEP = 8  # the VAE's downscaling: latents are a whole number of pixels across
MAX_SEED = 2**31 - 1


class ImageRequest(BaseModel):
    """Parameters tunesmith cannot honour (quality, style, background, ...) are refused rather than ignored."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    prompt: str = Field(min_length=1, max_length=4000)
    n: int = Field(1, ge=1, le=10)
    size: str | None = Field(None, max_length=16, description="WxH with W = H, a multiple of 8 up to 2048, or "
                                                                "auto (the model's: a tuned model's training size)")
    response_format: str | None = Field(None, description="b64_json (the only one: this server keeps no image URLs)")
    output_format: str | None = Field(None, description="png (the only one)")
    user: str | None = Field(None, max_length=256)
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="tunesmith: image j is drawn from seed + j; "
                                                                  "default random")
    steps: int | None = Field(None, ge=1, le=200, description="tunesmith: denoising steps")
    guidance_scale: float | None = Field(None, ge=0, le=50, description="tunesmith: classifier-free guidance")
    negative_prompt: str | None = Field(None, max_length=4000, description="tunesmith: what to steer away from")

    @field_validator("size")
    @classmethod
    def _square(cls, value: str | None) -> str | None:
        if value is None or value == "auto":
            return value
        found = SIZE.match(value)
        if not found:
            raise ValueError(f"'{value}' is not WxH, e.g. 512x512, or auto")
        width, height = int(found[1]), int(found[2])
        if width != height:
            raise ValueError(f"'{value}': this server draws square images; ask for e.g. {width}x{width}")
        if not SIDE_STEP <= width <= MAX_SIDE or width % SIDE_STEP:
            raise ValueError(f"'{value}': the side must be a multiple of {SIDE_STEP} from {SIDE_STEP} to {MAX_SIDE}")
        return value

    @field_validator("response_format")
    @classmethod
    def _b64(cls, value: str | None) -> str | None:
        if value not in (None, "b64_json"):
            raise ValueError(f"'{value}': only b64_json; this server keeps no images to link to")
        return value

    @field_validator("output_format")
    @classmethod
    def _png(cls, value: str | None) -> str | None:
        if value not in (None, "png"):
            raise ValueError(f"'{value}': only png")
        return value

    def drawing(self) -> images.Request:
        side = None if self.size in (None, "auto") else int(self.size.split("x")[0])
        seed = self.seed if self.seed is not None else secrets.randbelow(MAX_SEED - self.n)
        return images.Request(self.prompt, self.n, seed, side, self.steps, self.guidance_scale, self.negative_prompt)


class ImageObject(BaseModel):
    b64_json: str
    revised_prompt: str | None = None


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageObject]
    output_format: str = "png"
    size: str
    seed: int  # tunesmith: the first image's (image j: seed + j)


def drawer(request: Request, session: Session, caller: Caller, settings: ServeSettings,
           model_id: str) -> AbstractContextManager[images.Drawer]:
    """The pipeline to draw with (loaded here, so a model that fails to load fails the request), for a model the
    caller may use."""
    cache = request.app.state.pipelines
    model = find_model(session, caller, settings, model_id)
    require_family(model, "diffusion")
    session.close()  # drawing is long: hold no transaction meanwhile
    if model.base is not None:
        cache.load_base(model.base)
        return cache.base(model.base)
    cache.load_tuned(model_id, model.run_dir)
    return cache.tuned(model_id, model.run_dir)


def generate(request: Request, session: Session, caller: Caller, settings: ServeSettings,
             body: ImageRequest) -> ImagesResponse:
    drawing = body.drawing()
    with drawer(request, session, caller, settings, body.model) as pipeline:
        used, pngs = pipeline.draw(drawing)
    return ImagesResponse(created=int(time.time()), data=[ImageObject(b64_json=images.b64(png)) for png in pngs],
                          size=f"{used.size}x{used.size}", seed=drawing.seed)


@router.post("/v1/images/generations", response_model=ImagesResponse, operation_id="createImage")
def create_image(body: ImageRequest, request: Request, caller: Caller = Depends(deps.caller),
                 session: Session = Depends(deps.reader), settings: ServeSettings = Depends(deps.settings)):
    """Images of `prompt` from a diffusion base model or one of your tuned diffusion models (`ft:...`), drawn with
    the tuned run's settings (its validation grids' steps, guidance and size) unless given."""
    return generate(request, session, caller, settings, body)
