"""TLS termination with certificates the config loads (`tls <cert> <key>`, `load_files`,
`load_pem`): real handshakes on 127.0.0.1 with Python's OpenSSL client and curl, the
certificates made here by a test CA."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import random
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rws.errors import RwsError
from rws.net.tls import read_client_hello

NOW = datetime.datetime.now(datetime.timezone.utc)


class Authority:
    """A root that signs leaf certificates for the names a test asks for."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rws test CA")])
        self.cert = (x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(NOW - datetime.timedelta(days=1))
                     .not_valid_after(NOW + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.pem = folder / "ca.pem"
        self.pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def leaf(self, stem: str, *names: str, organization: str = "") -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)] if organization else [])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=7))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
                .sign(self.key, hashes.SHA256()))
        cert_path, key_path = self.folder / f"{stem}.crt", self.folder / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, key_path

    def client(self, **settings: Any) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pem))
        for name, value in settings.items():
            setattr(context, name, value)
        return context


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return Authority(tmp_path)


def fetch(port: int, server_name: str | None, context: ssl.SSLContext, path: str = "/") -> tuple[str, x509.Certificate]:
    """One HTTPS GET on 127.0.0.1 (answered 200): the body and the certificate served."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            peer = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
            host = server_name or "127.0.0.1"
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return body.decode(), peer


def get(port: int, server_name: str | None, context: ssl.SSLContext, path: str = "/") -> tuple[str, list[str]]:
    """One HTTPS request: the response body and the DNS names of the certificate served."""
    body, peer = fetch(port, server_name, context, path)
    names = peer.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return body, names.get_values_for_type(x509.DNSName)


def three_sites(ca: Authority) -> str:
    (a_crt, a_key), (b_crt, b_key), (w_crt, w_key) = (
        ca.leaf("a", "a.test"), ca.leaf("b", "b.test"), ca.leaf("w", "*.w.test"))
    return (f"a.test {{\n\ttls {a_crt} {a_key}\n\trespond \"A {{http.request.scheme}}\"\n}}\n"
            f"b.test {{\n\ttls {b_crt} {b_key}\n\trespond \"B\"\n}}\n"
            f"x.w.test {{\n\ttls {w_crt} {w_key}\n\trespond \"W\"\n}}\n")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_sni_picks_the_certificate_among_three_sites(serve: Any, ca: Authority, loop: str) -> None:
    with serve(three_sites(ca), loop=loop) as server:
        port, client = server.port(), ca.client()
        assert get(port, "a.test", client) == ("A https", ["a.test"])
        assert get(port, "b.test", client) == ("B", ["b.test"])
        assert get(port, "x.w.test", client) == ("W", ["*.w.test"])


def _handshake_fails(port: int, server_name: str | None, context: ssl.SSLContext) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            context.wrap_socket(raw, server_hostname=server_name)


def _alert(port: int, server_name: str | None, context: ssl.SSLContext) -> str:
    """The reason of the alert the handshake ends with."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError) as failed:
            context.wrap_socket(raw, server_hostname=server_name)
    return str(failed.value.reason)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_an_unknown_name_gets_a_handshake_alert_and_the_others_go_on(serve: Any, ca: Authority, loop: str) -> None:
    with serve(three_sites(ca), loop=loop) as server:
        port, client = server.port(), ca.client()
        assert _alert(port, "c.test", client) == "TLSV1_UNRECOGNIZED_NAME"
        assert _alert(port, "y.z.w.test", client) == "TLSV1_UNRECOGNIZED_NAME"  # a wildcard covers one label only
        no_name = ca.client(check_hostname=False)
        assert _alert(port, None, no_name) == "TLSV1_UNRECOGNIZED_NAME"  # no name and no default_sni
        assert get(port, "a.test", client)[0] == "A https"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_client_hello_that_comes_byte_by_byte_is_read_whole(serve: Any, ca: Authority, loop: str) -> None:
    """The ClientHello is read before the handshake starts: a slow client's comes in pieces."""
    with serve(three_sites(ca), loop=loop) as server:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ca.client().wrap_bio(incoming, outgoing, server_hostname="b.test")
        with socket.create_connection(("127.0.0.1", server.port()), timeout=10) as raw:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with pytest.raises(ssl.SSLWantReadError):
                tls.do_handshake()
            hello = outgoing.read()
            for i in range(len(hello)):
                raw.sendall(hello[i:i + 1])
            _finish_handshake(raw, tls, incoming, outgoing)
            raw.sendall(outgoing.read())
            tls.write(b"GET / HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n")
            raw.sendall(outgoing.read())
            data = b""
            while not data.endswith(b"B"):
                incoming.write(raw.recv(65536))
                with contextlib.suppress(ssl.SSLWantReadError):
                    data += tls.read(65536)
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"B")


def test_garbage_and_plain_http_on_the_tls_port_close_the_connection(serve: Any, ca: Authority) -> None:
    with serve(three_sites(ca), loop="uvloop") as server:
        port = server.port()
        for junk in (b"\x16\x03\x01\x00\x05hello", b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", bytes(range(256)) * 4):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                raw.sendall(junk)
                try:
                    data = raw.recv(4096)
                except ConnectionResetError:
                    data = b""
                assert b"HTTP/1.1" not in data
        assert get(port, "b.test", ca.client())[0] == "B"


def test_default_sni_serves_clients_that_send_no_name(serve: Any, ca: Authority) -> None:
    crt, key = ca.leaf("a", "a.test")
    tree = {"apps": {
        "http": {"servers": {"srv0": {"listen": ["127.0.0.1:0"], "routes": [{"handle": [
            {"handler": "static_response", "body": "hi"}]}],
            "tls_connection_policies": [{"default_sni": "a.test"}]}}},
        "tls": {"certificates": {"load_pem": [{"certificate": crt.read_text(), "key": key.read_text()}]}}}}
    with serve(tree) as server:
        assert get(server.port(), None, ca.client(check_hostname=False)) == ("hi", ["a.test"])


def test_certificate_selection_and_protocol_versions(serve: Any, ca: Authority) -> None:
    old_crt, old_key = ca.leaf("old", "a.test", organization="Old")
    new_crt, new_key = ca.leaf("new", "a.test", organization="New")
    tree = {"apps": {
        "http": {"servers": {"srv0": {"listen": ["127.0.0.1:0"], "routes": [{"handle": [
            {"handler": "static_response", "body": "hi"}]}],
            "tls_connection_policies": [{"certificate_selection": {"subject_organization": ["New"]},
                                         "protocol_min": "tls1.3"}]}}},
        "tls": {"certificates": {"load_files": [{"certificate": str(old_crt), "key": str(old_key)},
                                                {"certificate": str(new_crt), "key": str(new_key)}]}}}}
    with serve(tree) as server:
        port = server.port()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ca.client().wrap_socket(raw, server_hostname="a.test") as tls:
                peer = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
                assert peer.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "New"
                assert tls.version() == "TLSv1.3"
        _handshake_fails(port, "a.test", ca.client(maximum_version=ssl.TLSVersion.TLSv1_2))


def _load(tree: dict[str, Any]) -> str:
    from rws.runtime.generation import Generation

    with pytest.raises(RwsError) as info:
        Generation(tree).close()
    return str(info.value)


def test_unusable_certificate_files_fail_the_config_with_one_line(ca: Authority, tmp_path: Path) -> None:
    crt, key = ca.leaf("a", "a.test")
    _, other_key = ca.leaf("b", "b.test")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")

    def tree(certificate: Path, key: Path) -> dict[str, Any]:
        return {"apps": {"tls": {"certificates": {"load_files": [{"certificate": str(certificate), "key": str(key)}]}}}}

    missing = _load(tree(tmp_path / "missing.crt", key))
    assert "apps.tls.certificates.load_files[0].certificate" in missing and "missing.crt" in missing
    mismatched = _load(tree(crt, other_key))
    assert "load_files[0]" in mismatched and "does not match" in mismatched
    assert "no PEM certificate" in _load(tree(garbage, key))
    assert "private key" in _load(tree(crt, garbage))
    for message in (missing, mismatched):
        assert "\n" not in message


def test_rws_run_serves_https_to_curl(ca: Authority, tmp_path: Path) -> None:
    from tests.e2e.processes import Process

    crt, key = ca.leaf("a", "a.test")
    (tmp_path / "Rwsfile").write_text(f"{{\n\tadmin off\n}}\na.test:0 {{\n\tbind 127.0.0.1\n\ttls {crt} {key}\n"
                                      f"\trespond \"secure {{http.request.scheme}}\"\n}}\n")
    process = Process(["run", "--config", "Rwsfile"], tmp_path, {"PATH": "/usr/bin:/bin",
                                                                  "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)})
    try:
        port = process.port()
        result = subprocess.run(["curl", "-sS", "--cacert", str(ca.pem), "--resolve", f"a.test:{port}:127.0.0.1",
                                 f"https://a.test:{port}/"], capture_output=True, text=True, timeout=30)
        assert (result.returncode, result.stdout) == (0, "secure https"), result.stderr
    finally:
        assert process.stop() == 0
    assert not [r for r in process.records if r.get("level") in ("error", "warn")], json.dumps(process.records)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_large_files_go_through_the_tls_layer_intact(serve: Any, ca: Authority, tmp_path: Path, loop: str) -> None:
    crt, key = ca.leaf("a", "a.test")
    site = tmp_path / "site"
    site.mkdir()
    data = bytes(range(256)) * 8192  # 2 MiB: sent in chunks, never with sendfile past the TLS layer
    (site / "big.bin").write_bytes(data)
    with serve(f"a.test {{\n\ttls {crt} {key}\n\troot * {site}\n\tfile_server\n}}\n", loop=loop) as server:
        with socket.create_connection(("127.0.0.1", server.port()), timeout=10) as raw:
            with ca.client().wrap_socket(raw, server_hostname="a.test") as tls:
                tls.sendall(b"GET /big.bin HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                received = b""
                while chunk := tls.recv(1 << 20):
                    received += chunk
    assert received.partition(b"\r\n\r\n")[2] == data


def test_a_client_that_sends_no_name_gets_the_certificate_of_the_address_it_reached(serve: Any, ca: Authority) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca.key, hashes.SHA256()))
    tree = {"apps": {
        "http": {"servers": {"srv0": {"listen": ["127.0.0.1:0"], "routes": [{"handle": [
            {"handler": "static_response", "body": "by address"}]}], "tls_connection_policies": [{}]}}},
        "tls": {"certificates": {"load_pem": [{
            "certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
            "key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()}]}}}}
    with serve(tree, loop="uvloop") as server:
        body, peer = fetch(server.port(), None, ca.client(check_hostname=False))  # an IP: no server name is sent
        assert body == "by address"
        assert peer.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tls_placeholders(serve: Any, ca: Authority, loop: str) -> None:
    crt, key = ca.leaf("a", "a.test")
    placeholders = ("{http.request.tls.version}|{http.request.tls.cipher_suite}|{http.request.tls.server_name}|"
                    "{http.request.tls.proto}|{http.request.tls.resumed}|{http.request.tls.proto_mutual}")
    with serve(f"a.test {{\n\ttls {crt} {key}\n\trespond \"{placeholders}\"\n}}\n", loop=loop) as server:
        body, _ = fetch(server.port(), "a.test", ca.client())
        assert body == "tls1.3|TLS_AES_256_GCM_SHA384|a.test||false|true"  # no ALPN offered: no protocol
        tls12 = ca.client(maximum_version=ssl.TLSVersion.TLSv1_2)
        tls12.set_alpn_protocols(["http/1.1"])
        body, _ = fetch(server.port(), "a.test", tls12)
        assert body == "tls1.2|TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384|a.test|http/1.1|false|true"
    with serve("http://127.0.0.1 {\n\trespond \"[{http.request.tls.version}]\"\n}\n") as server:
        import httpx

        # unset without TLS: `respond` keeps a placeholder it does not know, as Caddy's ReplaceKnown
        assert httpx.get(server.url()).text == "[{http.request.tls.version}]"


def _client_context(ca: Authority, *leaf: Path) -> ssl.SSLContext:
    context = ca.client()
    if leaf:
        context.load_cert_chain(str(leaf[0]), str(leaf[1]))
    return context


def _refused(port: int, context: ssl.SSLContext) -> bool:
    """Whether the server refuses the client: in the handshake, or (TLS 1.3, where the
    client's certificate is judged after the client's side is done) with no answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="a.test") as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
                return tls.recv(1) == b""
        except (ssl.SSLError, ConnectionError):
            return True


@pytest.mark.parametrize("mode", ["require_and_verify", "verify_if_given"])
def test_client_certificates_mtls(serve: Any, ca: Authority, tmp_path: Path, mode: str) -> None:
    crt, key = ca.leaf("a", "a.test")
    good = ca.leaf("client", "client.test", organization="Clients")
    (tmp_path / "other").mkdir()
    other = Authority(tmp_path / "other")
    bad = other.leaf("stranger", "client.test")
    body = "[{http.request.tls.client.subject}|{http.request.tls.client.san.dns_names}]"
    site = (f"a.test {{\n\ttls {crt} {key} {{\n\t\tclient_auth {{\n\t\t\tmode {mode}\n"
            f"\t\t\ttrusted_ca_cert_file {ca.pem}\n\t\t}}\n\t}}\n\trespond \"{body}\"\n}}\n")
    with serve(site, loop="uvloop") as server:
        port = server.port()
        assert fetch(port, "a.test", _client_context(ca, *good))[0] == "[O=Clients|[client.test]]"  # a list as Go prints it
        assert _refused(port, _client_context(ca, *bad))  # a certificate of another CA
        if mode == "require_and_verify":
            assert _refused(port, _client_context(ca))  # no certificate
        else:  # no certificate at all is fine, and its placeholders are unset
            assert fetch(port, "a.test", _client_context(ca))[0] == body


def test_client_authentication_that_python_cant_do_fails_the_config(ca: Authority) -> None:
    crt, key = ca.leaf("a", "a.test")
    for mode in ("request", "require"):
        tree = {"apps": {"http": {"servers": {"srv0": {"listen": ["127.0.0.1:0"], "tls_connection_policies": [
            {"client_authentication": {"mode": mode}}]}}},
            "tls": {"certificates": {"load_files": [{"certificate": str(crt), "key": str(key)}]}}}}
        message = _load(tree)
        assert "client_authentication.mode" in message and "not supported" in message


def _finish_handshake(raw: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO,
                      outgoing: ssl.MemoryBIO) -> None:
    """Drive a memory-BIO client's handshake over `raw` to its end."""
    while True:
        try:
            tls.do_handshake()
            return
        except ssl.SSLWantReadError:
            raw.sendall(outgoing.read())
            incoming.write(raw.recv(65536))


def test_read_client_hello_takes_name_and_alpn_and_refuses_anything_else() -> None:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["acme-tls/1", "http/1.1"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    with pytest.raises(ssl.SSLWantReadError):
        context.wrap_bio(incoming, outgoing, server_hostname="Example.COM").do_handshake()
    hello = outgoing.read()
    assert read_client_hello(hello) == ("example.com", ["acme-tls/1", "http/1.1"])
    assert read_client_hello(hello[:-1]) == len(hello)  # incomplete: how much to read before trying again
    assert read_client_hello(hello[:3]) == 5
    assert read_client_hello(hello[:5] + hello[5:9] + hello[9:]) == ("example.com", ["acme-tls/1", "http/1.1"])
    split = len(hello) // 2  # one handshake message over two records
    two_records = (hello[:3] + (split - 5).to_bytes(2, "big") + hello[5:split]
                   + hello[:3] + (len(hello) - split).to_bytes(2, "big") + hello[split:])
    assert read_client_hello(two_records) == ("example.com", ["acme-tls/1", "http/1.1"])
    trickle = b"\x16\x03\x01\x00\x04\x01\x00\x01\x00" + b"\x16\x03\x01\x00\x01\x00" * 9  # 1-byte records
    for junk in (b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x05hello", b"\x16\x03\x01\x00\x04\x02\x00\x00\x00",
                 b"\x16\x03\x01\x00\x00", trickle, b"\x16\x03\x01\x00\x04\x01\x10\x00\x00"):
        with pytest.raises(ValueError):
            read_client_hello(junk)
    rng = random.Random(7)
    for _ in range(3000):  # damaged ClientHellos: an answer or ValueError, never another exception
        damaged = bytearray(hello)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        with contextlib.suppress(ValueError):
            read_client_hello(bytes(damaged[:rng.randrange(len(damaged) + 1)]))


def _session(port: int, context: ssl.SSLContext, session: ssl.SSLSession | None = None) -> tuple[ssl.SSLSession, bool]:
    """One request over TLS: the session (with the ticket that came after the handshake)
    and whether it resumed `session`."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="a.test", session=session) as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            assert tls.recv(65536).startswith(b"HTTP/1.1 200")
            assert tls.session is not None
            return tls.session, tls.session_reused


@pytest.mark.parametrize("disabled", [False, True])
def test_certificates_from_folders_and_storage_and_session_tickets(serve: Any, ca: Authority, tmp_path: Path,
                                                                   disabled: bool) -> None:
    crt, key = ca.leaf("a", "a.test")
    folder = tmp_path / "bundles" / "deeper"
    folder.mkdir(parents=True)
    (folder / "a.pem").write_bytes(crt.read_bytes() + key.read_bytes())
    (folder / "only-a-cert.pem").write_bytes(crt.read_bytes())  # no key: not a bundle, skipped
    store = tmp_path / "store"
    b_crt, b_key = ca.leaf("b", "b.test")
    (store / "mine").mkdir(parents=True)
    (store / "mine" / "b.crt").write_bytes(b_crt.read_bytes())
    (store / "mine" / "b.key").write_bytes(b_key.read_bytes())
    tree = {"storage": {"module": "file_system", "root": str(store)}, "apps": {
        "http": {"servers": {"srv0": {"listen": ["127.0.0.1:0"], "tls_connection_policies": [{}], "routes": [
            {"handle": [{"handler": "static_response", "body": "{http.request.host}"}]}]}}},
        "tls": {"session_tickets": {"disabled": disabled},
                "certificates": {"load_folders": [str(tmp_path / "bundles")],
                                 "load_storage": {"pairs": [{"certificate": "mine/b.crt", "key": "mine/b.key"}]}}}}}
    with serve(tree) as server:
        port = server.port()
        assert get(port, "a.test", ca.client()) == ("a.test", ["a.test"])
        assert get(port, "b.test", ca.client()) == ("b.test", ["b.test"])
        context = ca.client()
        session, _ = _session(port, context)
        assert _session(port, context, session)[1] is not disabled  # resumed with the ticket, unless disabled


def test_an_expired_certificate_is_logged_and_a_missing_storage_pair_fails_the_config(
        ca: Authority, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from rws.tls.certificates import load_certificates
    from rws.tls.config import StorageLoaderConfig, CertKeyFilePairConfig
    from rws.tls.storage import FileStorage

    key = ec.generate_private_key(ec.SECP256R1())
    old = (x509.CertificateBuilder().subject_name(ca.name).issuer_name(ca.name).public_key(key.public_key())
           .serial_number(1).not_valid_before(NOW - datetime.timedelta(days=30))
           .not_valid_after(NOW - datetime.timedelta(days=1))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("old.test")]), critical=False)
           .sign(ca.key, hashes.SHA256()))

    class Loader:
        def __init__(self, config: Any) -> None:
            self.config = config

    pem = {"certificate": old.public_bytes(serialization.Encoding.PEM).decode(),
           "key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()}
    pair = type("Pair", (), {**pem, "tags": ()})
    with caplog.at_level("WARNING"):
        loaded = load_certificates({"load_pem": Loader([pair])})
    assert loaded[0].names == ("old.test",)
    assert any(r.getMessage() == "certificate has expired" for r in caplog.records)
    missing = StorageLoaderConfig(pairs=(CertKeyFilePairConfig(certificate="x/a.crt", key="x/a.key"),))
    with pytest.raises(RwsError, match=r"apps\.tls\.certificates\.load_storage\.pairs\[0\]: x/a\.crt: not in storage"):
        load_certificates({"load_storage": Loader(missing)}, FileStorage(tmp_path))


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_closing_connection_does_not_wait_long_for_the_clients_close_notify(serve: Any, ca: Authority,
                                                                              loop: str) -> None:
    """After `Connection: close` the server sends close_notify; a client that never answers
    it (nor closes) has the connection closed within seconds, not the TLS layer's 30."""
    with serve(three_sites(ca), loop=loop) as server:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ca.client().wrap_bio(incoming, outgoing, server_hostname="b.test")
        with socket.create_connection(("127.0.0.1", server.port()), timeout=10) as raw:
            _finish_handshake(raw, tls, incoming, outgoing)
            tls.write(b"GET / HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n")
            raw.sendall(outgoing.read())
            while chunk := raw.recv(65536):  # the response, the close_notify, then the end (a timeout fails)
                incoming.write(chunk)
            data = b""
            while True:
                try:
                    chunk = tls.read(65536)
                except (ssl.SSLZeroReturnError, ssl.SSLWantReadError):  # its close_notify; the end
                    break
                if not chunk:
                    break
                data += chunk
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"B")
