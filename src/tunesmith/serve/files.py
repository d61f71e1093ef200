"""Uploaded files: stored under server-chosen names, checked with tunesmith's data checks, deleted for real.

The client's filename is kept as metadata only. The stored name is the file id plus a suffix from a fixed list
(the readers pick the parser by suffix), so nothing the client sends ever becomes part of a path. An image archive
(.zip/.tar: a diffusion job's subject images) is kept as uploaded and unpacked beside it (serve/archives.py); what
a job trains on is that folder.
"""

from __future__ import annotations

import os
import shutil
import unicodedata
from pathlib import Path

from sqlalchemy.orm import Session

from tunesmith.data.readers import SUPPORTED_EXTENSIONS
from tunesmith.errors import DataError
from tunesmith.serve.archives import ArchiveLimits, archive_suffix, unpack_images
from tunesmith.serve.audit import record
from tunesmith.serve.db import now
from tunesmith.serve.ids import new_id
from tunesmith.serve.keys import Caller
from tunesmith.serve.settings import ServeSettings
from tunesmith.serve.tables import StoredFile

FINE_TUNE, RESULTS = "fine-tune", "fine-tune-results"
DEFAULT_SUFFIX = ".jsonl"  # the OpenAI fine-tuning format, for names without a suffix tunesmith reads
MAX_FILENAME = 255


def clean_filename(name: str | None) -> str:
    """The name to show: control characters (NUL, newlines) removed, at most 255 characters."""
    kept = "".join(c for c in (name or "") if unicodedata.category(c)[0] != "C").strip()
    return kept[:MAX_FILENAME] or "upload"


def stored_name(file_id: str, filename: str) -> str:
    suffix = archive_suffix(filename)
    if suffix is None:
        suffix = os.path.splitext(filename)[1].lower()
        suffix = suffix if suffix in SUPPORTED_EXTENSIONS else DEFAULT_SUFFIX
    return file_id + suffix


def file_path(settings: ServeSettings, row: StoredFile) -> Path:
    """The uploaded bytes."""
    return settings.files_dir / row.stored_name


def is_image_archive(row: StoredFile) -> bool:
    return archive_suffix(row.stored_name) is not None


def images_path(settings: ServeSettings, row: StoredFile) -> Path:
    """Where an image archive is unpacked."""
    return settings.files_dir / f"{row.id}-images"


def data_path(settings: ServeSettings, row: StoredFile) -> Path:
    """What a job reads: the file, or an image archive's unpacked folder."""
    return images_path(settings, row) if is_image_archive(row) else file_path(settings, row)


def data_report_path(settings: ServeSettings, row: StoredFile) -> Path:
    return settings.reports_dir / f"{row.id}.html"


def data_problem(path: Path, filename: str) -> str | None:
    """What the data checks find wrong with the file (file:line: field: problem), named by the client's
    filename rather than the storage path; None when every record is valid."""
    from tunesmith.data.formats import load_examples

    try:
        load_examples(path, "auto")
    except DataError as error:
        return str(error).replace(str(path), filename)
    return None


def _unpack_problem(settings: ServeSettings, row: StoredFile, archive: Path, filename: str) -> str | None:
    """Unpack an image archive beside it; what is wrong with it otherwise (named by the client's filename)."""
    limits = ArchiveLimits(settings.archive_max_files, settings.archive_max_bytes)
    try:
        unpack_images(archive, images_path(settings, row), limits)
    except DataError as error:
        return f"{filename}: {error}"
    return None


def add_file(session: Session, settings: ServeSettings, caller: Caller, temp_path: Path, filename: str,
             purpose: str, size: int) -> StoredFile:
    """Move a received upload into storage under a new id and record what the data checks say about it."""
    file_id = new_id("file")
    filename = clean_filename(filename)
    row = StoredFile(id=file_id, tenant_seq=caller.tenant_seq, filename=filename,
                     stored_name=stored_name(file_id, filename), purpose=purpose, bytes=size, status="uploaded",
                     created_at=now())
    target = file_path(settings, row)
    os.replace(temp_path, target)
    if purpose != FINE_TUNE:
        problem = None
    elif is_image_archive(row):
        problem = _unpack_problem(settings, row, target, filename)
    else:
        problem = data_problem(target, filename)
    row.status, row.status_details = ("error", problem) if problem else ("processed", None)
    session.add(row)
    record(session, caller.tenant_seq, caller.key_id, "file.create", file_id)
    return row


def add_result_file(session: Session, settings: ServeSettings, tenant_seq: int, name: str,
                    content: bytes) -> StoredFile:
    """A run's product (its report, its final sample grid) as a `fine-tune-results` file the tenant can download."""
    file_id = new_id("file")
    row = StoredFile(id=file_id, tenant_seq=tenant_seq, filename=name, stored_name=file_id + Path(name).suffix,
                     purpose=RESULTS, bytes=len(content), status="processed", created_at=now())
    file_path(settings, row).write_bytes(content)
    session.add(row)
    return row


def remove_bytes(settings: ServeSettings, row: StoredFile) -> None:
    """Everything stored for a file: its bytes, an archive's unpacked images, its data report."""
    file_path(settings, row).unlink(missing_ok=True)
    shutil.rmtree(images_path(settings, row), ignore_errors=True)
    data_report_path(settings, row).unlink(missing_ok=True)


def delete_file(session: Session, settings: ServeSettings, caller: Caller, row: StoredFile) -> None:
    """Remove the bytes and what was made from them; the row stays (marked deleted) so jobs that used it
    still name it."""
    remove_bytes(settings, row)
    row.deleted_at = now()
    record(session, caller.tenant_seq, caller.key_id, "file.delete", row.id)
