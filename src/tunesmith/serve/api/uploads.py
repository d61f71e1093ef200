"""Receive a multipart upload by streaming the file part straight to a temporary file in storage.

The size limit is enforced while the bytes arrive: at limit + 1 the request stops being read, the temporary
file is removed and the client gets 413, so an oversized upload never lands on disk whole. The temporary file
sits in the storage folder, so the final rename is atomic and a half-received file is never visible.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from tunesmith.serve.api.errors import ApiError

MAX_FIELD_BYTES = 1024  # `purpose` and friends: short strings
MAX_FIELDS = 8


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    temp_path: Path | None = None
    size: int = 0

    def discard(self) -> None:
        if self.temp_path is not None:
            self.temp_path.unlink(missing_ok=True)


class _Receiver:
    """python-multipart callbacks: headers of each part, then its data into a field or the file."""

    def __init__(self, incoming: Path, limit: int, file_field: str):
        self.incoming, self.limit, self.file_field = incoming, limit, file_field
        self.upload = Upload()
        self.handle = None
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._value = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin, "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers, self._name, self._value = {}, None, bytearray()

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        if b"name" not in options:
            raise ApiError(400, "each multipart part needs a Content-Disposition header with a name")
        self._name = _decode(options[b"name"])
        if self._name != self.file_field:
            if len(self.upload.fields) >= MAX_FIELDS:
                raise ApiError(400, f"too many form fields (at most {MAX_FIELDS})")
            return
        if self.handle is not None or self.upload.temp_path is not None:
            raise ApiError(400, f"only one '{self.file_field}' part per upload", param=self.file_field)
        self.upload.filename = _decode(options.get(b"filename", b""))
        self.upload.temp_path = self.incoming / f"{uuid.uuid4().hex}.part"
        self.handle = open(self.upload.temp_path, "wb")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._name != self.file_field:
            self._value += data[start:end]
            if len(self._value) > MAX_FIELD_BYTES:
                raise ApiError(400, f"{self._name}: longer than {MAX_FIELD_BYTES} bytes", param=self._name)
            return
        self.upload.size += end - start
        if self.upload.size > self.limit:
            raise ApiError(413, f"the file is larger than this server's upload limit of {self.limit} bytes",
                           param=self.file_field, code="file_too_large")
        self.handle.write(data[start:end])

    def _part_end(self) -> None:
        if self._name == self.file_field:
            self.handle.close()
            self.handle = None
        elif self._name is not None:
            self.upload.fields[self._name] = _decode(bytes(self._value))

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


async def receive_upload(request: Request, incoming: Path, limit: int, file_field: str = "file") -> Upload:
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise ApiError(400, "expected a multipart/form-data body with a 'file' part and a 'purpose' field")
    incoming.mkdir(parents=True, exist_ok=True)
    receiver = _Receiver(incoming, limit, file_field)
    try:
        parser = MultipartParser(params[b"boundary"], receiver.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        if receiver.handle is not None:
            raise ApiError(400, "the multipart body ended in the middle of the file part")
    except FormParserError as error:
        receiver.close()
        receiver.upload.discard()
        raise ApiError(400, f"malformed multipart body: {error}") from None
    except BaseException:
        receiver.close()
        receiver.upload.discard()
        raise
    return receiver.upload


def _decode(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")
