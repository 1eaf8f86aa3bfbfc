"""Config changes while serving: no request fails, unchanged listeners keep their sockets,
removed ones close, a bad config changes nothing."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import httpx
import pytest

from rws.errors import RwsError


def config(terminal: bool, extra_server: bool = False, listen: str = "127.0.0.1:0") -> dict[str, Any]:
    servers: dict[str, Any] = {"srv0": {"listen": [listen], "routes": [{"terminal": True}] if terminal else []}}
    if extra_server:
        servers["extra"] = {"listen": ["127.0.0.1:0"], "routes": []}
    return {"apps": {"http": {"servers": servers}}}


class Load:
    """A client loop on keep-alive connections until stopped; counts results."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url = url
        self.ok = 0
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(clients)]

    def _loop(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stopping.is_set():
                try:
                    response = client.get(self.url)
                    if response.status_code == 200:
                        self.ok += 1
                    else:
                        self.failures.append(f"status {response.status_code}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        self.wait_for_more(10)
        return self

    def wait_for_more(self, count: int) -> None:
        """Let the clients complete `count` more requests (or fail trying)."""
        target = self.ok + count
        deadline = time.monotonic() + 30
        while self.ok < target and not self.failures and time.monotonic() < deadline:
            time.sleep(0.005)

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(30)


def test_fifty_config_changes_under_load_lose_no_request(serve: Any) -> None:
    with serve(config(False)) as server:
        port = server.port()
        listener = next(iter(server.runtime.pool.listeners.values()))
        with Load(server.url("/")) as load:
            for i in range(50):
                server.apply(config(terminal=i % 2 == 0))
                load.wait_for_more(20)
        assert load.failures == []
        assert load.ok > 0
        assert server.port() == port  # the same socket all along
        assert next(iter(server.runtime.pool.listeners.values())) is listener


def test_a_removed_listener_is_closed_and_a_kept_one_still_serves(serve: Any) -> None:
    with serve(config(False, extra_server=True)) as server:
        extra_port = server.port("extra")
        assert httpx.get(f"http://127.0.0.1:{extra_port}/").status_code == 200
        server.apply(config(True))
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{extra_port}/")
        assert httpx.get(server.url("/")).status_code == 200


def test_a_config_that_fails_to_load_leaves_the_running_one(serve: Any) -> None:
    with serve(config(False)) as server:
        before = server.tree()
        bad = config(False)
        bad["apps"]["http"]["servers"]["srv0"]["routes"] = [{"handle": [{"handler": "no_such_handler"}]}]
        with pytest.raises(RwsError):
            server.apply(bad)
        assert server.tree() == before
        assert httpx.get(server.url("/")).status_code == 200


def test_a_listen_address_already_in_use_fails_the_load_and_changes_nothing(serve: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        with serve(config(False)) as server:
            before = server.tree()
            with pytest.raises(RwsError, match="listening on"):
                server.apply(config(False, listen=f"127.0.0.1:{busy}"))
            assert server.tree() == before
            assert httpx.get(server.url("/")).status_code == 200
