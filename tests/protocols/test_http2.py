"""The HTTP/2 server through real clients (curl, httpx, h2load, a raw h2 client) on real
sockets: ALPN and h2c (prior knowledge and Upgrade), flow control both ways, trailers,
GOAWAY on reload, and the attacks HTTP/2 servers must survive."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hpack import Encoder
from hyperframe.frame import ContinuationFrame, HeadersFrame, RstStreamFrame, SettingsFrame

from rws.protocols.http2 import MAX_WRITE_BUFFER, PREFACE
from tests.handlers.reverse_proxy.runtime.backends import Backend, Exchange
from tests.protocols.h2client import H2Client
from tests.protocols.conftest import BIG
from tests.tls.test_termination import Authority

def rwsfile(root: Path, *, upstream: str = "127.0.0.1:9", tls: str = "", protocols: str = "h1 h2 h2c",
            extra: str = "", address: str = "") -> str:
    address = address or ("a.test" if tls else "http://")
    return f"""{{
	servers {{
		protocols {protocols}
		{extra}
	}}
}}
{address} {{
	{tls}
	root * {root}
	handle /hello {{
		respond "hello {{http.request.proto}}"
	}}
	handle /echo {{
		respond "{{http.request.body}}"
	}}
	handle /proxy/* {{
		reverse_proxy {upstream}
	}}
	handle {{
		file_server
	}}
}}
"""


def tls_site(ca: Authority, root: Path, **options: Any) -> str:
    crt, key = ca.leaf("a", "a.test")
    return rwsfile(root, tls=f"tls {crt} {key}", **options)


def client_context(ca: Authority, alpn: list[str]) -> Any:
    context = ca.client()
    context.set_alpn_protocols(alpn)
    return context


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True, text=True, timeout=30)


# --- negotiation -----------------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_curl_gets_http2_over_tls_by_alpn(serve: Any, site: Path, ca: Authority, loop: str) -> None:
    with serve(tls_site(ca, site), loop=loop) as server:
        port = server.port()
        out = curl("--http2", "--cacert", str(ca.pem), "--resolve", f"a.test:{port}:127.0.0.1",
                   "-w", "|%{http_version}", f"https://a.test:{port}/hello")
        assert out.stdout == "hello HTTP/2.0|2", out.stderr
        out = curl("--http1.1", "--cacert", str(ca.pem), "--resolve", f"a.test:{port}:127.0.0.1",
                   "-w", "|%{http_version}", f"https://a.test:{port}/hello")
        assert out.stdout == "hello HTTP/1.1|1.1"


def test_a_server_without_h2_offers_only_http11(serve: Any, site: Path, ca: Authority) -> None:
    with serve(tls_site(ca, site, protocols="h1"), loop="uvloop") as server:
        port = server.port()
        out = curl("--http2", "--cacert", str(ca.pem), "--resolve", f"a.test:{port}:127.0.0.1",
                   "-w", "|%{http_version}", f"https://a.test:{port}/hello")
        assert out.stdout == "hello HTTP/1.1|1.1"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_h2c_by_prior_knowledge_and_by_upgrade(serve: Any, site: Path, loop: str) -> None:
    with serve(rwsfile(site), loop=loop) as server:
        url = server.url("/hello")
        out = curl("--http2-prior-knowledge", "-w", "|%{http_version}", url)
        assert out.stdout == "hello HTTP/2.0|2"
        out = curl("--http2", "-v", "-w", "|%{http_version}", url)
        assert out.stdout == "hello HTTP/2.0|2"
        assert "HTTP/1.1 101 Switching Protocols" in out.stderr
        # an upgrade request with a body is answered over HTTP/1.1, as the RFC allows
        out = curl("--http2", "-d", "abc", "-w", "|%{http_version}", server.url("/echo"))
        assert out.stdout == "abc|1.1"


def test_h2c_is_off_unless_the_server_names_it(serve: Any, site: Path) -> None:
    with serve(rwsfile(site, protocols="h1 h2"), loop="uvloop") as server:
        out = curl("--http2", "-v", "-w", "|%{http_version}", server.url("/hello"))
        assert out.stdout == "hello HTTP/1.1|1.1"
        with socket.create_connection(("127.0.0.1", server.port()), timeout=10) as sock:
            sock.sendall(PREFACE)
            answer = sock.recv(4096)
        assert not answer.startswith(b"\x00")  # no HTTP/2 SETTINGS frame: HTTP/1 refused it
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4")
        assert curl("--http2-prior-knowledge", server.url("/hello")).returncode != 0


def test_httpx_http2_get_and_post(serve: Any, site: Path, ca: Authority) -> None:
    with serve(tls_site(ca, site), loop="uvloop") as server:
        port = server.port()
        transport = httpx.HTTPTransport(http2=True, verify=ca.client())
        with httpx.Client(transport=transport, base_url=f"https://a.test:{port}") as client:
            # (connect to 127.0.0.1 while naming a.test)
            client._transport._pool._network_backend = _Resolve(port)  # type: ignore[attr-defined]
            response = client.get("/hello")
            assert response.http_version == "HTTP/2" and response.text == "hello HTTP/2.0"
            payload = os.urandom(200_000).hex()
            response = client.post("/echo", content=payload)
            assert response.http_version == "HTTP/2" and response.text == payload
            big = client.get("/big.bin")
            assert len(big.content) == BIG and big.headers["content-length"] == str(BIG)
            assert big.content == (site / "big.bin").read_bytes()


class _Resolve:
    """httpcore's network backend, dialling 127.0.0.1 for any host."""

    def __init__(self, port: int) -> None:
        import httpcore

        self.backend = httpcore.SyncBackend()
        self.port = port

    def connect_tcp(self, host: str, port: int, **options: Any) -> Any:
        return self.backend.connect_tcp("127.0.0.1", port, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)


@pytest.mark.parametrize("scheme", ["h2c", "tls"])
def test_h2load_runs_without_errors(serve: Any, site: Path, ca: Authority, scheme: str) -> None:
    config = rwsfile(site) if scheme == "h2c" else tls_site(ca, site)
    with serve(config, loop="uvloop") as server:
        port = server.port()
        url = f"http://127.0.0.1:{port}/small.txt" if scheme == "h2c" else f"https://a.test:{port}/small.txt"
        out = subprocess.run(["h2load", "-n", "3000", "-c", "4", "-m", "10", "--connect-to", f"127.0.0.1:{port}",
                              url], capture_output=True, text=True, timeout=60)
        assert re.search(r"3000 succeeded, 0 failed, 0 errored", out.stdout), out.stdout
        assert "3000 2xx" in out.stdout


# --- flow control ---------------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_stalled_stream_does_not_hold_up_another_on_the_same_connection(serve: Any, site: Path, loop: str) -> None:
    with serve(rwsfile(site), loop=loop) as server:
        client = H2Client(server.port(), connection_window=1 << 30)  # only the stream windows limit
        slow = client.request("/big.bin", scheme="http")
        client.no_ack.add(slow)  # its window stays shut after the first 64 KiB
        client.pump(lambda: len(client.replies[slow].data) >= 65535)
        fast = client.request("/small.txt", scheme="http")
        client.pump(client.done(fast))
        assert client.replies[fast].data == b"small file\n"
        assert not client.replies[slow].ended and len(client.replies[slow].data) == 65535
        client.h2.increment_flow_control_window(1 << 30, stream_id=slow)
        client.flush()
        client.pump(client.done(slow))
        assert bytes(client.replies[slow].data) == (site / "big.bin").read_bytes()
        client.close()


def _server_connections(server: Any) -> list[Any]:
    gen = server.runtime.generation
    return [conn for srv in gen.servers.values() for conn in list(srv.connections)]


def test_a_client_that_does_not_read_is_not_buffered_for(serve: Any, tmp_path: Path, site: Path) -> None:
    (site / "huge.bin").write_bytes(b"x" * (64 * 1024 * 1024))
    with serve(rwsfile(site), loop="uvloop") as server:
        client = H2Client(server.port(), settings={SettingCodes.INITIAL_WINDOW_SIZE: (1 << 31) - 1},
                          connection_window=(1 << 31) - 1 - 65535, rcvbuf=4096)
        sid = client.request("/huge.bin", scheme="http")
        time.sleep(1.5)  # the client reads nothing meanwhile
        sizes = server.call(_write_buffers(server))
        assert sizes and max(sizes) <= MAX_WRITE_BUFFER
        client.pump(client.done(sid), timeout=60)
        assert len(client.replies[sid].data) == 64 * 1024 * 1024
        client.close()


def _write_buffers(server: Any) -> Any:
    async def sizes() -> list[int]:
        return [c.transport.get_write_buffer_size() for c in _server_connections(server) if c.transport is not None]
    return sizes


def test_an_upload_the_handler_does_not_read_stops_at_the_windows(serve: Any, site: Path) -> None:
    held: list[socket.socket] = []
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    upstream = f"127.0.0.1:{listener.getsockname()[1]}"
    try:
        with serve(rwsfile(site, upstream=upstream), loop="uvloop") as server:
            client = H2Client(server.port())
            size = 48 * 1024 * 1024
            sid = client.request("/proxy/upload", "POST", None, end=False, scheme="http",
                                 headers=[("content-length", str(size))])
            sent = 0
            idle_since = time.monotonic()
            chunk = b"u" * 16384
            while sent < size and time.monotonic() - idle_since < 2:
                window = min(client.h2.local_flow_control_window(sid), size - sent)
                if window > 0:
                    part = chunk[:window]
                    client.h2.send_data(sid, part)
                    client.flush()
                    sent += len(part)
                    idle_since = time.monotonic()
                else:
                    try:
                        client.sock.settimeout(0.2)
                        data = client.sock.recv(65536)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    client.receive(data)
            # the upstream reads nothing: rws takes no more than the windows and the socket
            # buffers hold, and the client is left with a shut window
            assert sent < size
            assert client.h2.local_flow_control_window(sid) == 0
            client.close()
    finally:
        listener.close()
        for sock in held:
            sock.close()


# --- trailers, reload, shutdown --------------------------------------------------------------


def _chunked_with_trailers(exchange: Exchange) -> None:
    exchange.sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
                          b"5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n")


def test_upstream_trailers_reach_an_http2_client(serve: Any, site: Path) -> None:
    backend = Backend(respond=_chunked_with_trailers)
    try:
        with serve(rwsfile(site, upstream=backend.address), loop="uvloop") as server:
            client = H2Client(server.port())
            reply = client.get("/proxy/t", scheme="http", headers=[("te", "trailers")])
            assert reply.status == 200 and reply.data == b"hello"
            assert ("x-checksum", "abc123") in reply.trailers
            client.close()
    finally:
        backend.close()


def _slow_stream(exchange: Exchange) -> None:
    exchange.sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for i in range(10):
        exchange.sock.sendall(b"6\r\npart%d\n\r\n" % i)
        time.sleep(0.15)
    exchange.sock.sendall(b"0\r\n\r\n")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_reload_sends_goaway_and_long_streams_finish(serve: Any, site: Path, loop: str) -> None:
    backend = Backend(respond=_slow_stream)
    try:
        with serve(rwsfile(site, upstream=backend.address), loop=loop) as server:
            port = server.port()
            client = H2Client(port)
            streams = [client.request("/proxy/slow", scheme="http") for _ in range(3)]
            client.pump(lambda: all(client.replies[s].data for s in streams))
            reloaded = threading.Thread(target=server.apply, args=(rwsfile(site, upstream=backend.address)
                                                                   .replace('"hello', '"reloaded'),))
            reloaded.start()
            client.pump(lambda: client.goaway is not None)
            assert client.goaway is not None and client.goaway.error_code == ErrorCodes.NO_ERROR
            assert client.goaway.last_stream_id == max(streams)
            client.pump(lambda: all(client.replies[s].ended for s in streams))
            for sid in streams:
                assert bytes(client.replies[sid].data) == b"".join(b"part%d\n" % i for i in range(10))
            reloaded.join(30)
            client.pump(lambda: client.closed)  # the drained connection closes
            again = H2Client(port)
            assert again.get("/hello", scheme="http").data == b"reloaded HTTP/2.0"
            again.close()
    finally:
        backend.close()


def test_a_stream_opened_after_goaway_is_refused(serve: Any, site: Path) -> None:
    backend = Backend(respond=_slow_stream)
    try:
        with serve(rwsfile(site, upstream=backend.address), loop="uvloop") as server:
            client = H2Client(server.port())
            first = client.request("/proxy/slow", scheme="http")
            client.pump(lambda: bool(client.replies[first].data))
            changed = rwsfile(site, upstream=backend.address).replace('"hello', '"reloaded')
            reloaded = threading.Thread(target=server.apply, args=(changed,))
            reloaded.start()
            client.pump(lambda: client.goaway is not None)
            # a request sent as the GOAWAY crossed it: the server refuses it (the client may retry)
            late = client.request("/hello", scheme="http", stream_id=first + 2)
            client.pump(client.done(late))
            assert client.replies[late].reset == ErrorCodes.REFUSED_STREAM
            client.pump(client.done(first))
            assert client.replies[first].ended
            reloaded.join(30)
            client.close()
    finally:
        backend.close()


# --- attacks ------------------------------------------------------------------------------------


@pytest.fixture
def h2c_server(serve: Any, site: Path) -> Iterator[Any]:
    backend = Backend(respond=_slow_stream)
    try:
        with serve(rwsfile(site, upstream=backend.address), loop="uvloop") as server:
            server.backend = backend
            yield server
    finally:
        backend.close()


def _still_serving(server: Any) -> None:
    other = H2Client(server.port())
    assert other.get("/hello", scheme="http").data == b"hello HTTP/2.0"
    other.close()


def test_rapid_reset_is_cut_short(h2c_server: Any) -> None:
    client = H2Client(h2c_server.port())
    encoder = Encoder()
    block = encoder.encode([(":method", "GET"), (":path", "/proxy/slow"), (":scheme", "http"),
                            (":authority", "localhost")])
    frames = bytearray()
    for i in range(5000):
        sid = 1 + 2 * i
        frames += HeadersFrame(sid, block, flags=["END_HEADERS", "END_STREAM"]).serialize()
        frames += RstStreamFrame(sid, error_code=ErrorCodes.CANCEL).serialize()
    try:
        client.sock.sendall(bytes(frames))
    except OSError:
        pass  # the server may close before it has read it all
    client.pump(lambda: client.goaway is not None, timeout=20)
    assert client.goaway is not None and client.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert len(h2c_server.backend.requests) < 1000  # far fewer than the streams opened
    _still_serving(h2c_server)


def test_continuation_flood_closes_the_connection(h2c_server: Any) -> None:
    client = H2Client(h2c_server.port())
    frames = bytearray(HeadersFrame(1, Encoder().encode([(":method", "GET")]), flags=[]).serialize())
    for i in range(2000):
        frames += ContinuationFrame(1, Encoder().encode([(f"x-flood-{i}", "y" * 10)]), flags=[]).serialize()
    try:
        client.sock.sendall(bytes(frames))
    except OSError:
        pass
    client.pump(lambda: client.goaway is not None, timeout=20)
    assert client.goaway is not None and client.goaway.error_code != ErrorCodes.NO_ERROR
    _still_serving(h2c_server)


def test_hpack_bomb_is_refused(h2c_server: Any) -> None:
    client = H2Client(h2c_server.port())
    encoder = Encoder()
    block = bytearray(encoder.encode([(":method", "GET"), (":path", "/hello"), (":scheme", "http"),
                                      (":authority", "localhost"), ("x-bomb", "b" * 4000)]))
    block += bytes([0x80 | 62]) * 12000  # the 4 KB field again and again: ~48 MB once decoded
    frames = HeadersFrame(1, bytes(block[:16384]), flags=["END_STREAM"]).serialize()
    rest = bytes(block[16384:])
    frames += ContinuationFrame(1, rest, flags=["END_HEADERS"]).serialize()
    client.sock.sendall(frames)
    client.pump(lambda: client.goaway is not None or client.replies.get(1) is not None, timeout=20)
    assert client.goaway is not None and client.goaway.error_code != ErrorCodes.NO_ERROR
    _still_serving(h2c_server)


def test_settings_flood_from_a_client_that_does_not_read(h2c_server: Any) -> None:
    client = H2Client(h2c_server.port(), rcvbuf=4096)
    flood = SettingsFrame(0, settings={SettingCodes.MAX_CONCURRENT_STREAMS: 100}).serialize() * 100_000
    client.sock.settimeout(5)
    try:
        client.sock.sendall(flood)
    except OSError:
        pass  # the server stopped reading: what it owes us is not sent
    sizes = h2c_server.call(_write_buffers(h2c_server))
    assert max(sizes) <= MAX_WRITE_BUFFER + 64 * 1024
    _still_serving(h2c_server)
    client.close()


def test_a_zero_window_stall_is_reset_and_others_go_on(serve: Any, site: Path) -> None:
    with serve(rwsfile(site, extra="timeouts {\n\t\t\tidle 1s\n\t\t}"), loop="uvloop") as server:
        client = H2Client(server.port(), settings={SettingCodes.INITIAL_WINDOW_SIZE: 0})
        stalled = client.request("/big.bin", scheme="http")
        head = client.get("/small.txt", method="HEAD", scheme="http")  # no data frames: the window doesn't matter
        assert head.status == 200 and head.header("content-length") == "11"
        _still_serving(server)
        client.pump(client.done(stalled), timeout=20)
        assert client.replies[stalled].reset == ErrorCodes.CANCEL and not client.replies[stalled].data
        client.close()


def test_stream_ids_run_out_without_harm(h2c_server: Any) -> None:
    client = H2Client(h2c_server.port())
    last = (1 << 31) - 1
    reply = client.get("/hello", scheme="http", stream_id=last)
    assert reply.data == b"hello HTTP/2.0"
    block = Encoder().encode([(":method", "GET"), (":path", "/hello"), (":scheme", "http"),
                              (":authority", "localhost")])
    client.sock.sendall(HeadersFrame(5, block, flags=["END_HEADERS", "END_STREAM"]).serialize())  # a used-up id
    client.pump(lambda: client.goaway is not None)
    assert client.goaway is not None and client.goaway.error_code == ErrorCodes.PROTOCOL_ERROR
    _still_serving(h2c_server)


def test_a_header_list_over_the_limit_is_refused(h2c_server: Any) -> None:
    client = H2Client(h2c_server.port())
    fields = [(f"x-big-{i}", "v" * 8000) for i in range(200)]  # 1.6 MB, over the 1 MiB limit
    client.h2.max_outbound_frame_size = 16384
    sid = client.request("/hello", scheme="http", headers=fields)
    client.pump(lambda: client.goaway is not None or client.done(sid)())
    assert client.goaway is not None or client.replies[sid].status == 431 or client.replies[sid].reset is not None
    _still_serving(h2c_server)


MALFORMED = [
    [("x-Upper", "1")],
    [("connection", "keep-alive")],
    [("transfer-encoding", "chunked")],
    [("te", "gzip")],
    [("x-bad", "a\rb")],
    [("x-bad", " padded")],
    [("host", "other.example")],  # differs from :authority
    [(":unknown", "1")],
]


@pytest.mark.parametrize("fields", MALFORMED)
def test_a_malformed_request_resets_its_stream_only(h2c_server: Any, fields: list[tuple[str, str]]) -> None:
    client = H2Client(h2c_server.port())
    sid = client.request("/hello", scheme="http", headers=fields)
    client.pump(client.done(sid))
    assert client.replies[sid].reset == ErrorCodes.PROTOCOL_ERROR and client.replies[sid].status == 0
    assert client.get("/hello", scheme="http").data == b"hello HTTP/2.0"  # the connection goes on
    client.close()


@pytest.mark.parametrize("pseudo", [
    [(":method", "GET"), (":scheme", "http"), (":authority", "localhost")],  # no :path
    [(":method", "GET"), (":path", "/hello"), (":authority", "localhost")],  # no :scheme
    [(":method", "GET"), (":path", "hello"), (":scheme", "http"), (":authority", "localhost")],
    [(":method", "GET"), (":path", "/a"), (":path", "/b"), (":scheme", "http"), (":authority", "localhost")],
    [(":method", "GET"), ("x-a", "1"), (":path", "/hello"), (":scheme", "http"), (":authority", "localhost")],
    # a method that is no token would reach an HTTP/1 upstream's request line as it is
    [(":method", "GET /admin HTTP/1.1\tX:"), (":path", "/hello"), (":scheme", "http"), (":authority", "localhost")],
])
def test_bad_pseudo_fields_reset_the_stream(h2c_server: Any, pseudo: list[tuple[str, str]]) -> None:
    client = H2Client(h2c_server.port())
    sid = client.request("", fields=pseudo)
    client.pump(client.done(sid))
    assert client.replies[sid].reset == ErrorCodes.PROTOCOL_ERROR
    assert client.get("/hello", scheme="http").data == b"hello HTTP/2.0"
    client.close()


def test_early_hints_and_100_continue_over_http2(serve: Any, site: Path) -> None:
    config = ("{\n\tservers {\n\t\tprotocols h1 h2c\n\t}\n}\nhttp:// {\n\troute /hints {\n"
              "\t\theader Link \"</style.css>; rel=preload\"\n\t\trespond 103\n\t\trespond \"final\"\n\t}\n"
              "\trespond /echo \"{http.request.body}\"\n}\n")
    with serve(config, loop="uvloop") as server:
        client = H2Client(server.port())
        reply = client.get("/hints", scheme="http")
        assert [dict(h)[":status"] for h in reply.informational] == ["103"]
        assert ("link", "</style.css>; rel=preload") in reply.informational[0]
        assert reply.status == 200 and reply.data == b"final"
        sid = client.request("/echo", "POST", scheme="http", end=False,
                             headers=[("expect", "100-continue"), ("content-length", "5")])
        client.pump(lambda: bool(client.replies[sid].informational))
        assert dict(client.replies[sid].informational[0])[":status"] == "100" and client.replies[sid].status == 0
        client.h2.send_data(sid, b"hello", end_stream=True)
        client.flush()
        client.pump(client.done(sid))
        assert client.replies[sid].status == 200 and client.replies[sid].data == b"hello"
        client.close()


def _dies_midway(exchange: Exchange) -> None:
    exchange.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
    exchange.sock.shutdown(socket.SHUT_RDWR)


def test_an_upstream_that_dies_midway_resets_the_stream(serve: Any, site: Path) -> None:
    backend = Backend(respond=_dies_midway)
    try:
        with serve(rwsfile(site, upstream=backend.address), loop="uvloop") as server:
            client = H2Client(server.port())
            reply = client.get("/proxy/dies", scheme="http")
            assert reply.status == 200 and reply.reset == ErrorCodes.INTERNAL_ERROR and not reply.ended
            assert len(reply.data) < 100000
            assert client.get("/hello", scheme="http").data == b"hello HTTP/2.0"  # the connection goes on
            client.close()
    finally:
        backend.close()


def test_read_body_and_write_timeouts_reset_the_stream_not_the_connection(serve: Any, site: Path) -> None:
    backend = Backend(respond=_slow_stream)  # 1.5 s of response
    try:
        extra = "timeouts {\n\t\t\tread_body 1s\n\t\t\twrite 1s\n\t\t}"
        with serve(rwsfile(site, upstream=backend.address, extra=extra), loop="uvloop") as server:
            client = H2Client(server.port())
            upload = client.request("/echo", "POST", scheme="http", end=False, headers=[("content-length", "10")])
            client.h2.send_data(upload, b"01234")  # and never the rest
            client.flush()
            slow = client.request("/proxy/slow", scheme="http")
            client.pump(lambda: client.done(upload)() and client.done(slow)(), timeout=20)
            assert client.replies[upload].reset == ErrorCodes.INTERNAL_ERROR and client.replies[upload].status == 0
            assert client.replies[slow].reset == ErrorCodes.INTERNAL_ERROR and client.replies[slow].status == 200
            assert client.get("/hello", scheme="http").data == b"hello HTTP/2.0"  # the connection goes on
            client.close()
    finally:
        backend.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_listen_protocols_choose_per_listener(serve: Any, ca: Authority) -> None:
    crt, key = ca.leaf("a", "a.test")
    plain, h2c, only_h1, default = (_free_port() for _ in range(4))
    respond = [{"handle": [{"handler": "static_response", "body": "{http.request.proto}"}]}]
    servers = {
        "clear": {"listen": [f"127.0.0.1:{plain}", f"127.0.0.1:{h2c}"], "listen_protocols": [None, ["h1", "h2c"]],
                  "routes": respond, "automatic_https": {"disable": True}},
        "tls": {"listen": [f"127.0.0.1:{only_h1}", f"127.0.0.1:{default}"], "listen_protocols": [["h1"], None],
                "routes": respond, "tls_connection_policies": [{}], "automatic_https": {"disable": True}},
    }
    tree = {"apps": {"http": {"servers": servers},
                     "tls": {"certificates": {"load_files": [{"certificate": str(crt), "key": str(key)}]}}}}
    with serve(tree, loop="uvloop"):
        def version(*args: str) -> str:
            return curl("-w", "|%{http_version}", "--cacert", str(ca.pem), *args).stdout

        assert version("--http2-prior-knowledge", f"http://127.0.0.1:{h2c}/") == "HTTP/2.0|2"
        assert version("--http2-prior-knowledge", f"http://127.0.0.1:{plain}/") == "|0"  # no h2c there: no answer
        for port, expected in ((only_h1, "HTTP/1.1|1.1"), (default, "HTTP/2.0|2")):
            assert version("--http2", "--resolve", f"a.test:{port}:127.0.0.1", f"https://a.test:{port}/") == expected


def test_the_server_settings(serve: Any, site: Path) -> None:
    from h2.events import RemoteSettingsChanged

    with serve(rwsfile(site, extra="max_header_size 64KB"), loop="uvloop") as server:
        client = H2Client(server.port())
        settings: dict[int, int] = {}
        while not settings:
            client.sock.settimeout(10)
            for event in client.receive(client.sock.recv(65536)):
                if isinstance(event, RemoteSettingsChanged):
                    settings = {code: change.new_value for code, change in event.changed_settings.items()}
        assert settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 250
        assert settings[SettingCodes.INITIAL_WINDOW_SIZE] == 256 * 1024
        assert settings[SettingCodes.MAX_FRAME_SIZE] == 16384
        assert settings[SettingCodes.MAX_HEADER_LIST_SIZE] == 64 * 1000
        assert settings[SettingCodes.ENABLE_PUSH] == 0
        assert client.h2.outbound_flow_control_window == 2 * 1024 * 1024  # the connection's window, opened
        client.close()


def test_a_site_that_reads_the_body_on_one_route_streams_it_on_others(serve: Any, site: Path) -> None:
    """`{http.request.body}` buffers the body for the route that reads it, not for the
    whole site (a subroute): an upload elsewhere still stops at the windows."""
    held: list[socket.socket] = []
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    try:
        config = rwsfile(site, upstream=f"127.0.0.1:{listener.getsockname()[1]}", address="http://localhost")
        with serve(config, loop="uvloop") as server:  # (a named site: its routes are one subroute)
            client = H2Client(server.port())
            assert client.get("/echo", method="POST", body=b"read here", scheme="http").data == b"read here"
            sid = client.request("/proxy/upload", "POST", None, end=False, scheme="http")
            sent = 0
            while client.h2.local_flow_control_window(sid) > 0 and sent < 64 * 1024 * 1024:
                part = b"u" * min(16384, client.h2.local_flow_control_window(sid))
                client.h2.send_data(sid, part)
                client.flush()
                sent += len(part)
                try:
                    client.sock.settimeout(0.5 if client.h2.local_flow_control_window(sid) == 0 else 0.001)
                    client.receive(client.sock.recv(65536))
                except TimeoutError:
                    pass
            assert sent < 64 * 1024 * 1024 and client.h2.local_flow_control_window(sid) == 0
            client.close()
    finally:
        listener.close()
        for sock in held:
            sock.close()


def test_a_graceful_goaway_from_the_client_lets_its_streams_finish(h2c_server: Any) -> None:
    from hyperframe.frame import GoAwayFrame

    client = H2Client(h2c_server.port())
    sid = client.request("/proxy/slow", scheme="http")
    client.pump(lambda: bool(client.replies[sid].data))
    client.sock.sendall(GoAwayFrame(0, last_stream_id=0, error_code=0).serialize())  # the client is leaving
    client.pump(client.done(sid))
    assert client.replies[sid].ended and bytes(client.replies[sid].data) == b"".join(b"part%d\n" % i for i in range(10))
    client.pump(lambda: client.closed)  # and then the connection closes
    assert client.goaway is not None and client.goaway.error_code == ErrorCodes.NO_ERROR


def test_streams_reset_while_waiting_for_a_window_leave_nothing_behind(serve: Any, site: Path) -> None:
    with serve(rwsfile(site), loop="uvloop") as server:
        client = H2Client(server.port(), settings={SettingCodes.INITIAL_WINDOW_SIZE: 0})
        for _ in range(50):
            sid = client.request("/big.bin", scheme="http")
            client.pump(lambda: client.replies[sid].status == 200)  # the head came; the body waits for a window
            client.h2.reset_stream(sid)
            client.flush()
            assert client.get("/small.txt", method="HEAD", scheme="http").status == 200

        async def waiters() -> list[int]:
            return [len(c.window_waiters) + len(c.streams) for c in _server_connections(server)]
        time.sleep(0.2)
        assert server.call(waiters) == [0]
        client.close()


def test_a_connection_switched_to_h2c_after_a_reload_began_is_drained(serve: Any, site: Path) -> None:
    import h2.config
    import h2.connection

    with serve(rwsfile(site), loop="uvloop") as server:
        sock = socket.create_connection(("127.0.0.1", server.port()), timeout=10)
        time.sleep(0.2)  # accepted, idle: a reload keeps it until its first request
        server.apply(rwsfile(site).replace('"hello', '"reloaded'))
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "GET"), (":path", "/hello"), (":scheme", "http"),
                              (":authority", "localhost")], end_stream=True)
        sock.sendall(conn.data_to_send())
        received = b""
        while chunk := sock.recv(65536):  # the server closes once the request is answered
            received += chunk
        sock.close()
        assert b"hello HTTP/2.0" in received  # answered by the generation that accepted it
        assert bytes([0, 0, 8, 7]) in received  # ... with a GOAWAY (an 8-byte GOAWAY frame header)
