"""The ACME protocol for rws.tls.acme_issuer (acme + josepy).

The account lives in storage under `acme/<issuer>/users/<email>/` (Caddy's layout,
`<issuer>` being the directory URL made a path segment) and is reused (`_Account`). An order is answered with HTTP-01,
then, when that is disabled or its validation failed, with a new order and TLS-ALPN-01
(see rws.tls.challenges). The calls block: they run in a thread of the process that
manages certificates, never in a worker.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import logging
import tempfile
from collections.abc import Iterator
from typing import Any

import requests
from acme import challenges as acme_challenges
from acme import client as acme_client
from acme import crypto_util
from acme import errors as acme_errors
from acme import messages
from josepy.b64 import b64encode
from josepy.jwa import ES256
from josepy.jwk import JWK, JWKEC
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from rws.errors import RwsError
from rws.tls.acme_issuer import AcmeIssuer
from rws.tls.challenges import Challenges
from rws.tls.storage import FileStorage, safe_key

log = logging.getLogger(__name__)

NETWORK_TIMEOUT = 30
NONCE_RETRIES = 10


class _Network(acme_client.ClientNetwork):
    """A request the CA refused for its nonce is sent again with a fresh one (badNonce is
    retryable, RFC 8555 §6.5), up to `NONCE_RETRIES` times."""

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        for _ in range(NONCE_RETRIES):
            try:
                return super().post(*args, **kwargs)
            except messages.Error as exc:
                if exc.code != "badNonce":
                    raise
        return super().post(*args, **kwargs)


class AcmeError(RwsError):
    """Obtaining a certificate failed; the message says which step and what the CA said."""


class _Ready(acme_challenges.KeyAuthorizationChallengeResponse):
    """The empty object that asks the CA to validate a challenge (RFC 8555 §7.5.1). (It
    carries the key authorization, which isn't sent, because the client sends a response
    with no fields as an empty POST-as-GET.)"""

    typ = "ready"


def obtain(issuer: AcmeIssuer, name: str, storage: FileStorage, challenges: Challenges) -> tuple[bytes, bytes]:
    """A certificate for `name` from `issuer`: (the full chain, its private key), both PEM."""
    if not issuer.challenge_types:
        raise AcmeError("every challenge type is disabled")
    key_pem = _private_key(issuer.key_type)
    ip = _ip(name)
    csr = crypto_util.make_csr(key_pem, [] if ip else [name], ipaddrs=[ip] if ip else None)
    with _verify(issuer) as verify:
        account = _Account(issuer, storage, verify)
        failures: list[str] = []
        for kind in issuer.challenge_types:
            try:
                try:
                    chain = _order(issuer, account.client, account.key, csr, kind, challenges)
                except messages.Error as exc:
                    if exc.code != "accountDoesNotExist" or account.registered:
                        raise
                    account.register()  # the CA forgot the stored account (a test CA restarted)
                    chain = _order(issuer, account.client, account.key, csr, kind, challenges)
            except acme_errors.ValidationError as exc:
                failures.append(f"{kind}: {_validation_detail(exc)}")
                continue
            except acme_errors.TimeoutError:
                failures.append(f"{kind}: the CA did not finish within {issuer.timeout:g}s")
                continue
            except (messages.Error, acme_errors.Error, requests.RequestException) as exc:
                raise AcmeError(f"{issuer.ca}: {_describe(exc)}") from None
            return chain, key_pem
    raise AcmeError(f"{issuer.ca}: validation failed ({'; '.join(failures)})")


def _order(issuer: AcmeIssuer, client: acme_client.ClientV2, account_key: JWK, csr: bytes, kind: str,
           challenges: Challenges) -> bytes:
    order = client.new_order(csr)
    published: list[str] = []
    try:
        for authz in order.authorizations:
            if authz.body.status == messages.STATUS_VALID:
                continue
            challenge = next((c for c in authz.body.challenges if c.to_partial_json().get("type") == kind), None)
            if challenge is None:
                raise AcmeError(f"the CA offers no {kind} challenge for {authz.body.identifier.value}")
            token = str(challenge.chall.to_partial_json()["token"])
            key_authorization = f"{token}.{b64encode(account_key.thumbprint()).decode()}"
            identifier = authz.body.identifier.value
            challenges.publish(identifier, kind, token, key_authorization)
            published.append(identifier)
            # (not `answer_challenge`: it insists on a Link header that not every CA sends)
            client.net.post(challenge.uri, _Ready(key_authorization=key_authorization), new_nonce_url=client.directory["newNonce"])
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=issuer.timeout)
        done = client.poll_and_finalize(order, deadline)
    finally:
        for identifier in published:
            challenges.withdraw(identifier)
    return str(done.fullchain_pem).encode()


class _Account:
    """The ACME account of an issuer's CA and email, in Caddy's layout:
    `acme/<issuer>/users/<email>/<local part>.key` and `.json` (`status`, `contact`,
    `termsOfServiceAgreed`, `location`). A stored account is used as it is; one is
    registered (and only then stored) when there is none, or when the CA says it has
    forgotten it. Registering a key the CA knows returns its account."""

    def __init__(self, issuer: AcmeIssuer, storage: FileStorage, verify: bool | str) -> None:
        self.issuer, self.storage = issuer, storage
        user = safe_key(issuer.email or "default")
        self.lock = f"account_{issuer.key}_{user}"
        self.base = f"acme/{issuer.key}/users/{user}/{safe_key(issuer.email.split('@')[0] or 'default')}"
        self.registered = False
        with storage.lock(self.lock):
            key_pem = storage.load(self.base + ".key")
            location = _location(storage.load(self.base + ".json")) if key_pem is not None else ""
            self.key_pem = key_pem or _private_key("p256")
            self.key = JWKEC(key=serialization.load_pem_private_key(self.key_pem, password=None))
            # `verify_ssl` goes to requests' `verify`, which takes a CA file as well as a bool
            self.net = _Network(self.key, alg=ES256, verify_ssl=verify,  # type: ignore[arg-type]
                                user_agent="rws", timeout=NETWORK_TIMEOUT)
            try:
                self.client = acme_client.ClientV2(acme_client.ClientV2.get_directory(issuer.ca, self.net), self.net)
            except (messages.Error, acme_errors.Error, requests.RequestException) as exc:
                raise AcmeError(f"{issuer.ca}: directory: {_describe(exc)}") from None
            if location:
                self.net.account = messages.RegistrationResource(uri=location, body=messages.Registration())
            else:
                self._register()

    def register(self) -> None:
        with self.storage.lock(self.lock):
            self._register()

    def _register(self) -> None:
        issuer = self.issuer
        self.net.account = None  # a new account's request is signed with the key itself, not an account URL
        try:
            binding = None
            if issuer.external_account is not None:
                try:
                    binding = messages.ExternalAccountBinding.from_data(
                        account_public_key=self.key.public_key(), kid=issuer.external_account[0],
                        hmac_key=issuer.external_account[1], directory=self.client.directory)
                except ValueError as exc:  # the MAC key isn't base64url
                    raise AcmeError(f"{issuer.ca}: account: the external account binding's MAC key: {exc}") from None
            registration = messages.NewRegistration.from_data(
                email=issuer.email or None, terms_of_service_agreed=True, external_account_binding=binding)
            try:
                account = self.client.new_account(registration)
                location, status = account.uri, str(account.body.status or "valid")
            except acme_errors.ConflictError as known:  # the CA knows this key: its account
                location, status = known.location, "valid"
                self.net.account = messages.RegistrationResource(uri=location, body=messages.Registration())
        except (messages.Error, acme_errors.Error, requests.RequestException) as exc:
            raise AcmeError(f"{issuer.ca}: account: {_describe(exc)}") from None
        self.registered = True
        self.storage.store(self.base + ".key", self.key_pem, private=True)
        self.storage.store(self.base + ".json", json.dumps({
            "status": status, "contact": [f"mailto:{issuer.email}"] if issuer.email else [],
            "termsOfServiceAgreed": True, "location": location}).encode())


def _location(data: bytes | None) -> str:
    try:
        account = json.loads(data) if data else None
    except ValueError:
        return ""
    location = account.get("location") if isinstance(account, dict) else None
    return location if isinstance(location, str) else ""


@contextlib.contextmanager
def _verify(issuer: AcmeIssuer) -> Iterator[bool | str]:
    """How the client checks the CA's HTTPS certificate: the system's roots, or the
    `trusted_roots_pem_files` (one bundle file made of them)."""
    if not issuer.trusted_roots:
        yield True
        return
    if len(issuer.trusted_roots) == 1:
        yield issuer.trusted_roots[0]
        return
    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as bundle:
        for path in issuer.trusted_roots:
            try:
                with open(path, "rb") as fh:
                    bundle.write(fh.read() + b"\n")
            except OSError as exc:
                raise AcmeError(f"reading {path}: {exc.strerror or exc}") from None
        bundle.flush()
        yield bundle.name


def _private_key(key_type: str) -> bytes:
    """A new private key of Caddy's `key_type` (ECDSA P-256 by default), PEM."""
    key: Any
    if key_type == "p384":
        key = ec.generate_private_key(ec.SECP384R1())
    elif key_type in ("rsa2048", "rsa4096"):
        key = rsa.generate_private_key(65537, int(key_type[3:]))
    elif key_type == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    return bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _validation_detail(exc: acme_errors.ValidationError) -> str:
    details = []
    for authz in exc.failed_authzrs:
        for challenge in authz.body.challenges:
            if challenge.error is not None:
                details.append(f"{authz.body.identifier.value}: {_describe(challenge.error)}")
    return "; ".join(details) or "the CA refused the authorization"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, messages.Error):
        return f"{exc.typ.rsplit(':', 1)[-1] if exc.typ else 'error'}: {exc.detail or exc.title or ''}".strip()
    if isinstance(exc, requests.RequestException):
        return f"cannot reach the CA: {type(exc).__name__}: {exc}"
    return str(exc) or type(exc).__name__
