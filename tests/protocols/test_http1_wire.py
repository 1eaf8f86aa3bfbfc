"""HTTP/1.1 on the wire, over raw sockets, for both parser backends: framing, keep-alive,
pipelining, limits, timeouts, and the malformed requests behind request smuggling."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

PARSERS = ["httptools", "h11"]


def empty_server(**server: Any) -> dict[str, Any]:
    return {"apps": {"http": {"servers": {"srv0": {"listen": ["127.0.0.1:0"], "routes": [], **server}}}}}


@pytest.fixture(params=PARSERS)
def server(request: pytest.FixtureRequest, serve: Any) -> Any:
    with serve(empty_server(), parser=request.param) as running:
        yield running


def exchange(port: int, data: bytes, *, wait_close: bool = True, timeout: float = 10) -> bytes:
    """Send raw bytes; read until the server closes (or `timeout`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if not wait_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def statuses(raw: bytes) -> list[int]:
    return [int(line.split(b" ")[1]) for line in raw.split(b"\r\n") if line.startswith(b"HTTP/1.")]


def get(path: str = "/", extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET " + path.encode() + b" " + version + b"\r\nHost: example.com\r\n" + extra + b"\r\n"


def test_keep_alive_serves_several_requests_on_one_connection(server: Any) -> None:
    raw = exchange(server.port(), get() + get() + get(extra=b"Connection: close\r\n"))
    assert statuses(raw) == [200, 200, 200]
    assert raw.count(b"Connection: close") == 1


def test_pipelined_responses_come_in_request_order(server: Any) -> None:
    raw = exchange(server.port(), get("/a") + b"HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n" + get("/c", b"Connection: close\r\n"))
    assert statuses(raw) == [200, 200, 200]


def test_http10_closes_unless_keep_alive(server: Any) -> None:
    raw = exchange(server.port(), get(version=b"HTTP/1.0"))
    assert statuses(raw) == [200]
    assert b"Connection:" not in raw  # the client expects the close; nothing to say
    raw = exchange(server.port(), get(version=b"HTTP/1.0", extra=b"Connection: keep-alive\r\n") + get(version=b"HTTP/1.0"))
    assert statuses(raw) == [200, 200]
    assert b"Connection: keep-alive" in raw


def test_responses_carry_date_and_server(server: Any) -> None:
    raw = exchange(server.port(), get(extra=b"Connection: close\r\n"))
    assert b"\r\nDate: " in raw
    assert b"\r\nServer: rws\r\n" in raw


def test_chunked_request_body_is_framed_correctly(server: Any) -> None:
    body = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    raw = exchange(server.port(), body + get(extra=b"Connection: close\r\n"))
    assert statuses(raw) == [200, 200]


def test_content_length_body_is_framed_correctly(server: Any) -> None:
    body = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nGET /"
    raw = exchange(server.port(), body + get(extra=b"Connection: close\r\n"))
    assert statuses(raw) == [200, 200]


def test_expect_100_continue_is_answered_before_the_final_response(server: Any) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    raw = exchange(server.port(), head)
    # the handler never reads the body, so no 100 is sent and the connection closes
    assert statuses(raw) == [200]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-CR: a\rb\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400),
        (b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/1.9\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ],
)
@pytest.mark.parametrize("parser", PARSERS)
def test_malformed_requests_get_4xx_and_the_connection_closes(serve: Any, parser: str, request_bytes: bytes,
                                                               status: int) -> None:
    with serve(empty_server(), parser=parser) as running:
        raw = exchange(running.port(), request_bytes + get())
        assert statuses(raw)[:1] == [status], raw
        assert len(statuses(raw)) == 1  # nothing after the error is processed
        # and the server still serves
        assert statuses(exchange(running.port(), get(extra=b"Connection: close\r\n"))) == [200]


def test_request_line_too_long_is_414(server: Any) -> None:
    raw = exchange(server.port(), get("/" + "a" * 70_000))
    assert statuses(raw) == [414]


def test_headers_over_max_header_size_are_431(serve: Any) -> None:
    with serve(empty_server(max_header_bytes=4096)) as running:
        raw = exchange(running.port(), get(extra=b"X-Big: " + b"a" * 5000 + b"\r\n"))
        assert statuses(raw) == [431]


def test_absolute_form_and_asterisk_targets(server: Any) -> None:
    raw = exchange(server.port(), get("http://example.com/abs") + b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert statuses(raw) == [200, 200]


def test_slow_header_trickle_is_closed_by_the_read_header_timeout(serve: Any) -> None:
    with serve(empty_server(read_header_timeout="1s")) as running:
        with socket.create_connection(("127.0.0.1", running.port()), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n")
            closed = False
            for _ in range(40):  # a byte every 0.2 s would never finish the head
                try:
                    sock.sendall(b"X")
                    time.sleep(0.2)
                    sock.setblocking(False)
                    data = sock.recv(1024)
                    sock.setblocking(True)
                    if data == b"":
                        closed = True
                        break
                except BlockingIOError:
                    sock.setblocking(True)
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
            assert closed


def test_idle_keep_alive_connection_is_closed_by_the_idle_timeout(serve: Any) -> None:
    with serve(empty_server(idle_timeout="1s")) as running:
        with socket.create_connection(("127.0.0.1", running.port()), timeout=10) as sock:
            sock.sendall(get())
            first = sock.recv(65536)
            assert statuses(first) == [200]
            assert sock.recv(1024) == b""  # closed by the server, not by our 10 s timeout


def test_many_idle_connections_do_not_stop_service(server: Any) -> None:
    socks = [socket.create_connection(("127.0.0.1", server.port()), timeout=10) for _ in range(500)]
    try:
        assert statuses(exchange(server.port(), get(extra=b"Connection: close\r\n"))) == [200]
    finally:
        for s in socks:
            s.close()


def test_invalid_percent_escape_in_the_path_is_400(server: Any) -> None:
    raw = exchange(server.port(), get("/a%zzb") + get())
    assert statuses(raw) == [400]


def test_early_hints_are_sent_before_the_final_response(serve: Any) -> None:
    site = (":80 {\n\troute {\n\t\theader Link \"</style.css>; rel=preload; as=style\"\n"
            "\t\trespond 103\n\t\trespond \"final\"\n\t}\n}\n")
    with serve(site) as running:
        raw = exchange(running.port(), get(extra=b"Connection: close\r\n"))
        assert statuses(raw) == [103, 200]
        hints, final = raw.split(b"\r\n\r\n", 1)
        assert b"Link: </style.css>; rel=preload; as=style" in hints
        assert final.endswith(b"final")
        assert b"Link: </style.css>" in final  # the final response keeps the headers too, as Caddy's


def test_a_content_length_in_non_ascii_digits_is_400(server: Any) -> None:
    raw = exchange(server.port(), b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n" + get())
    assert statuses(raw)[:1] == [400]
    assert statuses(exchange(server.port(), get(extra=b"Connection: close\r\n"))) == [200]


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_request_trailers_are_not_taken_for_header_fields(serve, parser):
    site = 'http://127.0.0.1 {\n\trespond "{http.request.body}|{header.X-Trailer}"\n}\n'
    with serve(site, parser=parser) as server:
        with socket.create_connection(("127.0.0.1", server.port()), timeout=5) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                         b"4\r\ndata\r\n0\r\nX-Trailer: evil\r\n\r\n")
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
    assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"\r\n\r\ndata|")


def test_an_endless_trailer_is_cut_off(serve):
    config = {"apps": {"http": {"servers": {"s": {"listen": ["127.0.0.1:0"], "max_header_bytes": 4096, "routes": [
        {"handle": [{"handler": "static_response", "body": "{http.request.body}"}]}]}}}}}
    with serve(config) as server:
        with socket.create_connection(("127.0.0.1", server.port()), timeout=5) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ndata\r\n0\r\n")
            try:
                for i in range(2000):
                    sock.sendall(b"X-T-%d: %s\r\n" % (i, b"v" * 64))
            except OSError:
                pass  # rws closed the connection
            response = b""
            try:
                while chunk := sock.recv(65536):
                    response += chunk
            except ConnectionResetError:
                pass  # closed with unread data: a reset (a timeout here would mean rws still waits)
        # the body never completes: the connection is closed (with a 431 when no handler
        # is reading the body yet), and the server goes on serving
        assert response == b"" or response.startswith(b"HTTP/1.1 431")
        with socket.create_connection(("127.0.0.1", server.port()), timeout=5) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("method", [b"get", b"FOO", b"propfind-ish"])
def test_any_token_is_a_method(serve, method):
    site = 'http://127.0.0.1 {\n\trespond "{method}"\n}\n'
    with serve(site) as server:
        with socket.create_connection(("127.0.0.1", server.port()), timeout=5) as sock:
            sock.sendall(method + b" / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            first = sock.recv(65536)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")  # the connection goes on
            second = b""
            while chunk := sock.recv(65536):
                second += chunk
    assert first.startswith(b"HTTP/1.1 200") and first.endswith(b"\r\n\r\n" + method)
    assert second.startswith(b"HTTP/1.1 200") and second.endswith(b"\r\n\r\nGET")


@pytest.mark.parametrize("parser", PARSERS)
def test_a_declined_upgrade_request_keeps_its_body(serve: Any, parser: str) -> None:
    """llhttp reads no body after a request that asks to switch protocols; the handler
    still gets a Content-Length body, split over reads or not."""
    site = 'http://127.0.0.1 {\n\trespond "[{http.request.body}]"\n}\n'
    with serve(site, parser=parser) as server:
        head = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
                b"Content-Length: 10\r\n\r\n")
        raw = exchange(server.port(), head + b"0123456789")
        assert raw.startswith(b"HTTP/1.1 200") and raw.endswith(b"[0123456789]")
        with socket.create_connection(("127.0.0.1", server.port()), timeout=10) as sock:
            sock.sendall(head + b"01234")
            time.sleep(0.2)
            sock.sendall(b"56789")
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
        assert raw.startswith(b"HTTP/1.1 200") and raw.endswith(b"[0123456789]")


@pytest.mark.parametrize("parser", PARSERS)
def test_a_chunked_upgrade_request_is_read_or_refused(serve: Any, parser: str) -> None:
    site = 'http://127.0.0.1 {\n\trespond "[{http.request.body}]"\n}\n'
    with serve(site, parser=parser) as server:
        raw = exchange(server.port(), b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: foo\r\n"
                                      b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        # h11 reads the chunked body; llhttp can't, and the request is refused rather than
        # answered without it
        assert raw.endswith(b"[hello]") if parser == "h11" else statuses(raw) == [400]
