"""The FastAPI application: routers for files, jobs, models and inference (text and images), admin; OpenAI's error
shape.

`create_app(settings, run_worker=True)` also runs one worker in a thread for the life of the server (the jobs
themselves run in their own processes). The web UI (serve/ui) is served under /ui by the same app.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from tunesmith.serve.api import admin, errors, files, images, inference, jobs
from tunesmith.serve.db import make_engine, read_session_factory, session_factory
from tunesmith.serve.images import PipelineCache
from tunesmith.serve.inference import ModelCache
from tunesmith.serve.settings import ServeSettings
from tunesmith.serve.ui import routes as ui_routes
from tunesmith.version import __version__


def create_app(settings: ServeSettings, run_worker: bool = False) -> FastAPI:
    settings.prepare()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker = thread = None
        if run_worker:
            from tunesmith.serve.worker import Worker, run_in_thread

            worker = Worker(settings)
            thread = run_in_thread(worker)
        yield
        if worker is not None:
            worker.stop()
            thread.join()

    app = FastAPI(title="tunesmith", version=__version__, lifespan=lifespan,
                  description="Fine-tuning as a service in the shape of the OpenAI fine-tuning API: files, jobs, "
                              "events, checkpoints, cancel, and inference for base and tuned models (chat and "
                              "completions for language models, images for diffusion models).")
    app.state.settings = settings
    engine = make_engine(settings.db_url)
    app.state.sessions = session_factory(engine)
    app.state.readers = read_session_factory(engine)
    app.state.models = ModelCache(settings.adapter_cache)
    app.state.pipelines = PipelineCache(settings.pipeline_cache)
    errors.install_error_handlers(app)
    for module in (files, jobs, inference, images, admin):
        app.include_router(module.router)
    ui_routes.install(app)
    return app
