"""`/v1/chat/completions`, `/v1/completions` (both also streamed) and `/v1/models`, for the server's base models
and the caller's tuned (`ft:`) models."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from tunesmith.serve.api import deps
from tunesmith.serve.api.errors import documented, not_found
from tunesmith.serve.api.models import find_model, require_family
from tunesmith.serve.api.schemas import ListPage, ModelObject, page
from tunesmith.serve.inference import Generator
from tunesmith.serve.keys import Caller
from tunesmith.serve.settings import ServeSettings
from tunesmith.serve.tables import SUCCEEDED, Job

router = APIRouter(tags=["inference"], responses=documented(400, 401, 404))
DEFAULT_MAX_TOKENS = 256
STREAM_RESPONSE = {200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                         "description": "the completion, or with stream=true its pieces as server-sent events"}}


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"]
    content: str = Field(max_length=1_000_000)
    name: str | None = None


class _Sampling(BaseModel):
    """What both endpoints share. Parameters tunesmith cannot honour are refused rather than ignored."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    max_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: Literal[1] | None = Field(None, description="only 1 (no nucleus sampling)")
    n: Literal[1] | None = Field(None, description="only 1 choice")
    stop: str | list[str] | None = Field(None, description="up to 4 sequences that end the text")
    seed: int | None = None
    stream: bool = False
    stream_options: dict[str, bool] | None = None
    user: str | None = Field(None, max_length=256)

    @model_validator(mode="after")
    def _stops(self):
        stops = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop: at most 4 non-empty sequences")
        return self

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def token_limit(self) -> int:
        return self.max_tokens or DEFAULT_MAX_TOKENS


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1, max_length=512)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)

    def token_limit(self) -> int:
        return self.max_completion_tokens or self.max_tokens or DEFAULT_MAX_TOKENS


class CompletionRequest(_Sampling):
    prompt: str = Field(max_length=1_000_000)


def _target(request: Request, session: Session, caller: Caller, settings: ServeSettings,
            model_id: str) -> AbstractContextManager[Generator]:
    cache = request.app.state.models
    model = find_model(session, caller, settings, model_id)
    require_family(model, "llm")
    session.close()  # generation is long: hold no transaction meanwhile
    if model.base is not None:
        cache.load_base(model.base)  # here, so a model that fails to load fails the request
        return cache.base(model.base)
    cache.load_tuned(model_id, model.run_dir)
    return cache.tuned(model_id, model.run_dir)


def _generate(target: AbstractContextManager[Generator], prompt_of, body: _Sampling) -> Iterator[tuple[str, dict]]:
    """Yield the answer's pieces, then ("", usage-and-finish) once: every piece reaches the client while the model
    is held, and a client that goes away still lets the generation finish before the model is released."""
    from tunesmith.evaluate.generate import stream_text

    with target as generator:
        prompt = prompt_of(generator)
        if body.seed is not None:
            import torch

            torch.manual_seed(body.seed)
        pieces = stream_text(generator.model, generator.tokenizer, prompt, body.token_limit(), body.temperature)
        text, finish = "", "stop"
        try:
            for piece in pieces:
                cut, stopped = _until_stop(text + piece, body.stops())
                new, text = cut[len(text):], cut
                if new:
                    yield new, {}
                if stopped:
                    break
            else:
                if _count(generator.tokenizer, text) >= body.token_limit():
                    finish = "length"
        finally:
            for _ in pieces:  # drain: the generating thread must be done with the model before it is released
                pass
        usage = {"prompt_tokens": _count(generator.tokenizer, prompt), "completion_tokens":
                 _count(generator.tokenizer, text)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    yield "", {"usage": usage, "finish_reason": finish}


def _until_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    cuts = [text.index(s) for s in stops if s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


def _count(tokenizer, text: str) -> int:
    # Counted by encoding the text again: stream_text yields text, not token ids.
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0


def _chat_prompt(body: ChatRequest):
    def render(generator: Generator) -> str:
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.content}
                    for m in body.messages]
        if generator.system and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": generator.system})
        return generator.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return render


def _sse(chunks: Iterator[dict]) -> StreamingResponse:
    def lines():
        for chunk in chunks:
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"
    return StreamingResponse(lines(), media_type="text/event-stream")


@router.post("/v1/chat/completions", responses=STREAM_RESPONSE, operation_id="createChatCompletion")
def chat_completions(body: ChatRequest, request: Request, caller: Caller = Depends(deps.caller),
                     session: Session = Depends(deps.reader), settings: ServeSettings = Depends(deps.settings)):
    """A chat answer from a base model or one of your tuned models (`ft:...`); the tuned model's training system
    message is used when the chat has none."""
    target = _target(request, session, caller, settings, body.model)
    meta = {"id": f"chatcmpl-{secrets.token_hex(12)}", "created": int(time.time()), "model": body.model}
    pieces = _generate(target, _chat_prompt(body), body)
    if body.stream:
        return _sse(_chat_chunks(meta, pieces, bool((body.stream_options or {}).get("include_usage"))))
    text, end = "", {}
    for piece, end in pieces:
        text += piece
    return {**meta, "object": "chat.completion", "usage": end["usage"], "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": end["finish_reason"],
         "logprobs": None}]}


def _chat_chunks(meta: dict, pieces, include_usage: bool) -> Iterator[dict]:
    chunk = {**meta, "object": "chat.completion.chunk"}
    yield {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    for piece, end in pieces:
        if piece:
            yield {**chunk, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        else:
            yield {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": end["finish_reason"]}]}
            if include_usage:
                yield {**chunk, "choices": [], "usage": end["usage"]}


@router.post("/v1/completions", responses=STREAM_RESPONSE, operation_id="createCompletion")
def completions(body: CompletionRequest, request: Request, caller: Caller = Depends(deps.caller),
                session: Session = Depends(deps.reader), settings: ServeSettings = Depends(deps.settings)):
    """A continuation of `prompt`, as given (no chat template)."""
    target = _target(request, session, caller, settings, body.model)
    meta = {"id": f"cmpl-{secrets.token_hex(12)}", "object": "text_completion", "created": int(time.time()),
            "model": body.model}
    pieces = _generate(target, lambda _generator: body.prompt, body)
    if body.stream:
        return _sse({**meta, "choices": [{"index": 0, "text": piece, "logprobs": None,
                                          "finish_reason": end.get("finish_reason")}]} for piece, end in pieces)
    text, end = "", {}
    for piece, end in pieces:
        text += piece
    return {**meta, "usage": end["usage"], "choices": [
        {"index": 0, "text": text, "logprobs": None, "finish_reason": end["finish_reason"]}]}


@router.get("/v1/models", response_model=ListPage[ModelObject], operation_id="listModels")
def list_models(caller: Caller = Depends(deps.caller), session: Session = Depends(deps.reader),
                settings: ServeSettings = Depends(deps.settings)):
    """The server's base models and the caller's tuned models."""
    return page(_models(session, caller, settings), False)


@router.get("/v1/models/{model_id:path}", response_model=ModelObject, operation_id="retrieveModel")
def retrieve_model(model_id: str, caller: Caller = Depends(deps.caller), session: Session = Depends(deps.reader),
                   settings: ServeSettings = Depends(deps.settings)):
    for model in _models(session, caller, settings):
        if model.id == model_id:
            return model
    raise not_found("model", model_id)


def _models(session: Session, caller: Caller, settings: ServeSettings) -> list[ModelObject]:
    tuned = session.execute(select(Job.fine_tuned_model, Job.finished_at).where(
        Job.tenant_seq == caller.tenant_seq, Job.status == SUCCEEDED).order_by(Job.seq))
    return ([ModelObject(id=name, created=0, owned_by="tunesmith") for name in settings.models]
            + [ModelObject(id=model_id, created=finished or 0, owned_by=caller.tenant_name)
               for model_id, finished in tuned])
