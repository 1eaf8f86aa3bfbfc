"""Active health checks speak what the proxy's requests speak: they go through the proxy's
transport, so an upstream is checked over h2c by prior knowledge, over TLS in the version
ALPN picks, or over HTTP/1.1, as its proxied requests are. Against real upstreams on
127.0.0.1: the small h2 server (h2backends.py), the threaded HTTP/1.1 one (backends.py),
rws itself over TLS, and grpcio. A check also keeps out of the proxy's pools: it dials a
connection of its own, which it closes, and never waits at `max_conns_per_host`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from backends import Backend, Exchange
from h2backends import H2Exchange, tls_server_context
from rws.handlers.reverse_proxy.health import Health
from rws.handlers.reverse_proxy.upstream_pool import HttpTransport
from rws.handlers.reverse_proxy.upstreams import Host, Upstream
from rws.http.message import Headers
from test_health import active, config, ms, run, transport, until
from tests.tls.test_termination import Authority

H2C = {"versions": ["h2c"]}  # what `reverse_proxy h2c://...` sets


def upstream(address: str) -> Upstream:
    return Upstream(address, Host(address))


def check_once(checks: Any, u: Upstream, via: HttpTransport) -> bool:
    """One round of active checks on `u` through the transport `via`; its health after it."""
    async def go() -> bool:
        h = Health(checks, [u], send=via.health_check)
        await h.active.check_all()  # type: ignore[union-attr]
        if via.tls:
            # Cleanup only, no assertion depends on it: a TLS connection the check closed
            # waits for the upstream's close_notify; let that finish before the loop ends.
            await asyncio.sleep(0.05)
        return u.healthy()

    return bool(run(go()))


def answer(status: int, body: bytes = b"") -> Any:
    async def respond(ex: H2Exchange) -> None:
        await ex.body()
        await ex.reply(status, body)

    return respond


# --- h2c -------------------------------------------------------------------------------------


def test_an_h2c_upstream_is_checked_over_http2_on_a_connection_closed_afterwards(backends: Any) -> None:
    backend = backends(answer(200))
    u = upstream(backend.address)

    assert check_once(active(headers={"X-Check": ["{http.reverse_proxy.active.target_upstream}"]}), u,
                      transport(**H2C)) is True
    [ex] = backend.exchanges
    fields = dict(ex.headers)
    assert (fields[":method"], fields[":scheme"], fields[":path"]) == ("GET", "http", "/health")
    assert fields[":authority"] == backend.address and fields["x-check"] == backend.address
    assert fields["user-agent"] == "Go-http-client/1.1" and "host" not in fields
    run(until(lambda: backend.open_connections() == 0))


@pytest.mark.parametrize("status,expect,healthy", [(200, 0, True), (503, 0, False), (503, 503, True),
                                                   (204, 2, True), (200, 5, False)])
def test_an_h2c_upstream_is_judged_by_its_status(backends: Any, status: int, expect: int, healthy: bool) -> None:
    backend = backends(answer(status))
    u = upstream(backend.address)

    assert check_once(active(expect_status=expect), u, transport(**H2C)) is healthy


def test_an_h2c_upstream_goes_down_on_503_and_comes_back(backends: Any) -> None:
    statuses = iter([200, 503, 503, 200])
    backend = backends(lambda ex: answer(next(statuses))(ex))
    u = upstream(backend.address)

    async def go() -> list[bool]:
        h = Health(active(fails=2), [u], send=transport(**H2C).health_check)
        seen = []
        for _ in range(4):
            await h.active.check_all()  # type: ignore[union-attr]
            seen.append(u.healthy())
        return seen

    assert run(go()) == [True, True, False, True]


@pytest.mark.parametrize("body,pattern,max_size,healthy", [
    (b"status: OK", "OK$", 0, True),
    (b"status: down", "OK$", 0, False),
    (b"OK" + b"x" * 1_000_000, "^OK$", 2, True),  # only max_size bytes are read
])
def test_expect_body_over_http2(backends: Any, body: bytes, pattern: str, max_size: int, healthy: bool) -> None:
    backend = backends(answer(200, body))
    u = upstream(backend.address)

    assert check_once(active(expect_body=pattern, max_size=max_size), u, transport(**H2C)) is healthy
    run(until(lambda: backend.open_connections() == 0))


def test_the_request_method_headers_and_body_go_over_http2(backends: Any) -> None:
    seen: list[bytes] = []

    async def respond(ex: H2Exchange) -> None:
        seen.append(await ex.body())
        await ex.reply(200)

    backend = backends(respond)
    u = upstream(backend.address)

    assert check_once(active(method="POST", body="ping", headers={"Host": ["app.test"], "TE": ["trailers"]}), u,
                      transport(**H2C)) is True
    fields = dict(backend.exchanges[0].headers)
    assert (fields[":method"], fields[":authority"], fields["te"], fields["content-length"]) == (
        "POST", "app.test", "trailers", "4")
    assert seen == [b"ping"]


def test_redirects_are_followed_over_http2_when_asked(backends: Any) -> None:
    async def respond(ex: H2Exchange) -> None:
        await ex.body()
        if ex.path == "/health":
            await ex.reply(302, headers=[("location", "/real")])
        else:
            await ex.reply(200)

    backend = backends(respond)

    assert check_once(active(), upstream(backend.address), transport(**H2C)) is False
    assert check_once(active(follow_redirects=True), upstream(backend.address), transport(**H2C)) is True
    assert [ex.path for ex in backend.exchanges] == ["/health", "/health", "/real"]


def test_an_h2c_only_upstream_fails_checks_from_a_transport_that_speaks_http1(backends: Any) -> None:
    backend = backends(answer(200))
    u = upstream(backend.address)

    assert check_once(active(), u, transport()) is False  # the default: HTTP/1.1 to a cleartext upstream
    assert backend.exchanges == []


def test_an_upstream_that_never_sends_its_http2_settings_is_down_and_its_connection_closed() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        sock, _ = listener.accept()
        accepted.append(sock)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        u = upstream(f"127.0.0.1:{listener.getsockname()[1]}")

        assert check_once(active(timeout=ms(200)), u, transport(**H2C)) is False
        thread.join(5)
        [sock] = accepted
        sock.settimeout(5)
        received = b""
        while data := sock.recv(65536):  # the client preface, then the end: the check closed it
            received += data
        assert received.startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        sock.close()
    finally:
        listener.close()


# --- TLS -------------------------------------------------------------------------------------


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return Authority(tmp_path)


def tls(ca: Authority, **settings: Any) -> dict[str, Any]:
    return {"tls": {"root_ca_pem_files": [str(ca.pem)], "server_name": "up.test"}, **settings}


@pytest.mark.parametrize("status,healthy", [(200, True), (503, False)])
def test_a_tls_upstream_offering_h2_is_checked_over_http2(backends: Any, ca: Authority, status: int,
                                                         healthy: bool) -> None:
    cert, key = ca.leaf("up", "up.test")
    backend = backends(answer(status), tls=tls_server_context(cert, key, ["h2"]))
    u = upstream(backend.address)

    assert check_once(active(), u, transport(**tls(ca))) is healthy
    [ex] = backend.exchanges
    assert (ex.header(":scheme"), ex.header(":path")) == ("https", "/health")


@pytest.mark.parametrize("protocols,versions,proto", [
    ("h1 h2", None, "HTTP/2.0"),  # Caddy's default versions, 1.1 and 2: h2 by ALPN
    ("h1", None, "HTTP/1.1"),  # the upstream chooses http/1.1
    ("h1 h2", ["1.1"], "HTTP/1.1"),  # the proxy offers only http/1.1
])
def test_over_tls_the_check_speaks_the_version_alpn_chose(serve: Any, ca: Authority, protocols: str,
                                                          versions: list[str] | None, proto: str) -> None:
    """rws over TLS as the upstream, answering with the version its request came in."""
    cert, key = ca.leaf("up", "up.test")
    rwsfile = (f"{{\n\tservers {{\n\t\tprotocols {protocols}\n\t}}\n}}\n"
               f"up.test {{\n\ttls {cert} {key}\n\trespond \"{{http.request.proto}}\"\n}}\n")
    with serve(rwsfile) as up:
        u = upstream(f"127.0.0.1:{up.port()}")
        via = transport(**tls(ca, **({"versions": versions} if versions else {})))
        checks = active(headers={"Host": ["up.test"]}, expect_body=f"^{proto}$")

        assert check_once(checks, u, via) is True


# --- the proxy's pools -----------------------------------------------------------------------


def test_a_check_does_not_wait_behind_proxied_requests_at_max_conns_per_host() -> None:
    release = threading.Event()

    def respond(ex: Exchange) -> None:
        if ex.target == "/slow":
            release.wait(10)
        ex.reply(200)

    backend = Backend("one", respond)
    via = transport(max_conns_per_host=1)
    u = upstream(backend.address)

    async def go() -> tuple[bool, int]:
        proxied = asyncio.ensure_future(via.round_trip(backend.address, "GET", "/slow", Headers([("Host", "x")]),
                                                       None, chunked=False, head_only=False))
        await until(lambda: len(backend.requests) == 1)  # the proxied request holds the only connection
        h = Health(active(timeout=ms(3000)), [u], send=via.health_check)
        await h.active.check_all()  # type: ignore[union-attr]
        healthy = u.healthy()
        release.set()
        assert (await proxied).status == 200
        open_connections = via.pools[backend.address].open
        via.close()
        return healthy, open_connections

    try:
        assert run(go()) == (True, 1)  # the check passed, and the pool has only the proxied connection
        assert [ex.target for ex in backend.requests] == ["/slow", "/health"]
        assert backend.connections == 2
    finally:
        release.set()
        backend.close()


def test_checks_take_no_stream_of_the_proxys_http2_connections(backends: Any) -> None:
    release = asyncio.Event()

    async def respond(ex: H2Exchange) -> None:
        await ex.body()
        if ex.path == "/slow":
            await release.wait()
        await ex.reply(200)

    backend = backends(respond, max_streams=1)
    via = transport(max_conns_per_host=1, **H2C)
    u = upstream(backend.address)

    async def go() -> tuple[bool, list[int]]:
        proxied = asyncio.ensure_future(via.round_trip(backend.address, "GET", "/slow", Headers([("Host", "x")]),
                                                       None, chunked=False, head_only=False))
        await until(lambda: len(backend.exchanges) == 1)  # its one stream, on the one connection allowed
        h = Health(active(timeout=ms(3000)), [u], send=via.health_check)
        for _ in range(2):
            await h.active.check_all()  # type: ignore[union-attr]
        healthy = u.healthy()
        backend.soon(release.set)
        assert (await proxied).status == 200
        streams = [len(conn.streams) for conn in via.pools[backend.address].h2]
        via.close()
        return healthy, streams

    assert run(go()) == (True, [0])  # the proxy's pool kept its one connection, and the checks had their own
    assert [len(conn.stream_ids) for conn in backend.connections] == [1, 1, 1]


# --- gRPC ------------------------------------------------------------------------------------

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
EMPTY_MESSAGE = "\u0000" * 5  # a gRPC frame: not compressed, 0 bytes (an empty HealthCheckRequest)
SERVING = r"\x08\x01$"  # the end of the frame of HealthCheckResponse{status: SERVING}
GRPC_CHECK = {"uri": HEALTH_CHECK, "method": "POST", "body": EMPTY_MESSAGE, "expect_body": SERVING,
              "headers": {"Content-Type": ["application/grpc"], "TE": ["trailers"]}}


class GrpcUpstream:
    """A grpcio server on 127.0.0.1 with the standard health service's Check (whose answer
    `serving` decides) and an echo method; bytes in and out, no generated code."""

    def __init__(self) -> None:
        self.serving = True
        self.checks = 0
        health = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpc.unary_unary_rpc_method_handler(self.check)})
        echo = grpc.method_handlers_generic_handler("rws.test.Echo", {
            "Unary": grpc.unary_unary_rpc_method_handler(lambda request, context: request[::-1])})
        self.server = grpc.server(ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((health, echo))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"
        self.server.start()

    def check(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.checks += 1
        return b"\x08\x01" if self.serving else b"\x08\x02"  # HealthCheckResponse{status: SERVING or NOT_SERVING}

    def stop(self) -> None:
        self.server.stop(0)


@pytest.fixture
def grpc_upstream() -> Iterator[GrpcUpstream]:
    service = GrpcUpstream()
    yield service
    service.stop()


def test_a_grpc_upstream_behind_h2c_is_checked_with_its_health_service(grpc_upstream: GrpcUpstream) -> None:
    u = upstream(grpc_upstream.address)

    async def go() -> list[bool]:
        h = Health(config(active=GRPC_CHECK), [u], send=transport(**H2C).health_check)
        seen = []
        for serving in (True, False, True):
            grpc_upstream.serving = serving
            await h.active.check_all()  # type: ignore[union-attr]
            seen.append(u.healthy())
        return seen

    assert run(go()) == [True, False, True]
    assert grpc_upstream.checks == 3


@pytest.mark.parametrize("checks,healthy", [
    ({"uri": HEALTH_CHECK}, False),  # grpcio resets a GET: a plain health_uri can't check it
    ({"uri": HEALTH_CHECK, "method": "POST", "headers": {"Content-Type": ["application/grpc"], "TE": ["trailers"]}},
     True),  # any gRPC call gets a 200 (the gRPC status comes after it)
    ({"uri": "/no.Such/Method", "method": "POST", "headers": {"Content-Type": ["application/grpc"],
                                                               "TE": ["trailers"]}}, True),
])
def test_what_a_grpc_server_answers_a_plain_check(grpc_upstream: GrpcUpstream, checks: dict[str, Any],
                                                  healthy: bool) -> None:
    assert check_once(config(active=checks), upstream(grpc_upstream.address), transport(**H2C)) is healthy


def test_through_the_proxy_a_grpc_upstream_that_is_not_serving_gets_no_calls(serve: Any,
                                                                              grpc_upstream: GrpcUpstream) -> None:
    proxy = {"handler": "reverse_proxy", "upstreams": [{"dial": grpc_upstream.address}],
             "transport": {"protocol": "http", **H2C},
             "health_checks": {"active": {**GRPC_CHECK, "interval": "50ms"}}}
    server = {"listen": ["127.0.0.1:0"], "protocols": ["h1", "h2c"], "routes": [{"handle": [proxy]}]}
    tree = json.loads(json.dumps({"apps": {"http": {"servers": {"grpc": server}}}}))
    with serve(tree) as front:
        with grpc.insecure_channel(f"127.0.0.1:{front.port()}") as channel:
            unary = channel.unary_unary("/rws.test.Echo/Unary")
            assert unary(b"abc", timeout=10) == b"cba"
            grpc_upstream.serving = False
            assert wait_for_code(unary, grpc.StatusCode.UNAVAILABLE)  # 503: no upstream available
            grpc_upstream.serving = True
            assert wait_for_code(unary, grpc.StatusCode.OK)


def wait_for_code(unary: Any, code: grpc.StatusCode, timeout: float = 5.0) -> bool:
    """Call until a call ends with `code`; False if none does within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            unary(b"x", timeout=5)
            seen = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            seen = exc.code()
        if seen == code:
            return True
        time.sleep(0.02)
    return False
