"""Signing in to the web UI: the key in an HttpOnly cookie, nothing shown without a valid one, and nothing changed
by a request that did not come from the UI's own pages."""

import pytest

from tunesmith.serve.keys import list_keys, revoke_key

from .conftest import Browser, chat_lines

PAGES = ["/ui/jobs", "/ui/files", "/ui/jobs/new", "/ui/models"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_send_a_stranger_to_the_sign_in_page(app, path):
    response = Browser(app).get(path)
    assert (response.status_code, response.headers["location"]) == (303, "/ui/sign-in")


def test_a_wrong_key_shows_an_error_sets_no_cookie_and_shows_no_data(app, api):
    theirs = api.file_id(filename="secret-plans.jsonl")
    stranger = Browser(app)
    response = stranger.sign_in("ts-not-a-key")
    assert response.status_code == 401
    assert "That API key is not valid" in response.text
    assert "set-cookie" not in response.headers
    assert theirs not in response.text and "secret-plans" not in response.text
    assert stranger.get("/ui/files").headers["location"] == "/ui/sign-in"


def test_the_key_is_kept_in_an_http_only_strict_session_cookie(app, keys):
    response = Browser(app).sign_in(keys["acme"])
    assert (response.status_code, response.headers["location"]) == (303, "/ui/jobs")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"tunesmith_key={keys['acme']};")
    assert {"HttpOnly", "SameSite=strict", "Path=/"} <= {part.strip() for part in cookie.split(";")}
    assert "expires" not in cookie.lower() and "max-age" not in cookie.lower()  # gone with the browser session


def test_signed_in_pages_name_the_tenant_and_carry_a_content_security_policy(browser):
    page = browser.get("/ui/jobs")
    assert page.status_code == 200
    assert '<span id="tenant" class="muted">acme</span>' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_sign_out_forgets_the_key(browser):
    response = browser.post("/ui/sign-out")
    assert response.headers["location"] == "/ui/sign-in"
    assert 'tunesmith_key=""' in response.headers["set-cookie"]
    assert browser.get("/ui/jobs").headers["location"] == "/ui/sign-in"


def test_a_revoked_keys_cookie_is_cleared_with_a_message(app, browser):
    with app.state.sessions() as session:
        revoke_key(session, next(key.id for key, tenant in list_keys(session) if tenant.name == "acme"))
        session.commit()
    response = browser.get("/ui/files")
    assert response.headers["location"] == "/ui/sign-in?expired=1"
    assert 'tunesmith_key=""' in response.headers["set-cookie"]
    assert "no longer valid" in browser.get("/ui/sign-in?expired=1").text


def test_the_api_takes_the_cookie_for_reading(browser, api):
    mine = api.file_id()
    listed = browser.get("/v1/files")
    assert listed.status_code == 200 and [f["id"] for f in listed.json()["data"]] == [mine]


@pytest.mark.parametrize("origin", [None, "http://evil.example", "http://testserver.evil.example"])
def test_changes_made_with_the_cookie_must_come_from_the_uis_own_pages(browser, api, origin):
    headers = {"Origin": origin} if origin else {}
    upload = browser.client.post("/v1/files", files={"file": ("a.jsonl", chat_lines())}, data={"purpose": "fine-tune"},
                                 headers=headers)
    assert upload.status_code == 403 and upload.json()["error"]["code"] == "cross_origin_refused"
    form = browser.client.post("/ui/jobs", data={"model": "tiny", "training_file": api.file_id()}, headers=headers)
    assert form.status_code == 403 and "Refused" in form.text
    assert api.get("/v1/fine_tuning/jobs").json()["data"] == []
    assert [f["filename"] for f in api.get("/v1/files").json()["data"]] == ["train.jsonl"]


def test_another_sites_form_cannot_sign_a_browser_in(app, keys):
    response = Browser(app).client.post("/ui/sign-in", data={"key": keys["acme"]},
                                        headers={"Origin": "http://evil.example"})
    assert response.status_code == 403 and "set-cookie" not in response.headers


def test_a_bearer_key_needs_no_origin(api):
    assert api.upload().status_code == 200  # API clients send no Origin; the cookie rule is not theirs
