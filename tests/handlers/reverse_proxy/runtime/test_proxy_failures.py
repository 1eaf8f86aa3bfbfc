"""The proxy when upstreams fail under load: killed and restarted backends, backends that
close connections at random, and many slow clients. Real sockets throughout."""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from typing import Any

import httpx

from backends import Backend, Exchange
from test_proxy import proxy_config


def _states(server: Any) -> dict[str, dict[str, Any]]:
    return {s["address"]: s for s in httpx.get(server.admin_url("/reverse_proxy/upstreams")).json()}


def _wait_until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_a_backend_killed_mid_load_costs_no_request_and_comes_back(serve):
    a = Backend("a")
    b = Backend("b")
    port = a.port
    config = proxy_config(a.address, b.address,
                          load_balancing={"selection_policy": {"policy": "round_robin"}, "retries": 2},
                          health_checks={"active": {"uri": "/health", "interval": "100ms", "timeout": "1s",
                                                    "passes": 2, "fails": 1}})
    statuses: list[int] = []
    with serve(config, admin=True) as server:
        with httpx.Client() as client:
            for i in range(300):
                if i == 100:
                    a.close()  # killed mid-load: its listener and open connections go away
                    hold = _hold(port)  # bound, not listening: refused, and no other test's server can take it
                statuses.append(client.get(server.url(f"/{i}")).status_code)
            _wait_until(lambda: _states(server)[f"127.0.0.1:{port}"]["healthy"] is False)
            hold.close()
            back = Backend("a", port=port)  # recovers on the same address
            try:
                _wait_until(lambda: _states(server)[f"127.0.0.1:{port}"]["healthy"] is True)
                # no flapping: it stays up over the next checks
                for _ in range(10):
                    assert _states(server)[f"127.0.0.1:{port}"]["healthy"] is True
                    time.sleep(0.05)
                bodies = {client.get(server.url("/")).content for _ in range(6)}
            finally:
                back.close()
    b.close()
    assert statuses == [200] * 300
    assert bodies == {b"a", b"b"}


def _hold(port: int) -> socket.socket:
    """A socket bound to `port` (once the closed listener has let go of it), not listening."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + 10
    while True:
        try:
            sock.bind(("127.0.0.1", port))
            return sock
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.005)


def _open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except FileNotFoundError:  # closed while we looked
            pass
    return count


def test_no_connection_leaks_when_a_backend_closes_at_random(serve):
    rng = random.Random(7)
    lock = threading.Lock()

    def respond(ex: Exchange) -> None:
        with lock:
            fate = rng.random()
        if fate < 0.1:
            ex.sock.shutdown(socket.SHUT_RDWR)  # gone without an answer
        elif fate < 0.3:
            ex.reply(200, b"bye", [("Connection", "close")])
            ex.sock.shutdown(socket.SHUT_RDWR)
        else:
            ex.reply(200, b"ok")
    backend = Backend("random", respond=respond)
    transport = {"protocol": "http", "keep_alive": {"idle_timeout": "200ms"}}
    try:
        with serve(proxy_config(backend.address, transport=transport)) as server:
            baseline = _open_sockets()
            codes: dict[int, int] = {}
            with httpx.Client() as client:
                for _ in range(10_000):
                    code = client.get(server.url("/")).status_code
                    codes[code] = codes.get(code, 0) + 1
            _wait_until(lambda: not backend.open, timeout=10)  # idle upstream connections closed
            _wait_until(lambda: _open_sockets() <= baseline, timeout=10)
    finally:
        backend.close()
    assert set(codes) <= {200, 502} and codes[200] > 7500


def test_many_slow_clients_do_not_stop_fast_ones(serve):
    backend = Backend("fast")
    slow: list[socket.socket] = []
    try:
        with serve(proxy_config(backend.address)) as server:
            for _ in range(1000):
                sock = socket.create_connection(("127.0.0.1", server.port()), timeout=10)
                sock.sendall(b"GET /slow HTTP/1.1\r\nHost: a\r\nX-Partial: ")  # a head that never ends
                slow.append(sock)
            with httpx.Client() as client:
                fast = [client.get(server.url("/fast")).content for _ in range(20)]
    finally:
        for sock in slow:
            sock.close()
        backend.close()
    assert fast == [b"fast"] * 20
    assert all(ex.target == "/fast" for ex in backend.requests)
