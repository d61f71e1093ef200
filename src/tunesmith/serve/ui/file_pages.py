"""Files: the list with the drop zone (uploads go to POST /v1/files), and one file's check and data report."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import HTMLResponse

from tunesmith.serve.api import deps
from tunesmith.serve.api.errors import ApiError
from tunesmith.serve.files import FINE_TUNE, is_image_archive
from tunesmith.serve.job_store import get_file
from tunesmith.serve.keys import Caller
from tunesmith.serve.settings import MIB, ServeSettings
from tunesmith.serve.tables import StoredFile
from tunesmith.serve.ui import data_report
from tunesmith.serve.ui.access import page_caller
from tunesmith.serve.ui.templating import HEADERS, render

router = APIRouter(include_in_schema=False)
SHOWN = 500  # the newest files listed
# The report is tunesmith's own HTML (inline styles, embedded plots, no script); in its frame it may do nothing more.
REPORT_HEADERS = {**HEADERS, "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                                                        "frame-ancestors 'self'"}


def tenant_files(session: Session, caller: Caller, purpose: str | None = None) -> list[StoredFile]:
    query = select(StoredFile).where(StoredFile.tenant_seq == caller.tenant_seq, StoredFile.deleted_at.is_(None))
    if purpose:
        query = query.where(StoredFile.purpose == purpose)
    return list(session.scalars(query.order_by(StoredFile.seq.desc()).limit(SHOWN)))


@router.get("/ui/files")
def files_page(request: Request, caller: Caller = Depends(page_caller), session: Session = Depends(deps.reader),
               settings: ServeSettings = Depends(deps.settings)):
    limit = settings.upload_limit
    shown = f"{limit / MIB:,.0f} MiB" if limit >= MIB else f"{limit:,} bytes"
    return render(request, "files.html", caller=caller, section="files", files=tenant_files(session, caller, FINE_TUNE),
                  upload_limit=shown)


@router.get("/ui/files/{file_id}")
def file_page(request: Request, file_id: str, caller: Caller = Depends(page_caller),
              session: Session = Depends(deps.reader), settings: ServeSettings = Depends(deps.settings)):
    row = get_file(session, caller, file_id)
    session.close()
    return render(request, "file.html", caller=caller, section="files", file=row,
                  check=data_report.check(settings, row), images=is_image_archive(row))


@router.get("/ui/files/{file_id}/report")
def file_report(file_id: str, caller: Caller = Depends(page_caller), session: Session = Depends(deps.reader),
                settings: ServeSettings = Depends(deps.settings)):
    row = get_file(session, caller, file_id)
    session.close()  # the first report takes seconds: hold no transaction meanwhile
    if is_image_archive(row):
        raise ApiError(404, f"file {file_id} is an image archive; it has no data report")
    return HTMLResponse(data_report.report_html(settings, row), headers=REPORT_HEADERS)
