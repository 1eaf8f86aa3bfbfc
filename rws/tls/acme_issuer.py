"""The ACME issuer (`tls.issuance.acme`): certificates from an ACME CA (RFC 8555), Let's
Encrypt unless `ca` names another directory. The protocol itself is in rws.tls.acme_client,
imported when a certificate is obtained (the acme library and its dependencies weigh
some megabytes that a process which never obtains one doesn't carry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from rws.tls.challenges import HTTP_01, TLS_ALPN_01, Challenges
from rws.tls.storage import FileStorage, safe_key

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
DEFAULT_TIMEOUT = 90.0  # seconds an order may take, validation included


@dataclass(frozen=True)
class AcmeIssuer:
    ca: str = LETS_ENCRYPT
    email: str = ""
    trusted_roots: tuple[str, ...] = ()  # PEM files the CA's HTTPS certificate chains to
    external_account: tuple[str, str] | None = None  # EAB key id, base64url MAC key
    challenge_types: tuple[str, ...] = (HTTP_01, TLS_ALPN_01)
    timeout: float = DEFAULT_TIMEOUT
    key_type: str = ""

    @classmethod
    def from_config(cls, config: Any, key_type: str = "") -> AcmeIssuer:
        """From a decoded `tls.issuance.acme` module."""
        challenges = config.challenges
        types = tuple(kind for kind, settings in (
            (HTTP_01, challenges.http if challenges is not None else None),
            (TLS_ALPN_01, challenges.tls_alpn if challenges is not None else None))
            if settings is None or not settings.disabled)
        eab = config.external_account
        return cls(ca=config.ca or LETS_ENCRYPT, email=config.email,
                   trusted_roots=tuple(config.trusted_roots_pem_files),
                   external_account=(eab.key_id, eab.mac_key) if eab is not None and eab.key_id else None,
                   challenge_types=types, timeout=float(config.acme_timeout or DEFAULT_TIMEOUT), key_type=key_type)

    @property
    def key(self) -> str:
        """The issuer's folder in storage: `acme-v02.api.letsencrypt.org-directory`."""
        url = urlsplit(self.ca)
        path = url.path.strip("/").replace("/", "-")
        return safe_key(f"{url.netloc}-{path}" if path else url.netloc)

    def obtain(self, name: str, storage: FileStorage, challenges: Challenges) -> tuple[bytes, bytes]:
        """A certificate for `name`: (the full chain, its private key), both PEM."""
        from rws.tls.acme_client import obtain

        return obtain(self, name, storage, challenges)
