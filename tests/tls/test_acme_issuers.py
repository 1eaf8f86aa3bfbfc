"""The ACME issuer's settings end to end, through real `rws run` processes and a real
ACME CA (pebble, tests/tls/pebble.py), everything on 127.0.0.1: a name's issuers tried in
turn (an unreachable CA, then pebble trusted through the issuer's own `trusted_roots`),
external account binding (the global `acme_eab` and an issuer's `eab`, with the right, a
wrong and a malformed MAC key), and the ACME account: stored in Caddy's layout
`acme/<issuer>/users/<email>/<local part>.{json,key}` and reused after a restart (pebble
keeps one account)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.e2e.processes import Process
from tests.tls import test_acme
from tests.tls.pebble import Pebble, free_port
from tests.tls.test_acme import Ports, obtained, rwsfile, serving, start

pytestmark = pytest.mark.timeout(120)

# test_acme's fixtures: free ports, and pebble on them (`@pytest.mark.pebble(**options)`)
ports, pebble = test_acme.ports, test_acme.pebble

EMAIL = "test@example.com"  # the global `email` rwsfile() writes


def mac_key() -> str:
    """A random EAB MAC key, base64url without padding (as CAs hand them out)."""
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


KID, MAC_KEY, WRONG_MAC_KEY = "kid-1", mac_key(), mac_key()


def storage(folder: Path) -> Path:
    """rws's storage: `$XDG_DATA_HOME/rws` (start() sets XDG_DATA_HOME to folder/data)."""
    return folder / "data" / "rws"


def issuer_key(url: str) -> str:
    """certmagic's issuer key of a directory URL: https://127.0.0.1:PORT/dir -> 127.0.0.1-PORT-dir."""
    return url.split("://", 1)[1].replace(":", "-").replace("/", "-").strip("-")


def records(process: Process, msg: str, name: str | None = None) -> list[dict[str, Any]]:
    return [r for r in process.records if r.get("msg") == msg and (name is None or r.get("identifier") == name)]


def site(name: str, body: str, issuer: str = "") -> str:
    """A site block answering `body`; with `issuer`, the lines of one `issuer acme` block."""
    tls = f"\ttls {{\n\t\tissuer acme {{\n{issuer}\t\t}}\n\t}}\n" if issuer else ""
    return f'{name} {{\n{tls}\trespond "{body}"\n}}\n'


def test_the_next_issuer_gives_the_certificate_when_the_first_cannot_be_reached(
        tmp_path: Path, ports: Ports, pebble: Pebble) -> None:
    """Two `issuer acme` blocks: the first's CA refuses connections, so the same attempt
    goes on to pebble, trusted through that issuer's own `trusted_roots` (no `acme_ca_root`)."""
    unreachable = f"https://127.0.0.1:{free_port()}/dir"
    config = (f"{{\n\tadmin off\n\thttp_port {ports.http}\n\thttps_port {ports.https}\n"
              f"\tdefault_bind 127.0.0.1\n\temail {EMAIL}\n}}\n"
              "a.example.com {\n\ttls {\n"
              f"\t\tissuer acme {{\n\t\t\tdir {unreachable}\n\t\t}}\n"
              f"\t\tissuer acme {{\n\t\t\tdir {pebble.directory}\n\t\t\ttrusted_roots {pebble.ca_file}\n\t\t}}\n"
              '\t}\n\trespond "hello a"\n}\n')
    process = start(tmp_path, config)
    try:
        obtained(process, "a.example.com", timeout=30)
        assert [r["attempt"] for r in records(process, "obtaining certificate")] == [1]  # no retry (10 s pause)
        assert not records(process, "could not get a certificate")
        assert [r["issuer"] for r in records(process, "certificate obtained")] == [pebble.directory]
        [failed] = records(process, "could not get a certificate from this issuer")  # as Caddy logs each
        assert failed["issuer"] == unreachable and "cannot reach the CA" in failed["error"]
        assert not (storage(tmp_path) / "certificates" / issuer_key(unreachable)).exists()
        stored = storage(tmp_path) / "certificates" / issuer_key(pebble.directory) / "a.example.com"
        assert sorted(p.name for p in stored.iterdir()) == ["a.example.com.crt", "a.example.com.json",
                                                           "a.example.com.key"]
        assert (stored / "a.example.com.key").stat().st_mode & 0o777 == 0o600
        body, cert = serving(ports.https, "a.example.com", pebble.root_file())
        assert body == "hello a"
        assert cert.public_bytes(serialization.Encoding.PEM) in (stored / "a.example.com.crt").read_bytes()
        assert pebble.orders() == 1
    finally:
        process.stop()


@pytest.mark.pebble(eab={KID: MAC_KEY})
def test_external_account_binding_right_wrong_and_malformed_mac_keys(
        tmp_path: Path, ports: Ports, pebble: Pebble) -> None:
    """pebble requires EAB. a.example.com's issuer has the global `acme_eab` (the right
    key), c.example.com's its own `eab` (the right key); b.example.com's `eab` has a wrong
    MAC key and d.example.com's one that isn't base64url. Each has its own email, so its
    own account (pebble returns an existing account without checking the binding)."""
    extra = f"\tacme_eab {{\n\t\tkey_id {KID}\n\t\tmac_key {MAC_KEY}\n\t}}\n"
    sites = (site("a.example.com", "hello a")
             + site("b.example.com", "hello b", f"\t\t\temail b@example.com\n\t\t\teab {KID} {WRONG_MAC_KEY}\n")
             + site("c.example.com", "hello c", f"\t\t\temail c@example.com\n\t\t\teab {KID} {MAC_KEY}\n")
             + site("d.example.com", "hello d", f"\t\t\temail d@example.com\n\t\t\teab {KID} abcde\n")  # 5: no base64
             + site("localhost", "local"))
    process = start(tmp_path, rwsfile(ports, pebble.directory, pebble.ca_file, sites, extra))
    try:
        process.wait_for("could not get a certificate", count=2, timeout=30)
        obtained(process, "a.example.com", timeout=30)
        obtained(process, "c.example.com", timeout=30)
        for name in ("a.example.com", "c.example.com"):  # at the first attempt
            assert [r["attempt"] for r in records(process, "obtaining certificate", name)] == [1]
            assert not records(process, "could not get a certificate", name)
        wrong, = records(process, "could not get a certificate", "b.example.com")
        assert wrong["retrying_in"] == 10
        assert wrong["error"].startswith(f"{pebble.directory}: account: unauthorized: ")  # the CA's problem type
        assert "external account binding" in wrong["error"].lower()  # and its detail
        malformed, = records(process, "could not get a certificate", "d.example.com")
        assert malformed["error"].startswith(f"{pebble.directory}: account: the external account binding's MAC key")
        root = pebble.root_file()
        assert serving(ports.https, "a.example.com", root)[0] == "hello a"
        assert serving(ports.https, "c.example.com", root)[0] == "hello c"
        local_root = storage(tmp_path) / "pki" / "authorities" / "local" / "root.crt"
        assert serving(ports.https, "localhost", local_root)[0] == "local"  # the process serves on
        assert process.proc.poll() is None
        assert pebble.accounts() == 2  # a's and c's; none for the failed bindings
        assert "Successful newAccount Binding with CA using kid \"kid-1\"" in pebble.output
        certificates = storage(tmp_path) / "certificates" / issuer_key(pebble.directory)
        assert sorted(p.name for p in certificates.iterdir()) == ["a.example.com", "c.example.com"]
        users = storage(tmp_path) / "acme" / issuer_key(pebble.directory) / "users"
        for email in (EMAIL, "c@example.com"):  # registered: account stored
            local = email.split("@")[0]
            assert sorted(p.name for p in (users / email).iterdir()) == [f"{local}.json", f"{local}.key"]
    finally:
        process.stop()


def test_account_files_are_stored_in_caddys_layout(tmp_path: Path, ports: Ports, pebble: Pebble) -> None:
    """`acme/<issuer key>/users/<email, made safe>/<local part, made safe>.{json,key}` as
    certmagic's KeyBuilder writes it (lower case, "+" as "_plus_"), the key 0600."""
    sites = (site("a.example.com", "hello a")
             + site("b.example.com", "hello b", "\t\t\temail Admin.Ops+tls@Example.com\n"))
    process = start(tmp_path, rwsfile(ports, pebble.directory, pebble.ca_file, sites))
    try:
        obtained(process, "a.example.com", timeout=30)
        obtained(process, "b.example.com", timeout=30)
    finally:
        process.stop()
    users = storage(tmp_path) / "acme" / issuer_key(pebble.directory) / "users"
    accounts = {"test@example.com": ("test", "mailto:test@example.com"),
                "admin.ops_plus_tls@example.com": ("admin.ops_plus_tls", "mailto:Admin.Ops+tls@Example.com")}
    assert sorted(p.name for p in users.iterdir()) == sorted(accounts)
    for folder, (base, contact) in accounts.items():
        account = users / folder
        assert sorted(p.name for p in account.iterdir()) == [f"{base}.json", f"{base}.key"]
        assert account.stat().st_mode & 0o077 == 0
        key_file = account / f"{base}.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
        registration = json.loads((account / f"{base}.json").read_text())
        assert sorted(registration) == ["contact", "location", "status", "termsOfServiceAgreed"]  # as certmagic's
        assert registration["contact"] == [contact] and registration["status"] == "valid"
        assert registration["location"].startswith(f"{pebble.directory.rsplit('/', 1)[0]}/my-account/")
    assert pebble.accounts() == 2


def test_the_account_is_reused_after_a_restart(tmp_path: Path, ports: Ports, pebble: Pebble) -> None:
    account = storage(tmp_path) / "acme" / issuer_key(pebble.directory) / "users" / EMAIL
    process = start(tmp_path, rwsfile(ports, pebble.directory, pebble.ca_file, site("a.example.com", "a")))
    try:
        obtained(process, "a.example.com", timeout=30)
    finally:
        process.stop()
    key, registration = (account / "test.key").read_bytes(), (account / "test.json").read_bytes()
    assert pebble.accounts() == 1

    again = start(tmp_path, rwsfile(ports, pebble.directory, pebble.ca_file,
                                    site("a.example.com", "a") + site("b.example.com", "b")))
    try:
        obtained(again, "b.example.com", timeout=30)
        assert not records(again, "obtaining certificate", "a.example.com")  # a's is in storage
        root = pebble.root_file()
        assert serving(ports.https, "a.example.com", root)[0] == "a"
        assert serving(ports.https, "b.example.com", root)[0] == "b"
    finally:
        again.stop()
    assert pebble.orders() == 2
    assert pebble.accounts() == 1  # the second order came from the same account
    assert (account / "test.key").read_bytes() == key
    assert (account / "test.json").read_bytes() == registration
    assert [p.name for p in account.parent.iterdir()] == [EMAIL]


def test_an_account_the_ca_has_forgotten_is_registered_again(tmp_path: Path, ports: Ports, pebble: Pebble) -> None:
    account = storage(tmp_path) / "acme" / issuer_key(pebble.directory) / "users" / EMAIL
    process = start(tmp_path, rwsfile(ports, pebble.directory, pebble.ca_file, site("a.example.com", "a")))
    try:
        obtained(process, "a.example.com")
    finally:
        process.stop()
    registration = json.loads((account / "test.json").read_text())
    known = registration["location"]
    registration["location"] = known.rsplit("/", 1)[0] + "/forgotten"
    (account / "test.json").write_text(json.dumps(registration))
    process = start(tmp_path, rwsfile(ports, pebble.directory, pebble.ca_file,
                                      site("a.example.com", "a") + site("b.example.com", "b")))
    try:
        obtained(process, "b.example.com")
        assert [r["attempt"] for r in records(process, "obtaining certificate")] == [1]
    finally:
        process.stop()
    assert json.loads((account / "test.json").read_text())["location"] == known  # the same key: the same account
    assert pebble.accounts() == 1
