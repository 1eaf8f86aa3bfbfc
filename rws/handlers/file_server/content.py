"""Serving an open file as Go's http.ServeContent does: validators, conditions, ranges.

Given the response headers prepared by the handler (ETag, Content-Type, ...), an open
regular file, its size and its modification second, `serve_content` answers with:
- 304 / 412 when the conditional headers say so (see `conditions.py`);
- 416 with `Content-Range: bytes */<size>` (or a plain "invalid range") for an
  unsatisfiable or malformed Range, as a short text/plain error;
- 206 with `Content-Range` for one range, or a `multipart/byteranges` body for several
  (ranges summing to more than the file are ignored: 200 with the whole file);
- 200 with the whole file otherwise.
The file goes out as a `FileBody` (sendfile) whenever one region of it is the body; the
handler never reads it into memory. The file is closed on every path that does not hand
it to the connection. HEAD responses carry the same headers and no body.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import re
import secrets
from dataclasses import dataclass
from typing import AsyncIterator

from rws.errors import HttpError, RwsError
from rws.handlers.file_server.conditions import check_preconditions, format_http_date, not_modified
from rws.http.message import FileBody, Headers, Request, Response

_INT64 = re.compile(r"[+-]?[0-9]+")
_MAX_INT64 = 2**63 - 1
_CHUNK = 256 * 1024


class InvalidRange(RwsError):
    """A Range header that cannot be served; `no_overlap` when it is well-formed but every
    range starts past the end of the file."""

    def __init__(self, message: str, no_overlap: bool = False) -> None:
        super().__init__(message)
        self.no_overlap = no_overlap


class Unavailable(HttpError):
    """503: a file exists but can't be opened now (say, out of descriptors); the client is
    told to retry after a few seconds, randomised to spread a stampede."""

    def __init__(self, exc: Exception) -> None:
        super().__init__(503, f"cannot open file: {exc}")
        self.retry_after = random.randint(2, 4)


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    length: int

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.start + self.length - 1}/{size}"


def _go_int(text: str) -> int | None:
    if not _INT64.fullmatch(text):
        return None
    value = int(text)
    return value if -_MAX_INT64 - 1 <= value <= _MAX_INT64 else None


def parse_range(header: str, size: int) -> list[ByteRange]:
    """The ranges of a `Range: bytes=...` header against a file of `size` bytes (Go's
    parseRange); [] when there is no header."""
    if not header:
        return []
    if not header.startswith("bytes="):
        raise InvalidRange("invalid range")
    ranges: list[ByteRange] = []
    no_overlap = False
    for spec in header[6:].split(","):
        spec = spec.strip(" \t\r\n")
        if not spec:
            continue
        first, dash, last = spec.partition("-")
        if not dash:
            raise InvalidRange("invalid range")
        first, last = first.strip(" \t\r\n"), last.strip(" \t\r\n")
        if not first:
            suffix = _go_int(last) if last and last[0] != "-" else None
            if suffix is None or suffix < 0:
                raise InvalidRange("invalid range")
            start = size - min(suffix, size)
            ranges.append(ByteRange(start, size - start))
            continue
        start_at = _go_int(first)
        if start_at is None or start_at < 0:
            raise InvalidRange("invalid range")
        if start_at >= size:
            no_overlap = True
            continue
        if not last:
            ranges.append(ByteRange(start_at, size - start_at))
            continue
        end = _go_int(last)
        if end is None or start_at > end:
            raise InvalidRange("invalid range")
        ranges.append(ByteRange(start_at, min(end, size - 1) - start_at + 1))
    if no_overlap and not ranges:
        raise InvalidRange("invalid range: failed to overlap", no_overlap=True)
    return ranges


def serve_content(request: Request, headers: Headers, file: io.FileIO, size: int, mtime: int | None,
                  status_override: int = 0) -> Response:
    """The response for `file`; `status_override` (when > 0) replaces whatever status
    would be written, as Caddy's status override wraps ServeContent."""
    try:
        response = _respond(request, headers, file, size, mtime)
    except BaseException:
        file.close()
        raise
    if status_override > 0:
        response.status = status_override
    return response


def _respond(request: Request, headers: Headers, file: io.FileIO, size: int, mtime: int | None) -> Response:
    if mtime is not None:
        headers.set("Last-Modified", format_http_date(mtime))
    outcome = check_preconditions(request, headers, mtime)
    if outcome.status is not None:
        file.close()
        if outcome.status == 304:
            not_modified(headers)
        return Response(outcome.status, headers)
    content_type = headers.get("Content-Type") or ""
    try:
        ranges = parse_range(outcome.range, size)
    except InvalidRange as exc:
        if not (exc.no_overlap and size == 0):
            file.close()
            if exc.no_overlap:
                headers.set("Content-Range", f"bytes */{size}")
            return error_response(request, headers, 416, str(exc))
        ranges = []
    if ranges and sum(r.length for r in ranges) > size:
        ranges = []  # more bytes than the file: an attack or a confused client
    headers.set("Accept-Ranges", "bytes")
    if len(ranges) > 1:
        return _multipart_response(request, headers, file, size, ranges, content_type)
    status, start, length = 200, 0, size
    if ranges:
        status, start, length = 206, ranges[0].start, ranges[0].length
        headers.set("Content-Range", ranges[0].content_range(size))
    headers.set("Content-Length", str(length))
    if request.method == "HEAD" or length == 0:
        file.close()
        return Response(status, headers)
    return Response(status, headers, FileBody(file, start, length))


def _multipart_response(request: Request, headers: Headers, file: io.FileIO, size: int,
                        ranges: list[ByteRange], content_type: str) -> Response:
    boundary = secrets.token_hex(30)
    heads = []
    for i, r in enumerate(ranges):
        lead = "\r\n" if i else ""
        heads.append((f"{lead}--{boundary}\r\nContent-Range: {r.content_range(size)}\r\n"
                      f"Content-Type: {content_type}\r\n\r\n").encode("latin-1"))
    closing = f"\r\n--{boundary}--\r\n".encode("latin-1")
    total = sum(map(len, heads)) + sum(r.length for r in ranges) + len(closing)
    headers.set("Content-Type", f"multipart/byteranges; boundary={boundary}")
    headers.set("Content-Length", str(total))
    if request.method == "HEAD":
        file.close()
        return Response(206, headers)
    return Response(206, headers, _multipart_body(file, ranges, heads, closing))


async def _multipart_body(file: io.FileIO, ranges: list[ByteRange], heads: list[bytes],
                          closing: bytes) -> AsyncIterator[bytes]:
    """The parts, read from the file a chunk at a time off the event loop; the file is
    closed when the body ends or is abandoned. A file that shrank ends the body early
    (shorter than its Content-Length, so the connection cannot be reused)."""
    try:
        fd = file.fileno()
        for r, head in zip(ranges, heads):
            yield head
            offset, remaining = r.start, r.length
            while remaining > 0:
                chunk = await asyncio.to_thread(os.pread, fd, min(remaining, _CHUNK), offset)
                if not chunk:
                    return
                yield chunk
                offset += len(chunk)
                remaining -= len(chunk)
        yield closing
    finally:
        file.close()


def error_response(request: Request, headers: Headers, status: int, text: str) -> Response:
    """Go's serveError: a short text/plain body, without the validators and encodings that
    were meant for the file."""
    for name in ("Cache-Control", "Content-Encoding", "ETag", "Last-Modified", "Content-Length"):
        headers.delete(name)
    headers.set("Content-Type", "text/plain; charset=utf-8")
    headers.set("X-Content-Type-Options", "nosniff")
    return text_response(request, status, headers, (text + "\n").encode())


def text_response(request: Request, status: int, headers: Headers, body: bytes) -> Response:
    """A response with an in-memory body and its Content-Length (no body for HEAD)."""
    headers.set("Content-Length", str(len(body)))
    return Response(status, headers, b"" if request.method == "HEAD" else body)
