"""On-demand TLS through real `rws run` processes: the first handshake for a name waits for
its certificate, once the `ask` endpoint allows it; from the local CA and from a real ACME
CA (pebble); denied names, the rate limit, and workers."""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.processes import Process
from tests.tls.pebble import Pebble, free_port
from tests.tls.test_acme import Ports, serving
from tests.tls.test_termination import fetch

pytestmark = pytest.mark.timeout(120)


class Ask:
    """The `ask` endpoint: allows the names in `allowed`, records every query."""

    def __init__(self) -> None:
        self.allowed: set[str] = set()
        self.slow: set[str] = set()  # names answered after a while
        self.queries: list[dict[str, list[str]]] = []
        self.release = threading.Event()
        ask = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                ask.queries.append(query)
                if query.get("domain", [""])[0] in ask.slow:
                    ask.release.wait(20)
                self.send_response(200 if query.get("domain", [""])[0] in ask.allowed else 403)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/check?token=abc"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ask() -> Iterator[Ask]:
    endpoint = Ask()
    yield endpoint
    endpoint.close()


def start(folder: Path, config: str, workers: int = 1) -> Process:
    (folder / "Rwsfile").write_text(config)
    env = {"PATH": "/usr/bin:/bin", "XDG_DATA_HOME": str(folder / "data"), "XDG_CONFIG_HOME": str(folder / "cfg")}
    process = Process(["run", "--config", "Rwsfile"], folder, env)
    process.wait_for("config applied", count=workers + 1 if workers > 1 else 1, timeout=60)
    return process


def _alert(port: int, name: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with pytest.raises(ssl.SSLError) as failed:
            ssl.create_default_context().wrap_socket(raw, server_hostname=name)
    return str(failed.value.reason)


def local_site(port: int, ask_url: str, extra: str = "") -> str:
    return (f"{{\n\tadmin off\n\thttps_port {port}\n\thttp_port {free_port()}\n\tdefault_bind 127.0.0.1\n{extra}"
            f"\ton_demand_tls {{\n\t\task {ask_url}\n\t}}\n}}\n"
            "https:// {\n\ttls internal {\n\t\ton_demand\n\t}\n\trespond \"hi {host}\"\n}\n")


@pytest.mark.parametrize("workers", [1, 2])
def test_the_first_handshake_gets_a_certificate_when_ask_allows_it(tmp_path: Path, ask: Ask, workers: int) -> None:
    port = free_port()
    ask.allowed = {"shop.example.com", "blog.example.com"}
    process = start(tmp_path, local_site(port, ask.url, f"\tworkers {workers}\n"), workers)
    try:
        root = tmp_path / "data" / "rws" / "pki" / "authorities" / "local" / "root.crt"
        context = ssl.create_default_context(cafile=str(root))
        body, cert = fetch(port, "shop.example.com", context)
        assert body == "hi shop.example.com"
        assert {"domain": ["shop.example.com"], "token": ["abc"]} in ask.queries  # the URL's own query is kept
        assert fetch(port, "shop.example.com", context)[1].serial_number == cert.serial_number  # kept, not issued again
        assert fetch(port, "blog.example.com", context)[0] == "hi blog.example.com"
        assert _alert(port, "evil.example.com") == "TLSV1_UNRECOGNIZED_NAME"  # ask said no
        assert {"domain": ["evil.example.com"], "token": ["abc"]} in ask.queries
        stored = tmp_path / "data" / "rws" / "certificates" / "local"
        assert sorted(p.name for p in stored.iterdir()) == ["blog.example.com", "shop.example.com"]
        assert process.proc.poll() is None
    finally:
        process.stop()


def test_an_unreachable_ask_endpoint_denies(tmp_path: Path) -> None:
    port = free_port()
    process = start(tmp_path, local_site(port, f"http://127.0.0.1:{free_port()}/check"))
    try:
        assert _alert(port, "shop.example.com") == "TLSV1_UNRECOGNIZED_NAME"
        record = process.wait_for("on-demand permission check failed")
        assert record["server_name"] == "shop.example.com"
    finally:
        process.stop()


def test_the_rate_limit_bounds_how_many_certificates_are_obtained(tmp_path: Path) -> None:
    port = free_port()
    tree = {"admin": {"disabled": True}, "apps": {
        "http": {"https_port": port, "servers": {"srv0": {
            "listen": [f"127.0.0.1:{port}"], "tls_connection_policies": [{}],
            "routes": [{"handle": [{"handler": "static_response", "body": "hi {http.request.host}"}]}]}}},
        "tls": {"automation": {"policies": [{"issuers": [{"module": "internal"}], "on_demand": True}],
                               "on_demand": {"rate_limit": {"interval": "1m", "burst": 2}}}}}}
    (tmp_path / "config.json").write_text(json.dumps(tree))
    env = {"PATH": "/usr/bin:/bin", "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    process = Process(["run", "--config", "config.json"], tmp_path, env)
    try:
        process.wait_for("config applied")
        root = tmp_path / "data" / "rws" / "pki" / "authorities" / "local" / "root.crt"
        context = ssl.create_default_context(cafile=str(root))
        assert fetch(port, "a.example.com", context)[0] == "hi a.example.com"
        assert fetch(port, "b.example.com", context)[0] == "hi b.example.com"
        assert _alert(port, "c.example.com") == "TLSV1_UNRECOGNIZED_NAME"
        assert process.wait_for("on-demand certificate rate limit reached")["server_name"] == "c.example.com"
        assert fetch(port, "a.example.com", context)[0] == "hi a.example.com"  # names it has still serve
    finally:
        process.stop()


def test_on_demand_certificates_from_an_acme_ca(tmp_path: Path, ask: Ask) -> None:
    ports = Ports()
    ask.allowed = {"a.example.com"}
    with Pebble(tmp_path, http_port=ports.http, tls_port=ports.https) as pebble:
        config = (f"{{\n\tadmin off\n\thttp_port {ports.http}\n\thttps_port {ports.https}\n\tdefault_bind 127.0.0.1\n"
                  f"\tacme_ca {pebble.directory}\n\tacme_ca_root {pebble.ca_file}\n"
                  f"\ton_demand_tls {{\n\t\task {ask.url}\n\t}}\n}}\n"
                  "https:// {\n\ttls {\n\t\ton_demand\n\t}\n\trespond \"hi {host}\"\n}\n")
        process = start(tmp_path, config)
        try:
            assert pebble.orders() == 0  # nothing is obtained before a handshake asks
            body, cert = serving(ports.https, "a.example.com", pebble.root_file(), timeout=60)
            assert body == "hi a.example.com"
            assert pebble.orders() == 1
            assert _alert(ports.https, "b.example.com") == "TLSV1_UNRECOGNIZED_NAME"
            assert pebble.orders() == 1
        finally:
            process.stop()


def test_a_handshake_waiting_for_its_certificate_reads_nothing_more_and_odd_names_are_refused(
        tmp_path: Path, ask: Ask) -> None:
    port = free_port()
    ask.allowed = {"slow.example.com", "good:victim.example.com", "good-victim.example.com"}
    ask.slow = {"slow.example.com"}
    process = start(tmp_path, local_site(port, ask.url))
    try:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        client = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="slow.example.com")
        with pytest.raises(ssl.SSLWantReadError):
            client.do_handshake()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(outgoing.read())
            _until(lambda: any(q.get("domain") == ["slow.example.com"] for q in ask.queries))
            raw.settimeout(3)
            with pytest.raises(TimeoutError):  # while the ask waits, the server reads no more: buffers fill
                raw.sendall(b"\x00" * (64 << 20))
        ask.release.set()
        # an SNI that isn't a host name is refused before anything is asked or stored
        assert _alert(port, "good:victim.example.com") == "TLSV1_UNRECOGNIZED_NAME"
        assert not any(q.get("domain") == ["good:victim.example.com"] for q in ask.queries)
        root = tmp_path / "data" / "rws" / "pki" / "authorities" / "local" / "root.crt"
        assert fetch(port, "good-victim.example.com", ssl.create_default_context(cafile=str(root)))[0] == \
            "hi good-victim.example.com"
        assert process.proc.poll() is None
    finally:
        process.stop()


def _until(condition: Any) -> None:
    import time

    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.02)
