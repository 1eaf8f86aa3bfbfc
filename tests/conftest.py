"""Shared fixtures: `serve` runs rws in-process on loopback with ephemeral ports."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

import pytest

from rws.errors import RwsfileError
from rws.rwsfile.adapt import adapt_text
from rws.runtime.runtime import Runtime


class RunningServer:
    """A Runtime on its own event loop thread; `url()` gives addresses to send requests to."""

    def __init__(self, admin: bool = False, autosave: bool = False, loop: str = "asyncio") -> None:
        if loop == "uvloop":
            import uvloop

            self.loop = uvloop.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.with_admin = admin
        self.autosave = autosave
        self.runtime: Runtime = self.call(self._make_runtime)

    async def _make_runtime(self) -> Runtime:
        from rws.admin.api import AdminEndpoint

        runtime = Runtime(autosave=self.autosave)
        if self.with_admin:
            runtime.admin = AdminEndpoint(runtime)
        return runtime

    def admin_url(self, path: str = "/config/") -> str:
        """The admin API (start with `serve(config, admin=True)`; it listens on 127.0.0.1:0)."""
        assert self.runtime.admin is not None and self.runtime.admin.listeners
        host, port = self.runtime.admin.listeners[0].bound
        return f"http://{host}:{port}{path}"

    def call(self, make_coro: Callable[[], Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(make_coro(), self.loop).result(timeout)

    def apply(self, config: dict[str, Any] | str, parser: str | None = None) -> None:
        tree = to_tree(config)
        if self.with_admin:
            tree.setdefault("admin", {}).setdefault("listen", "127.0.0.1:0")
        self.call(lambda: self.runtime.apply(tree))
        if parser is not None:
            self.use_parser(parser)

    def use_parser(self, parser: str) -> None:
        """Serve new connections with the named HTTP/1 parser backend ("httptools" or "h11")."""
        from rws.protocols.http1.parse_h11 import H11Parser
        from rws.protocols.http1.parse_httptools import HttptoolsParser

        backend = {"h11": H11Parser, "httptools": HttptoolsParser}[parser]
        gen = self.runtime.generation
        assert gen is not None
        for server in gen.servers.values():
            server.backend = backend

    def port(self, server: str | None = None) -> int:
        gen = self.runtime.generation
        assert gen is not None, "no config applied"
        name = server or sorted(gen.servers)[0]
        return gen.bound(name)[0][1]

    def url(self, path: str = "/", server: str | None = None) -> str:
        return f"http://127.0.0.1:{self.port(server)}{path}"

    def tree(self) -> dict[str, Any]:
        return self.runtime.tree

    def stop(self) -> None:
        try:
            self.call(lambda: self.runtime.stop(grace_period=5))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def to_tree(config: dict[str, Any] | str) -> dict[str, Any]:
    """A JSON tree (copied) or an Rwsfile's adapted tree, with every listener on 127.0.0.1:0
    unless a listener already names 127.0.0.1."""
    tree = json.loads(json.dumps(config)) if isinstance(config, dict) else adapt_text(config)[0]
    servers = tree.get("apps", {}).get("http", {}).get("servers", {})
    for server in servers.values():
        listen = server.get("listen") or []
        if not all(addr.startswith("127.0.0.1:") for addr in listen):
            server["listen"] = ["127.0.0.1:0"]
        server.setdefault("automatic_https", {})["disable"] = True
    return tree


@pytest.fixture
def serve() -> Iterator[Callable[[dict[str, Any] | str], Any]]:
    """`with serve(config) as server:` where config is a JSON tree or Rwsfile text
    (`loop="uvloop"` runs it on uvloop, as `rws run` does)."""
    running: list[RunningServer] = []

    @contextmanager
    def start(config: dict[str, Any] | str, parser: str | None = None, admin: bool = False,
              autosave: bool = False, loop: str = "asyncio") -> Iterator[RunningServer]:
        server = RunningServer(admin=admin, autosave=autosave, loop=loop)
        running.append(server)
        server.apply(config, parser)
        try:
            yield server
        finally:
            server.stop()
            running.remove(server)

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def adapt_error() -> Callable[[str, int], RwsfileError]:
    """`adapt_error(text, line)`: adapting `text` fails with an error at `Rwsfile:<line>: `."""

    def run(text: str, line: int) -> RwsfileError:
        with pytest.raises(RwsfileError) as info:
            adapt_text(text, "Rwsfile")
        err = info.value
        assert (err.file, err.line) == ("Rwsfile", line), str(err)
        assert str(err).startswith(f"Rwsfile:{line}: ")
        return err

    return run
