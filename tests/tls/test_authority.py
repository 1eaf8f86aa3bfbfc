"""The local CA and its storage: Caddy's layout on disk, one root for every process
sharing the folder, leaves that real TLS clients accept with the stored root."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from rws.errors import RwsError
from rws.tls.authority import LocalAuthority
from rws.tls.storage import FileStorage, safe_key


def test_the_root_is_made_once_in_caddys_layout_and_kept(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    first = LocalAuthority(storage).root_pem()
    folder = tmp_path / "pki" / "authorities" / "local"
    assert sorted(p.name for p in folder.iterdir()) == ["intermediate.crt", "intermediate.key", "root.crt", "root.key"]
    assert stat.S_IMODE((folder / "root.key").stat().st_mode) == 0o600
    assert LocalAuthority(FileStorage(tmp_path)).root_pem() == first == (folder / "root.crt").read_bytes()
    root = x509.load_pem_x509_certificate(first)
    assert (root.not_valid_after_utc - root.not_valid_before_utc).days == 3600
    assert "rws Local Authority" in root.subject.rfc4514_string()


def test_processes_sharing_the_folder_make_one_root(tmp_path: Path) -> None:
    roots: list[bytes] = []

    def make() -> None:
        roots.append(LocalAuthority(FileStorage(tmp_path)).root_pem())

    threads = [threading.Thread(target=make) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(roots) == 6 and len(set(roots)) == 1


def test_the_intermediate_is_renewed_under_the_same_root(tmp_path: Path) -> None:
    authority = LocalAuthority(FileStorage(tmp_path), intermediate_lifetime=1)
    root, intermediate = authority.root_pem(), authority.intermediate_pem()
    time.sleep(1.1)  # its whole one-second lifetime is over
    again = LocalAuthority(FileStorage(tmp_path), intermediate_lifetime=1)
    assert again.root_pem() == root and again.intermediate_pem() != intermediate
    x509.load_pem_x509_certificate(again.intermediate_pem()).verify_directly_issued_by(
        x509.load_pem_x509_certificate(root))


def test_a_leaf_from_the_local_ca_is_trusted_by_a_client_holding_the_root(serve: Any, tmp_path: Path) -> None:
    authority = LocalAuthority(FileStorage(tmp_path))
    chain, key = authority.issue(["localhost", "127.0.0.1"])
    leaf = x509.load_pem_x509_certificates(chain)[0]
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds() == 12 * 3600 + 60
    assert leaf.subject == x509.Name([])
    tree = {"apps": {
        "http": {"servers": {"srv0": {"listen": ["127.0.0.1:0"], "routes": [{"handle": [
            {"handler": "static_response", "body": "local"}]}], "tls_connection_policies": [{}]}}},
        "tls": {"certificates": {"load_pem": [{"certificate": chain.decode(), "key": key.decode()}]}}}}
    root = tmp_path / "root.pem"
    root.write_bytes(authority.root_pem())
    with serve(tree) as server:
        client = ssl.create_default_context(cafile=str(root))
        with socket.create_connection(("127.0.0.1", server.port()), timeout=10) as raw:
            with client.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := tls.recv(4096):
                    data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"local")


def test_storage_writes_are_atomic_and_keys_cant_escape_the_root(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    storage.store("certificates/local/a/a.key", b"secret", private=True)
    assert storage.load("certificates/local/a/a.key") == b"secret"
    assert stat.S_IMODE((tmp_path / "certificates/local/a/a.key").stat().st_mode) == 0o600
    assert not [p for p in (tmp_path / "certificates/local/a").iterdir() if p.name.startswith(".tmp-")]
    assert storage.load("missing/key") is None
    for key in ("../outside", "a/../../b", ""):
        with pytest.raises(RwsError):
            storage.load(key)
    assert safe_key("*.Example.COM:443") == "wildcard_.example.com-443"
    assert safe_key("a+b c/../d") == "a_plus_b_cd"


def test_a_storage_lock_waits_for_its_holder_and_outlives_a_dead_one(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    order: list[str] = []
    with storage.lock("issue_cert_a"):
        waiter = threading.Thread(target=lambda: (storage.lock("issue_cert_a").__enter__(), order.append("second")))
        waiter.start()
        time.sleep(0.3)
        order.append("first")
    waiter.join(10)
    assert order == ["first", "second"]
    stale = tmp_path / "locks" / "issue_cert_b.lock"
    stale.write_text("12345\n")
    old = time.time() - 120
    os.utime(stale, (old, old))  # left by a process that died two minutes ago
    with storage.lock("issue_cert_b", timeout=5):
        assert stale.read_text() == f"{os.getpid()}\n"
    with storage.lock("issue_cert_c"), pytest.raises(RwsError):
        with storage.lock("issue_cert_c", timeout=0.2):
            pass


def test_the_admin_api_gives_the_local_ca(serve: Any, tmp_path: Path) -> None:
    import httpx

    tree = {"storage": {"module": "file_system", "root": str(tmp_path)},
            "apps": {"pki": {"certificate_authorities": {"team": {"name": "Team CA"}}}}}
    with serve(tree, admin=True) as server:
        local = httpx.get(server.admin_url("/pki/ca/local"))
        assert local.status_code == 200
        info = local.json()
        stored = (tmp_path / "pki" / "authorities" / "local" / "root.crt").read_text()
        assert info["id"] == "local" and info["root_certificate"] == stored
        assert info["root_common_name"].startswith("rws Local Authority - ") and info["name"] == "rws Local Authority"
        assert info["intermediate_common_name"] == "rws Local Authority - ECC Intermediate"
        chain = httpx.get(server.admin_url("/pki/ca/local/certificates"))
        assert chain.headers["content-type"] == "application/pem-certificate-chain"
        assert chain.text == info["intermediate_certificate"] + info["root_certificate"]
        team = httpx.get(server.admin_url("/pki/ca/team")).json()
        assert team["name"] == "Team CA" and team["root_certificate"] != info["root_certificate"]
        missing = httpx.get(server.admin_url("/pki/ca/nope"))
        assert missing.status_code == 404
        assert missing.json() == {"error": "no certificate authority configured with id: nope"}
        assert httpx.post(server.admin_url("/pki/ca/local")).status_code == 405
