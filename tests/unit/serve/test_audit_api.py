"""The audit log route: admin keys only, newest first, paginated, filtered by tenant (id or name) and action."""

import pytest


@pytest.fixture
def history(api, app, settings):
    """acme uploads, creates a job and cancels it, then deletes a file; globex uploads one file."""
    job = api.job()
    api.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    spare = api.file_id()
    api.client.delete(f"/v1/files/{spare}", headers=api.auth())
    theirs = api.file_id(tenant="globex")
    return {"job": job["id"], "training_file": job["training_file"], "spare": spare, "theirs": theirs}


def entries(api, **params):
    response = api.get("/v1/admin/audit_logs", tenant="admin", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_log_records_who_did_what_newest_first(api, history):
    acme = entries(api, tenant="acme")["data"]
    assert [(e["type"], e["object_id"]) for e in acme] == [
        ("file.delete", history["spare"]), ("file.create", history["spare"]), ("job.cancel", history["job"]),
        ("job.create", history["job"]), ("file.create", history["training_file"]),
        ("key.create", acme[-1]["object_id"])]
    assert {e["tenant"] for e in acme} == {"acme"} and all(e["object"] == "audit_log" for e in acme)
    assert {e["actor"] for e in acme[:-1]} == {acme[0]["actor"]} and acme[0]["actor"].startswith("key-")
    assert acme[-1]["actor"] == "cli"
    everyone = entries(api, limit=100)["data"]
    assert everyone[0]["object_id"] == history["theirs"] and everyone[0]["tenant"] == "globex"


def test_a_tenant_is_found_by_id_as_by_name_and_actions_filter(api, history):
    by_name = entries(api, tenant="globex")["data"]
    tenant_id = by_name[0]["tenant_id"]
    assert tenant_id.startswith("org-") and entries(api, tenant=tenant_id)["data"] == by_name
    assert [e["object_id"] for e in entries(api, action="job.cancel")["data"]] == [history["job"]]


def test_the_log_pages_with_after(api, history):
    first = entries(api, tenant="acme", limit=2)
    assert len(first["data"]) == 2 and first["has_more"] and first["last_id"] == first["data"][-1]["id"]
    rest = entries(api, tenant="acme", after=first["last_id"], limit=100)
    assert not rest["has_more"]
    assert [e["id"] for e in first["data"] + rest["data"]] == [e["id"] for e in entries(api, tenant="acme")["data"]]


@pytest.mark.parametrize("params, param, words", [
    ({"tenant": "initech"}, "tenant", "tenant: no tenant with id or name 'initech'"),
    ({"after": "file-123"}, "after", "after: expected an audit entry id like audit-42"),
])
def test_bad_filters_name_the_parameter(api, history, params, param, words):
    response = api.get("/v1/admin/audit_logs", tenant="admin", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param and words in response.json()["error"]["message"]


def test_only_admin_keys_read_the_log(api, history):
    response = api.get("/v1/admin/audit_logs")
    assert response.status_code == 403 and history["job"] not in response.text
