"""Certificates from a real ACME CA (pebble, tests/tls/pebble.py) through real `rws run`
processes: HTTP-01 and TLS-ALPN-01, reuse across restarts, renewal while a client stays
connected, failures retried, a CA that can't be reached, two processes sharing storage,
and worker processes answering challenges the supervisor's orders need."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.e2e.processes import Process
from tests.tls.pebble import Pebble, free_port
from tests.tls.test_termination import fetch

pytestmark = pytest.mark.timeout(180)


class Ports:
    def __init__(self) -> None:
        self.http, self.https = free_port(), free_port()


@pytest.fixture
def ports() -> Ports:
    return Ports()


@pytest.fixture
def pebble(tmp_path: Path, ports: Ports, request: pytest.FixtureRequest) -> Iterator[Pebble]:
    marker = request.node.get_closest_marker("pebble")
    options = dict(marker.kwargs) if marker is not None else {}
    with Pebble(tmp_path, http_port=ports.http, tls_port=ports.https, **options) as ca:
        yield ca


def rwsfile(ports: Ports, ca: str, root: Path, sites: str, extra: str = "") -> str:
    return (f"{{\n\tadmin off\n\thttp_port {ports.http}\n\thttps_port {ports.https}\n\tdefault_bind 127.0.0.1\n"
            f"\tacme_ca {ca}\n\tacme_ca_root {root}\n\temail test@example.com\n{extra}}}\n{sites}")


SITES = ('a.example.com {\n\trespond "hello a"\n}\n'
         'b.example.com {\n\ttls {\n\t\tissuer acme {\n\t\t\tdisable_http_challenge\n\t\t}\n\t}\n'
         '\trespond "hello b"\n}\n')


def start(folder: Path, config: str, data: Path | None = None, name: str = "Rwsfile") -> Process:
    (folder / name).write_text(config)
    env = {"PATH": "/usr/bin:/bin", "XDG_DATA_HOME": str(data or folder / "data"),
           "XDG_CONFIG_HOME": str(folder / "cfg")}
    process = Process(["run", "--config", name], folder, env)
    process.wait_for("config applied")
    return process


def obtained(process: Process, name: str, count: int = 1, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in process.records if r.get("msg") == "certificate obtained" and r.get("identifier") == name]
        if len(found) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"no certificate for {name}; stderr:\n{''.join(process.lines)}")


def serving(port: int, name: str, root: Path, timeout: float = 30) -> tuple[str, x509.Certificate]:
    """The body and certificate of https://<name>:<port>/ once it verifies against `root`
    (after a certificate is obtained the config is applied again)."""
    context = ssl.create_default_context(cafile=str(root))
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fetch(port, name, context)
        except (ssl.SSLError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_sites_get_certificates_by_http01_and_tls_alpn01_and_keep_them_across_restarts(
        tmp_path: Path, ports: Ports, pebble: Pebble) -> None:
    config = rwsfile(ports, pebble.directory, pebble.ca_file, SITES)
    process = start(tmp_path, config)
    try:
        obtained(process, "a.example.com")
        obtained(process, "b.example.com")
        root = pebble.root_file()
        body_a, cert_a = serving(ports.https, "a.example.com", root)
        body_b, cert_b = serving(ports.https, "b.example.com", root)
        assert (body_a, body_b) == ("hello a", "hello b")
        served = [r["msg"] for r in process.records]
        assert "served ACME HTTP-01 challenge" in served
        assert "answering ACME TLS-ALPN-01 challenge" in served
        with socket.create_connection(("127.0.0.1", ports.http), timeout=10) as plain:
            plain.sendall(b"GET /some/path?x=1&y=2 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            head = plain.recv(65536).decode()
        assert head.startswith("HTTP/1.1 308") and "Location: https://a.example.com/some/path?x=1&y=2\r\n" in head
        stored = tmp_path / "data" / "rws" / "certificates" / "127.0.0.1-{}-dir".format(pebble.port)
        assert (stored / "a.example.com" / "a.example.com.crt").is_file()
        assert (stored / "a.example.com" / "a.example.com.key").stat().st_mode & 0o077 == 0
    finally:
        process.stop()
    orders = pebble.orders()
    again = start(tmp_path, config)
    try:
        assert serving(ports.https, "a.example.com", root)[1].serial_number == cert_a.serial_number
        assert serving(ports.https, "b.example.com", root)[1].serial_number == cert_b.serial_number
        assert pebble.orders() == orders  # no new order: the stored certificates are used
        assert not [r for r in again.records if r.get("msg") == "obtaining certificate"]
    finally:
        again.stop()


@pytest.mark.pebble(validity=15)
def test_a_certificate_is_renewed_and_swapped_in_while_a_client_stays_connected(
        tmp_path: Path, ports: Ports, pebble: Pebble) -> None:
    process = start(tmp_path, rwsfile(ports, pebble.directory, pebble.ca_file,
                                      'a.example.com {\n\trespond "hello a"\n}\n', "\trenew_interval 1s\n"))
    try:
        obtained(process, "a.example.com")
        root = pebble.root_file()
        first = serving(ports.https, "a.example.com", root)[1]
        context = ssl.create_default_context(cafile=str(root))
        with socket.create_connection(("127.0.0.1", ports.https), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="a.example.com") as kept:
            kept.sendall(b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            assert kept.recv(65536).startswith(b"HTTP/1.1 200")
            obtained(process, "a.example.com", count=2, timeout=60)  # due after 10 of its 15 s
            renewed = serving(ports.https, "a.example.com", root)[1]
            assert renewed.serial_number != first.serial_number
            assert renewed.not_valid_after_utc > first.not_valid_after_utc
            kept.sendall(b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")  # the connection made before still works
            answer = kept.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hello a")
        assert process.proc.poll() is None
    finally:
        process.stop()


@pytest.mark.pebble(env={"PEBBLE_WFE_NONCEREJECT": "50"})
def test_failed_validations_and_rejected_nonces_are_retried_until_they_succeed(
        tmp_path: Path, ports: Ports, pebble: Pebble) -> None:
    pebble.set_default_ipv4("127.0.0.2")  # the CA's validations reach nothing
    sites = 'a.example.com {\n\trespond "hello a"\n}\nlocalhost {\n\trespond "local"\n}\n'
    process = start(tmp_path, rwsfile(ports, pebble.directory, pebble.ca_file, sites))
    try:
        process.wait_for("could not get a certificate", timeout=60)
        failure = next(r for r in process.records if r.get("msg") == "could not get a certificate")
        assert failure["identifier"] == "a.example.com" and "127.0.0.2" in failure["error"]
        assert failure["retrying_in"] > 0
        local_root = tmp_path / "data" / "rws" / "pki" / "authorities" / "local" / "root.crt"
        assert serving(ports.https, "localhost", local_root)[0] == "local"  # the other site serves meanwhile
        pebble.set_default_ipv4("127.0.0.1")
        obtained(process, "a.example.com", timeout=90)
        assert serving(ports.https, "a.example.com", pebble.root_file())[0] == "hello a"
    finally:
        process.stop()


def test_an_unreachable_ca_is_logged_and_the_other_sites_keep_serving(tmp_path: Path, ports: Ports) -> None:
    closed = free_port()
    sites = 'a.example.com {\n\trespond "hello a"\n}\nlocalhost {\n\trespond "local"\n}\n'
    ca_file = tmp_path / "none.pem"
    ca_file.write_text("")
    process = start(tmp_path, rwsfile(ports, f"https://127.0.0.1:{closed}/dir", ca_file, sites))
    try:
        failure = process.wait_for("could not get a certificate", timeout=60)
        assert failure["identifier"] == "a.example.com"
        assert f"127.0.0.1:{closed}" in failure["error"] and "cannot reach the CA" in failure["error"]
        local_root = tmp_path / "data" / "rws" / "pki" / "authorities" / "local" / "root.crt"
        assert serving(ports.https, "localhost", local_root)[0] == "local"
        with socket.create_connection(("127.0.0.1", ports.https), timeout=10) as raw:  # no certificate yet
            with pytest.raises(ssl.SSLError):
                ssl.create_default_context().wrap_socket(raw, server_hostname="a.example.com")
        assert process.proc.poll() is None
    finally:
        process.stop()


def test_two_processes_sharing_storage_place_one_order(tmp_path: Path, ports: Ports, pebble: Pebble) -> None:
    """The second process waits on the storage lock and then finds the certificate; the
    CA validates through the first process, which answers from the shared storage."""
    data = tmp_path / "shared"
    other = Ports()
    first = start(tmp_path, rwsfile(ports, pebble.directory, pebble.ca_file, 'a.example.com {\n\trespond "one"\n}\n'),
                  data, "Rwsfile.one")
    try:
        second = start(tmp_path, rwsfile(other, pebble.directory, pebble.ca_file,
                                         'a.example.com {\n\trespond "two"\n}\n'), data, "Rwsfile.two")
        try:
            obtained(first, "a.example.com")
            root = pebble.root_file()
            one = serving(ports.https, "a.example.com", root)
            deadline = time.monotonic() + 60
            while True:  # the second takes it from storage
                try:
                    two = serving(other.https, "a.example.com", root, timeout=1)
                    break
                except (ssl.SSLError, OSError):
                    assert time.monotonic() < deadline, "".join(second.lines)
            assert (one[0], two[0]) == ("one", "two")
            assert one[1].serial_number == two[1].serial_number
            assert pebble.orders() == 1
        finally:
            second.stop()
    finally:
        first.stop()


def test_workers_answer_the_challenges_of_the_supervisors_orders(tmp_path: Path, ports: Ports, pebble: Pebble) -> None:
    process = start(tmp_path, rwsfile(ports, pebble.directory, pebble.ca_file, SITES, "\tworkers 2\n"))
    try:
        obtained(process, "a.example.com")
        obtained(process, "b.example.com")
        root = pebble.root_file()
        for _ in range(6):  # whichever worker takes the connection
            assert serving(ports.https, "a.example.com", root)[0] == "hello a"
            assert serving(ports.https, "b.example.com", root)[0] == "hello b"
        answered = [r for r in process.records if r.get("msg") in
                    ("served ACME HTTP-01 challenge", "answering ACME TLS-ALPN-01 challenge")]
        assert answered and all("worker" in r for r in answered)
        obtaining = [r for r in process.records if r.get("msg") == "obtaining certificate"]
        assert obtaining and not any("worker" in r for r in obtaining)  # orders come from the supervisor only
    finally:
        process.stop()


def test_with_nothing_on_the_http_port_the_ca_validates_over_tls_alpn_only(
        tmp_path: Path, ports: Ports, pebble: Pebble) -> None:
    """No redirects and no site on the HTTP port: HTTP-01 would only fail (and count against
    the CA's limits), so the order goes straight to TLS-ALPN-01."""
    process = start(tmp_path, rwsfile(ports, pebble.directory, pebble.ca_file, 'a.example.com {\n\trespond "hello a"\n}\n',
                                      "\tauto_https disable_redirects\n"))
    try:
        obtained(process, "a.example.com")
        messages = [r.get("msg") for r in process.records]
        assert "answering ACME TLS-ALPN-01 challenge" in messages and "served ACME HTTP-01 challenge" not in messages
        assert pebble.orders() == 1  # no order spent on an HTTP-01 validation that could only fail
        with pytest.raises(OSError):  # and nothing listens there
            socket.create_connection(("127.0.0.1", ports.http), timeout=5).close()
        assert serving(ports.https, "a.example.com", pebble.root_file())[0] == "hello a"
    finally:
        process.stop()
