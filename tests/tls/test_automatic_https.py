"""Automatic HTTPS for the names the local CA serves: a `localhost` site gets HTTPS with no
TLS configuration, through real `rws run` processes (one, and a supervisor with workers)
and real clients trusting the stored root."""

from __future__ import annotations

import datetime
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from rws.runtime.generation import Generation
from rws.tls.authority import LocalAuthority
from rws.tls.storage import FileStorage
from tests.e2e.processes import Process, wait_gone
from tests.tls.test_termination import fetch


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def https_get(port: int, name: str, root: Path) -> tuple[str, int]:
    """Body and certificate serial of one request to https://<name>:<port>/ on 127.0.0.1."""
    body, peer = fetch(port, name, ssl.create_default_context(cafile=str(root)))
    return body, peer.serial_number


def start(tmp_path: Path, port: int, workers: int = 1) -> Process:
    (tmp_path / "Rwsfile").write_text(
        f"{{\n\tadmin off\n\thttps_port {port}\n\tworkers {workers}\n}}\n"
        f"localhost:{port} {{\n\tbind 127.0.0.1\n\trespond \"hello {{http.request.scheme}} {{env.RWS_WORKER}}\"\n}}\n")
    env = {"PATH": "/usr/bin:/bin", "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    process = Process(["run", "--config", "Rwsfile"], tmp_path, env)
    process.wait_for("config applied", count=workers + 1 if workers > 1 else 1, timeout=60)
    return process


def test_a_localhost_site_gets_https_from_the_local_ca_and_keeps_it_across_restarts(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data" / "rws"
    process = start(tmp_path, port)
    try:
        root = data / "pki" / "authorities" / "local" / "root.crt"
        body, serial = https_get(port, "localhost", root)
        assert body == "hello https "
        stored = data / "certificates" / "local" / "localhost"
        assert sorted(p.name for p in stored.iterdir()) == ["localhost.crt", "localhost.json", "localhost.key"]
        assert [r["identifier"] for r in process.records if r.get("msg") == "certificate obtained"] == ["localhost"]
    finally:
        assert process.stop() == 0
    again = start(tmp_path, port)  # a restart uses the stored certificate: nothing is issued
    try:
        assert https_get(port, "localhost", root) == ("hello https ", serial)
        assert not [r for r in again.records if r.get("msg") == "certificate obtained"]
    finally:
        assert again.stop() == 0


def test_with_workers_the_supervisor_issues_and_every_worker_serves_it(tmp_path: Path) -> None:
    port = free_port()
    process = start(tmp_path, port, workers=2)
    try:
        root = tmp_path / "data" / "rws" / "pki" / "authorities" / "local" / "root.crt"
        seen: set[str] = set()
        serials: set[int] = set()
        for _ in range(200):
            body, serial = https_get(port, "localhost", root)
            seen.add(body)
            serials.add(serial)
            if len(seen) == 2:
                break
        assert seen == {"hello https 0", "hello https 1"} and len(serials) == 1
        obtained = [r for r in process.records if r.get("msg") == "certificate obtained"]
        assert len(obtained) == 1 and "worker" not in obtained[0]  # the supervisor's record
        pids = [process.proc.pid, *(int(r["pid"]) for r in process.records if r.get("msg") == "worker started")]
    finally:
        assert process.stop() == 0
    wait_gone(pids)


def test_a_stored_certificate_in_its_renewal_window_is_issued_again(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "data" / "rws")
    authority = LocalAuthority(storage)
    authority.ensure()
    assert authority.intermediate is not None
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    old = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(authority.intermediate.cert.subject)
           .public_key(key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now - datetime.timedelta(hours=11)).not_valid_after(now + datetime.timedelta(hours=1))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
           .sign(authority.intermediate.key, hashes.SHA256()))
    from rws.tls.authority import KeyPair

    pair = KeyPair(old, key)
    storage.store("certificates/local/localhost/localhost.crt", pair.cert_pem + authority.intermediate.cert_pem)
    storage.store("certificates/local/localhost/localhost.key", pair.key_pem, private=True)
    tree: dict[str, Any] = {
        "storage": {"module": "file_system", "root": str(tmp_path / "data" / "rws")},
        "apps": {"http": {"servers": {"srv0": {"listen": [":443"], "routes": [
            {"match": [{"host": ["localhost"]}], "handle": [{"handler": "static_response", "body": "x"}]}]}}}}}
    generation = Generation(tree)
    try:
        assert [c.names for c in generation.managed] == [("localhost",)]
        assert generation.managed[0].serial != old.serial_number  # 1 hour of 12 left: issued again
        stored = x509.load_pem_x509_certificates(storage.load("certificates/local/localhost/localhost.crt") or b"")
        assert stored[0].serial_number == generation.managed[0].serial
    finally:
        generation.close()


def test_which_servers_get_tls_and_which_names_certificates(tmp_path: Path) -> None:
    def generation(servers: dict[str, Any], **http: Any) -> Generation:
        return Generation({"storage": {"module": "file_system", "root": str(tmp_path)},
                           "apps": {"http": {"servers": servers, **http}}})

    def route(*hosts: str) -> dict[str, Any]:
        return {"match": [{"host": list(hosts)}], "handle": [{"handler": "static_response", "body": "x"}]}

    gen = generation({
        "plain": {"listen": [":8080"], "routes": [route("a.localhost")], "automatic_https": {"disable": True}},
        "http_only": {"listen": [":8081"], "routes": [route("b.localhost")]},
        "secure": {"listen": [":8443"], "routes": [route("c.localhost", "example.com", "{env.X}.localhost"),
                                                   route("skipped.localhost")],
                   "automatic_https": {"skip_certificates": ["skipped.localhost"]}},
    }, http_port=8081, https_port=8443)
    try:
        assert gen.servers["plain"].tls is None and gen.servers["http_only"].tls is None
        assert gen.servers["secure"].tls is not None
        # example.com needs a public CA (not built yet); a placeholder name never qualifies
        assert [c.names for c in gen.managed] == [("c.localhost",)]
    finally:
        gen.close()


def _raw_get(port: int, host: str, target: str) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        while len(body) < int(fields.get("content-length", "0")):
            body += sock.recv(4096)
    return int(lines[0].split()[1]), fields, body


REDIRECT_SITES = """{{
	admin off
	http_port {http}
	https_port {https}
}}
http://plain.localhost {{
	respond "plain"
}}
localhost {{
	respond "secure"
}}
"""


def _redirects_of(command: list[str], tmp_path: Path, http: int, https: int) -> list[tuple[int, str, str, bytes]]:
    """Start `<command> run` on the sites above; what three hosts get on the HTTP port."""
    (tmp_path / "Caddyfile").write_text(REDIRECT_SITES.format(http=http, https=https))
    env = {"PATH": "/usr/bin:/bin", "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
           "HOME": str(tmp_path)}
    proc = subprocess.Popen([*command, "run", "--config", "Caddyfile", "--adapter", "caddyfile"], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", http), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, command
                time.sleep(0.05)
        seen = []
        for host in ("localhost", "plain.localhost", "other.test"):
            status, fields, body = _raw_get(http, host, "/a/b?x=1&y=%20")
            seen.append((status, fields.get("location", ""), fields.get("connection", ""), body))
        return seen
    finally:
        proc.terminate()
        proc.wait(30)


def test_http_redirects_to_https_keeping_path_and_query_as_caddy_does(tmp_path: Path) -> None:
    http, https = free_port(), free_port()
    (tmp_path / "rws").mkdir()
    (tmp_path / "caddy").mkdir()
    ours = _redirects_of([sys.executable, "-P", "-m", "rws"], tmp_path / "rws", http, https)
    assert ours == [
        (308, "https://localhost/a/b?x=1&y=%20", "close", b""),  # the HTTPS port is written nowhere (Caddy's quirk)
        (200, "", "", b"plain"),  # a site of its own on the HTTP port keeps its requests
        (308, "https://other.test/a/b?x=1&y=%20", "close", b""),  # the catch-all
    ]
    if shutil.which("caddy"):
        caddy = _redirects_of(["caddy"], tmp_path / "caddy", http, https)
        assert [(s, loc, conn.lower(), b) for s, loc, conn, b in caddy] == ours


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("update-ca-certificates") is None,
                    reason="changes the system trust store: root and update-ca-certificates")
def test_rws_trust_makes_the_system_trust_the_local_ca_and_untrust_undoes_it(tmp_path: Path) -> None:
    from rws.tls.trust import trusted_path

    port = free_port()
    admin = f"unix/{tmp_path / 'admin.sock'}"
    (tmp_path / "Rwsfile").write_text(
        f"{{\n\tadmin {admin}\n\thttps_port {port}\n}}\nlocalhost:{port} {{\n\tbind 127.0.0.1\n\trespond \"trusted\"\n}}\n")
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    process = Process(["run", "--config", "Rwsfile"], tmp_path, env)
    root = tmp_path / "data" / "rws" / "pki" / "authorities" / "local" / "root.crt"

    def rws(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-P", "-m", "rws", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=180)

    def system_trusts() -> bool:
        try:
            fetch(port, "localhost", ssl.create_default_context())  # the system's roots only
        except ssl.SSLCertVerificationError:
            return False
        return True

    try:
        process.wait_for("config applied")
        assert not system_trusts()
        result = rws("trust", "--address", admin)
        assert result.returncode == 0, result.stderr
        installed = trusted_path(root.read_bytes())
        assert str(installed) in result.stdout and installed.read_bytes() == root.read_bytes()
        assert system_trusts()
        result = rws("untrust", "--address", admin)
        assert result.returncode == 0 and not installed.exists(), result.stderr
        assert not system_trusts()
        assert "not in the system trust store" in rws("untrust", "--cert", str(root)).stdout
        assert rws("untrust", "--cert", str(tmp_path / "missing.crt")).returncode == 1
    finally:
        if root.exists():
            rws("untrust", "--cert", str(root))
        assert process.stop() == 0
