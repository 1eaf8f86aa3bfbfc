"""The HTTP/3 server through aioquic's client on real UDP sockets: the same handlers as
over HTTP/1 and HTTP/2, bodies both ways with flow control, trailers, the certificate
chosen by server name, Alt-Svc on the TCP side, GOAWAY on reload and shutdown, and the
datagrams a QUIC endpoint must survive."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Coroutine

import pytest
from aioquic.h3.connection import ErrorCode
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from cryptography import x509

from rws.net.quic import MAX_CONNECTIONS_PER_IP, RETRY_THRESHOLD, QuicEndpoint
from rws.net.quic_connection import STREAM_WINDOW
from tests.handlers.reverse_proxy.runtime.backends import Backend, Exchange
from tests.protocols.h3client import h3_connect
from tests.protocols.conftest import BIG
from tests.tls.test_termination import Authority

def rwsfile(ca: Authority, root: Path, *, upstream: str = "127.0.0.1:9", protocols: str = "h1 h2 h3",
            cert: str = "a", body: str = "hello", echo: str = "{http.request.body}") -> str:
    crt, key = ca.leaf(cert, "a.test")
    b_crt, b_key = ca.leaf("b", "b.test")
    return f"""{{
	servers {{
		protocols {protocols}
	}}
}}
a.test {{
	tls {crt} {key}
	root * {root}
	handle /hello {{
		respond "{body} {{http.request.proto}}"
	}}
	handle /echo {{
		respond "{echo}"
	}}
	handle /nocontent {{
		respond 204
	}}
	handle /close {{
		respond "bye" {{
			close
		}}
	}}
	handle /abort {{
		abort
	}}
	handle /proxy/* {{
		reverse_proxy {upstream}
	}}
	handle {{
		file_server
	}}
}}
b.test {{
	tls {b_crt} {b_key}
	respond "B {{http.request.tls.server_name}}"
}}
"""


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 90)
    return asyncio.run(bounded())


def endpoint(server: Any) -> QuicEndpoint:
    found = [li.endpoint for li in server.runtime.pool.listeners.values() if li.address.is_datagram]
    assert len(found) == 1
    return found[0]  # type: ignore[no-any-return]


def h3_connections(server: Any) -> list[Any]:
    gen = server.runtime.generation
    return [conn for srv in gen.servers.values() for conn in list(srv.connections) if hasattr(conn, "h3")]


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True, text=True, timeout=30)


def names(cert: x509.Certificate) -> list[str]:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


# --- the same handlers over HTTP/3 --------------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_get_and_post_reach_the_same_handlers(serve: Any, site: Path, ca: Authority, loop: str) -> None:
    with serve(rwsfile(ca, site), loop=loop) as server:
        async def scenario() -> None:
            async with h3_connect(server.port(), ca.pem) as client:
                reply = await client.request("GET", "/hello")
                assert (reply.status, bytes(reply.data)) == (200, b"hello HTTP/3.0")
                assert reply.header("server") == "rws" and reply.header("content-length") == "14"
                assert reply.header("alt-svc") is None  # (HTTP/3 responses advertise nothing)
                reply = await client.request("POST", "/echo", body=b"small body")
                assert bytes(reply.data) == b"small body"
                reply = await client.request("GET", "/small.txt")
                assert bytes(reply.data) == b"small file\n"
                assert reply.header("content-type") == "text/plain; charset=utf-8"
        run(scenario())


def test_several_megabytes_each_way(serve: Any, site: Path, ca: Authority) -> None:
    backend = Backend(respond=lambda ex: ex.reply(200, hashlib.sha256(ex.body).hexdigest().encode()))
    upload = os.urandom(5 * 1024 * 1024 + 7)
    try:
        with serve(rwsfile(ca, site, upstream=backend.address), loop="uvloop") as server:
            async def scenario() -> None:
                async with h3_connect(server.port(), ca.pem) as client:
                    download = await client.request("GET", "/big.bin")
                    assert download.status == 200 and bytes(download.data) == (site / "big.bin").read_bytes()
                    reply = await client.request("POST", "/proxy/upload", body=upload,
                                                 headers=[("content-length", str(len(upload)))])
                    assert bytes(reply.data) == hashlib.sha256(upload).hexdigest().encode()
                    # and with no content-length: the body's end is the stream's
                    reply = await client.request("POST", "/proxy/upload", body=upload)
                    assert bytes(reply.data) == hashlib.sha256(upload).hexdigest().encode()
            run(scenario())
    finally:
        backend.close()


def _chunked_with_trailers(exchange: Exchange) -> None:
    exchange.sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
                          b"5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n")


def test_trailers_both_ways(serve: Any, site: Path, ca: Authority) -> None:
    backend = Backend(respond=_chunked_with_trailers)
    try:
        with serve(rwsfile(ca, site, upstream=backend.address)) as server:
            async def scenario() -> None:
                async with h3_connect(server.port(), ca.pem) as client:
                    reply = await client.request("GET", "/proxy/t", headers=[("te", "trailers")])
                    assert reply.status == 200 and bytes(reply.data) == b"hello"
                    assert ("x-checksum", "abc123") in reply.trailers
                    # a request's trailers end its body (and are not passed on)
                    reply = await client.request("POST", "/echo", body=b"with trailers",
                                                 trailers=[("x-sum", "1")])
                    assert bytes(reply.data) == b"with trailers"
            run(scenario())
    finally:
        backend.close()


def test_head_204_and_304_have_no_body(serve: Any, site: Path, ca: Authority) -> None:
    with serve(rwsfile(ca, site)) as server:
        async def scenario() -> None:
            async with h3_connect(server.port(), ca.pem) as client:
                head = await client.request("HEAD", "/big.bin")
                assert head.status == 200 and head.header("content-length") == str(BIG) and not head.data
                empty = await client.request("GET", "/nocontent")
                assert empty.status == 204 and not empty.data and empty.header("content-length") is None
                full = await client.request("GET", "/small.txt")
                etag = full.header("etag")
                assert etag
                cached = await client.request("GET", "/small.txt", headers=[("if-none-match", etag)])
                assert cached.status == 304 and not cached.data
        run(scenario())


def test_many_concurrent_streams_on_one_connection(serve: Any, site: Path, ca: Authority) -> None:
    with serve(rwsfile(ca, site), loop="uvloop") as server:
        async def scenario() -> None:
            async with h3_connect(server.port(), ca.pem) as client:
                # more than the 128 streams QUIC lets a client have open: the rest wait their turn
                sids = [client.send_request("GET", f"/hello?n={i}") for i in range(300)]
                replies = [await client.wait(sid, timeout=60) for sid in sids]
                assert all((r.status, bytes(r.data)) == (200, b"hello HTTP/3.0") for r in replies)
        run(scenario())


def test_connection_close_from_a_handler_is_a_graceful_goaway(serve: Any, site: Path, ca: Authority) -> None:
    with serve(rwsfile(ca, site)) as server:
        async def scenario() -> None:
            async with h3_connect(server.port(), ca.pem) as client:
                reply = await client.request("GET", "/close")
                assert bytes(reply.data) == b"bye" and reply.header("connection") is None
                await client.until(lambda: client.goaways)
                assert client.goaways == [4]  # streams from 4 on are not served
                await client.until(lambda: client.terminated is not None)
                assert client.terminated is not None and client.terminated.error_code == ErrorCode.H3_NO_ERROR
        run(scenario())


def test_an_aborted_response_resets_the_stream_only(serve: Any, site: Path, ca: Authority) -> None:
    with serve(rwsfile(ca, site)) as server:
        async def scenario() -> None:
            async with h3_connect(server.port(), ca.pem) as client:
                reply = await client.request("GET", "/abort")
                assert reply.reset == ErrorCode.H3_INTERNAL_ERROR and not reply.status
                again = await client.request("GET", "/hello")
                assert bytes(again.data) == b"hello HTTP/3.0"
        run(scenario())


@pytest.mark.parametrize("method,path,headers", [
    ("GET", "no-slash", []),
    ("GET", "/hello", [("host", "other.test")]),
    ("GET /admin HTTP/1.1\tX:", "/hello", []),  # a method that is no token: it would reach a request line
])
def test_a_malformed_request_resets_its_stream_only(serve: Any, site: Path, ca: Authority, method: str, path: str,
                                                    headers: list[tuple[str, str]]) -> None:
    with serve(rwsfile(ca, site)) as server:
        async def scenario() -> None:
            async with h3_connect(server.port(), ca.pem) as client:
                bad = await client.request(method, path, headers=headers)
                assert bad.reset == ErrorCode.H3_MESSAGE_ERROR and not bad.status
                good = await client.request("GET", "/hello", headers=[("host", "a.test")])
                assert bytes(good.data) == b"hello HTTP/3.0"
        run(scenario())


def _hold(release: threading.Event) -> Any:
    def respond(exchange: Exchange) -> None:
        exchange.sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        release.wait(30)
        exchange.sock.sendall(b"4\r\nlast\r\n0\r\n\r\n")
    return respond


def test_a_stream_the_client_resets_stops_its_handler(serve: Any, site: Path, ca: Authority) -> None:
    release = threading.Event()
    backend = Backend(respond=_hold(release))
    try:
        with serve(rwsfile(ca, site, upstream=backend.address)) as server:
            async def scenario() -> None:
                async with h3_connect(server.port(), ca.pem) as client:
                    sid = client.send_request("GET", "/proxy/held")
                    await client.until(lambda: bool(client.replies[sid].data))
                    client.reset_stream(sid)
                    deadline = time.monotonic() + 10
                    while any(conn.streams for conn in h3_connections(server)) and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                    assert not any(conn.streams for conn in h3_connections(server))
                    assert bytes((await client.request("GET", "/hello")).data) == b"hello HTTP/3.0"
            run(scenario())
    finally:
        release.set()
        backend.close()


def test_an_upload_the_handler_does_not_read_stops_at_the_windows(serve: Any, site: Path, ca: Authority) -> None:
    held: list[socket.socket] = []
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    size = 48 * 1024 * 1024
    try:
        upstream = f"127.0.0.1:{listener.getsockname()[1]}"
        with serve(rwsfile(ca, site, upstream=upstream, echo="no body"), loop="uvloop") as server:
            async def scenario() -> None:
                async with h3_connect(server.port(), ca.pem) as client:
                    sid = client.send_request("POST", "/proxy/upload", end=False,
                                              headers=[("content-length", str(size))])
                    client.send_body(sid, b"u" * size)
                    sent, still = -1, 0
                    while still < 4:  # until the client has sent nothing more for a second
                        await asyncio.sleep(0.25)
                        now = client.bytes_sent(sid)
                        still = still + 1 if now == sent else 0
                        sent = now
                    # the upstream reads nothing: rws takes what the windows and the upstream
                    # socket's buffers hold, not the upload
                    assert 0 < sent < 16 * 1024 * 1024
                    unread = [conn.quic.unread_total for conn in h3_connections(server)]
                    assert unread and max(unread) <= STREAM_WINDOW
            run(scenario())
    finally:
        listener.close()
        for sock in held:
            sock.close()


# --- TLS --------------------------------------------------------------------------------------------


def test_the_certificate_follows_the_server_name(serve: Any, site: Path, ca: Authority) -> None:
    with serve(rwsfile(ca, site)) as server:
        async def scenario() -> None:
            async with h3_connect(server.port(), ca.pem, "b.test") as client:
                assert names(client.peer_certificate()) == ["b.test"]
                reply = await client.request("GET", "/", authority="b.test")
                assert bytes(reply.data) == b"B b.test"
            async with h3_connect(server.port(), ca.pem, "a.test") as client:
                assert names(client.peer_certificate()) == ["a.test"]
            with pytest.raises(ConnectionError):  # a name no certificate covers: unrecognized_name
                async with h3_connect(server.port(), ca.pem, "c.test"):
                    pass
        run(scenario())


def test_alt_svc_on_http1_and_http2_of_an_h3_server_only(serve: Any, site: Path, ca: Authority) -> None:
    for protocols, advertised in (("h1 h2 h3", True), ("h1 h2", False)):
        with serve(rwsfile(ca, site, protocols=protocols)) as server:
            port = server.port()
            for version in ("--http1.1", "--http2"):
                out = curl(version, "-D", "-", "-o", "/dev/null", "--cacert", str(ca.pem),
                           "--resolve", f"a.test:{port}:127.0.0.1", f"https://a.test:{port}/hello")
                assert " 200" in out.stdout.splitlines()[0], out.stderr
                alt = [line.split(":", 1)[1].strip() for line in out.stdout.splitlines()
                       if line.lower().startswith("alt-svc:")]
                assert alt == ([f'h3=":{port}"; ma=2592000'] if advertised else []), out.stdout
            if not advertised:
                assert not any(li.address.is_datagram for li in server.runtime.pool.listeners.values())


def test_a_udp_port_taken_leaves_the_site_on_tcp_without_alt_svc(serve: Any, site: Path, ca: Authority,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    while True:  # a UDP port whose TCP twin is free too (for the site's TCP listener)
        taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        try:
            socket.create_server(("127.0.0.1", port)).close()
            break
        except OSError:
            taken.close()
    crt, key = ca.leaf("a", "a.test")
    config = {"apps": {
        "http": {"servers": {"srv0": {
            "listen": [f"127.0.0.1:{port}"],
            "routes": [{"handle": [{"handler": "static_response", "body": "tcp only"}]}],
            "tls_connection_policies": [{}], "automatic_https": {"disable": True}}}},
        "tls": {"certificates": {"load_files": [{"certificate": str(crt), "key": str(key)}]}},
    }}
    try:
        with serve(config) as server:
            out = curl("-D", "-", "--cacert", str(ca.pem), "--resolve", f"a.test:{port}:127.0.0.1",
                       f"https://a.test:{port}/")
            assert out.stdout.endswith("tcp only"), out.stderr
            assert "alt-svc" not in out.stdout.lower()
            assert not any(li.address.is_datagram for li in server.runtime.pool.listeners.values())
        message = "HTTP/3 off on this address: its UDP port could not be bound"
        warned = [r for r in caplog.records if r.getMessage() == message]
        assert warned and warned[0].address == f"udp/127.0.0.1:{port}"  # type: ignore[attr-defined]
    finally:
        taken.close()


# --- reload and shutdown -------------------------------------------------------------------------


def test_a_reload_with_a_new_certificate_drains_the_old_connection(serve: Any, site: Path, ca: Authority) -> None:
    release = threading.Event()
    backend = Backend(respond=_hold(release))
    try:
        with serve(rwsfile(ca, site, upstream=backend.address, cert="a1")) as server:
            port = server.port()
            udp = endpoint(server)

            async def scenario() -> None:
                async with h3_connect(port, ca.pem) as old:
                    first_cert = old.peer_certificate()
                    sid = old.send_request("GET", "/proxy/held")
                    await old.until(lambda: bool(old.replies[sid].data))
                    changed = rwsfile(ca, site, upstream=backend.address, cert="a2", body="reloaded")
                    await asyncio.to_thread(server.apply, changed)
                    await old.until(lambda: old.goaways)
                    assert old.goaways == [sid + 4]  # the stream in flight is served, none after it
                    async with h3_connect(port, ca.pem) as new:
                        assert new.peer_certificate().serial_number != first_cert.serial_number
                        assert names(new.peer_certificate()) == ["a.test"]
                        reply = await new.request("GET", "/hello")
                        assert bytes(reply.data) == b"reloaded HTTP/3.0"
                    assert endpoint(server) is udp  # the same UDP socket serves both generations
                    release.set()
                    reply = await old.wait(sid)
                    assert reply.status == 200 and bytes(reply.data) == b"firstlast"
                    await old.until(lambda: old.terminated is not None)  # then the old connection closes
                    assert old.terminated is not None and old.terminated.error_code == ErrorCode.H3_NO_ERROR
            run(scenario())
    finally:
        release.set()
        backend.close()


def test_shutdown_lets_a_stream_in_flight_finish(serve: Any, site: Path, ca: Authority) -> None:
    release = threading.Event()
    backend = Backend(respond=_hold(release))
    try:
        with serve(rwsfile(ca, site, upstream=backend.address)) as server:
            async def scenario() -> None:
                async with h3_connect(server.port(), ca.pem) as client:
                    sid = client.send_request("GET", "/proxy/held")
                    await client.until(lambda: bool(client.replies[sid].data))
                    stopping = asyncio.create_task(asyncio.to_thread(server.call, lambda: server.runtime.stop(10)))
                    await client.until(lambda: client.goaways)
                    release.set()
                    reply = await client.wait(sid)
                    assert bytes(reply.data) == b"firstlast"
                    await stopping
            run(scenario())
    finally:
        release.set()
        backend.close()


# --- what a QUIC endpoint must survive ---------------------------------------------------------


def test_rapid_reset_is_cut_short(serve: Any, site: Path, ca: Authority) -> None:
    with serve(rwsfile(ca, site)) as server:
        async def scenario() -> None:
            async with h3_connect(server.port(), ca.pem) as client:
                # each handler starts (it waits for the body) and is reset at once
                for _ in range(400):
                    await client.until(lambda: client.can_open() or client.terminated is not None)
                    if client.terminated is not None:
                        break
                    client.reset_stream(client.send_request("POST", "/echo", end=False))
                await client.until(lambda: client.terminated is not None, timeout=30)
                assert client.terminated is not None
                assert client.terminated.error_code == ErrorCode.H3_EXCESSIVE_LOAD
            assert run_in_thread(_served(server.port(), ca)) == b"hello HTTP/3.0"
        run(scenario())


def test_a_header_section_over_the_limit_resets_its_stream_only(serve: Any, site: Path, ca: Authority) -> None:
    config = rwsfile(ca, site).replace("protocols h1 h2 h3", "protocols h1 h2 h3\n\t\tmax_header_size 16KB")
    with serve(config) as server:
        async def scenario() -> None:
            async with h3_connect(server.port(), ca.pem) as client:
                big = await client.request("GET", "/hello", headers=[("x-big", "b" * 40_000)])
                assert big.reset == ErrorCode.H3_EXCESSIVE_LOAD and not big.status
                small = await client.request("GET", "/hello", headers=[("x-small", "s" * 1000)])
                assert bytes(small.data) == b"hello HTTP/3.0"
        run(scenario())


def run_in_thread(coro: Coroutine[Any, Any, Any]) -> Any:
    """A second client's scenario, on its own loop (the first one's is busy)."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(run(coro)))
    thread.start()
    thread.join(90)
    return result[0]


def _initials(port: int, count: int) -> list[QuicConnection]:
    """Client connections that have each made their first Initial (a ClientHello)."""
    made = []
    for _ in range(count):
        conn = QuicConnection(configuration=QuicConfiguration(is_client=True, alpn_protocols=["h3"],
                                                              server_name="a.test"))
        conn.connect(("127.0.0.1", port), now=time.monotonic())
        made.append(conn)
    return made


async def _served(port: int, ca: Authority) -> bytes:
    async with h3_connect(port, ca.pem) as client:
        return bytes((await client.request("GET", "/hello")).data)


def test_garbage_datagrams_make_no_state(serve: Any, site: Path, ca: Authority) -> None:
    with serve(rwsfile(ca, site)) as server:
        port = server.port()
        udp = endpoint(server)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for size in (0, 1, 7, 20, 100, 1199, 1200, 1350, 1500):
                for _ in range(20):
                    sock.sendto(os.urandom(size), ("127.0.0.1", port))
            for _ in range(200):  # shaped like a version 1 Initial, then random: it doesn't decrypt
                cid = os.urandom(8)
                sock.sendto(b"\xc3\x00\x00\x00\x01\x08" + cid + b"\x08" + os.urandom(8) + b"\x00\x44\xc0"
                            + os.urandom(1250), ("127.0.0.1", port))
            assert run(_served(port, ca)) == b"hello HTTP/3.0"
        assert server.call(lambda: _count(udp)) == (0, 0)


async def _count(udp: QuicEndpoint) -> tuple[int, int]:
    return len(udp.connections), len(udp.routes)


def test_many_initials_from_one_address_are_bounded(serve: Any, site: Path, ca: Authority) -> None:
    with serve(rwsfile(ca, site)) as server:
        port = server.port()
        udp = endpoint(server)
        retries = refused = came_back = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.2", 0))  # another address than the client below (all of 127/8 is loopback)
            sock.settimeout(0.5)
            conns = _initials(port, 200)
            by_cid = {conn.host_cid: conn for conn in conns}
            for batch in range(0, len(conns), 10):  # (in batches: a burst would overflow the sockets' buffers)
                for conn in conns[batch:batch + 10]:
                    for data, addr in conn.datagrams_to_send(now=time.monotonic()):
                        sock.sendto(data, addr)
                while True:  # the answers, until the server has nothing more to say
                    try:
                        data, addr = sock.recvfrom(65536)
                    except TimeoutError:
                        break
                    kind = data[0] & 0xF0
                    target = by_cid.get(data[6:6 + data[5]])
                    if target is None:
                        continue
                    target.receive_datagram(data, addr, now=time.monotonic())
                    if kind == 0xF0:  # a Retry: come back with its token, as a client would
                        retries += 1
                        for again, to in target.datagrams_to_send(now=time.monotonic()):
                            if again[0] & 0xF0 == 0xC0:  # its Initial again, and nothing more
                                sock.sendto(again, to)
                                came_back += 1
                    elif kind == 0xC0 and target._close_event is not None:  # (the client's own state)
                        refused += 1
        held, _ = server.call(lambda: _count(udp))
        # the first RETRY_THRESHOLD are taken at once; then clients must validate their
        # address, and those that do count against the address's limit: the rest are refused
        assert retries and came_back > MAX_CONNECTIONS_PER_IP - RETRY_THRESHOLD
        assert RETRY_THRESHOLD <= held <= MAX_CONNECTIONS_PER_IP
        assert refused
        assert run(_served(port, ca)) == b"hello HTTP/3.0"  # another client is served meanwhile


async def _flood(client: Any, stream_id: int, seconds: float) -> int:
    """Send junk on a stream as fast as the server's windows let, for `seconds`: how much went."""
    quic = client._quic
    chunk = b"A" * 16384
    sent = 0
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        stream = quic._streams[stream_id]
        if (stream.sender.highest_offset + len(chunk) <= stream.max_stream_data_remote
                and quic._remote_max_data - quic._remote_max_data_used >= len(chunk) and len(stream.sender._buffer) < 65536):
            quic.send_stream_data(stream_id, chunk)
            sent += len(chunk)
        client.transmit()
        await asyncio.sleep(0.002)
    return sent


def test_an_endless_trailer_frame_stops_at_the_windows(serve: Any, site: Path, ca: Authority) -> None:
    """aioquic holds a frame until all of it is in: the bytes it holds must not open windows."""
    from aioquic.buffer import encode_uint_var

    with serve(rwsfile(ca, site)) as server:
        async def scenario() -> int:
            async with h3_connect(server.port(), ca.pem) as client:
                sid = client.send_request("POST", "/echo", end=False)
                client.send_body(sid, b"x")
                client._quic.send_stream_data(sid, encode_uint_var(1) + encode_uint_var(1 << 30))  # HEADERS of 1 GiB
                return await _flood(client, sid, 4)
        assert run(scenario()) < 4 * 1024 * 1024
        assert run_in_thread(_served(server.port(), ca)) == b"hello HTTP/3.0"


def test_an_endless_control_frame_stops_at_the_windows(serve: Any, site: Path, ca: Authority) -> None:
    from aioquic.buffer import encode_uint_var

    with serve(rwsfile(ca, site)) as server:
        async def scenario() -> int:
            async with h3_connect(server.port(), ca.pem) as client:
                control = client.h3._local_control_stream_id
                client._quic.send_stream_data(control, encode_uint_var(0xD) + encode_uint_var(1 << 30))  # MAX_PUSH_ID
                return await _flood(client, control, 4)
        assert run(scenario()) < 4 * 1024 * 1024
        assert run_in_thread(_served(server.port(), ca)) == b"hello HTTP/3.0"
