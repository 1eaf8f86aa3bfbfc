"""The ACME issuer's settings end to end, through real `rws run` processes and a real
ACME CA (pebble, tests/tls/pebble.py), everything on 127.0.0.1: a name's issuers tried in
turn (an unreachable CA, then pebble with its own `trusted_roots`), external account
binding (`eab` / `acme_eab`, right and wrong MAC keys), and the ACME account: stored in
Caddy's layout `acme/<issuer>/users/<email>/<local part>.{json,key}` and reused after a
restart (pebble keeps one account)."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest

from tests.e2e.processes import Process
from tests.tls.pebble import Pebble, free_port
from tests.tls.test_acme import Ports, obtained, rwsfile, serving, start

# the `ports` and `pebble` fixtures (`@pytest.mark.pebble(**options)` passes options to Pebble)
from tests.tls.test_acme import pebble, ports  # noqa: F401

pytestmark = pytest.mark.timeout(120)

EMAIL = "test@example.com"  # what rwsfile() sets with the global `email` option


def mac_key() -> str:
    """A random EAB MAC key, base64url without padding (how CAs hand them out)."""
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


KID, MAC_KEY, WRONG_MAC_KEY = "kid-1", mac_key(), mac_key()


def data(folder: Path) -> Path:
    """rws's storage: `$XDG_DATA_HOME/rws` (start() sets XDG_DATA_HOME to folder/data)."""
    return folder / "data" / "rws"


def issuer_key(url: str) -> str:
    """certmagic's issuer key of a directory URL: https://127.0.0.1:PORT/dir -> 127.0.0.1-PORT-dir."""
    host_path = url.split("://", 1)[1]
    return host_path.replace(":", "-").replace("/", "-").strip("-")


def records(process: Process, msg: str) -> list[dict[str, object]]:
    return [r for r in process.records if r.get("msg") == msg]


def test_the_next_issuer_gives_the_certificate_when_the_first_cannot_be_reached(
        tmp_path: Path, ports: Ports, pebble: Pebble) -> None:
    """`issuer acme` twice: the first's CA refuses connections, so the same attempt goes on
    to pebble (trusted through the second issuer's own `trusted_roots`): no retry pause."""
    unreachable = f"https://127.0.0.1:{free_port()}/dir"
    config = (f"{{\n\tadmin off\n\thttp_port {ports.http}\n\thttps_port {ports.https}\n"
              f"\tdefault_bind 127.0.0.1\n\temail {EMAIL}\n}}\n"
              "a.example.com {\n\ttls {\n"
              f"\t\tissuer acme {{\n\t\t\tdir {unreachable}\n\t\t}}\n"
              f"\t\tissuer acme {{\n\t\t\tdir {pebble.directory}\n\t\t\ttrusted_roots {pebble.ca_file}\n\t\t}}\n"
              '\t}\n\trespond "hello a"\n}\n')
    began = time.monotonic()
    process = start(tmp_path, config)
    try:
        obtained(process, "a.example.com", timeout=30)
        took = time.monotonic() - began
        body, cert = serving(ports.https, "a.example.com", pebble.root_file())
        assert body == "hello a"
        attempts = records(process, "obtaining certificate")
        assert [r["attempt"] for r in attempts] == [1]  # the first attempt, not a retry after a pause
        assert not records(process, "could not get a certificate")  # the name did get one
        assert took < 10  # RETRY_PAUSES[0] is 10 s
        done = records(process, "certificate obtained")
        assert [r["issuer"] for r in done] == [pebble.directory]
        # the first issuer was tried: it made (only) an account key for its CA before the connection failed
        tried = data(tmp_path) / "acme" / issuer_key(unreachable)
        assert tried.is_dir()
        assert not (data(tmp_path) / "certificates" / issuer_key(unreachable)).exists()
        stored = data(tmp_path) / "certificates" / issuer_key(pebble.directory) / "a.example.com"
        assert sorted(p.name for p in stored.iterdir()) == ["a.example.com.crt", "a.example.com.json",
                                                           "a.example.com.key"]
        assert stored.joinpath("a.example.com.key").stat().st_mode & 0o777 == 0o600
        assert pebble.orders() == 1
    finally:
        process.stop()


EAB_SITES = ('a.example.com {\n\trespond "hello a"\n}\n'
             'b.example.com {\n\ttls {\n\t\tissuer acme {\n\t\t\temail other@example.com\n'
             f'\t\t\teab {KID} {WRONG_MAC_KEY}\n\t\t}}\n\t}}\n\trespond "hello b"\n}}\n'
             'localhost {\n\trespond "local"\n}\n')


@pytest.mark.pebble(eab={KID: MAC_KEY})
def test_external_account_binding_with_the_right_and_a_wrong_mac_key(
        tmp_path: Path, ports: Ports, pebble: Pebble) -> None:
    """pebble requires EAB. a.example.com's issuer has the global `acme_eab` (right key);
    b.example.com's has its own `eab` with a wrong MAC key (and its own email, so its own
    account: pebble returns an existing account without checking the binding)."""
    extra = f"\tacme_eab {{\n\t\tkey_id {KID}\n\t\tmac_key {MAC_KEY}\n\t}}\n"
    process = start(tmp_path, rwsfile(ports, pebble.directory, pebble.ca_file, EAB_SITES, extra))
    try:
        obtained(process, "a.example.com", timeout=30)
        failure = process.wait_for("could not get a certificate", timeout=30)
        assert failure["identifier"] == "b.example.com"
        error = str(failure["error"])
        assert pebble.directory in error and "account" in error
        assert "unauthorized" in error or "external account binding" in error.lower(), error
        assert failure["retrying_in"] == 10
        root = pebble.root_file()
        assert serving(ports.https, "a.example.com", root)[0] == "hello a"
        local_root = data(tmp_path) / "pki" / "authorities" / "local" / "root.crt"
        assert serving(ports.https, "localhost", local_root)[0] == "local"  # the process serves on
        assert process.proc.poll() is None
        assert pebble.accounts() == 1  # a.example.com's; none for the wrong binding
        assert not (data(tmp_path) / "certificates" / issuer_key(pebble.directory) / "b.example.com").exists()
    finally:
        process.stop()


@pytest.mark.pebble(eab={KID: MAC_KEY})
def test_a_site_eab_gives_a_certificate(tmp_path: Path, ports: Ports, pebble: Pebble) -> None:
    sites = ('a.example.com {\n\ttls {\n\t\tissuer acme {\n'
             f'\t\t\teab {KID} {MAC_KEY}\n\t\t}}\n\t}}\n\trespond "hello a"\n}}\n')
    process = start(tmp_path, rwsfile(ports, pebble.directory, pebble.ca_file, sites))
    try:
        obtained(process, "a.example.com", timeout=30)
        assert serving(ports.https, "a.example.com", pebble.root_file())[0] == "hello a"
        assert pebble.accounts() == 1
    finally:
        process.stop()


def test_the_account_is_stored_in_caddys_layout_and_reused_after_a_restart(
        tmp_path: Path, ports: Ports, pebble: Pebble) -> None:
    users = data(tmp_path) / "acme" / issuer_key(pebble.directory) / "users"
    account = users / EMAIL
    process = start(tmp_path, rwsfile(ports, pebble.directory, pebble.ca_file, 'a.example.com {\n\trespond "a"\n}\n'))
    try:
        obtained(process, "a.example.com", timeout=30)
    finally:
        process.stop()
    assert sorted(p.name for p in users.iterdir()) == [EMAIL]
    assert sorted(p.name for p in account.iterdir()) == ["test.json", "test.key"]
    key = account / "test.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY-----" in key.read_bytes()
    registration = json.loads((account / "test.json").read_text())
    print(registration)
    key_bytes, registration_bytes = key.read_bytes(), (account / "test.json").read_bytes()
    assert pebble.accounts() == 1

    sites = 'a.example.com {\n\trespond "a"\n}\nb.example.com {\n\trespond "b"\n}\n'
    again = start(tmp_path, rwsfile(ports, pebble.directory, pebble.ca_file, sites))
    try:
        obtained(again, "b.example.com", timeout=30)
        assert not [r for r in again.records if r.get("msg") == "certificate obtained"
                    and r.get("identifier") == "a.example.com"]  # a's came from storage
        root = pebble.root_file()
        assert serving(ports.https, "a.example.com", root)[0] == "a"
        assert serving(ports.https, "b.example.com", root)[0] == "b"
    finally:
        again.stop()
    print(pebble.output)
    assert pebble.accounts() == 1  # the same account placed the second order
    assert pebble.orders() == 2
    assert key.read_bytes() == key_bytes
    assert (account / "test.json").read_bytes() == registration_bytes
    assert sorted(p.name for p in users.iterdir()) == [EMAIL]
    print(pebble.output)
