"""Streaming a multipart upload to a temporary file, counting, never holding it in memory.

The body is parsed as it arrives (python-multipart's push parser); the bytes of the part
named ``file`` are buffered up to ``FLUSH_BYTES`` and written from a worker thread. Past the
limit the upload is refused at once with 413 (the rest of the body is never read). A
declared Content-Length over the limit is refused before anything is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from gochat.domain.validation import field_error
from gochat.errors import InvalidRequest, TooLarge

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

# Room for the part headers and boundaries around the file (and small extra fields).
ENVELOPE_BYTES = 65_536
FLUSH_BYTES = 1_048_576
FIELD = "file"


def refuse_declared_oversize(request: Request, max_bytes: int) -> None:
    """413 from the Content-Length alone, before a byte of the body is read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + ENVELOPE_BYTES:
        raise TooLarge(f"files are limited to {max_bytes} bytes")


@contextlib.asynccontextmanager
async def spooled_file(request: Request, max_bytes: int) -> AsyncIterator[tuple[Path, str | None]]:
    """(temporary file, declared filename) of the ``file`` part; the file is removed afterwards."""
    boundary = _boundary(request.headers.get("content-type", ""))
    fd, name = await asyncio.to_thread(tempfile.mkstemp, prefix="gochat-upload-")
    path = Path(name)
    try:
        out: BinaryIO = await asyncio.to_thread(os.fdopen, fd, "wb")
        try:
            collector = await _receive(request, boundary, max_bytes, out)
        finally:
            await asyncio.to_thread(out.close)
        yield path, collector.filename
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)


def _boundary(content_type: str) -> bytes:
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary or len(boundary) > 200:
        raise field_error(FIELD, "send the file as multipart/form-data in a field named 'file'")
    return boundary


async def _receive(request: Request, boundary: bytes, max_bytes: int, out: BinaryIO) -> _FileCollector:
    collector = _FileCollector(max_bytes)
    parser = MultipartParser(boundary, collector.callbacks())
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > max_bytes + ENVELOPE_BYTES:
                raise TooLarge(f"files are limited to {max_bytes} bytes")
            parser.write(chunk)
            if len(collector.pending) >= FLUSH_BYTES:
                await asyncio.to_thread(out.write, collector.take())
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidRequest("the multipart body is malformed") from exc
    except ClientDisconnect as exc:
        raise InvalidRequest("the upload was interrupted") from exc
    await asyncio.to_thread(out.write, collector.take())
    collector.check_complete()
    return collector


class _FileCollector:
    """Parser callbacks: remembers part headers, keeps the ``file`` part's bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.pending = bytearray()
        self.size = 0
        self.files = 0
        self.filename: str | None = None
        self.ended = False
        self._in_file = False
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_end": self._end,
        }

    def take(self) -> bytes:
        data = bytes(self.pending)
        self.pending.clear()
        return data

    def check_complete(self) -> None:
        if not self.ended:
            raise InvalidRequest("the multipart body ended early")
        if self.files == 0:
            raise field_error(FIELD, "a multipart field named 'file' is required")
        if self.size == 0:
            raise field_error(FIELD, "the file is empty")

    def _part_begin(self) -> None:
        self._headers = {}
        self._in_file = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field.extend(data[start:end])

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value.extend(data[start:end])

    def _header_end(self) -> None:
        self._headers[bytes(self._field).strip().lower()] = bytes(self._value).strip()
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        disposition = self._headers.get(b"content-disposition", b"")
        _, params = parse_options_header(disposition)
        if params.get(b"name") != FIELD.encode():
            return
        self.files += 1
        if self.files > 1:
            raise field_error(FIELD, "send one file per upload")
        self._in_file = True
        self.filename = _filename(disposition, params)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_file:
            return  # other fields are ignored (their size still counts against the body limit)
        self.size += end - start
        if self.size > self.max_bytes:
            raise TooLarge(f"files are limited to {self.max_bytes} bytes")
        self.pending.extend(data[start:end])

    def _end(self) -> None:
        self.ended = True


def _filename(disposition: bytes, params: dict[bytes, bytes]) -> str | None:
    """``filename*=UTF-8''...`` (RFC 5987) when given, else ``filename`` (browsers send UTF-8)."""
    for part in disposition.split(b";"):
        name, _, value = part.strip().partition(b"=")
        if name.strip().lower() == b"filename*" and value.lower().startswith(b"utf-8''"):
            return unquote(value[7:].decode("latin-1").strip('"'), errors="replace")
    raw = params.get(b"filename")
    return raw.decode("utf-8", errors="replace") if raw is not None else None
