"""Helpers for the handler runtime tests.

Handler level: `build(json)` decodes a handler's JSON as a user writes it and builds the
real runtime object; `request(...)` makes a Request; `run(handler, request, next)` awaits
one `handle` call; `ok` is a `next` that answers 200 with the request it got attached.

Socket level: the `serve` fixture of tests/conftest.py. Differential: `same_as_caddy_run`
serves one site block with rws and with the installed Caddy (2.6.2) on loopback and
compares status, the named headers and the body of the same requests.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import socket
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import httpx
import pytest

from rws.config.decode import Module, decode_module
from rws.http.message import Headers, Next, Request, Response
from rws.http.routes import BuildContext

CADDY = shutil.which("caddy")


def build(handler: dict[str, Any], ctx: BuildContext | None = None) -> Any:
    """The runtime object of one handler JSON object (with its "handler" key)."""
    value = decode_module(Module("http.handlers", "handler"), json.loads(json.dumps(handler)), "handler")
    return (ctx or BuildContext()).build(value)


def request(target: str = "/", method: str = "GET", host: str = "example.com", **headers: str) -> Request:
    fields = [("Host", host)] if host else []
    fields += [(name.replace("_", "-"), value) for name, value in headers.items()]
    return Request(method, target, Headers(fields))


class Seen:
    """A `next` that answers 200 and remembers the request it was given."""

    def __init__(self, status: int = 200, body: bytes = b"next") -> None:
        self.request: Request | None = None
        self.status = status
        self.body = body

    async def __call__(self, req: Request) -> Response:
        self.request = req
        return Response(self.status, req.response_headers, self.body)


def run(handler: Any, req: Request, next: Next | None = None) -> Response:
    async def go() -> Response:
        response: Response = await handler.handle(req, next or Seen())
        return response

    return asyncio.run(go())


def raises_http(handler: Any, req: Request, next: Next | None = None) -> Any:
    from rws.errors import HttpError

    with pytest.raises(HttpError) as info:
        run(handler, req, next)
    return info.value


# --- Caddy itself, for differential checks ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def caddy_serving(site: str, home: Path) -> Iterator[str]:
    """Caddy serving one site block (its body is `site`) on 127.0.0.1; yields the base URL.
    Ready when Caddy logs that it serves the configuration."""
    assert CADDY is not None
    port = _free_port()
    home.mkdir(parents=True, exist_ok=True)
    caddyfile = home / "Caddyfile"
    caddyfile.write_text("{\n\tadmin off\n\tauto_https off\n}\n"
                         f"http://127.0.0.1:{port} {{\n\tbind 127.0.0.1\n{site}\n}}\n")
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home)}
    proc = subprocess.Popen([CADDY, "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
                            cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    try:
        log = []
        while True:
            line = lines.get(timeout=30)
            log.append(line)
            assert line, "caddy exited:\n" + "".join(log)
            if "serving initial configuration" in line:
                break
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


Call = tuple[str, dict[str, Any]]  # (path, httpx.request keyword arguments)


@pytest.fixture
def same_as_caddy_run(serve: Any, tmp_path: Path) -> Callable[..., list[httpx.Response]]:
    """`same_as_caddy_run(site, [(path, kwargs)...], headers=(...))`: the rws responses,
    after checking that Caddy gives the same status, named headers and body."""
    if CADDY is None:
        pytest.skip("caddy is not installed")

    def compare(site: str, calls: list[Call], headers: tuple[str, ...] = ("Content-Type",)) -> list[httpx.Response]:
        with caddy_serving(site, tmp_path / "caddy") as caddy_url:
            expected = [httpx.request(kw.pop("method", "GET"), caddy_url + path, **kw) for path, kw in _copy(calls)]
        with serve(f"http://127.0.0.1 {{\n{site}\n}}\n") as server:
            got = [httpx.request(kw.pop("method", "GET"), server.url(path), **kw) for path, kw in _copy(calls)]
        for (path, _), want, have in zip(calls, expected, got):
            assert (path, have.status_code) == (path, want.status_code)
            for name in headers:
                assert (path, name, have.headers.get_list(name)) == (path, name, want.headers.get_list(name))
            assert (path, have.content) == (path, want.content)
        return got

    return compare


def _copy(calls: list[Call]) -> list[Call]:
    return [(path, {"timeout": 60, **kw}) for path, kw in calls]


Responder = Callable[[Request], Awaitable[Response]]
