"""The blind review of a succeeded job's answers, mounted under its page: only for the job's tenant, votes only from
the review's own pages, and every link, form and redirect of the review pages kept under the mount."""

import json
import re

import pytest

from .conftest import Browser
from .test_jobs_api import set_status


@pytest.fixture
def reviewed_job(api, app, settings):
    """A succeeded job whose run folder holds eval/examples.jsonl with three answered prompts."""
    job = api.job()
    folder = settings.runs_dir / job["id"] / "eval"
    folder.mkdir(parents=True)
    with open(folder / "examples.jsonl", "w") as handle:
        for i in range(3):
            answers = {name: f"{name} answer {i}" for name in ("zero_shot", "few_shot", "tuned")}
            handle.write(json.dumps({"id": i, "prompt": f"question {i}", "answers": answers}) + "\n")
    set_status(app, job["id"], "succeeded", fine_tuned_model=f"ft:tiny:acme::{job['id'][6:]}")
    return job["id"], f"/ui/jobs/{job['id']}/review"


def test_the_job_page_links_to_its_review(browser, reviewed_job):
    job_id, mount = reviewed_job
    assert f'href="{mount}/"' in browser.get(f"/ui/jobs/{job_id}").text


def test_review_pages_links_forms_and_redirects_stay_under_the_mount(browser, reviewed_job, settings):
    job_id, mount = reviewed_job
    start = browser.get(f"{mount}/")
    assert start.status_code == 200
    assert f'action="{mount}/"' in start.text and f'href="{mount}/tally"' in start.text
    assert not re.search(r'(href|action)="/(?!ui/)', start.text)

    first = browser.get(f"{mount}/", params={"reviewer": "Ana"})
    assert first.status_code == 303 and first.headers["location"].startswith(f"{mount}/items/")
    item = browser.get(first.headers["location"])
    vote_url = re.search(r'<form method="post" action="([^"]+)"', item.text).group(1)
    assert vote_url.startswith(f"{mount}/items/") and vote_url.endswith("/vote")
    voted = browser.post(vote_url, data={"reviewer": "Ana", "choice": "tie", "comment": ""})
    assert voted.status_code == 303 and voted.headers["location"].startswith(f"{mount}/items/")

    tally = browser.get(f"{mount}/tally").text
    assert re.search(r'id="votes">1<', tally)
    votes = (settings.runs_dir / job_id / "review" / "votes.jsonl").read_text().splitlines()
    assert [json.loads(line)["winner"] for line in votes] == ["tie"]


def test_a_vote_from_another_site_is_refused(browser, reviewed_job):
    _job_id, mount = reviewed_job
    refused = browser.client.post(f"{mount}/items/0/vote", data={"reviewer": "Ana", "choice": "tie"},
                                  headers={"Origin": "http://evil.example"})
    assert refused.status_code == 403
    assert re.search(r'id="votes">0<', browser.get(f"{mount}/tally").text)


def test_only_the_jobs_tenant_may_review_it(app, keys, reviewed_job):
    _job_id, mount = reviewed_job
    assert Browser(app).get(f"{mount}/").headers["location"] == "/ui/sign-in"
    other = Browser(app)
    other.sign_in(keys["globex"])
    response = other.get(f"{mount}/tally")
    assert response.status_code == 404 and "question 0" not in response.text


def test_a_job_that_has_not_succeeded_has_no_review(browser, api):
    job = api.job()
    response = browser.get(f"/ui/jobs/{job['id']}/review/")
    assert response.status_code == 404 and "only a succeeded job&#39;s answers can be reviewed" in response.text
