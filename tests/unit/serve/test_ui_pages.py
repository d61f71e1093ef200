"""The web UI's pages: only the signed-in tenant's objects, every name escaped, the job form's checks, a finished
job's report, and chat beside the base model."""

import json

import pytest

from tunesmith.serve.tables import Job

from .conftest import Browser, chat_lines
from .test_jobs_api import set_status

MARKUP = "<img src=x onerror=alert(1)>.jsonl"  # no quotes: the multipart encoder would escape them
LORA_YAML = "method: {r: 4}\ntraining: {max_steps: 3}\n"


def job_form(training_file, **fields):
    return {"model": "tiny", "training_file": training_file, "method": "supervised", "n_epochs": "auto",
            "batch_size": "auto", "learning_rate_multiplier": "auto", "idempotency_key": "form-1", **fields}


def test_the_files_page_lists_only_the_tenants_files_with_names_escaped(browser, api):
    mine = api.file_id(filename=MARKUP)
    theirs = api.file_id(tenant="globex")
    page = browser.get("/ui/files").text
    assert mine in page and theirs not in page
    assert MARKUP not in page and "&lt;img src=x onerror=alert(1)&gt;.jsonl" in page


def test_a_files_page_shows_every_problem_with_its_line_and_never_the_storage_path(browser, api, settings):
    bad = chat_lines(6) + b"{oops\n" + json.dumps({"messages": [{"role": "user", "content": "no answer"}]}).encode()
    file_id = api.file_id(content=bad, filename="mixed.jsonl")
    page = browser.get(f"/ui/files/{file_id}").text
    assert "mixed.jsonl: 2 problems in 8 records, 6 valid chat examples" in page
    assert "mixed.jsonl:7: invalid JSON" in page and "mixed.jsonl:8: messages: no assistant turn" in page
    assert str(settings.home) not in page


def test_another_tenants_file_and_job_pages_answer_not_found(browser, api):
    theirs = api.job(tenant="globex")
    for path in (f"/ui/files/{theirs['training_file']}", f"/ui/files/{theirs['training_file']}/report",
                 f"/ui/jobs/{theirs['id']}"):
        response = browser.get(path)
        assert response.status_code == 404 and "No such" in response.text
        assert response.headers["content-type"].startswith("text/html")


def test_the_job_form_creates_a_job_from_fields_and_pasted_yaml(browser, api):
    training_file = api.file_id()
    response = browser.post("/ui/jobs", data=job_form(training_file, method="lora", n_epochs="2", suffix="cooking",
                                                      seed="7", config=LORA_YAML))
    assert response.status_code == 303
    job_id = response.headers["location"].removeprefix("/ui/jobs/")
    job = api.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert (job["suffix"], job["seed"], job["method"]["type"]) == ("cooking", 7, "lora")
    assert job["hyperparameters"]["n_epochs"] == 2
    assert job["tunesmith"] == {"method": {"r": 4}, "training": {"max_steps": 3}}
    page = browser.get(response.headers["location"]).text
    assert "validating_files" in page and 'action="/ui/jobs/' + job_id + '/cancel"' in page


def test_submitting_the_same_form_twice_makes_one_job(browser, api):
    form = job_form(api.file_id())
    first, again = browser.post("/ui/jobs", data=form), browser.post("/ui/jobs", data=form)
    assert first.headers["location"] == again.headers["location"]
    assert len(api.get("/v1/fine_tuning/jobs").json()["data"]) == 1


@pytest.mark.parametrize("fields, words", [
    ({"config": "training: [max_steps: 3\n"}, "tunesmith config (YAML) line 2: "),
    ({"config": "- training\n"}, "tunesmith config (YAML): expected sections such as"),
    ({"config": "training: {epochz: 1}\n"}, "training.epochz: unknown key; did you mean &#39;training.epochs&#39;?"),
    ({"config": "model: gpt-4o\n"}, "tunesmith.model: set by the request&#39;s model field"),
    ({"method": "lora", "config": "method: {name: qlora}\n"},
     "method.type is &#39;lora&#39; but tunesmith.method.name"),
    ({"n_epochs": "many"}, "method.supervised.hyperparameters.n_epochs: "),
    ({"suffix": "no spaces"}, "suffix: String should match pattern"),
    ({"model": "gpt-4o"}, "model &#39;gpt-4o&#39; is not offered by this server"),
])
def test_a_refused_form_comes_back_with_the_reason_and_the_values_kept(browser, api, fields, words):
    training_file = api.file_id()
    response = browser.post("/ui/jobs", data=job_form(training_file, **fields))
    assert response.status_code == 400
    assert words in response.text
    if "config" in fields:
        assert fields["config"].replace("'", "&#39;").splitlines()[0] in response.text
    assert api.get("/v1/fine_tuning/jobs").json()["data"] == []


def test_the_form_offers_the_servers_models_methods_and_the_tenants_valid_files(browser, api):
    good = api.file_id(filename="good.jsonl")
    broken = api.file_id(content=b"{oops\n", filename="broken.jsonl")
    theirs = api.file_id(tenant="globex")
    page = browser.get(f"/ui/jobs/new?training_file={good}").text
    assert f'<option value="{good}" selected>' in page
    assert broken not in page and theirs not in page
    assert '<option value="tiny" selected>' in page
    for method in ("supervised", "lora", "qlora", "full"):
        assert f'<option value="{method}"' in page


def test_cancel_from_the_job_page(browser, api):
    job = api.job()
    response = browser.post(f"/ui/jobs/{job['id']}/cancel")
    assert response.headers["location"] == f"/ui/jobs/{job['id']}"
    assert api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["status"] == "cancelled"
    page = browser.get(f"/ui/jobs/{job['id']}").text
    assert "cancel-form" not in page and 'data-finished="true"' in page
    again = browser.post(f"/ui/jobs/{job['id']}/cancel")
    assert again.status_code == 400 and "has already cancelled" in again.text


def publish_report(app, settings, job_id, document):
    """Mark the job succeeded with `document` as its report.json result file, as a runner does."""
    from tunesmith.serve.files import add_result_file

    source = settings.runs_dir / job_id / "report.json"
    source.parent.mkdir(parents=True)
    source.write_text(json.dumps(document))
    with app.state.sessions() as session:
        job = session.query(Job).filter(Job.id == job_id).one()
        job.result_files = [add_result_file(session, settings, job.tenant_seq, source.name, source.read_bytes()).id]
        job.status, job.fine_tuned_model = "succeeded", f"ft:tiny:acme::{job_id[6:]}"
        session.commit()


def test_a_succeeded_jobs_page_shows_the_before_and_after_report(browser, api, app, settings):
    job = api.job()
    publish_report(app, settings, job["id"], {
        "base": {"n": 4, "perplexity": 20.0, "rouge_l": 10.0}, "tuned": {"n": 4, "perplexity": 12.5, "rouge_l": 8.0},
        "meta": {"model": str(settings.home / "secret"), "method": "lora", "train_steps": 30},
        "samples": [{"prompt": "How do I cook rice?", "reference": "simmer", "base": "<b>boil</b>",
                     "tuned": "simmer"}]})
    page = browser.get(f"/ui/jobs/{job['id']}").text
    assert '<td class="num verdict-better">-7.50 better</td>' in page  # perplexity: lower is better
    assert '<td class="num verdict-worse">-2.0 worse</td>' in page
    assert "steps: 30" in page and str(settings.home) not in page
    assert "&lt;b&gt;boil&lt;/b&gt;" in page
    assert "chat beside the base model" in page
    assert f'id="review-link" href="/ui/jobs/{job["id"]}/review/"' in page  # its samples can be reviewed


def test_the_models_page_and_chat_beside_the_base_model(browser, api, app, settings):
    job = api.job()
    publish_report(app, settings, job["id"], {"tuned": {"n": 1, "perplexity": 3.0}, "meta": {}, "samples": []})
    tuned = f"ft:tiny:acme::{job['id'][6:]}"
    assert 'id="review-link"' not in browser.get(f"/ui/jobs/{job['id']}").text  # no answers to review
    theirs = api.job(tenant="globex")
    set_status(app, theirs["id"], "succeeded", fine_tuned_model=f"ft:tiny:globex::{theirs['id'][6:]}")
    models = browser.get("/ui/models").text
    assert tuned in models and "globex" not in models and "<code>tiny</code>" in models
    chat = browser.get("/ui/chat", params={"model": tuned}).text
    assert f'data-model="{tuned}" id="pane-tuned"' in chat and 'data-model="tiny" id="pane-base"' in chat
    assert browser.get("/ui/chat", params={"model": "tiny"}).text.count('class="chat-pane"') == 1
    refused = browser.get("/ui/chat", params={"model": f"ft:tiny:globex::{theirs['id'][6:]}"})
    assert refused.status_code == 404


def test_the_root_leads_to_the_ui(app):
    assert Browser(app).get("/").headers["location"] == "/ui/"


@pytest.mark.slow  # the data report redacts personal data with Presidio: seconds on first use
def test_a_files_data_report_names_the_file_is_kept_and_goes_with_the_file(browser, api, settings):
    file_id = api.file_id(filename="cooking.jsonl")
    response = browser.get(f"/ui/files/{file_id}/report")
    assert response.status_code == 200
    assert "<h1>Data report: cooking.jsonl</h1>" in response.text and str(settings.home) not in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    kept = settings.reports_dir / f"{file_id}.html"
    assert kept.read_text() == response.text
    assert api.client.delete(f"/v1/files/{file_id}", headers=api.auth()).status_code == 200
    assert not kept.exists()
