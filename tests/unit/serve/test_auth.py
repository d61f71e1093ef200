"""Every route needs a key; another tenant's objects are indistinguishable from ones that do not exist."""

import pytest

from tunesmith.serve.tables import Job
from tunesmith.serve.validation import validate_pending

ID_PARAMS = {"file_id": "file", "job_id": "job", "model_id": "model"}


def routes(app):
    """(method, path template) of every API route in the OpenAPI document."""
    return [(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item]


@pytest.fixture
def globex_objects(api, app, settings):
    """globex's file, queued job, and a tuned model (a second job marked succeeded)."""
    job = api.job(tenant="globex")
    tuned = api.job(tenant="globex")
    validate_pending(app.state.sessions, settings)
    with app.state.sessions() as session:
        row = session.query(Job).filter(Job.id == tuned["id"]).one()
        row.status, row.fine_tuned_model = "succeeded", f"ft:tiny:globex::{tuned['id'][6:]}"
        session.commit()
    return {"file": job["training_file"], "job": job["id"], "model": f"ft:tiny:globex::{tuned['id'][6:]}"}


def fill(path, ids):
    for param, kind in ID_PARAMS.items():
        path = path.replace("{" + param + "}", ids[kind])
    return path


def test_the_route_list_covers_files_jobs_and_admin(app):
    paths = {path for _, path in routes(app)}
    assert {"/v1/files", "/v1/files/{file_id}/content", "/v1/fine_tuning/jobs/{job_id}/cancel",
            "/v1/admin/tenants"} <= paths


@pytest.mark.parametrize("headers, code", [({}, "missing_api_key"),
                                           ({"Authorization": "Bearer ts-wrong"}, "invalid_api_key"),
                                           ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing_api_key"),
                                           ({"Authorization": "Bearer "}, "missing_api_key")])
def test_every_route_refuses_requests_without_a_valid_key(api, app, globex_objects, headers, code):
    for method, path in routes(app):
        response = api.client.request(method, fill(path, globex_objects), headers=headers)
        assert response.status_code == 401, (method, path, response.text)
        error = response.json()["error"]
        assert error["code"] == code
        assert not any(value in response.text for value in globex_objects.values())


def test_a_revoked_key_is_refused(api, app, keys):
    from tunesmith.serve.keys import list_keys, revoke_key

    assert api.get("/v1/files").status_code == 200
    with app.state.sessions() as session:
        key_id = next(key.id for key, tenant in list_keys(session) if tenant.name == "acme")
        revoke_key(session, key_id)
        session.commit()
    assert api.get("/v1/files").status_code == 401


def test_another_tenants_ids_answer_exactly_like_unknown_ids(api, app, globex_objects):
    unknown = {"file": "file-000000000000000000000000", "job": "ftjob-000000000000000000000000",
               "model": "ft:tiny:globex::000000000000000000000000"}
    checked = 0
    for method, path in routes(app):
        if "{" not in path:
            continue
        theirs = api.client.request(method, fill(path, globex_objects), headers=api.auth("acme"))
        missing = api.client.request(method, fill(path, unknown), headers=api.auth("acme"))
        assert theirs.status_code == 404, (method, path, theirs.text)
        shown = theirs.text
        for kind, value in globex_objects.items():
            shown = shown.replace(value, unknown[kind])
        assert shown == missing.text
        checked += 1
    assert checked >= 8
    # Their objects are still there and untouched: the cancel and delete above did nothing.
    assert api.get(f"/v1/fine_tuning/jobs/{globex_objects['job']}", tenant="globex").json()["status"] == "queued"
    assert api.get(f"/v1/files/{globex_objects['file']}", tenant="globex").status_code == 200


def test_inference_on_another_tenants_model_is_not_found(api, globex_objects):
    body = {"model": globex_objects["model"], "messages": [{"role": "user", "content": "hi"}]}
    assert api.post("/v1/chat/completions", json=body).status_code == 404
    assert api.post("/v1/completions", json={"model": globex_objects["model"], "prompt": "hi"}).status_code == 404
    assert globex_objects["model"] not in api.get("/v1/models").text


def test_lists_show_only_the_callers_objects(api, globex_objects):
    mine = api.job()
    assert [f["id"] for f in api.get("/v1/files").json()["data"]] == [mine["training_file"]]
    assert [j["id"] for j in api.get("/v1/fine_tuning/jobs").json()["data"]] == [mine["id"]]
    assert api.get("/v1/fine_tuning/jobs", params={"after": globex_objects["job"]}).status_code == 400
    assert api.get("/v1/files", params={"after": globex_objects["file"]}).status_code == 400


def test_admin_lists_tenants_and_usage_and_others_may_not(api, globex_objects):
    assert api.get("/v1/admin/tenants").status_code == 403
    tenants = {t["name"]: t for t in api.get("/v1/admin/tenants", tenant="admin").json()["data"]}
    assert set(tenants) == {"acme", "globex", "operators"}
    assert tenants["globex"]["files"] == 2 and tenants["globex"]["jobs"] == {"queued": 1, "succeeded": 1}
    assert tenants["acme"]["files"] == 0 and tenants["acme"]["jobs"] == {}
    assert tenants["globex"]["file_bytes"] > 0


def test_the_audit_log_names_keys_and_ids_never_data(api, app, globex_objects):
    from tunesmith.serve.tables import AuditEntry

    job = api.job()
    api.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    api.client.delete(f"/v1/files/{job['training_file']}", headers=api.auth())
    with app.state.sessions() as session:
        entries = [(e.action, e.object_id, e.actor) for e in session.query(AuditEntry).order_by(AuditEntry.seq)]
    ours = (job["id"], job["training_file"])
    actions = [(action, object_id) for action, object_id, _ in entries if object_id in ours]
    assert actions == [("file.create", job["training_file"]), ("job.create", job["id"]),
                       ("job.cancel", job["id"]), ("file.delete", job["training_file"])]
    assert all(actor.startswith("key-") or actor == "cli" for _, _, actor in entries)
    assert sorted(a for a, *_ in entries if a == "key.create") == ["key.create"] * 3
