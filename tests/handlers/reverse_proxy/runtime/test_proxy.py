"""The reverse proxy over real sockets: rws in-process (`serve`), real backends on
loopback (backends.py), real clients (httpx, raw sockets)."""

from __future__ import annotations

import hashlib
import threading
import socket
import time
from typing import Any

import httpx
import pytest

from backends import Backend, Exchange, closed_port


def proxy_config(*dials: str, **handler: Any) -> dict[str, Any]:
    route = {"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": d} for d in dials], **handler}]}
    return {"apps": {"http": {"servers": {"proxy": {"listen": ["127.0.0.1:0"], "routes": [route]}}}}}


@pytest.fixture
def backend():
    b = Backend("one")
    yield b
    b.close()


def test_a_request_and_its_response_pass_through(serve, backend):
    def respond(ex: Exchange) -> None:
        ex.reply(201, b"made", [("Content-Type", "text/x-test"), ("Connection", "close, X-Hop"), ("X-Hop", "1"),
                                ("Keep-Alive", "timeout=5"), ("X-End", "2"), ("Server", "upstream")])
    backend.respond = respond
    with serve(proxy_config(backend.address)) as server:
        port = server.port()
        response = httpx.get(server.url("/a/b?c=d"), headers={"X-Client": "yes", "Connection": "keep-alive, X-Drop",
                                                              "X-Drop": "gone", "Proxy-Authorization": "secret"})
    assert (response.status_code, response.content) == (201, b"made")
    assert response.headers["content-type"] == "text/x-test"
    assert response.headers["x-end"] == "2" and "x-hop" not in response.headers and "keep-alive" not in response.headers
    assert response.headers["server"] == "upstream" and response.headers["via"] == "1.1 rws"
    seen = backend.requests[0]
    assert (seen.method, seen.target) == ("GET", "/a/b?c=d")
    assert seen.header("X-Client") == "yes" and seen.header("X-Drop") is None
    assert seen.header("Proxy-Authorization") is None
    assert seen.header("Host") == f"127.0.0.1:{port}"
    assert seen.header("X-Forwarded-For") == "127.0.0.1"
    assert seen.header("X-Forwarded-Proto") == "http"
    assert seen.header("X-Forwarded-Host") == f"127.0.0.1:{port}"
    assert seen.header("Via") == "1.1 rws"


def test_forwarded_headers_from_an_untrusted_client_are_replaced(serve, backend):
    with serve(proxy_config(backend.address)) as server:
        httpx.get(server.url("/"), headers={"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil",
                                            "X-Forwarded-Proto": "https"})
    seen = backend.requests[0]
    assert seen.header("X-Forwarded-For") == "127.0.0.1"
    assert seen.header("X-Forwarded-Proto") == "http"
    assert seen.header("X-Forwarded-Host") != "evil"


def test_a_trusted_client_keeps_the_chain(serve, backend):
    with serve(proxy_config(backend.address, trusted_proxies=["127.0.0.1/8"])) as server:
        httpx.get(server.url("/"), headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
    seen = backend.requests[0]
    assert seen.header("X-Forwarded-For") == "203.0.113.9, 127.0.0.1"
    assert seen.header("X-Forwarded-Proto") == "https"


def test_request_bodies_stream_with_length_and_chunked(serve, backend):
    backend.respond = lambda ex: ex.reply(200, hashlib.sha256(ex.body).hexdigest().encode())
    data = bytes(range(256)) * 20_000  # 5 MB
    with serve(proxy_config(backend.address)) as server:
        fixed = httpx.post(server.url("/up"), content=data, timeout=30)

        def chunks():
            for i in range(0, len(data), 100_000):
                yield data[i:i + 100_000]
        chunked = httpx.post(server.url("/up"), content=chunks(), timeout=30)
    expected = hashlib.sha256(data).hexdigest().encode()
    assert fixed.content == expected and chunked.content == expected
    assert backend.requests[0].header("Content-Length") == str(len(data))
    assert backend.requests[1].header("Transfer-Encoding") == "chunked"


def test_a_large_response_streams_intact(serve, backend):
    data = hashlib.sha256(b"x").digest() * 300_000  # 9.6 MB
    backend.respond = lambda ex: ex.reply(200, data)
    with serve(proxy_config(backend.address)) as server:
        response = httpx.get(server.url("/big"), timeout=30)
    assert response.headers["content-length"] == str(len(data))
    assert response.content == data


def test_upstream_connections_are_kept_alive_and_reused(serve, backend):
    with serve(proxy_config(backend.address)) as server:
        with httpx.Client() as client:
            for _ in range(30):
                assert client.get(server.url("/")).content == b"one"
    assert len(backend.requests) == 30
    assert backend.connections == 1


def test_head_gets_the_length_and_no_body(serve, backend):
    backend.respond = lambda ex: ex.reply(200, b"0123456789")
    with serve(proxy_config(backend.address)) as server:
        with httpx.Client() as client:
            head = client.head(server.url("/"))
            after = client.get(server.url("/"))
    assert head.headers["content-length"] == "10" and head.content == b""
    assert after.content == b"0123456789"


def test_a_dial_failure_is_502_and_no_upstream_is_503(serve):
    with serve(proxy_config(f"127.0.0.1:{closed_port()}")) as server:
        assert httpx.get(server.url("/")).status_code == 502
    with serve(proxy_config()) as server:
        assert httpx.get(server.url("/")).status_code == 503


def test_a_hanging_upstream_is_504_at_the_response_header_timeout(serve):
    hang = Backend("hang", respond=lambda ex: time.sleep(3))
    transport = {"protocol": "http", "response_header_timeout": "300ms"}
    try:
        with serve(proxy_config(hang.address, transport=transport)) as server:
            response = httpx.get(server.url("/"), timeout=10)
    finally:
        hang.close()
    assert response.status_code == 504


def test_a_malformed_upstream_response_is_502(serve):
    bad = Backend("bad", respond=lambda ex: ex.sock.sendall(b"HTTP/1.1 abc nonsense\r\n\r\n"))
    try:
        with serve(proxy_config(bad.address)) as server:
            assert httpx.get(server.url("/")).status_code == 502
    finally:
        bad.close()


def test_an_upstream_reset_mid_body_truncates_the_response_visibly(serve):
    def respond(ex: Exchange) -> None:
        ex.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
        ex.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        ex.sock.close()
    reset = Backend("reset", respond=respond)
    try:
        with serve(proxy_config(reset.address)) as server:
            with pytest.raises(httpx.RemoteProtocolError):
                httpx.get(server.url("/"))
    finally:
        reset.close()


def test_get_is_retried_on_another_upstream_and_post_is_not_resent(serve, backend):
    def swallow(ex: Exchange) -> None:
        ex.sock.close()  # took the request, never answered
    dead = Backend("dead", respond=swallow)
    lb = {"selection_policy": {"policy": "first"}, "retries": 2}
    try:
        with serve(proxy_config(dead.address, backend.address, load_balancing=lb)) as server:
            got = httpx.get(server.url("/g"))
            posted = httpx.post(server.url("/p"), content=b"once")
    finally:
        dead.close()
    assert (got.status_code, got.content) == (200, b"one")
    assert posted.status_code == 502
    assert [ex.method for ex in backend.requests] == ["GET"]
    assert [ex.method for ex in dead.requests] == ["GET", "POST"]


def test_dial_failures_are_retried_for_any_method(serve, backend):
    lb = {"selection_policy": {"policy": "first"}, "retries": 1}
    with serve(proxy_config(f"127.0.0.1:{closed_port()}", backend.address, load_balancing=lb)) as server:
        posted = httpx.post(server.url("/p"), content=b"data")
    assert (posted.status_code, posted.content) == (200, b"one")
    assert backend.requests[0].body == b"data"


def test_round_robin_alternates(serve, backend):
    two = Backend("two")
    lb = {"selection_policy": {"policy": "round_robin"}}
    try:
        with serve(proxy_config(backend.address, two.address, load_balancing=lb)) as server:
            with httpx.Client() as client:
                bodies = [client.get(server.url("/")).content for _ in range(6)]
    finally:
        two.close()
    assert sorted(bodies) == [b"one"] * 3 + [b"two"] * 3
    assert bodies[0] != bodies[1]


def test_header_up_and_down_with_placeholders(serve, backend):
    headers = {"request": {"set": {"X-Upstream": ["{http.reverse_proxy.upstream.hostport}"], "Host": ["example.net"]}},
               "response": {"set": {"X-Status": ["{http.reverse_proxy.status_code}"]}, "delete": ["Server"]}}
    backend.respond = lambda ex: ex.reply(202, b"", [("Server", "upstream")])
    with serve(proxy_config(backend.address, headers=headers)) as server:
        response = httpx.get(server.url("/"))
    seen = backend.requests[0]
    assert seen.header("X-Upstream") == backend.address and seen.header("Host") == "example.net"
    assert response.headers["x-status"] == "202" and "server" not in response.headers


def test_the_admin_api_lists_upstreams(serve, backend):
    with serve(proxy_config(backend.address), admin=True) as server:
        httpx.get(server.url("/"))
        states = httpx.get(server.admin_url("/reverse_proxy/upstreams")).json()
    mine = [s for s in states if s["address"] == backend.address]
    assert mine and mine[0]["num_requests"] == 0 and mine[0]["fails"] == 0 and mine[0]["healthy"] is True


def test_a_unix_socket_upstream(serve, tmp_path):
    path = tmp_path / "app.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen()

    def serve_one() -> None:
        sock, _ = listener.accept()
        with sock:
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(4096)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nunix")
    import threading
    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    try:
        with serve(proxy_config(f"unix/{path}")) as server:
            response = httpx.get(server.url("/"))
    finally:
        listener.close()
    assert response.content == b"unix"


def test_websocket_upgrade_is_a_two_way_stream(serve):
    def respond(ex: Exchange) -> None:
        assert ex.header("Upgrade") == "websocket" and ex.header("Connection") == "Upgrade"
        ex.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Accept: abc\r\n\r\nhello")
        while data := ex.sock.recv(65536):
            ex.sock.sendall(data.upper())
        ex.sock.close()
    echo = Backend("echo", respond=respond)
    try:
        with serve(proxy_config(echo.address)) as server:
            with socket.create_connection(("127.0.0.1", server.port()), timeout=10) as sock:
                sock.sendall(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\nearly")
                received = b""
                while b"EARLY" not in received:
                    received += sock.recv(65536)
                sock.sendall(b"more")
                while b"MORE" not in received:
                    received += sock.recv(65536)
    finally:
        echo.close()
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"\r\nUpgrade: websocket" in head and b"\r\nSec-WebSocket-Accept: abc" in head
    assert rest == b"helloEARLYMORE"
    assert echo.requests[0].header("Sec-WebSocket-Key") == "k"


def test_handle_response_routes_and_copy_response(serve, backend):
    statuses = {"/missing": 404, "/moved": 302}
    backend.respond = lambda ex: ex.reply(statuses.get(ex.target, 200), b"upstream body",
                                          [("X-Up", "u"), ("X-Other", "o")])
    handle_response = [
        {"match": {"status_code": [404]}, "routes": [{"handle": [
            {"handler": "static_response", "status_code": 410,
             "body": "gone: {http.reverse_proxy.status_code} {http.reverse_proxy.header.X-Up}"}]}]},
        {"match": {"status_code": [3]}, "routes": [{"handle": [
            {"handler": "copy_response_headers", "include": ["X-Up"]},
            {"handler": "static_response", "body": "redirect hidden"}]}]},
        {"match": {"status_code": [2]}, "routes": [{"handle": [{"handler": "copy_response", "status_code": 203}]}]},
    ]
    with serve(proxy_config(backend.address, handle_response=handle_response), admin=True) as server:
        missing = httpx.get(server.url("/missing"))
        moved = httpx.get(server.url("/moved"))
        found = httpx.get(server.url("/found"))
        states = httpx.get(server.admin_url("/reverse_proxy/upstreams")).json()
    assert (missing.status_code, missing.text) == (410, "gone: 404 u")
    assert (moved.status_code, moved.text, moved.headers.get("x-up"), moved.headers.get("x-other")) == (
        200, "redirect hidden", "u", None)
    assert (found.status_code, found.content) == (203, b"upstream body")
    assert found.headers["x-up"] == "u" and found.headers["x-other"] == "o"
    assert [s["num_requests"] for s in states if s["address"] == backend.address] == [0]


def test_forward_auth_lets_authorised_requests_through_with_copied_headers(serve, backend):
    auth = Backend("auth", respond=lambda ex: ex.reply(200, b"", [("Remote-User", "ann")])
                   if ex.header("Authorization") == "Bearer good" else ex.reply(401, b"denied"))
    site = f"""http://127.0.0.1 {{
\tforward_auth {auth.address} {{
\t\turi /check
\t\tcopy_headers Remote-User
\t}}
\treverse_proxy {backend.address}
}}
"""
    try:
        with serve(site) as server:
            allowed = httpx.get(server.url("/app"), headers={"Authorization": "Bearer good"})
            denied = httpx.get(server.url("/app"), headers={"Authorization": "Bearer bad"})
    finally:
        auth.close()
    assert (allowed.status_code, allowed.content) == (200, b"one")
    assert (denied.status_code, denied.content) == (401, b"denied")
    assert [ex.header("Remote-User") for ex in backend.requests] == ["ann"]
    assert auth.requests[0].target == "/check" and auth.requests[0].method == "GET"
    assert auth.requests[0].header("X-Forwarded-Uri") == "/app"


def _open_tunnel(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    assert received.startswith(b"HTTP/1.1 101 ")
    return sock


def _echo_backend() -> Backend:
    def respond(ex: Exchange) -> None:
        ex.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        while data := ex.sock.recv(65536):
            ex.sock.sendall(data)
        ex.sock.close()
    return Backend("echo", respond=respond)


def test_a_reload_closes_tunnels_after_the_stream_close_delay(serve):
    echo = _echo_backend()
    try:
        with serve(proxy_config(echo.address, stream_close_delay="300ms")) as server:
            sock = _open_tunnel(server.port())
            with sock:
                server.apply(proxy_config(echo.address))  # a reload
                sock.sendall(b"still here")
                assert sock.recv(65536) == b"still here"  # within the delay the tunnel works
                sock.settimeout(5)
                assert sock.recv(65536) == b""  # then rws closes it
    finally:
        echo.close()


def test_a_tunnel_ends_at_the_stream_timeout(serve):
    echo = _echo_backend()
    try:
        with serve(proxy_config(echo.address, stream_timeout="200ms")) as server:
            with _open_tunnel(server.port()) as sock:
                sock.sendall(b"ping")
                assert sock.recv(65536) == b"ping"
                sock.settimeout(5)
                assert sock.recv(65536) == b""
    finally:
        echo.close()


def test_a_real_websocket_client_and_server_talk_through_the_proxy(serve):
    import asyncio

    import websockets

    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(f"echo {message}")

    def backend_thread() -> None:
        async def main() -> None:
            async with websockets.serve(echo, "127.0.0.1", 0) as server:
                holder["port"] = next(iter(server.sockets)).getsockname()[1]
                holder["stop"] = asyncio.get_running_loop().create_future()
                ready.set()
                await holder["stop"]
        holder["loop"] = asyncio.new_event_loop()
        holder["loop"].run_until_complete(main())

    thread = threading.Thread(target=backend_thread, daemon=True)
    thread.start()
    assert ready.wait(10)

    async def client(port: int) -> list[str]:
        async with websockets.connect(f"ws://127.0.0.1:{port}/chat") as ws:
            replies = []
            for text in ("hello", "x" * 100_000, "bye"):
                await ws.send(text)
                replies.append(await ws.recv())
            return replies

    try:
        with serve(proxy_config(f"127.0.0.1:{holder['port']}")) as server:
            replies = asyncio.run(client(server.port()))
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set_result, None)
        thread.join(10)
    assert replies == ["echo hello", "echo " + "x" * 100_000, "echo bye"]


def test_the_issue_example_site(serve, backend):
    two = Backend("two")
    site = f"""http://127.0.0.1 {{
\treverse_proxy /api/* {backend.address} {two.address} {{
\t\tlb_policy least_conn
\t\tlb_retries 2
\t\thealth_uri /healthz
\t\thealth_interval 5s
\t\tfail_duration 30s
\t\theader_up X-Real-IP {{remote_host}}
\t}}
\trespond /other "site"
}}
"""
    try:
        with serve(site) as server:
            with httpx.Client() as client:
                api = {client.get(server.url(f"/api/{i}")).content for i in range(10)}
                other = client.get(server.url("/other")).content
    finally:
        two.close()
    assert api == {b"one", b"two"} and other == b"site"
    seen = [ex for ex in backend.requests + two.requests if ex.target.startswith("/api/")]
    assert seen and all(ex.header("X-Real-IP") == "127.0.0.1" for ex in seen)
    assert any(ex.target == "/healthz" for ex in backend.requests + two.requests)


def test_a_client_that_half_closes_with_a_request_in_flight_is_closed(serve):
    seen = threading.Event()

    def slow(ex: Exchange) -> None:
        seen.set()
        time.sleep(2)
        try:
            ex.reply(200, b"late")
        except OSError:
            pass
    backend = Backend("slow", respond=slow)
    try:
        with serve(proxy_config(backend.address)) as server:
            with socket.create_connection(("127.0.0.1", server.port()), timeout=5) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                assert seen.wait(5)
                sock.shutdown(socket.SHUT_WR)  # the client gives up (FIN)
                assert sock.recv(100) == b""  # rws closes its side too, without waiting for the upstream
    finally:
        backend.close()


def test_upstream_addresses_taken_from_requests_stay_bounded(serve, backend):
    from rws.handlers.reverse_proxy.handler import MAX_KNOWN_HOSTS
    from rws.handlers.reverse_proxy.upstreams import upstream_states

    config = proxy_config("{http.request.header.X-Upstream}")
    with serve(config) as server:
        with httpx.Client() as client:
            assert client.get(server.url("/"), headers={"X-Upstream": backend.address}).content == b"one"
            for i in range(2 * MAX_KNOWN_HOSTS):  # loopback addresses where nothing listens on port 1: 502 each
                dial = f"127.0.{i // 250}.{i % 250 + 1}:1"
                assert client.get(server.url("/"), headers={"X-Upstream": dial}).status_code == 502
        known = len(upstream_states())
    assert known <= MAX_KNOWN_HOSTS + 1


def _burst(url: str, count: int) -> None:
    """`count` requests at once, each on a connection of its own."""
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(httpx.get(url, timeout=10).status_code))
               for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * count


def test_idle_connections_beyond_the_cap_wait_for_the_next_burst_then_close(serve, backend, monkeypatch):
    import rws.handlers.reverse_proxy.upstream_pool as upstream_pool

    together = threading.Barrier(6)

    def respond(ex: Exchange) -> None:
        together.wait(timeout=10)  # all six are in flight at once: six upstream connections
        ex.reply(200, b"ok")

    backend.respond = respond
    monkeypatch.setattr(upstream_pool, "TRIM_GRACE", 30.0)
    config = proxy_config(backend.address, transport={"protocol": "http", "keep_alive": {"max_idle_conns_per_host": 2}})
    with serve(config) as server:
        _burst(server.url("/"), 6)
        assert backend.connections == 6
        _burst(server.url("/"), 6)  # within the grace: the six idle connections serve the next burst
        assert backend.connections == 6
        pool = next(iter(upstream_pool_of(server)))
        assert len(pool.idle) == 6 and pool.trim is not None
        server.loop.call_soon_threadsafe(pool._trim)  # within the grace: nothing closes
        time.sleep(0.2)
        assert len(pool.idle) == 6 and len(backend.open) == 6
        monkeypatch.setattr(upstream_pool, "TRIM_GRACE", 0.0)  # the grace is over
        timer = pool.trim
        server.loop.call_soon_threadsafe(lambda: (timer.cancel(), pool._trim()))
        deadline = time.monotonic() + 10
        while len(backend.open) > 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(backend.open) == 2 and len(pool.idle) == 2  # the least recently used beyond the cap closed


def upstream_pool_of(server: Any) -> list[Any]:
    from rws.handlers.reverse_proxy.handler import ReverseProxy

    pools = []
    for gen_server in server.runtime.generation.servers.values():
        for route in gen_server.routes.routes:
            for handler in route.handlers:
                if isinstance(handler, ReverseProxy):
                    pools += list(handler.transport.pools.values())
    return pools
