"""`/v1/files`: upload (streamed, size-limited, checked), list, retrieve, delete, download."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from tunesmith.serve import files
from tunesmith.serve.api import deps
from tunesmith.serve.api.errors import ApiError, documented, links
from tunesmith.serve.api.pages import cursor_page
from tunesmith.serve.api.schemas import FileDeleted, FileObject, ListPage, file_object, page
from tunesmith.serve.api.uploads import Upload, receive_upload
from tunesmith.serve.job_store import get_file
from tunesmith.serve.keys import Caller
from tunesmith.serve.settings import ServeSettings
from tunesmith.serve.tables import FINISHED, Job, StoredFile

router = APIRouter(prefix="/v1/files", tags=["files"], responses=documented(400, 401, 404))

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file", "purpose"],
            "properties": {"file": {"type": "string", "format": "binary"},
                           "purpose": {"type": "string", "enum": [files.FINE_TUNE]}},
        }}},
    }
}


@router.post("", response_model=FileObject, openapi_extra=UPLOAD_BODY, operation_id="createFile", responses={
    **documented(413), 200: {"links": links("file_id", "retrieveFile", "deleteFile", "downloadFile")}})
async def upload_file(request: Request, caller: Caller = Depends(deps.caller),
                      settings: ServeSettings = Depends(deps.settings)) -> FileObject:
    """Upload a data file (multipart: `file`, `purpose=fine-tune`). It is checked with tunesmith's data checks;
    problems are reported on the file object (`status: error`, `status_details` naming line and field). A .zip or
    .tar of images with optional same-name .txt captions is a diffusion job's training data: it is unpacked and
    every image decoded (`status_details` names a member that breaks the rules)."""
    upload = await receive_upload(request, settings.files_dir / ".incoming", settings.upload_limit)
    try:
        purpose = upload.fields.get("purpose")
        if purpose != files.FINE_TUNE:
            raise ApiError(400, f"purpose: expected '{files.FINE_TUNE}' (got {purpose!r})", param="purpose")
        if upload.temp_path is None:
            raise ApiError(400, "file: the upload has no 'file' part", param="file")
        return await run_in_threadpool(_store, request, settings, caller, upload, purpose)
    finally:
        upload.discard()  # a no-op once the file has moved into storage


def _store(request: Request, settings: ServeSettings, caller: Caller, upload: Upload, purpose: str) -> FileObject:
    with request.app.state.sessions() as session:
        row = files.add_file(session, settings, caller, upload.temp_path, upload.filename, purpose, upload.size)
        try:
            session.commit()
        except BaseException:
            files.remove_bytes(settings, row)
            raise
        return file_object(row)


@router.get("", response_model=ListPage[FileObject], operation_id="listFiles")
def list_files(after: str | None = None, limit: int = Query(10000, ge=1, le=10000),
               order: Literal["asc", "desc"] = "desc", purpose: str | None = Query(None, max_length=32),
               caller: Caller = Depends(deps.caller), session: Session = Depends(deps.reader)):
    query = select(StoredFile).where(StoredFile.tenant_seq == caller.tenant_seq, StoredFile.deleted_at.is_(None))
    if purpose:
        query = query.where(StoredFile.purpose == purpose)
    rows, more = cursor_page(session, query, StoredFile, after, limit, newest_first=order == "desc",
                             scope=[StoredFile.tenant_seq == caller.tenant_seq, StoredFile.deleted_at.is_(None)])
    return page([file_object(r) for r in rows], more)


@router.get("/{file_id}", response_model=FileObject, operation_id="retrieveFile")
def retrieve_file(file_id: str, caller: Caller = Depends(deps.caller), session: Session = Depends(deps.reader)):
    return file_object(get_file(session, caller, file_id))


@router.delete("/{file_id}", response_model=FileDeleted, operation_id="deleteFile", responses=documented(409))
async def delete_file(request: Request, file_id: str, caller: Caller = Depends(deps.caller),
                      settings: ServeSettings = Depends(deps.settings)):
    """Delete the file and its bytes. Refused while a job that has not finished uses it."""
    return await deps.writing(request, lambda session: _delete(session, settings, caller, file_id))


def _delete(session: Session, settings: ServeSettings, caller: Caller, file_id: str) -> FileDeleted:
    row = get_file(session, caller, file_id)
    user = session.scalar(select(Job.id).where(
        Job.tenant_seq == caller.tenant_seq, Job.status.not_in(FINISHED),
        (Job.training_file == file_id) | (Job.validation_file == file_id)).limit(1))
    if user is not None:
        raise ApiError(409, f"file {file_id} is used by job {user}, which has not finished; cancel it or wait",
                       code="file_in_use")
    files.delete_file(session, settings, caller, row)
    session.commit()
    return FileDeleted(id=file_id, deleted=True)


@router.get("/{file_id}/content", response_class=FileResponse, operation_id="downloadFile",
            responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                  "format": "binary"}}}}})
def file_content(file_id: str, caller: Caller = Depends(deps.caller), session: Session = Depends(deps.reader),
                 settings: ServeSettings = Depends(deps.settings)):
    row = get_file(session, caller, file_id)
    session.close()  # the download may be long; hold no transaction while it streams
    return FileResponse(files.file_path(settings, row), media_type="application/octet-stream")
