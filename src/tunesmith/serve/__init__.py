"""Fine-tuning as a service: an OpenAI-shaped job API over a database, workers that run jobs in their own
processes, tenants with API keys, and inference for base and tuned models.

Layout: settings (where things live) -> store (tables, engine, keys, audit; files and image archives) -> jobs
(request -> RunConfig, state changes, claims) -> worker + runner (the training processes; ranks: torchrun for a job
on several devices) -> inference (language models) and images (diffusion pipelines) -> api (FastAPI routers) -> ui
(the web pages) -> app.
"""
