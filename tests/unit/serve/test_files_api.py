"""Uploads: streamed to storage under server ids, size-limited while streaming, checked by the data checks."""

import os

from tunesmith.serve.api.uploads import MAX_FIELD_BYTES

from .conftest import UPLOAD_LIMIT, chat_lines


def stored(settings):
    """Every file under the home folder, relative to it (the database excluded)."""
    return sorted(str(p.relative_to(settings.home)) for p in settings.home.rglob("*")
                  if p.is_file() and not p.name.startswith("tunesmith.db"))


def test_upload_is_processed_and_downloadable(api, settings):
    content = chat_lines()
    file = api.upload(content, filename="cooking.jsonl").json()
    assert file["object"] == "file" and file["id"].startswith("file-")
    assert (file["status"], file["status_details"], file["bytes"], file["filename"]) == (
        "processed", None, len(content), "cooking.jsonl")
    assert stored(settings) == [f"files/{file['id']}.jsonl"]
    assert api.get(f"/v1/files/{file['id']}/content").content == content
    assert api.get(f"/v1/files/{file['id']}").json() == file


def test_invalid_data_is_reported_on_the_file_with_its_line(api):
    bad = chat_lines(2) + b'{"messages": [{"role": "user", "content": "hi"}]}\n'
    file = api.upload(bad, filename="train.jsonl").json()
    assert file["status"] == "error"
    assert file["status_details"].startswith("train.jsonl:3: ")
    assert "assistant" in file["status_details"]
    broken = api.upload(b'{"messages": []}\n{not json\n', filename="broken.jsonl").json()
    assert broken["status_details"].startswith("broken.jsonl:")
    assert "invalid JSON" in api.upload(b"{not json\n", filename="x.jsonl").json()["status_details"]


def test_the_storage_path_never_appears_in_messages(api, settings):
    file = api.upload(b"", filename="empty.jsonl").json()
    assert file["status_details"] == "empty.jsonl: the file is empty; it holds no records"
    assert str(settings.home) not in file["status_details"]


def test_upload_at_the_limit_is_taken_and_one_byte_more_refused_leaving_nothing(api, settings):
    line = chat_lines(1)
    exact = (line * (UPLOAD_LIMIT // len(line) + 1))[:UPLOAD_LIMIT]
    assert len(exact) == UPLOAD_LIMIT
    assert api.upload(exact).status_code == 200
    before = stored(settings)
    response = api.upload(exact + b"x")
    assert response.status_code == 413
    assert response.json()["error"]["message"] == (
        f"the file is larger than this server's upload limit of {UPLOAD_LIMIT} bytes")
    assert stored(settings) == before  # no partial file, not even in the incoming folder
    assert len(api.get("/v1/files").json()["data"]) == 1


def raw_upload(api, filename: bytes, content: bytes):
    """A multipart body written by hand, so the filename reaches the server byte for byte."""
    body = (b'--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
            b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n\r\n'
            + content + b"\r\n--XyZ--\r\n")
    return api.client.post("/v1/files", content=body,
                           headers={**api.auth(), "Content-Type": "multipart/form-data; boundary=XyZ"})


def test_client_filenames_never_become_paths(api, settings, tmp_path):
    names = ["../../escape.jsonl", "/etc/evil.jsonl", "a\\..\\..\\b.jsonl", "..", "dir/", "C:\\x.jsonl"]
    outside_before = sorted(os.listdir(tmp_path))
    ids = []
    for name in names:
        response = api.upload(filename=name)
        assert response.status_code == 200, (name, response.text)
        ids.append(response.json()["id"])
    response = raw_upload(api, b"../nul\x00byte\x1b.jsonl", chat_lines())
    assert response.status_code == 200, response.text
    ids.append(response.json()["id"])
    assert sorted(os.listdir(tmp_path)) == outside_before
    assert stored(settings) == sorted(f"files/{file_id}.jsonl" for file_id in ids)
    shown = [api.get(f"/v1/files/{file_id}").json()["filename"] for file_id in ids]
    assert shown[0] == "../../escape.jsonl"  # metadata only
    assert shown[-1] == "../nulbyte.jsonl"  # control characters dropped


def test_known_suffixes_pick_the_reader(api, settings):
    file = api.upload(b"question,answer\n", filename="data.CSV").json()
    assert stored(settings) == [f"files/{file['id']}.csv"]
    assert file["status_details"].startswith("data.CSV")


def test_wrong_purpose_or_missing_parts_are_refused_and_leave_nothing(api, settings):
    response = api.upload(purpose="batch")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "purpose"
    assert api.client.post("/v1/files", headers=api.auth(), data={"purpose": "fine-tune"}).status_code == 400
    assert api.client.post("/v1/files", headers=api.auth(), json={"purpose": "fine-tune"}).status_code == 400
    long_field = api.client.post("/v1/files", headers=api.auth(), files={"file": ("a.jsonl", chat_lines())},
                                 data={"purpose": "x" * (MAX_FIELD_BYTES + 1)})
    assert long_field.status_code == 400
    assert stored(settings) == []


def test_list_paginates_newest_first(api):
    ids = [api.file_id() for _ in range(5)]
    first = api.get("/v1/files", params={"limit": 2}).json()
    assert [f["id"] for f in first["data"]] == ids[::-1][:2] and first["has_more"]
    rest = api.get("/v1/files", params={"limit": 10, "after": first["data"][-1]["id"]}).json()
    assert [f["id"] for f in rest["data"]] == ids[::-1][2:] and not rest["has_more"]
    oldest = api.get("/v1/files", params={"order": "asc", "limit": 1}).json()
    assert oldest["data"][0]["id"] == ids[0]


def test_delete_removes_the_bytes(api, settings):
    file_id = api.file_id()
    response = api.client.delete(f"/v1/files/{file_id}", headers=api.auth())
    assert response.json() == {"id": file_id, "object": "file", "deleted": True}
    assert stored(settings) == []
    assert api.get(f"/v1/files/{file_id}").status_code == 404
    assert api.client.delete(f"/v1/files/{file_id}", headers=api.auth()).status_code == 404


def test_a_file_in_use_by_an_unfinished_job_cannot_be_deleted(api):
    job = api.job()
    response = api.client.delete(f"/v1/files/{job['training_file']}", headers=api.auth())
    assert response.status_code == 409
    assert job["id"] in response.json()["error"]["message"]
    api.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    assert api.client.delete(f"/v1/files/{job['training_file']}", headers=api.auth()).status_code == 200
