"""Helpers for the file server's handler-level tests (imported by the tests and conftest).

- `fetch` (in conftest): build the real handler from the JSON a user would write (decoded by
  the real decoder, built by the real builder), send it one real `Request` and return what
  came back with the body read out in full (a `FileBody` is read from its file, which is
  then closed, as the connection does).
- `make_request(target, method, headers, **changes)`: a real Request, optionally rewritten.
- `write(path, data, mtime)`: a file with a fixed modification time.
A `next` handler that answers 299 "next" shows when the file server passed the request on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rws.config.decode import decode
from rws.handlers.file_server import FileServerConfig
from rws.handlers.file_server.handler import FileServer, build
from rws.http.message import FileBody, Headers, Request, Response
from rws.http.routes import BuildContext

NEXT_STATUS = 299
OLD = 1_600_000_000  # 2020-09-13T12:26:40Z, a fixed modification time


@dataclass
class Got:
    status: int
    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def all(self, name: str) -> list[str]:
        return self.headers.get_all(name)


async def next_handler(request: Request) -> Response:
    return Response(NEXT_STATUS, request.response_headers, b"next")


async def read_body(response: Response) -> bytes:
    """The whole body; a FileBody's file is closed afterwards, as the connection does."""
    body = response.body
    if isinstance(body, bytes):
        return body
    if isinstance(body, FileBody):
        with body.file:
            return os.pread(body.file.fileno(), body.length, body.offset)
    return b"".join([chunk async for chunk in body])


def make_handler(config: dict[str, Any]) -> FileServer:
    return build(decode(FileServerConfig, config, "handler"), BuildContext())


def make_request(target: str, method: str = "GET", headers: list[tuple[str, str]] | None = None,
                 **changes: Any) -> Request:
    request = Request(method, target, Headers([("Host", "example.com"), *(headers or [])]))
    return request.with_changes(**changes) if changes else request


async def run(handler: FileServer, request: Request) -> Got:
    response = await handler.handle(request, next_handler)
    return Got(response.status, response.headers, await read_body(response))


def write(path: Path, data: bytes | str, mtime: int = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.utime(path, (mtime, mtime))
    return path


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))
