"""Image archives (a diffusion job's data): unpacked under server-chosen names with their captions, every image
decoded; names that point outside, links, too many members or bytes, and broken images are refused whole, named,
and leave nothing behind. Through the API: the file object says what is wrong, a job checks the family and the
images against its own settings, and deleting the file removes what was unpacked."""

import io
import json
import stat
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from tunesmith.config.schema import EMBEDDED_DEFAULT
from tunesmith.errors import DataError
from tunesmith.serve.archives import ArchiveLimits, in_archive_terms, unpack_images
from tunesmith.serve.validation import validate_pending

LIMITS = ArchiveLimits(max_files=100, max_bytes=10_000_000)


def png(seed: int = 0, side: int = 64) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


def tar_of(members: dict[str, bytes], mode: str = "w:gz", links: dict[str, bytes] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode, format=tarfile.PAX_FORMAT) as archive:
        for name, content in members.items():
            info = tarfile.TarInfo("placeholder")
            info.pax_headers = {"path": name}  # the name byte for byte, NUL included
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        for name, kind in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "/etc/passwd"
            archive.addfile(info)
    return out.getvalue()


def unpack(tmp_path, content: bytes, suffix: str = ".zip", limits: ArchiveLimits = LIMITS):
    archive = tmp_path / f"upload{suffix}"
    archive.write_bytes(content)
    return unpack_images(archive, tmp_path / "images", limits)


def left_behind(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("upload"))


@pytest.mark.parametrize("pack, suffix", [(zip_of, ".zip"), (tar_of, ".tar.gz")])
def test_images_and_captions_are_unpacked_under_server_names_in_the_archives_order(tmp_path, pack, suffix):
    members = {"ball/b.png": png(2), "ball/a.png": png(1), "ball/a.txt": b"a photo of sks ball",
               "ball/c.jpg": png(3), "__MACOSX/ball/._a.png": b"resource fork", "ball/.DS_Store": b"finder"}
    unpacked = unpack(tmp_path, pack(members), suffix)
    assert (unpacked.images, unpacked.captioned) == (3, 1)
    folder = tmp_path / "images"
    assert sorted(p.name for p in folder.iterdir()) == [".members.json", "image-00001.png", "image-00001.txt",
                                                        "image-00002.png", "image-00003.jpg"]
    assert (folder / "image-00001.png").read_bytes() == png(1)  # a.png first: sorted by the archive's names
    assert (folder / "image-00001.txt").read_text() == "a photo of sks ball"
    assert (folder / "image-00003.jpg").read_bytes() == png(3)
    assert json.loads((folder / ".members.json").read_text())["image-00002.png"] == "ball/b.png"
    message = f"{folder / 'image-00002.png'}: too small; data.images: {folder}"
    assert in_archive_terms(message, folder, "file-1") == "ball/b.png: too small; data.images: file-1"


@pytest.mark.parametrize("name, words", [
    ("../evil.png", "a member name with '..', which points outside the archive"),
    ("ball/../../evil.png", "a member name with '..'"),
    ("/etc/evil.png", "an absolute member name"),
    ("C:/evil.png", "an absolute member name"),
    ("ball\\evil.png", "a member name with a backslash"),
    ("evil\0.png", "a member name with a NUL character"),
])
def test_names_that_could_point_outside_are_refused_whole(tmp_path, name, words):
    with pytest.raises(DataError, match=words):
        unpack(tmp_path, tar_of({"ok.png": png(), name: png(1)}), ".tar.gz")
    assert left_behind(tmp_path) == []  # neither the folder nor its temporary twin


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE])
def test_links_and_special_files_in_a_tar_are_refused(tmp_path, kind):
    with pytest.raises(DataError, match="'ball/link.png': a link or special file"):
        unpack(tmp_path, tar_of({"ball/ok.png": png()}, links={"ball/link.png": kind}), ".tar.gz")
    assert left_behind(tmp_path) == []


def test_a_symlink_in_a_zip_is_refused(tmp_path):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("ok.png", png())
        link = zipfile.ZipInfo("link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(DataError, match="'link.png': a link or special file"):
        unpack(tmp_path, out.getvalue())


def test_member_and_byte_limits(tmp_path):
    members = {f"{i}.png": png(i) for i in range(4)}
    with pytest.raises(DataError, match="more than 3 images and captions; split the archive"):
        unpack(tmp_path, zip_of(members), limits=ArchiveLimits(max_files=3, max_bytes=10_000_000))
    size = sum(len(c) for c in members.values())
    with pytest.raises(DataError, match=f"unpacks to more than {size - 1:,} bytes"):
        unpack(tmp_path, zip_of(members), limits=ArchiveLimits(max_files=100, max_bytes=size - 1))
    assert unpack(tmp_path, zip_of(members), limits=ArchiveLimits(max_files=4, max_bytes=size)).images == 4


@pytest.mark.parametrize("members, words", [
    ({"a.png": png(), "b.png": png(1)[:200]}, "b.png: unreadable or truncated image"),
    ({"a.png": png(), "b.png": b"not an image"}, "b.png: not an image PIL can read"),
    ({"a.png": png(), "a.txt": b"\xff\xfe caption"}, "a.txt: a caption must be UTF-8 text"),
    ({"a.png": png(), "b.txt": b"orphan"}, "b.txt: a caption without an image of the same name"),
    ({"a.png": png(), "a.jpg": png(1)}, "a.jpg: an image named 'a' is in the archive twice \\(a.png\\)"),
    ({"a.png": png(), "notes.md": b"# hi"}, "notes.md: not an image"),
    ({"readme.txt": b"hi"}, "readme.txt: a caption without an image"),
    ({"ball/": b""}, "no images"),
])
def test_bad_members_are_named(tmp_path, members, words):
    with pytest.raises(DataError, match=words):
        unpack(tmp_path, zip_of(members))
    assert left_behind(tmp_path) == []


def test_what_is_not_an_archive_says_so(tmp_path):
    with pytest.raises(DataError, match="not a .zip or .tar archive"):
        unpack(tmp_path, b'{"messages": []}\n')
    whole = zip_of({"a.png": png(), "b.png": png(1)})
    middle = len(whole) // 2
    damaged = whole[:middle] + bytes(b ^ 0xFF for b in whole[middle:middle + 16]) + whole[middle + 16:]
    with pytest.raises(DataError, match="a broken archive \(Bad CRC-32"):
        unpack(tmp_path, damaged)
    assert left_behind(tmp_path) == []


# -- through the API --------------------------------------------------------------------------------------


@pytest.fixture
def sd_settings(tmp_path):
    from tunesmith.serve.settings import make_settings

    return make_settings(tmp_path / "home", models=["sd=tunesmith-tiny-sd"], upload_limit=1_000_000)


@pytest.fixture
def sd_api(sd_settings):
    from fastapi.testclient import TestClient

    from tunesmith.serve.app import create_app
    from tunesmith.serve.keys import create_key

    from .conftest import Api

    app = create_app(sd_settings)
    with app.state.sessions() as session:
        keys = {name: create_key(session, name)[0] for name in ("acme", "globex")}
        session.commit()
    with TestClient(app) as client:
        yield Api(client, keys), app


def test_an_uploaded_archive_is_unpacked_checked_downloadable_and_deleted_whole(sd_api, sd_settings):
    api, _ = sd_api
    content = zip_of({"ball/0.png": png(0), "ball/0.txt": b"a photo of sks ball", "ball/1.png": png(1)})
    file = api.upload(content, filename="subject.zip").json()
    assert (file["status"], file["status_details"], file["filename"]) == ("processed", None, "subject.zip")
    unpacked = sd_settings.files_dir / f"{file['id']}-images"
    assert (sd_settings.files_dir / f"{file['id']}.zip").read_bytes() == content
    assert len(list(unpacked.glob("image-*.png"))) == 2
    assert api.get(f"/v1/files/{file['id']}/content").content == content
    assert api.client.delete(f"/v1/files/{file['id']}", headers=api.auth()).status_code == 200
    assert not unpacked.exists() and not (sd_settings.files_dir / f"{file['id']}.zip").exists()


def test_a_bad_archive_is_an_error_on_the_file_object_naming_the_member(sd_api, sd_settings):
    api, _ = sd_api
    file = api.upload(tar_of({"ok.png": png(), "../../etc/cron.d/evil.png": png(1)}), filename="subject.tgz").json()
    assert file["status"] == "error"
    assert file["status_details"] == ("subject.tgz: '../../etc/cron.d/evil.png': a member name with '..', which "
                                      "points outside the archive")
    assert not (sd_settings.files_dir / f"{file['id']}-images").exists()
    assert str(sd_settings.home) not in file["status_details"]


def test_a_job_trains_only_its_familys_kind_of_file_and_checks_images_with_its_own_settings(sd_api, sd_settings):
    api, app = sd_api
    images = api.file_id(content=zip_of({"ball/0.png": png(0), "ball/1.png": png(1)}), filename="subject.zip")
    chat = api.file_id()
    refused = api.create_job(chat, model="sd").json()["error"]
    assert refused["param"] == "training_file" and "needs a .zip or .tar of images" in refused["message"]
    refused = api.create_job(images, model=EMBEDDED_DEFAULT).json()["error"]
    assert "not an image archive" in refused["message"]

    subject = {"instance_prompt": "a photo of sks ball", "resolution": 64}
    fits, too_small, uncaptioned = (api.create_job(images, model="sd", **body).json() for body in (
        {"tunesmith": {"data": subject}}, {"tunesmith": {"data": {**subject, "min_size": 100}}}, {}))
    validate_pending(app.state.sessions, sd_settings)
    assert api.get(f"/v1/fine_tuning/jobs/{fits['id']}").json()["status"] == "queued"
    error = api.get(f"/v1/fine_tuning/jobs/{too_small['id']}").json()["error"]
    assert error["code"] == "invalid_training_file"
    assert "ball/0.png: 64x64 is smaller than data.min_size (100 px on the shorter side)" in error["message"]
    error = api.get(f"/v1/fine_tuning/jobs/{uncaptioned['id']}").json()["error"]
    assert "ball/0.png: no caption" in error["message"] and "data.instance_prompt" in error["message"]
    assert str(sd_settings.home) not in json.dumps(error)
