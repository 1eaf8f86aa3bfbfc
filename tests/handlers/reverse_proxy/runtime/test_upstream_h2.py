"""The reverse proxy to HTTP/2 upstreams over real sockets: h2c by prior knowledge and TLS
with ALPN, against a small h2 server whose behaviour each test chooses (h2backends.py)
and against rws itself; clients are httpx, raw sockets and a raw h2 client."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
from h2.errors import ErrorCodes

from backends import Backend, Exchange, closed_port
from h2backends import H2Exchange, h2_request, tls_server_context
from tests.tls.test_termination import Authority

H2C = {"protocol": "http", "versions": ["h2c", "2"]}


def proxy_config(*dials: str, transport: dict[str, Any] | None = H2C, protocols: tuple[str, ...] = ("h1", "h2c"),
                 **handler: Any) -> dict[str, Any]:
    proxy: dict[str, Any] = {"handler": "reverse_proxy", "upstreams": [{"dial": d} for d in dials], **handler}
    if transport is not None:
        proxy["transport"] = transport
    server = {"listen": ["127.0.0.1:0"], "protocols": list(protocols), "routes": [{"handle": [proxy]}]}
    return {"apps": {"http": {"servers": {"proxy": server}}}}


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def together(count: int) -> tuple[Callable[[], Any], list[int]]:
    """A respond function that holds each stream until `count` streams are open at once,
    and the list of in-flight counts it saw (the peak is what the proxy allowed)."""
    state = {"in_flight": 0}
    seen: list[int] = []
    arrived: list[asyncio.Event] = []

    async def respond(ex: H2Exchange) -> None:
        if not arrived:
            arrived.append(asyncio.Event())
        state["in_flight"] += 1
        seen.append(state["in_flight"])
        if state["in_flight"] >= count:
            arrived[0].set()
        await ex.body()
        await arrived[0].wait()
        state["in_flight"] -= 1
        await ex.reply(200, ex.path.encode())

    return respond, seen


def concurrently(count: int, request: Callable[[int], Any]) -> list[Any]:
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        results[i] = request(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def read_to_end(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


# --- the request and the response ---------------------------------------------------------


def test_the_upstream_gets_pseudo_fields_and_lower_case_fields_without_connection_ones(serve, backends):
    async def respond(ex: H2Exchange) -> None:
        body = await ex.body()
        await ex.reply(201, hashlib.sha256(body).hexdigest().encode(),
                       [("content-type", "text/x-test"), ("x-up", "1"), ("server", "upstream")])

    backend = backends(respond)
    data = b"x" * 300_000
    with serve(proxy_config(backend.address)) as server:
        port = server.port()
        response = httpx.post(server.url("/a/b?c=d"), content=data,
                              headers={"X-Client": "yes", "Connection": "keep-alive, X-Drop", "X-Drop": "gone",
                                       "Keep-Alive": "timeout=5", "TE": "trailers"})
    assert (response.status_code, response.content) == (201, hashlib.sha256(data).hexdigest().encode())
    assert response.headers["x-up"] == "1" and response.headers["server"] == "upstream"
    assert response.headers["content-type"] == "text/x-test" and response.headers["via"] == "1.1 rws"
    seen = backend.exchanges[0]
    assert seen.headers[:4] == [(":method", "POST"), (":scheme", "http"), (":authority", f"127.0.0.1:{port}"),
                                (":path", "/a/b?c=d")]
    names = [name for name, _ in seen.headers]
    assert all(name == name.lower() for name in names)
    assert "host" not in names and "connection" not in names and "keep-alive" not in names
    assert "x-drop" not in names and "transfer-encoding" not in names
    assert seen.header("te") == "trailers" and seen.header("x-client") == "yes"
    assert seen.header("content-length") == str(len(data))
    assert seen.header("x-forwarded-for") == "127.0.0.1" and seen.header("via") == "1.1 rws"


def test_trailers_reach_an_http11_client_as_chunked_trailer_fields(serve, backends):
    async def respond(ex: H2Exchange) -> None:
        await ex.body()
        await ex.reply(200, b"part one, part two", trailers=[("x-checksum", "abc123"), ("grpc-status", "0")])

    backend = backends(respond)
    with serve(proxy_config(backend.address)) as server:
        with socket.create_connection(("127.0.0.1", server.port()), timeout=10) as sock:
            sock.sendall(b"GET /t HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Transfer-Encoding: chunked" in head
    assert b"part one, part two" in body
    tail = body[body.index(b"\r\n0\r\n") + 5:]
    assert b"X-Checksum: abc123\r\n" in tail and b"Grpc-Status: 0\r\n" in tail


def test_trailers_reach_an_http2_client(serve, backends):
    async def respond(ex: H2Exchange) -> None:
        await ex.body()
        await ex.reply(200, b"body", trailers=[("x-checksum", "abc123")])

    backend = backends(respond)
    with serve(proxy_config(backend.address)) as server:
        reply = h2_request(server.port(), "/t", headers=[("te", "trailers")])
    assert (reply["status"], reply["body"]) == (200, b"body")
    assert reply["trailers"] == [("x-checksum", "abc123")]


def test_an_http2_client_and_an_http2_upstream_stream_both_ways(serve, backends):
    """httpx speaking h2c to rws, rws speaking h2c to the upstream: bodies in both directions."""
    async def respond(ex: H2Exchange) -> None:
        body = await ex.body()
        await ex.reply(200, body[::-1] * 3)

    backend = backends(respond)
    data = bytes(range(256)) * 4000
    with serve(proxy_config(backend.address)) as server:
        with httpx.Client(http1=False, http2=True) as client:
            response = client.post(server.url("/up"), content=data)
    assert response.http_version == "HTTP/2"
    assert response.content == data[::-1] * 3


# --- sharing connections -------------------------------------------------------------------


def test_many_requests_at_once_share_one_connection(serve, backends):
    respond, seen = together(20)
    backend = backends(respond)
    with serve(proxy_config(backend.address)) as server:
        url = server.url
        results = concurrently(20, lambda i: httpx.get(url(f"/{i}"), timeout=20))
    assert [(r.status_code, r.content) for r in results] == [(200, f"/{i}".encode()) for i in range(20)]
    assert len(backend.connections) == 1
    assert max(seen) == 20  # twenty streams open at once on it


def test_the_upstreams_stream_limit_opens_another_connection(serve, backends):
    respond, seen = together(4)
    backend = backends(respond, max_streams=2)
    with serve(proxy_config(backend.address)) as server:
        url = server.url
        results = concurrently(4, lambda i: httpx.get(url(f"/{i}"), timeout=20))
    assert [r.status_code for r in results] == [200] * 4
    assert len(backend.connections) == 2
    assert sorted(len(c.stream_ids) for c in backend.connections) == [2, 2]


def test_at_max_conns_per_host_requests_wait_for_a_free_stream(serve, backends):
    release = threading.Event()

    async def respond(ex: H2Exchange) -> None:
        await ex.body()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 20)
        await ex.reply(200, ex.path.encode())

    backend = backends(respond, max_streams=2)
    transport = {**H2C, "max_conns_per_host": 1}
    with serve(proxy_config(backend.address, transport=transport)) as server:
        port = server.port()
        results: list[Any] = []
        thread = threading.Thread(target=lambda: results.extend(
            concurrently(5, lambda i: httpx.get(f"http://127.0.0.1:{port}/{i}", timeout=20))))
        thread.start()
        # two streams on the one connection; three requests wait
        assert wait_for(lambda: bool(pools_of(server)) and len(pools_of(server)[0].waiting) == 3)
        assert len(backend.exchanges) == 2
        release.set()
        thread.join(30)
    assert [r.status_code for r in results] == [200] * 5
    assert len(backend.connections) == 1 and len(backend.exchanges) == 5


def test_an_idle_connection_closes_after_the_keepalive_idle_timeout(serve, backends):
    backend = backends()
    transport = {**H2C, "keep_alive": {"idle_timeout": "200ms"}}
    with serve(proxy_config(backend.address, transport=transport)) as server:
        assert httpx.get(server.url("/once")).content == b"/once"
        assert backend.open_connections() == 1
        assert wait_for(lambda: backend.open_connections() == 0)
        assert httpx.get(server.url("/again")).content == b"/again"  # a new connection
    assert len(backend.connections) == 2 and backend.connections[0].goaway_received


def test_without_keepalive_each_request_has_its_own_connection(serve, backends):
    backend = backends()
    transport = {**H2C, "keep_alive": {"enabled": False}}
    with serve(proxy_config(backend.address, transport=transport)) as server:
        for i in range(3):
            assert httpx.get(server.url(f"/{i}")).content == f"/{i}".encode()
        assert wait_for(lambda: backend.open_connections() == 0)
    assert [c.stream_ids for c in backend.connections] == [[1], [1], [1]]


def test_stream_ids_running_out_retire_the_connection(serve, backends, monkeypatch):
    import rws.handlers.reverse_proxy.upstream_h2 as upstream_h2

    monkeypatch.setattr(upstream_h2, "STREAM_ID_LIMIT", 5)
    backend = backends()
    with serve(proxy_config(backend.address)) as server:
        for i in range(7):
            assert httpx.get(server.url(f"/{i}")).content == f"/{i}".encode()
        assert wait_for(lambda: backend.open_connections() == 1)  # the two retired ones closed
    assert [c.stream_ids for c in backend.connections] == [[1, 3, 5], [1, 3, 5], [1]]


# --- GOAWAY and refused streams --------------------------------------------------------------


def test_after_goaway_the_stream_in_flight_finishes_and_new_requests_use_a_new_connection(serve, backends):
    async def respond(ex: H2Exchange) -> None:
        await ex.body()
        if ex.conn.stream_ids == [1] and len(ex.conn.backend.connections) == 1:
            ex.conn.goaway(last_stream_id=1)  # the first stream is still served
        await ex.reply(200, ex.path.encode())

    backend = backends(respond)
    with serve(proxy_config(backend.address)) as server:
        assert httpx.get(server.url("/first")).content == b"/first"
        for i in range(3):
            assert httpx.get(server.url(f"/{i}")).content == f"/{i}".encode()
    assert [c.stream_ids for c in backend.connections] == [[1], [1, 3, 5]]


def test_a_stream_above_the_goaway_last_stream_id_is_sent_again_on_a_new_connection(serve, backends):
    second = asyncio.Event()

    async def respond(ex: H2Exchange) -> None:
        await ex.body()
        if len(ex.conn.backend.connections) == 1:
            if ex.stream_id == 1:
                await second.wait()  # holds stream 1 until stream 3 is here too
            else:
                ex.conn.goaway(last_stream_id=1)  # stream 3 will not be processed
                second.set()
                return
        await ex.reply(200, ex.path.encode())

    backend = backends(respond)
    with serve(proxy_config(backend.address)) as server:
        url = server.url
        results = concurrently(2, lambda i: httpx.get(url(f"/{i}"), timeout=20))
    assert [(r.status_code, r.content) for r in results] == [(200, b"/0"), (200, b"/1")]
    assert len(backend.connections) == 2
    assert len(backend.connections[0].stream_ids) == 2 and backend.connections[1].stream_ids == [1]


def test_a_refused_stream_is_sent_again_on_another_connection(serve, backends):
    async def respond(ex: H2Exchange) -> None:
        if len(ex.conn.backend.exchanges) == 1:
            ex.reset(ErrorCodes.REFUSED_STREAM)
            return
        await ex.body()
        await ex.reply(200, ex.path.encode())

    backend = backends(respond)
    with serve(proxy_config(backend.address)) as server:
        response = httpx.get(server.url("/again"))
    assert (response.status_code, response.content) == (200, b"/again")
    assert [c.stream_ids for c in backend.connections] == [[1], [1]]


def test_a_refused_request_with_a_buffered_body_is_sent_again_whole(serve, backends):
    async def respond(ex: H2Exchange) -> None:
        if len(ex.conn.backend.exchanges) == 1:
            ex.reset(ErrorCodes.REFUSED_STREAM)
            return
        await ex.reply(200, hashlib.sha256(await ex.body()).hexdigest().encode())

    backend = backends(respond)
    data = bytes(range(256)) * 1000  # more than the upstream's first window
    with serve(proxy_config(backend.address, request_buffers=1 << 20)) as server:
        response = httpx.post(server.url("/up"), content=data)
    assert (response.status_code, response.content) == (200, hashlib.sha256(data).hexdigest().encode())
    assert len(backend.exchanges) == 2


def test_a_reload_of_an_rws_upstream_drains_with_goaway_and_requests_keep_succeeding(serve):
    """rws as the HTTP/2 upstream: each reload sends GOAWAY on the connection the proxy
    holds; the proxy's next requests go on a new connection, and none fails."""
    def upstream_config(port: int, text: str) -> dict[str, Any]:
        route = {"handle": [{"handler": "static_response", "body": "{http.request.proto} " + text}]}
        return {"apps": {"http": {"servers": {"up": {"listen": [f"127.0.0.1:{port}"], "protocols": ["h1", "h2c"],
                                                     "routes": [route]}}}}}

    port = closed_port()
    with serve(upstream_config(port, "first")) as upstream:
        with serve(proxy_config(f"127.0.0.1:{port}")) as server:
            with httpx.Client() as client:
                assert client.get(server.url("/")).text == "HTTP/2.0 first"
                for round in range(3):
                    upstream.apply(upstream_config(port, str(round)))
                    for _ in range(3):
                        response = client.get(server.url("/"))
                        assert (response.status_code, response.text) == (200, f"HTTP/2.0 {round}")


# --- flow control ---------------------------------------------------------------------------


def test_an_upload_is_read_from_the_client_only_as_fast_as_the_upstream_takes_it(serve, backends):
    go = threading.Event()
    digests: list[str] = []

    async def respond(ex: H2Exchange) -> None:
        await asyncio.get_running_loop().run_in_executor(None, go.wait, 30)
        digests.append(hashlib.sha256(await ex.body()).hexdigest())
        await ex.reply(200, b"done")

    backend = backends(respond)
    size = 48 * 1024 * 1024
    piece = bytes(range(256)) * 256  # 64 KiB
    sent = [0]
    with serve(proxy_config(backend.address)) as server:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            sock.connect(("127.0.0.1", server.port()))
            sock.sendall(f"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
                         .encode())

            def upload() -> None:
                for _ in range(size // len(piece)):
                    sock.sendall(piece)
                    sent[0] += len(piece)

            uploader = threading.Thread(target=upload, daemon=True)
            uploader.start()
            assert wait_for(lambda: len(backend.exchanges) == 1)
            settled = _settle(lambda: sent[0])
            held = backend.exchanges[0].received
            assert held <= 65535  # the upstream's window, never more
            assert settled < size // 2  # rws stopped reading the client long before the end
            go.set()
            uploader.join(60)
            response = read_to_end(sock)
    assert response.startswith(b"HTTP/1.1 200") and b"done" in response.partition(b"\r\n\r\n")[2]
    assert digests == [hashlib.sha256(piece * (size // len(piece))).hexdigest()]


def test_a_slow_client_does_not_make_rws_buffer_the_whole_response(serve, backends):
    size = 64 * 1024 * 1024
    piece = bytes(range(256)) * 1024  # 256 KiB

    async def respond(ex: H2Exchange) -> None:
        await ex.body()
        ex.send_headers(200, [("content-length", str(size))])
        for i in range(size // len(piece)):
            await ex.send(piece, end=i == size // len(piece) - 1)

    backend = backends(respond)
    with serve(proxy_config(backend.address)) as server:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.connect(("127.0.0.1", server.port()))
            sock.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
            assert wait_for(lambda: len(backend.exchanges) == 1)
            exchange = backend.exchanges[0]
            assert wait_for(exchange.window_shut.is_set)
            settled = _settle(lambda: exchange.sent)
            assert settled < size // 4  # held up by the client: rws holds about a window, not the body
            received = 0
            digest = hashlib.sha256()
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(65536)
            head, _, rest = head.partition(b"\r\n\r\n")
            digest.update(rest)
            received = len(rest)
            while received < size:
                data = sock.recv(1 << 20)
                assert data
                digest.update(data)
                received += len(data)
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 67108864" in head
    assert digest.hexdigest() == hashlib.sha256(piece * (size // len(piece))).hexdigest()


def _settle(measure: Callable[[], int]) -> int:
    """`measure()` once it has stopped growing (the same over half a second)."""
    last = -1
    while True:
        now = measure()
        if now == last:
            return now
        last = now
        time.sleep(0.5)


# --- timeouts and failures -------------------------------------------------------------------


def test_no_response_head_within_response_header_timeout_is_504(serve, backends):
    async def respond(ex: H2Exchange) -> None:
        await asyncio.sleep(5)

    backend = backends(respond)
    transport = {**H2C, "response_header_timeout": "200ms"}
    with serve(proxy_config(backend.address, transport=transport)) as server:
        assert httpx.get(server.url("/slow")).status_code == 504
    assert wait_for(lambda: backend.exchanges[0].reset_code == ErrorCodes.CANCEL)  # the upstream is told


def test_a_dead_upstream_is_502_and_retries_go_to_a_live_one(serve, backends):
    backend = backends()
    dead = f"127.0.0.1:{closed_port()}"
    with serve(proxy_config(dead)) as server:
        assert httpx.get(server.url("/")).status_code == 502
    with serve(proxy_config(dead, backend.address, load_balancing={"retries": 2,
                                                                     "selection_policy": {"policy": "first"}})) as server:
        for i in range(3):
            assert httpx.get(server.url(f"/{i}")).content == f"/{i}".encode()


def test_an_upstream_that_does_not_speak_h2c_is_502(serve):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def answer_in_http11() -> None:
            with listener.accept()[0] as sock:
                sock.recv(65536)
                sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

        thread = threading.Thread(target=answer_in_http11, daemon=True)
        thread.start()
        with serve(proxy_config(f"127.0.0.1:{listener.getsockname()[1]}")) as server:
            assert httpx.get(server.url("/")).status_code == 502
        thread.join(10)


def test_an_upstream_reset_before_the_response_is_502(serve, backends):
    async def respond(ex: H2Exchange) -> None:
        ex.reset(ErrorCodes.INTERNAL_ERROR)

    backend = backends(respond)
    with serve(proxy_config(backend.address)) as server:
        assert httpx.get(server.url("/")).status_code == 502


def test_a_stalled_response_body_ends_after_read_timeout(serve, backends):
    async def respond(ex: H2Exchange) -> None:
        await ex.body()
        ex.send_headers(200)
        await ex.send(b"first part")
        await asyncio.sleep(5)

    backend = backends(respond)
    transport = {**H2C, "read_timeout": "200ms"}
    with serve(proxy_config(backend.address, transport=transport)) as server:
        with socket.create_connection(("127.0.0.1", server.port()), timeout=10) as sock:
            sock.sendall(b"GET /stall HTTP/1.1\r\nHost: a\r\n\r\n")
            data = read_to_end(sock)  # rws closes the connection: the body can't be completed
    assert data.startswith(b"HTTP/1.1 200") and b"first part" in data and not data.endswith(b"\r\n0\r\n\r\n")
    assert wait_for(lambda: backend.exchanges[0].reset_code == ErrorCodes.CANCEL)


def test_an_upstream_that_takes_no_request_body_for_write_timeout_is_504(serve, backends):
    async def respond(ex: H2Exchange) -> None:
        await asyncio.sleep(5)  # reads nothing: its window stays shut

    backend = backends(respond)
    transport = {**H2C, "write_timeout": "200ms"}
    with serve(proxy_config(backend.address, transport=transport)) as server:
        assert httpx.post(server.url("/up"), content=b"x" * 1_000_000).status_code == 504
    assert backend.exchanges[0].received <= 65535


def test_an_upstream_that_fails_is_marked_down_by_passive_health_checks(serve, backends):
    async def reset(ex: H2Exchange) -> None:
        ex.reset(ErrorCodes.INTERNAL_ERROR)

    failing, healthy = backends(reset), backends()
    health = {"passive": {"fail_duration": "10s", "max_fails": 1}}
    config = proxy_config(failing.address, healthy.address, health_checks=health,
                          load_balancing={"selection_policy": {"policy": "first"}})
    with serve(config) as server:
        assert httpx.get(server.url("/1")).status_code == 502
        assert httpx.get(server.url("/2")).content == b"/2"  # the first is down: the second answers
    assert len(failing.exchanges) == 1 and len(healthy.exchanges) == 1


def test_early_hints_from_the_upstream_reach_the_client(serve, backends):
    async def respond(ex: H2Exchange) -> None:
        await ex.body()
        ex.send_headers(103, [("link", "</style.css>; rel=preload")])
        await ex.reply(200, b"final")

    backend = backends(respond)
    with serve(proxy_config(backend.address)) as server:
        with socket.create_connection(("127.0.0.1", server.port()), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            data = read_to_end(sock)
    assert data.startswith(b"HTTP/1.1 103 Early Hints\r\n") and b"Link: </style.css>; rel=preload" in data
    assert b"final" in data.partition(b"HTTP/1.1 200 OK\r\n")[2]


def test_websocket_upgrades_go_over_http11_even_to_an_h2c_upstream(serve):
    def respond(ex: Exchange) -> None:
        assert ex.header("Upgrade") == "websocket"
        ex.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        while data := ex.sock.recv(100):
            ex.sock.sendall(data.upper())

    backend = Backend("ws", respond=respond)
    try:
        with serve(proxy_config(backend.address)) as server:
            with socket.create_connection(("127.0.0.1", server.port()), timeout=10) as sock:
                sock.sendall(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n")
                head = b""
                while b"\r\n\r\n" not in head:
                    head += sock.recv(100)
                sock.sendall(b"hello")
                echoed = b""
                while len(echoed) < 5:
                    echoed += sock.recv(100)
    finally:
        backend.close()
    assert head.startswith(b"HTTP/1.1 101") and echoed == b"HELLO"
    assert backend.requests[0].method == "GET"


# --- TLS with ALPN -----------------------------------------------------------------------------


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return Authority(tmp_path)


def tls_transport(ca: Authority, **settings: Any) -> dict[str, Any]:
    return {"protocol": "http", "tls": {"root_ca_pem_files": [str(ca.pem)], "server_name": "up.test"}, **settings}


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_tls_upstream_that_offers_h2_gets_http2_by_default(serve, backends, ca, loop):
    cert, key = ca.leaf("up", "up.test")
    backend = backends(tls=tls_server_context(cert, key, ["h2", "http/1.1"]))
    with serve(proxy_config(backend.address, transport=tls_transport(ca)), loop=loop) as server:
        with httpx.Client() as client:
            for i in range(3):
                assert client.get(server.url(f"/{i}")).content == f"/{i}".encode()
    assert len(backend.connections) == 1 and backend.connections[0].stream_ids == [1, 3, 5]
    assert backend.exchanges[0].header(":scheme") == "https"


@pytest.mark.parametrize("protocols, versions, proto", [
    ("h1 h2", None, "HTTP/2.0"),  # Caddy's default versions, 1.1 and 2: h2 by ALPN
    ("h1", None, "HTTP/1.1"),  # the upstream chooses http/1.1
    ("h1 h2", ["1.1"], "HTTP/1.1"),  # the proxy offers only http/1.1
    ("h1 h2", ["2"], "HTTP/2.0"),
])
def test_over_tls_alpn_chooses_the_version(serve, ca, protocols, versions, proto):
    """rws over TLS as the upstream, with or without h2."""
    cert, key = ca.leaf("up", "up.test")
    upstream = (f"{{\n\tservers {{\n\t\tprotocols {protocols}\n\t}}\n}}\n"
                f"up.test {{\n\ttls {cert} {key}\n\trespond \"{{http.request.proto}}\"\n}}\n")
    with serve(upstream) as up:
        transport = tls_transport(ca, **({"versions": versions} if versions else {}))
        config = proxy_config(f"127.0.0.1:{up.port()}", transport=transport,
                              headers={"request": {"set": {"Host": ["up.test"]}}})
        with serve(config) as server:
            with httpx.Client() as client:
                answers = {client.get(server.url(f"/{i}")).text for i in range(3)}
    assert answers == {proto}


def pools_of(server: Any) -> list[Any]:
    from rws.handlers.reverse_proxy.handler import ReverseProxy

    pools = []
    for gen_server in server.runtime.generation.servers.values():
        for route in gen_server.routes.routes:
            for handler in route.handlers:
                if isinstance(handler, ReverseProxy):
                    pools += list(handler.transport.pools.values())
    return pools
