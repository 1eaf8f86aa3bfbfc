"""ACME challenges being answered. The process that obtains a certificate publishes each
challenge in storage (`acme/challenge_tokens/<name>.json`) before the CA validates it, so
that every process serving from that storage answers it: the workers, and other rws
instances sharing the folder (Caddy's distributed solving).

HTTP-01: `GET /.well-known/acme-challenge/<token>` with the name as host is answered with
the key authorization by every HTTP server, before its routes.

TLS-ALPN-01 (RFC 8737): while a challenge for a name is published, a handshake for that
name gets a certificate made for it (the name, and the key authorization's digest in the
critical acmeIdentifier extension) and ALPN `acme-tls/1` only. Python's ssl picks the
certificate before it sees the client's ALPN list, so ordinary clients of that name would
get it too during the seconds of validation: the issuer tries HTTP-01 first and TLS-ALPN-01
when HTTP-01 is disabled or failed.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import ssl
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from rws.tls.storage import FileStorage, safe_key

HTTP_PREFIX = "/.well-known/acme-challenge/"
HTTP_01, TLS_ALPN_01 = "http-01", "tls-alpn-01"
ACME_TLS_ALPN = "acme-tls/1"
_ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")


class Challenges:
    def __init__(self, storage: FileStorage) -> None:
        self.storage = storage
        self._contexts: dict[str, tuple[float, ssl.SSLContext]] = {}  # name -> (published at, context)

    @staticmethod
    def _key(name: str) -> str:
        return f"acme/challenge_tokens/{safe_key(name)}.json"

    def publish(self, name: str, kind: str, token: str, key_authorization: str) -> None:
        entry = {"type": kind, "token": token, "key_authorization": key_authorization}
        self.storage.store(self._key(name), json.dumps(entry).encode())

    def withdraw(self, name: str) -> None:
        self.storage.delete(self._key(name))

    def _load(self, name: str) -> dict[str, Any] | None:
        try:
            data = self.storage.load(self._key(name))
            entry = json.loads(data) if data else None
        except (ValueError, OSError):
            return None
        return entry if isinstance(entry, dict) else None

    def http_answer(self, host: str, path: str) -> bytes | None:
        """The key authorization for `GET <path>` to `host`, when it is a published HTTP-01 token."""
        if not host:
            return None
        entry = self._load(host.lower())
        if not entry or entry.get("type") != HTTP_01:
            return None
        if not hmac.compare_digest(str(entry.get("token", "")).encode(), path[len(HTTP_PREFIX):].encode()):
            return None
        return str(entry.get("key_authorization", "")).encode()

    def tls_alpn_context(self, name: str) -> ssl.SSLContext | None:
        """The context that answers a published TLS-ALPN-01 challenge for `name` (a stat of
        one file when there is none)."""
        published = self.storage.modified(self._key(name)) if name else None
        if published is None:
            self._contexts.pop(name, None)
            return None
        cached = self._contexts.get(name)
        if cached is not None and cached[0] == published:
            return cached[1]
        entry = self._load(name)
        if not entry or entry.get("type") != TLS_ALPN_01:
            return None
        context = challenge_context(name, str(entry.get("key_authorization", "")))
        self._contexts[name] = (published, context)
        return context


def challenge_context(name: str, key_authorization: str) -> ssl.SSLContext:
    """A server context with the TLS-ALPN-01 certificate for `name` and ALPN acme-tls/1 only."""
    from rws.net.tls import load_certificate
    from rws.tls.certificates import load_pair

    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(key_authorization.encode()).digest()
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ACME challenge")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.UnrecognizedExtension(_ACME_IDENTIFIER, b"\x04\x20" + digest), critical=True)
            .sign(key, hashes.SHA256()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols([ACME_TLS_ALPN])
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    load_certificate(context, load_pair(cert.public_bytes(serialization.Encoding.PEM), key_pem, (), name, "challenge"))
    return context
