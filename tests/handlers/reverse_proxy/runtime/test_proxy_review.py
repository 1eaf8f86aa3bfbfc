"""A security and robustness review of the proxy's run time, over real sockets: request
smuggling through the proxy, response splitting by a malicious upstream, connection reuse,
resource bounds, tunnels and retries."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from backends import Backend, Exchange, accept_forever
from test_proxy import proxy_config

# --- helpers -------------------------------------------------------------------------------


def _wait_until(check: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def _states(server: Any) -> dict[str, dict[str, Any]]:
    return {s["address"]: s for s in httpx.get(server.admin_url("/reverse_proxy/upstreams")).json()}


def _recv_until_close(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    out = b""
    try:
        while data := sock.recv(65536):
            out += data
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def _send(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes (or `timeout`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return _recv_until_close(sock, timeout)


class Reader:
    """Reads HTTP/1.1 responses off a client socket, strictly by their framing."""

    def __init__(self, sock: socket.socket, timeout: float = 5.0) -> None:
        self.sock = sock
        self.buf = b""
        sock.settimeout(timeout)

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def response(self, head_request: bool = False) -> tuple[int, list[tuple[str, str]], bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
        names = {k.lower(): v for k, v in headers}
        if head_request or status in (204, 304) or 100 <= status < 200:
            return status, headers, b""
        if "transfer-encoding" in names:
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._more()
                size_line, _, self.buf = self.buf.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    self._more()
                body += self.buf[:size]
                if size == 0:
                    while b"\r\n\r\n" not in b"\r\n" + self.buf:  # trailers
                        self._more()
                    _, _, self.buf = (b"\r\n" + self.buf).partition(b"\r\n\r\n")
                    return status, headers, body
                self.buf = self.buf[size + 2:]
        if "content-length" in names:
            n = int(names["content-length"])
            while len(self.buf) < n:
                self._more()
            body, self.buf = self.buf[:n], self.buf[n:]
            return status, headers, body
        while True:
            try:
                self._more()
            except EOFError:
                body, self.buf = self.buf, b""
                return status, headers, body


def _pending(sock: socket.socket, wait: float = 0.2) -> bytes:
    """What else the server sent on a kept-alive connection within `wait` seconds."""
    sock.settimeout(wait)
    out = b""
    try:
        while data := sock.recv(65536):
            out += data
    except TimeoutError:
        pass
    return out


def _get_until_quiet(port: int) -> tuple[bytes, bool]:
    """`GET /` on a new connection: what came until the server closed it (True) or went
    quiet for 0.6 s (False)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        sock.settimeout(0.6)
        raw = b""
        try:
            while data := sock.recv(65536):
                raw += data
        except TimeoutError:
            return raw, False
    return raw, True


def _split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, body


class RawUpstream:
    """An upstream that answers every request head with `script(sock, head)`, reading no
    body unless the script does. Counts connections; `eofs` counts the ones the proxy closed."""

    def __init__(self, script: Callable[[socket.socket, bytes], None]) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self.eofs = 0
        self.heads: list[bytes] = []
        self.socks: list[socket.socket] = []
        accept_forever(self.listener, self._serve, self._accepted)

    def _accepted(self, sock: socket.socket) -> None:
        self.connections += 1
        self.socks.append(sock)

    def _serve(self, sock: socket.socket) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = sock.recv(65536)
                    if not data:
                        self.eofs += 1
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                self.heads.append(head)
                self.script(sock, head)
        except OSError:
            self.eofs += 1

    def close(self) -> None:
        self.listener.close()
        for sock in self.socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


@pytest.fixture
def backend():
    b = Backend("one")
    yield b
    b.close()


@pytest.fixture
def raw_upstream():
    made: list[RawUpstream] = []

    def make(script: Callable[[socket.socket, bytes], None]) -> RawUpstream:
        made.append(RawUpstream(script))
        return made[-1]

    yield make
    for upstream in made:
        upstream.close()


# --- request smuggling through the proxy ---------------------------------------------------


def test_a_client_cannot_strip_content_length_with_the_connection_header(serve, backend):
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: internal\r\n\r\n"
    request = (b"POST /ok HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Content-Length\r\n"
               b"Content-Length: %d\r\n\r\n" % len(smuggled)) + smuggled
    with serve(proxy_config(backend.address)) as server:
        with socket.create_connection(("127.0.0.1", server.port()), timeout=5) as sock:
            sock.sendall(request)
            status, _, _ = Reader(sock).response()
        _wait_until(lambda: backend.requests)
        time.sleep(0.1)  # a smuggled second request would be recorded by now
    assert status == 200
    assert [(ex.method, ex.target) for ex in backend.requests] == [("POST", "/ok")]
    assert backend.requests[0].body == smuggled
    assert backend.requests[0].header("Content-Length") == str(len(smuggled))


def test_an_absolute_form_target_sends_its_authority_as_the_host(serve, backend):
    config = proxy_config(backend.address)
    route = config["apps"]["http"]["servers"]["proxy"]["routes"][0]
    route["match"] = [{"host": ["public.example"]}]
    with serve(config) as server:
        raw = _send(server.port(), b"GET http://public.example/x HTTP/1.1\r\nHost: internal.example\r\n"
                                   b"Connection: close\r\n\r\n")
    assert _split_response(raw)[0] == 200
    seen = backend.requests[0]
    assert seen.target == "/x"
    assert seen.header("Host") == "public.example"  # as Go: the absolute-form authority is the Host


def test_a_rewritten_target_cannot_carry_crlf_to_the_upstream(serve, backend):
    config = proxy_config(backend.address, rewrite={"uri": "/x/{http.request.uri.query.to}?"})
    inject = "/a%3Fb%20HTTP/1.1%0D%0AHost:%20x%0D%0A%0D%0AGET%20/smuggled"
    with serve(config) as server:
        raw = _send(server.port(), f"GET /?to={inject} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
        time.sleep(0.1)
    status = _split_response(raw)[0] if raw else 0
    targets = [ex.target for ex in backend.requests]
    assert "/smuggled" not in targets and len(targets) <= 1
    assert all(" " not in t and "\r" not in t and "\n" not in t for t in targets)
    assert status in (200, 400, 502)


def test_a_header_up_name_from_a_placeholder_cannot_inject_fields(serve, backend):
    headers = {"request": {"set": {"X-{http.request.uri.query.n}": ["1"]}}}
    with serve(proxy_config(backend.address, headers=headers)) as server:
        httpx.get(server.url("/"), params={"n": "a: b\r\nX-Injected: yes"})
    seen = backend.requests[0] if backend.requests else None
    assert seen is None or seen.header("X-Injected") is None


def test_a_header_up_value_with_nul_does_not_reach_the_upstream(serve, backend):
    headers = {"request": {"set": {"X-Q": ["{http.request.uri.query.q}"]}}}
    with serve(proxy_config(backend.address, headers=headers)) as server:
        httpx.get(server.url("/"), params={"q": "a\x00b"})
    assert all("\x00" not in v for ex in backend.requests for _, v in ex.headers)


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_ambiguous_request_framing_never_reaches_the_upstream(serve, backend, parser):
    """CL+TE, unknown or repeated codings, differing lengths, obs-fold, a Host with a space,
    NUL, bare LF: each refused by the server, none forwarded. (Chunk-level leniency is
    harmless here: the proxy re-chunks what it forwards.)"""
    attacks = [
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 5\r\n\r\nabcde",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nabcde",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x4\r\n\r\nabcd",
        b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Nul: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\nX: y\rZ\n\n",
        b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\nabcd\r\n0\r\n\r\n",
    ]
    with serve(proxy_config(backend.address), parser=parser) as server:
        answers = [_split_response(_send(server.port(), attack, timeout=2))[0] for attack in attacks]
    assert all(400 <= status < 600 for status in answers), answers
    assert backend.requests == []


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_duplicate_equal_content_lengths_are_forwarded_as_one(serve, backend, parser):
    """Whatever the parser accepts, the upstream gets exactly one well-formed length."""
    with serve(proxy_config(backend.address), parser=parser) as server:
        raw = _send(server.port(), b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n"
                                   b"Connection: close\r\n\r\nabcd", timeout=2)
    status = _split_response(raw)[0]
    if status == 200:
        assert backend.requests[0].all("Content-Length") == ["4"]
    else:
        assert 400 <= status < 500 and backend.requests == []


# --- response splitting and desync from a malicious upstream -------------------------------


@pytest.mark.parametrize("reply, expected", [
    ((b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
      b"HTTP/1.1 200 OK\r\nContent-Length: 38\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\npwnd"), (200, b"ok")),
    ((b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"
      b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!"), (304, b"")),
], ids=["after-a-sized-body", "after-a-304"])
def test_bytes_after_an_upstream_response_do_not_reach_the_client(serve, raw_upstream, reply, expected):
    upstream = raw_upstream(lambda sock, head: sock.sendall(reply))
    with serve(proxy_config(upstream.address)) as server:
        with socket.create_connection(("127.0.0.1", server.port()), timeout=5) as sock:
            sock.sendall(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
            reader = Reader(sock, timeout=2)
            first = reader.response()
            leftover = reader.buf + _pending(sock)
    assert (first[0], first[2]) == expected
    assert leftover == b""  # nothing past the first response's framing


def test_an_upstream_with_conflicting_framing_is_a_502(serve, raw_upstream):
    replies = {
        b"/two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nhello",
        b"/cl-and-te": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"/bad-length": b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
        b"/folded": b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 1\r\n\r\nh",
        b"/nul": b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 1\r\n\r\nh",
    }
    upstream = raw_upstream(lambda sock, head: sock.sendall(replies[head.split(b" ")[1]]))
    with serve(proxy_config(upstream.address)) as server:
        with httpx.Client(timeout=5) as client:
            statuses = {path: client.get(server.url(path.decode())).status_code for path in replies}
    assert set(statuses.values()) == {502}, statuses


def test_a_head_response_with_a_body_does_not_poison_the_next_request(serve, raw_upstream):
    def script(sock: socket.socket, head: bytes) -> None:
        if head.startswith(b"HEAD"):  # wrongly sends a body with the head, in one write
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        else:
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nget")
    upstream = raw_upstream(script)
    with serve(proxy_config(upstream.address)) as server:
        with httpx.Client(timeout=5) as client:
            head = client.head(server.url("/"))
            after = [client.get(server.url("/")).content for _ in range(3)]
    assert head.status_code == 200 and head.content == b""
    assert after == [b"get"] * 3


def test_204_and_304_with_a_body_are_sent_without_one(serve, raw_upstream):
    def script(sock: socket.socket, head: bytes) -> None:
        status = b"204 No Content" if b"/204" in head else b"304 Not Modified"
        sock.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: 5\r\n\r\n")
        time.sleep(0.05)
        sock.sendall(b"hello")  # arrives later: the connection must not be reused
    upstream = raw_upstream(script)
    with serve(proxy_config(upstream.address)) as server:
        with socket.create_connection(("127.0.0.1", server.port()), timeout=5) as sock:
            reader = Reader(sock, timeout=2)
            results = []
            for path in ("/204", "/304", "/204"):
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
                results.append(reader.response()[0])
                time.sleep(0.1)
            leftover = reader.buf + _pending(sock)
    assert results == [204, 304, 204] and leftover == b""


def test_an_informational_flood_ends_in_the_final_response(serve, raw_upstream):
    def script(sock: socket.socket, head: bytes) -> None:
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" * 1000 + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    upstream = raw_upstream(script)
    with serve(proxy_config(upstream.address)) as server:
        response = httpx.get(server.url("/"), timeout=5)
    assert (response.status_code, response.content) == (200, b"ok")


def test_a_body_delimited_by_the_upstreams_close_arrives_complete(serve, raw_upstream):
    def script(sock: socket.socket, head: bytes) -> None:
        sock.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello, until close")
        sock.shutdown(socket.SHUT_WR)
    upstream = raw_upstream(script)
    with serve(proxy_config(upstream.address)) as server:
        response = httpx.get(server.url("/"), timeout=5)
    assert (response.status_code, response.content) == (200, b"hello, until close")


def test_a_101_to_a_plain_request_is_a_502_and_releases_the_upstream(serve, raw_upstream):
    upstream = raw_upstream(lambda sock, head: sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
    with serve(proxy_config(upstream.address), admin=True) as server:
        raw = _send(server.port(), b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", timeout=2)
        status = _split_response(raw)[0] if raw else 0
        time.sleep(0.1)
        in_flight = _states(server)[upstream.address]["num_requests"]
        closed = upstream.eofs
    assert status == 502  # as Caddy: "backend tried to switch to unexpected protocol"
    assert in_flight == 0 and closed == 1


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_copy_response_headers_does_not_copy_framing(serve, raw_upstream, framing):
    def script(sock: socket.socket, head: bytes) -> None:
        if framing == "length":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-Up: u\r\n\r\n" + b"x" * 100)
        else:
            sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: u\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    upstream = raw_upstream(script)
    handle_response = [{"match": {"status_code": [200]}, "routes": [{"handle": [
        {"handler": "copy_response_headers"},
        {"handler": "static_response", "body": "replaced"}]}]}]
    with serve(proxy_config(upstream.address, handle_response=handle_response)) as server:
        with socket.create_connection(("127.0.0.1", server.port()), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            raw = _recv_until_close(sock, timeout=2)
    status, headers, body = _split_response(raw)
    assert status == 200 and headers.get("x-up") == "u"
    assert "transfer-encoding" not in headers
    assert headers.get("content-length") == str(len(body)) and body == b"replaced"


# --- connection reuse and cancellation -----------------------------------------------------


def test_a_stale_pooled_connection_resends_a_get_but_never_a_post(serve, raw_upstream):
    def script(sock: socket.socket, head: bytes) -> None:
        if b"/prime" in head:
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        else:  # takes the request and closes without a byte: what a keep-alive race looks like
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()
    upstream = raw_upstream(script)
    with serve(proxy_config(upstream.address)) as server:
        with httpx.Client(timeout=5) as client:
            assert client.get(server.url("/prime")).status_code == 200
            post = client.post(server.url("/post"), content=b"once")
            assert client.get(server.url("/prime")).status_code == 200
            get = client.get(server.url("/get"))
    assert post.status_code == 502 and get.status_code == 502
    posts = [h for h in upstream.heads if h.startswith(b"POST")]
    gets = [h for h in upstream.heads if h.startswith(b"GET /get")]
    assert len(posts) == 1  # never resent
    assert len(gets) == 2  # resent once on a fresh connection, as Go does


def test_a_client_gone_mid_body_releases_the_upstream(serve, raw_upstream):
    def script(sock: socket.socket, head: bytes) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
        try:
            while True:
                sock.sendall(b"x" * 65536)
        except OSError:
            pass
    upstream = raw_upstream(script)
    with serve(proxy_config(upstream.address), admin=True) as server:
        with socket.create_connection(("127.0.0.1", server.port()), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        _wait_until(lambda: upstream.eofs == 1)
        _wait_until(lambda: _states(server)[upstream.address]["num_requests"] == 0)


def _hanging_upstream(raw_upstream: Any, release: threading.Event) -> RawUpstream:
    def script(sock: socket.socket, head: bytes) -> None:
        # holds the response until released, noticing meanwhile if the proxy closes
        sock.settimeout(0.05)
        deadline = time.monotonic() + 5
        while not release.is_set() and time.monotonic() < deadline:
            try:
                if sock.recv(1) == b"":
                    raise ConnectionResetError("the proxy closed the connection")
            except socket.timeout:
                continue
        sock.settimeout(None)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    return raw_upstream(script)  # type: ignore[no-any-return]


def test_a_client_reset_before_the_response_releases_the_upstream(serve, raw_upstream):
    release = threading.Event()
    upstream = _hanging_upstream(raw_upstream, release)
    transport = {"protocol": "http", "max_conns_per_host": 1}
    with serve(proxy_config(upstream.address, transport=transport), admin=True) as server:
        try:
            with socket.create_connection(("127.0.0.1", server.port()), timeout=5) as sock:
                sock.sendall(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
                _wait_until(lambda: upstream.heads)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            _wait_until(lambda: _states(server)[upstream.address]["num_requests"] == 0, 2)
        finally:
            release.set()
        _wait_until(lambda: upstream.eofs == 1, 2)  # that connection was closed, not pooled
        # the connection slot came back: the next request is served at once
        assert httpx.get(server.url("/"), timeout=5).status_code == 200


def test_a_client_that_closes_before_the_response_releases_the_upstream(serve, raw_upstream):
    release = threading.Event()
    upstream = _hanging_upstream(raw_upstream, release)
    with serve(proxy_config(upstream.address), admin=True) as server:
        try:
            with socket.create_connection(("127.0.0.1", server.port()), timeout=5) as sock:
                sock.sendall(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
                _wait_until(lambda: upstream.heads)
            # the client is gone (FIN, as browsers and most clients close): the upstream
            # request should be abandoned rather than hold a connection and a slot
            _wait_until(lambda: upstream.eofs == 1, 0.7)
            assert _states(server)[upstream.address]["num_requests"] == 0
        finally:
            release.set()


def test_early_responses_leave_no_request_body_sender_behind(serve, raw_upstream):
    def script(sock: socket.socket, head: bytes) -> None:  # refuses the body at once
        sock.sendall(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    upstream = raw_upstream(script)
    with serve(proxy_config(upstream.address)) as server:
        with socket.create_connection(("127.0.0.1", server.port()), timeout=5) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 20000\r\n\r\n" + b"a" * 1000)
            time.sleep(0.2)  # the proxy's body sender waits for more
            sock.sendall(b"b" * 19000)
            status = Reader(sock).response()[0]
        time.sleep(0.2)

        async def senders() -> list[str]:
            return [repr(t.get_coro()) for t in asyncio.all_tasks() if "_send_body" in repr(t.get_coro())]
        pending = server.call(senders)
    assert status == 413
    assert pending == []


def test_a_pooled_connection_is_never_left_with_reading_paused(serve, raw_upstream):
    body = b"y" * 300_000  # above the 256 KiB high-water mark, read in two or three reads

    def script(sock: socket.socket, head: bytes) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    upstream = raw_upstream(script)
    transport = {"protocol": "http", "response_header_timeout": "300ms"}
    with serve(proxy_config(upstream.address, transport=transport)) as server:
        with httpx.Client(timeout=5) as client:
            statuses = [client.get(server.url("/")).status_code for _ in range(6)]
    assert statuses == [200] * 6


def test_handle_response_routes_that_fail_release_the_upstream(serve, raw_upstream):
    upstream = raw_upstream(lambda sock, head: sock.sendall(b"HTTP/1.1 500 X\r\nContent-Length: 4\r\n\r\nboom"))
    handle_response = [{"match": {"status_code": [500]},
                        "routes": [{"handle": [{"handler": "error", "status_code": 503}]}]}]
    with serve(proxy_config(upstream.address, handle_response=handle_response), admin=True) as server:
        statuses = [httpx.get(server.url("/")).status_code for _ in range(3)]
        in_flight = _states(server)[upstream.address]["num_requests"]
    assert statuses == [503] * 3
    assert in_flight == 0


def test_a_response_made_bodiless_by_handle_response_releases_the_upstream(serve, raw_upstream):
    def script(sock: socket.socket, head: bytes) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        time.sleep(0.02)  # the body comes after the head: it streams
        sock.sendall(b"hello")
    upstream = raw_upstream(script)
    handle_response = [{"match": {"status_code": [200]}, "status_code": 204}]
    transport = {"protocol": "http", "max_conns_per_host": 1, "dial_timeout": "500ms"}
    with serve(proxy_config(upstream.address, handle_response=handle_response, transport=transport),
               admin=True) as server:
        with httpx.Client(timeout=5) as client:
            statuses = [client.get(server.url("/")).status_code for _ in range(2)]
        in_flight = _states(server)[upstream.address]["num_requests"]
    assert statuses == [204, 204]  # the second one needs the first one's connection slot back
    assert in_flight == 0


def test_response_buffers_do_not_hide_a_truncated_upstream_body(serve, raw_upstream):
    def script(sock: socket.socket, head: bytes) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nhello")
        time.sleep(0.02)
        sock.shutdown(socket.SHUT_RDWR)
    upstream = raw_upstream(script)
    with serve(proxy_config(upstream.address, response_buffers=1 << 20)) as server:
        raw, closed = _get_until_quiet(server.port())
    status, headers, body = _split_response(raw)
    # a 502, or a visibly truncated response (the connection closed short of its length)
    assert status == 502 or (closed and len(body) < int(headers["content-length"]))


def test_a_failure_while_buffering_the_response_is_a_gateway_error(serve, raw_upstream):
    stalled = threading.Event()

    def script(sock: socket.socket, head: bytes) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nhello")
        stalled.wait(2)
    upstream = raw_upstream(script)
    transport = {"protocol": "http", "read_timeout": "200ms"}
    with serve(proxy_config(upstream.address, response_buffers=1 << 20, transport=transport), admin=True) as server:
        try:
            status = httpx.get(server.url("/"), timeout=5).status_code
        finally:
            stalled.set()
        in_flight = _states(server)[upstream.address]["num_requests"]
    assert status in (502, 504)
    assert in_flight == 0


def test_a_content_length_the_body_does_not_match_never_reaches_the_client(serve, backend):
    backend.respond = lambda ex: ex.reply(200, b"0123456789")
    with serve(proxy_config(backend.address, rewrite={"method": "HEAD"})) as server:
        raw, closed = _get_until_quiet(server.port())
    _, headers, body = _split_response(raw)
    assert backend.requests[0].method == "HEAD"
    assert headers.get("content-length") in (None, str(len(body))) or closed


# --- resource bounds -----------------------------------------------------------------------


def test_an_endless_upstream_body_to_a_stalled_client_stays_bounded(serve, raw_upstream):
    sent = [0]

    def script(sock: socket.socket, head: bytes) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = b"10000\r\n" + b"z" * 65536 + b"\r\n"
        try:
            while True:
                sock.sendall(piece)
                sent[0] += 65536
        except OSError:
            pass
    upstream = raw_upstream(script)
    with serve(proxy_config(upstream.address)) as server:
        with socket.create_connection(("127.0.0.1", server.port()), timeout=5) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            time.sleep(0.4)  # the client reads nothing
            first = sent[0]
            time.sleep(0.3)
            second = sent[0]
    assert second == first  # the upstream is stalled, not read into memory
    assert second < 64 * 1024 * 1024  # kernel buffers and the proxy's high-water marks


def test_connection_slot_waiters_are_served_in_turn(serve, backend):
    def respond(ex: Exchange) -> None:
        time.sleep(0.05)
        ex.reply(200, b"ok")
    backend.respond = respond
    transport = {"protocol": "http", "max_conns_per_host": 1, "dial_timeout": "5s"}
    with serve(proxy_config(backend.address, transport=transport)) as server:
        results: list[int] = []

        def one() -> None:
            results.append(httpx.get(server.url("/"), timeout=10).status_code)
        threads = [threading.Thread(target=one) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [200] * 8
    assert backend.connections == 1


# --- WebSocket tunnels -----------------------------------------------------------------------


def _upgrade(port: int, extra: bytes = b"") -> tuple[socket.socket, bytes]:
    """A tunnel through the proxy, and the bytes that came after the 101's head."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" + extra)
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    assert received.startswith(b"HTTP/1.1 101 ")
    sock.settimeout(5)
    return sock, received.partition(b"\r\n\r\n")[2]


def _echo(sock: socket.socket, head: bytes) -> None:
    sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    while data := sock.recv(65536):
        sock.sendall(data)
    sock.close()
    raise OSError("done")


def test_a_tunnel_frees_its_connection_slot_for_waiters(serve, raw_upstream):
    def script(sock: socket.socket, head: bytes) -> None:
        if b"/ws" in head:
            time.sleep(0.2)
            _echo(sock, head)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    upstream = raw_upstream(script)
    transport = {"protocol": "http", "max_conns_per_host": 1, "dial_timeout": "600ms"}
    with serve(proxy_config(upstream.address, transport=transport)) as server:
        port = server.port()
        tunnel: list[socket.socket] = []
        opener = threading.Thread(target=lambda: tunnel.append(_upgrade(port)[0]))
        opener.start()
        _wait_until(lambda: upstream.heads)
        response = httpx.get(server.url("/plain"), timeout=5)  # waits for the slot the tunnel takes
        opener.join()
        tunnel[0].close()
    assert response.status_code == 200


def test_a_tunnel_carries_data_sent_before_the_101_and_backpressure_both_ways(serve, raw_upstream):
    upstream = raw_upstream(_echo)
    with serve(proxy_config(upstream.address), admin=True) as server:
        sock, got = _upgrade(server.port(), extra=b"early")
        with sock:
            while len(got) < 5:
                got += sock.recv(65536)
            assert got == b"early"
            payload = bytes(range(256)) * 16384  # 4 MB each way, written before reading any
            writer = threading.Thread(target=sock.sendall, args=(payload,))
            writer.start()
            echoed = b""
            while len(echoed) < len(payload):
                echoed += sock.recv(1 << 20)
            writer.join()
            assert echoed == payload
        _wait_until(lambda: upstream.eofs == 1 or upstream.socks[0].fileno() == -1)
        _wait_until(lambda: _states(server)[upstream.address]["num_requests"] == 0)


def test_an_upstream_reset_ends_the_tunnel(serve, raw_upstream):
    def script(sock: socket.socket, head: bytes) -> None:
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nbye")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
        raise OSError("done")
    upstream = raw_upstream(script)
    with serve(proxy_config(upstream.address), admin=True) as server:
        sock, rest = _upgrade(server.port())
        with sock:
            rest += _recv_until_close(sock, timeout=3)
        assert rest == b"bye"
        _wait_until(lambda: _states(server)[upstream.address]["num_requests"] == 0)


def test_a_client_reset_ends_the_tunnel(serve, raw_upstream):
    upstream = raw_upstream(_echo)
    with serve(proxy_config(upstream.address), admin=True) as server:
        sock, _ = _upgrade(server.port())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
        _wait_until(lambda: upstream.eofs == 1)
        _wait_until(lambda: _states(server)[upstream.address]["num_requests"] == 0)
