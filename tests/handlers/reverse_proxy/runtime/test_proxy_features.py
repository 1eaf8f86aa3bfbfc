"""Proxy features over real sockets: TLS upstreams, trailers, request and response
buffering, immediate flushing (server-sent events), try_duration and the retry budget."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from backends import Backend, Exchange, accept_forever, closed_port
from test_proxy import proxy_config


def _cert(name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, *, ca: bool = False,
          client: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer[0].subject if issuer else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    return cert, key


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> None:
    data = cert.public_bytes(serialization.Encoding.PEM)
    if key is not None:
        data += key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    path.write_bytes(data)


class TlsBackend:
    """An HTTPS upstream that answers with the client certificate's CN (or "anonymous")."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sni: list[str | None] = []
        context.sni_callback = lambda sock, name, ctx: self.sni.append(name)  # type: ignore[assignment, func-returns-value]
        accept_forever(self.listener, self._one)

    def _one(self, raw: socket.socket) -> None:
        try:
            with self.context.wrap_socket(raw, server_side=True) as sock:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += sock.recv(4096)
                peer = sock.getpeercert()
                who = dict(x[0] for x in peer["subject"])["commonName"] if peer else "anonymous"
                body = who.encode()
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        except (OSError, ssl.SSLError):
            pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca = _cert("Test CA", None, ca=True)
    server = _cert("backend.test", ca)
    client = _cert("proxy-client", ca, client=True)
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "server", "client")}
    _write(paths["ca"], ca[0])
    _write(paths["server"], server[0], server[1])
    _write(paths["client"], client[0], client[1])
    return paths


def test_a_tls_upstream_with_a_private_ca_server_name_and_client_certificate(serve, pki):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server"])
    context.load_verify_locations(pki["ca"])
    context.verify_mode = ssl.CERT_OPTIONAL
    backend = TlsBackend(context)
    tls = {"root_ca_pem_files": [str(pki["ca"])], "server_name": "backend.test",
           "client_certificate_file": str(pki["client"]), "client_certificate_key_file": str(pki["client"])}
    untrusted = {"server_name": "backend.test"}
    skip = {"insecure_skip_verify": True}
    dial = f"127.0.0.1:{backend.port}"
    try:
        with serve(proxy_config(dial, transport={"protocol": "http", "tls": tls})) as server:
            trusted = httpx.get(server.url("/"))
        with serve(proxy_config(dial, transport={"protocol": "http", "tls": untrusted})) as server:
            refused = httpx.get(server.url("/"))
        with serve(proxy_config(dial, transport={"protocol": "http", "tls": skip})) as server:
            skipped = httpx.get(server.url("/"))
    finally:
        backend.close()
    assert (trusted.status_code, trusted.content) == (200, b"proxy-client")
    assert refused.status_code == 502  # the backend's certificate is not from a CA the system trusts
    assert (skipped.status_code, skipped.content) == (200, b"anonymous")
    assert backend.sni[0] == "backend.test"


def test_trailers_pass_through_a_chunked_response(serve):
    def respond(ex: Exchange) -> None:
        ex.sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
                        b"5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n")
    backend = Backend("trailers", respond=respond)
    try:
        with serve(proxy_config(backend.address)) as server:
            with socket.create_connection(("127.0.0.1", server.port()), timeout=10) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: close\r\n\r\n")
                raw = b""
                while data := sock.recv(65536):
                    raw += data
    finally:
        backend.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n"
    assert backend.requests[0].header("Te") == "trailers"


def test_request_buffers_turn_a_small_chunked_body_into_a_sized_one(serve):
    backend = Backend("echo", respond=lambda ex: ex.reply(200, ex.body))

    def chunks(parts):
        yield from parts
    try:
        with serve(proxy_config(backend.address, request_buffers=1024)) as server:
            small = httpx.post(server.url("/"), content=chunks([b"ab", b"cd"]))
            large = httpx.post(server.url("/"), content=chunks([b"x" * 800, b"y" * 800]))
    finally:
        backend.close()
    assert small.content == b"abcd" and large.content == b"x" * 800 + b"y" * 800
    assert backend.requests[0].header("Content-Length") == "4"
    assert backend.requests[0].header("Transfer-Encoding") is None
    assert backend.requests[1].header("Transfer-Encoding") == "chunked"


def test_response_buffers_give_a_streamed_response_its_length(serve):
    def respond(ex: Exchange) -> None:
        ex.sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        time.sleep(0.05)
        ex.sock.sendall(b"3\r\ndef\r\n0\r\n\r\n")
    backend = Backend("chunks", respond=respond)
    try:
        with serve(proxy_config(backend.address, response_buffers=4096)) as server:
            response = httpx.get(server.url("/"))
    finally:
        backend.close()
    assert response.content == b"abcdef" and response.headers["content-length"] == "6"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def test_server_sent_events_reach_the_client_as_they_are_written(serve):
    release = threading.Event()

    def respond(ex: Exchange) -> None:
        ex.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                        + _chunk(b"data: first\n\n"))
        release.wait(10)  # the second event waits until the client saw the first
        ex.sock.sendall(_chunk(b"data: second\n\n") + b"0\r\n\r\n")
    backend = Backend("sse", respond=respond)
    events = []
    try:
        with serve(proxy_config(backend.address)) as server:
            with httpx.stream("GET", server.url("/events"), timeout=10) as response:
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        events.append(line)
                        release.set()
    finally:
        backend.close()
    assert events == ["data: first", "data: second"]


def test_try_duration_waits_for_an_upstream_to_come_up(serve):
    port = closed_port()
    late: list[Backend] = []
    timer = threading.Timer(0.3, lambda: late.append(Backend("late", port=port)))
    lb = {"try_duration": "5s", "try_interval": "50ms"}
    try:
        with serve(proxy_config(f"127.0.0.1:{port}", load_balancing=lb)) as server:
            timer.start()
            response = httpx.get(server.url("/"), timeout=10)
    finally:
        timer.cancel()
        for b in late:
            b.close()
    assert (response.status_code, response.content) == (200, b"late")


def test_the_retry_budget_bounds_the_attempts_of_failing_requests(serve):
    def swallow(ex: Exchange) -> None:
        ex.sock.close()
    dead = [Backend(f"dead{i}", respond=swallow) for i in range(3)]
    lb = {"selection_policy": {"policy": "round_robin"}, "retries": 5}
    requests = 200
    try:
        with serve(proxy_config(*(b.address for b in dead), load_balancing=lb)) as server:
            started = time.monotonic()
            with httpx.Client() as client:
                codes = {client.get(server.url("/")).status_code for _ in range(requests)}
            seconds = time.monotonic() - started
    finally:
        for b in dead:
            b.close()
    attempts = sum(len(b.requests) for b in dead)
    assert codes == {502}
    # without a budget: 6 attempts per request; with it, the retries are at most a fifth
    # of the requests, plus ten in each second the run touched
    assert attempts <= requests + 0.2 * requests + 10 * (int(seconds) + 2)


def test_an_upstream_that_takes_no_body_times_out_at_the_write_timeout(serve):
    stuck = Backend("stuck")

    def never_read(sock: socket.socket) -> None:
        time.sleep(3)
        sock.close()
    stuck._serve = never_read  # type: ignore[method-assign]  # accepts, then reads nothing
    transport = {"protocol": "http", "write_timeout": "300ms"}
    try:
        with serve(proxy_config(stuck.address, transport=transport)) as server:
            response = httpx.post(server.url("/"), content=b"x" * (20 << 20), timeout=10)
    finally:
        stuck.close()
    assert response.status_code == 504


def test_an_upstream_header_flood_is_cut_off_with_a_502(serve):
    def flood(ex: Exchange) -> None:
        ex.sock.sendall(b"HTTP/1.1 200 OK\r\n")
        try:
            for i in range(100_000):
                ex.sock.sendall(b"X-Flood-%d: %s\r\n" % (i, b"y" * 100))
        except OSError:
            pass
    backend = Backend("flood", respond=flood)
    transport = {"protocol": "http", "max_response_header_size": 65536}
    try:
        with serve(proxy_config(backend.address, transport=transport)) as server:
            response = httpx.get(server.url("/"), timeout=10)
    finally:
        backend.close()
    assert response.status_code == 502


def test_local_address_is_the_source_of_upstream_connections(serve):
    backend = Backend("peer", respond=lambda ex: ex.reply(200, ex.sock.getpeername()[0].encode()))
    transport = {"protocol": "http", "local_address": "127.0.0.2"}
    try:
        with serve(proxy_config(backend.address, transport=transport)) as server:
            assert httpx.get(server.url("/")).content == b"127.0.0.2"
    finally:
        backend.close()


def test_a_transport_rws_cannot_do_yet_is_refused_at_load(tmp_path):
    import subprocess
    import sys

    config = tmp_path / "Rwsfile"
    config.write_text("http://127.0.0.1:0 {\n\treverse_proxy https://127.0.0.1:50051 {\n"
                      "\t\ttransport http {\n\t\t\tversions 3\n\t\t}\n\t}\n}\n")
    result = subprocess.run([sys.executable, "-m", "rws", "validate", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "HTTP/3 upstreams are not supported yet" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
