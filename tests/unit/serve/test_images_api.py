"""A diffusion job run by the service's runner (in this process), then POST /v1/images/generations for its `ft:` id
and the base: the images equal the run's own trained pipeline at the same seeds, the base draws the same with a
tuned adapter loaded beside it, the cache stays bounded, tenants see only their own models, and the UI draws."""

import base64
import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tunesmith.serve import claims
from tunesmith.serve.app import create_app
from tunesmith.serve.keys import create_key
from tunesmith.serve.runner import JobRun
from tunesmith.serve.settings import make_settings
from tunesmith.serve.tables import Job
from tunesmith.serve.validation import validate_pending

from .conftest import ORIGIN, Api, Browser
from .test_image_archives import png, zip_of

pytestmark = pytest.mark.slow  # trains a tiny diffusion run and draws with it

RUN = {"training": {"max_steps": 2, "batch_size": 2, "log_every": 1, "save_every": 2, "learning_rate": "auto"},
       "data": {"instance_prompt": "a photo of sks ball", "resolution": 64},
       "validation": {"prompts": ["a photo of sks ball"], "n": 2, "steps": 2}}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """An app with the tiny pipeline as `sd`, and one succeeded diffusion job of acme's (run by JobRun)."""
    settings = make_settings(tmp_path_factory.mktemp("sd") / "home", models=["sd=tunesmith-tiny-sd"],
                             pipeline_cache=1)
    app = create_app(settings)
    with app.state.sessions() as session:
        keys = {name: create_key(session, name)[0] for name in ("acme", "globex")}
        session.commit()
    with TestClient(app) as client:
        api = Api(client, keys)
        images = api.file_id(content=zip_of({f"ball/{i}.png": png(i) for i in range(4)}), filename="subject.zip")
        job = api.create_job(images, model="sd", suffix="ball", method={"type": "lora", "lora": {"r": 4}},
                             tunesmith=RUN).json()
        validate_pending(app.state.sessions, settings)
        claims.claim_next(app.state.sessions, "w1", 60, settings.models)
        assert JobRun(settings, job["id"], "w1", settings.models["sd"]).execute() == 0
        yield api, app, settings, api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()


def decoded(response) -> list[Image.Image]:
    assert response.status_code == 200, response.text
    return [Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))) for item in response.json()["data"]]


def draw(api, model, tenant="acme", **body):
    return api.post("/v1/images/generations", tenant=tenant,
                    json={"model": model, "prompt": "a photo of sks ball", "n": 2, "seed": 5, **body})


def test_the_job_succeeds_with_its_report_grid_and_chosen_learning_rate(served):
    api, app, settings, job = served
    assert job["status"] == "succeeded", job["error"]
    assert job["fine_tuned_model"] == f"ft:sd:acme:ball:{job['id'][6:]}"
    assert job["hyperparameters"]["learning_rate"] > 0  # learning_rate: auto's choice, on the job
    assert job["hyperparameters"]["learning_rate_multiplier"] != "auto"
    names = [api.get(f"/v1/files/{file_id}").json()["filename"] for file_id in job["result_files"]]
    assert names == ["report.md", "report.json", "final.png"]
    report = api.get(f"/v1/files/{job['result_files'][1]}/content").text
    assert json.loads(report)["method"] == "lora" and str(settings.home) not in report
    assert json.loads(report)["output"] == f"{job['id']}/adapter"  # the run folder by the job's id
    grid = Image.open(io.BytesIO(api.get(f"/v1/files/{job['result_files'][2]}/content").content))
    assert grid.size == (2 * 64, 64)  # one prompt, two seeds, at the run's 64 px


def test_a_tuned_model_draws_as_its_run_does_and_the_base_is_unchanged_beside_it(served):
    from tunesmith.tasks.diffusion.sampling import Sampling
    from tunesmith.tasks.diffusion.sampling import draw as draw_images
    from tunesmith.tasks.diffusion.trained import load_trained

    api, app, settings, job = served
    base_before = [img.tobytes() for img in decoded(draw(api, "sd", size="32x32", steps=2))]
    tuned = decoded(draw(api, job["fine_tuned_model"]))
    assert [img.size for img in tuned] == [(64, 64)] * 2  # the run's size and steps unless asked otherwise
    model, _ = load_trained(settings.runs_dir / job["id"])
    expected = draw_images(model.pipeline, Sampling(prompts=("a photo of sks ball",), n=2, seed=5, steps=2,
                                                    guidance_scale=7.5, size=64))[0]
    assert [img.tobytes() for img in tuned] == [img.tobytes() for img in expected]
    assert [img.tobytes() for img in decoded(draw(api, "sd", size="32x32", steps=2))] == base_before
    again = decoded(draw(api, job["fine_tuned_model"], seed=6, n=1))
    # Image j is drawn from seed + j: the same noise, alone or in a batch (whose arithmetic may differ in a last bit).
    difference = np.abs(np.asarray(again[0], dtype=int) - np.asarray(tuned[1], dtype=int))
    assert difference.max() <= 2
    response = draw(api, job["fine_tuned_model"], n=1)
    assert (response.json()["size"], response.json()["seed"]) == ("64x64", 5)


def test_the_cache_keeps_at_most_its_capacity_of_tuned_models(served):
    api, app, settings, job = served
    cache = app.state.pipelines
    run = settings.runs_dir / job["id"]
    cache.load_tuned("first", run)
    cache.load_tuned("second", run)
    assert cache.loaded() == ["second"]  # capacity 1: the least recently used went
    base = cache.load_base("tunesmith-tiny-sd")
    assert len(base.adapters) == 1 and base.pipeline.get_list_adapters()["unet"] == sorted(base.adapters)


def test_tenants_see_only_their_own_models_and_each_family_its_route(served):
    api, app, settings, job = served
    refused = draw(api, job["fine_tuned_model"], tenant="globex")
    assert refused.status_code == 404 and refused.json()["error"]["message"] == (
        f"No such model: {job['fine_tuned_model']}")
    chat = api.post("/v1/chat/completions", json={"model": job["fine_tuned_model"],
                                                  "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 400 and chat.json()["error"]["code"] == "wrong_model_family"
    for body, param in (({"size": "32x48"}, "size"), ({"response_format": "url"}, "response_format"),
                        ({"n": 11}, "n"), ({"style": "vivid"}, "style")):
        response = draw(api, "sd", **body)
        assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_the_models_page_and_the_job_page_lead_to_a_prompt_box_that_draws(served):
    api, app, settings, job = served
    browser = Browser(app)
    assert browser.sign_in(api.keys["acme"]).status_code == 303
    models = browser.get("/ui/models").text
    assert f'/ui/images?model={job["fine_tuned_model"].replace(":", "%3A")}' in models
    page = browser.get(f"/ui/jobs/{job['id']}").text
    assert 'id="sample-grid" src="data:image/png;base64,' in page and "draw images with it" in page
    assert "held-out denoising loss" in page and str(settings.home) not in page
    rate = job["hyperparameters"]["learning_rate"]
    assert '<dd id="hyperparameters">n_epochs=1, batch_size=2, learning_rate_multiplier=' in page
    assert f"learning_rate={rate}</dd>" in page  # what learning_rate: auto chose, on the page
    drawn = browser.post("/ui/images", data={"model": job["fine_tuned_model"], "prompt": "sks ball", "n": "3",
                                             "seed": "2", "size": "32"})
    assert drawn.status_code == 200
    assert drawn.text.count('<img src="data:image/png;base64,') == 3 and "seeds 2 to 4" in drawn.text
    bad = browser.post("/ui/images", data={"model": "sd", "prompt": "sks ball", "size": "30"})
    assert bad.status_code == 400 and "multiple of 8" in bad.text and 'value="30"' in bad.text
    cross_site = browser.client.post("/ui/images", data={"model": "sd", "prompt": "x"},
                                     headers={**ORIGIN, "Origin": "http://elsewhere"})
    assert cross_site.status_code == 403
    with api.client.app.state.sessions() as session:  # nothing was written by drawing
        assert session.query(Job).count() == 1
