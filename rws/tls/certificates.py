"""Certificates a config loads itself (`tls.certificates.load_files`, `load_pem`): read,
checked (the chain parses, the key is the leaf's) and described (the names it covers,
its tags, when it expires), ready for the handshake to choose among.

A pair that can't be used fails the config with a one-line error naming the JSON path
and the file, as Caddy fails to provision it.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from rws.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, eq=False)
class Certificate:
    chain_pem: bytes  # the leaf first, then its intermediates
    key_pem: bytes
    names: tuple[str, ...]  # lower-case DNS names and IP addresses it covers
    tags: frozenset[str]
    not_before: datetime.datetime
    not_after: datetime.datetime
    serial: int
    organizations: tuple[str, ...]
    key_algorithm: str  # "rsa", "ecdsa" or "ed25519"
    source: str  # where it came from, for logs

    def expired(self, now: datetime.datetime | None = None) -> bool:
        return (now or datetime.datetime.now(datetime.timezone.utc)) >= self.not_after


def load_pair(chain_pem: bytes, key_pem: bytes, tags: tuple[str, ...], where: str, source: str) -> Certificate:
    """One certificate chain and its key; ConfigError at `where` when they can't be used."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise ConfigError(where, f"{source}: no PEM certificate: {exc}") from None
    leaf = chain[0]
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(where, f"{source}: no usable PEM private key: {exc}") from None
    if _public(key.public_key()) != _public(leaf.public_key()):
        raise ConfigError(where, f"{source}: the private key does not match the certificate")
    organizations = tuple(str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return Certificate(
        chain_pem=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain),
        key_pem=key_pem, names=certificate_names(leaf), tags=frozenset(tags),
        not_before=leaf.not_valid_before_utc, not_after=leaf.not_valid_after_utc,
        serial=leaf.serial_number, organizations=organizations, key_algorithm=_algorithm(key), source=source)


def certificate_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The DNS names and IP addresses of the subjectAltName; the common name when it has none."""
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        names += [name.lower() for name in san.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    if not names:
        names += [str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return tuple(dict.fromkeys(names))


def load_certificates(certificates: dict[str, Any] | None, storage: Any = None) -> list[Certificate]:
    """The certificates of the tls app's `certificates` loaders: `load_files`, `load_pem`,
    `load_folders` (every `.pem` file under the folders that holds a certificate and its
    key, as Caddy's) and `load_storage` (pairs of keys in `storage`). An expired one is
    loaded (chosen only when no other covers a name) and logged."""
    loaded = _load(certificates, storage)
    now = datetime.datetime.now(datetime.timezone.utc)
    for cert in loaded:
        if cert.expired(now):
            log.warning("certificate has expired", extra={"source": cert.source, "names": list(cert.names),
                                                          "not_after": cert.not_after.isoformat()})
    return loaded


def _load(certificates: dict[str, Any] | None, storage: Any) -> list[Certificate]:
    loaded: list[Certificate] = []
    for name, loader in (certificates or {}).items():
        path = f"apps.tls.certificates.{name}"
        if name == "load_files":
            for i, pair in enumerate(loader.config):
                where = f"{path}[{i}]"
                loaded.append(load_pair(read_file(pair.certificate, f"{where}.certificate"),
                                        read_file(pair.key, f"{where}.key"), pair.tags, where, pair.certificate))
        elif name == "load_pem":
            for i, pair in enumerate(loader.config):
                where = f"{path}[{i}]"
                loaded.append(load_pair(pair.certificate.encode(), pair.key.encode(), pair.tags, where,
                                        f"load_pem[{i}]"))
        elif name == "load_folders":
            for i, folder in enumerate(loader.config):
                if not os.path.isdir(folder):
                    raise ConfigError(f"{path}[{i}]", f"{folder}: not a folder")
                for file in sorted(Path(folder).rglob("*.pem")):
                    bundle = read_file(str(file), f"{path}[{i}]")
                    if b"PRIVATE KEY-----" in bundle and b"CERTIFICATE-----" in bundle:
                        loaded.append(load_pair(bundle, bundle, (), f"{path}[{i}]", str(file)))
        elif name == "load_storage":
            for i, pair in enumerate(loader.config.pairs):
                where = f"{path}.pairs[{i}]"
                chain, key = storage.load(pair.certificate), storage.load(pair.key)
                if chain is None or key is None:
                    missing = pair.certificate if chain is None else pair.key
                    raise ConfigError(where, f"{missing}: not in storage")
                loaded.append(load_pair(chain, key, pair.tags, where, pair.certificate))
    return loaded


def read_file(path: str, where: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(where, f"reading {path}: {exc.strerror or exc}") from None


def _public(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def _algorithm(key: Any) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ecdsa"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    return type(key).__name__.lower()
