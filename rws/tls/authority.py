"""The local certificate authority (`apps.pki`, CA id `local` by default): a root made
once and kept for ten years, an intermediate renewed within the last fifth of its week,
and short-lived leaf certificates (12 hours) for the names the internal issuer serves.

Everything lives in storage in Caddy's layout, `pki/authorities/<id>/{root,intermediate}
.{crt,key}`, so that a restart, another process sharing the folder, or `rws trust` finds
the same root. Creation and renewal hold the storage lock of the CA.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rws.tls.storage import FileStorage

ROOT_LIFETIME = datetime.timedelta(days=3600)
INTERMEDIATE_LIFETIME = datetime.timedelta(days=7)
LEAF_LIFETIME = datetime.timedelta(hours=12)
INTERMEDIATE_RENEW_RATIO = 0.2  # renewed in the last fifth of its lifetime
DEFAULT_NAME = "rws Local Authority"


@dataclass(frozen=True, slots=True)
class KeyPair:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


class LocalAuthority:
    def __init__(self, storage: FileStorage, ca_id: str = "local", name: str = "", root_common_name: str = "",
                 intermediate_common_name: str = "", intermediate_lifetime: float = 0.0) -> None:
        self.storage = storage
        self.id = ca_id
        self.name = name or DEFAULT_NAME
        year = datetime.datetime.now(datetime.timezone.utc).year
        self.root_common_name = root_common_name or f"{self.name} - {year} ECC Root"
        self.intermediate_common_name = intermediate_common_name or f"{self.name} - ECC Intermediate"
        self.intermediate_lifetime = (datetime.timedelta(seconds=intermediate_lifetime) if intermediate_lifetime
                                      else INTERMEDIATE_LIFETIME)
        self.root: KeyPair | None = None
        self.intermediate: KeyPair | None = None

    def _key(self, name: str) -> str:
        return f"pki/authorities/{self.id}/{name}"

    def ensure(self) -> None:
        """Load the root and intermediate, creating or renewing them as needed."""
        now = datetime.datetime.now(datetime.timezone.utc)
        if self.intermediate is not None and not self._renew_due(self.intermediate.cert, now):
            return
        with self.storage.lock(f"pki_ca_{self.id}"):
            root = self._load("root")
            if root is None or root.cert.not_valid_after_utc <= now:
                root = self._make("root", self.root_common_name, ROOT_LIFETIME, None)
            intermediate = self._load("intermediate")
            if intermediate is None or self._renew_due(intermediate.cert, now) or not _signed_by(intermediate, root):
                intermediate = self._make("intermediate", self.intermediate_common_name, self.intermediate_lifetime,
                                          root)
        self.root, self.intermediate = root, intermediate

    def issue(self, names: list[str], lifetime: datetime.timedelta = LEAF_LIFETIME) -> tuple[bytes, bytes]:
        """A leaf certificate for `names`: (chain PEM, leaf then intermediate; key PEM)."""
        self.ensure()
        assert self.intermediate is not None
        now = datetime.datetime.now(datetime.timezone.utc)
        key = ec.generate_private_key(ec.SECP256R1())
        issuer = self.intermediate
        not_after = min(now + lifetime, issuer.cert.not_valid_after_utc)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([]))
                .issuer_name(issuer.cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=1))
                .not_valid_after(not_after)
                .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                             crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                               critical=False)
                .sign(issuer.key, hashes.SHA256()))
        leaf = KeyPair(cert, key)
        return leaf.cert_pem + issuer.cert_pem, leaf.key_pem

    def root_pem(self) -> bytes:
        self.ensure()
        assert self.root is not None
        return self.root.cert_pem

    def intermediate_pem(self) -> bytes:
        self.ensure()
        assert self.intermediate is not None
        return self.intermediate.cert_pem

    def _renew_due(self, cert: x509.Certificate, now: datetime.datetime) -> bool:
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        return now >= cert.not_valid_after_utc - lifetime * INTERMEDIATE_RENEW_RATIO

    def _load(self, name: str) -> KeyPair | None:
        cert_pem, key_pem = self.storage.load(self._key(f"{name}.crt")), self.storage.load(self._key(f"{name}.key"))
        if not cert_pem or not key_pem:
            return None
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            key = serialization.load_pem_private_key(key_pem, password=None)
        except ValueError:
            return None  # unreadable: made anew
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            return None
        return KeyPair(cert, key)

    def _make(self, name: str, common_name: str, lifetime: datetime.timedelta, parent: KeyPair | None) -> KeyPair:
        now = datetime.datetime.now(datetime.timezone.utc)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.name),
                             x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        signer = parent.key if parent is not None else key
        builder = (x509.CertificateBuilder()
                   .subject_name(subject)
                   .issuer_name(parent.cert.subject if parent is not None else subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=1))
                   .not_valid_after(now + lifetime)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None if parent is None else 0),
                                  critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                key_encipherment=False, data_encipherment=False, key_agreement=False,
                                                key_cert_sign=True, crl_sign=True, encipher_only=False,
                                                decipher_only=False), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        pair = KeyPair(builder.sign(signer, hashes.SHA256()), key)
        self.storage.store(self._key(f"{name}.key"), pair.key_pem, private=True)
        self.storage.store(self._key(f"{name}.crt"), pair.cert_pem)
        return pair


def authority_for(storage: FileStorage, pki_app: Any, ca_id: str = "local") -> LocalAuthority | None:
    """The CA `ca_id` with the settings `apps.pki` gives it; `local` always exists, other
    ids only when configured."""
    configs = (pki_app.certificate_authorities or {}) if pki_app is not None else {}
    config = configs.get(ca_id)
    if config is None:
        return LocalAuthority(storage) if ca_id == "local" else None
    return LocalAuthority(storage, ca_id, name=config.name, root_common_name=config.root_common_name,
                          intermediate_common_name=config.intermediate_common_name,
                          intermediate_lifetime=config.intermediate_lifetime)


def common_name(pem: bytes) -> str:
    names = x509.load_pem_x509_certificate(pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def _signed_by(child: KeyPair, parent: KeyPair) -> bool:
    try:
        child.cert.verify_directly_issued_by(parent.cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)
