"""Fixtures for the file server's handler-level tests (helpers are in fs_helpers.py).

- `site`: a real folder tree in a temporary directory (the root of most tests).
- `fetch(config, target, method=, headers=, request=)`: the handler's answer as a `Got`.
- `fetch_error(...)`: the HttpError the handler raised instead.
- `no_leaks`: the test leaves no file descriptor open.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from fs_helpers import Got, make_handler, make_request, open_fds, run, write

from rws.errors import HttpError
from rws.handlers.file_server.handler import FileServer
from rws.http.message import Request


@pytest.fixture
def fetch() -> Callable[..., Got]:
    def go(config: dict[str, Any] | FileServer, target: str = "/", method: str = "GET",
           headers: list[tuple[str, str]] | None = None, request: Request | None = None) -> Got:
        handler = config if isinstance(config, FileServer) else make_handler(config)
        req = request if request is not None else make_request(target, method, headers)
        return asyncio.run(asyncio.wait_for(run(handler, req), 10))

    return go


@pytest.fixture
def fetch_error(fetch: Callable[..., Got]) -> Callable[..., HttpError]:
    def go(*args: Any, **kwargs: Any) -> HttpError:
        with pytest.raises(HttpError) as info:
            fetch(*args, **kwargs)
        return info.value

    return go


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Every file the handler opened is closed (or handed over in the response) by the end."""
    before = open_fds()
    yield
    assert open_fds() == before


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """root/
         hello.txt ("hello, world\\n"), page.html, data.json, app.js, style.css, image.svg,
         noext, blob.unknownext, digits.txt ("0123456789"), empty.txt,
         docs/index.html, docs/guide.txt, plain/ (no index), plain/readme.md,
         .git/config, secret.key
       outside.txt (next to the root, never reachable)"""
    root = tmp_path / "root"
    write(root / "hello.txt", "hello, world\n")
    write(root / "page.html", "<p>page</p>\n")
    write(root / "data.json", '{"a": 1}\n')
    write(root / "app.js", "console.log(1)\n")
    write(root / "style.css", "body{}\n")
    write(root / "image.svg", "<svg/>\n")
    write(root / "noext", "raw")
    write(root / "blob.unknownext", "raw")
    write(root / "digits.txt", "0123456789")
    write(root / "empty.txt", "")
    write(root / "docs" / "index.html", "<h1>docs</h1>\n")
    write(root / "docs" / "guide.txt", "guide\n")
    write(root / "plain" / "readme.md", "# readme\n")
    write(root / ".git" / "config", "[core]\n")
    write(root / "secret.key", "KEY")
    write(tmp_path / "outside.txt", "OUTSIDE")
    return root
