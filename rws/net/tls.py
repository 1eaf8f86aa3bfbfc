"""TLS on a server's connections: which certificate and settings a handshake gets
(`ServerTls`, from the server's `tls_connection_policies` and the certificates the config
holds), and the protocol that runs the handshake before HTTP (`TlsAccept`).

At the ClientHello the first policy whose `sni` matcher takes the server name (or that has
no matchers) decides; among the certificates it may use (`certificate_selection`), the one
for the exact name wins, then one for its wildcard (`*.example.com`); with no server name
the policy's `default_sni` stands in, else the local address the client connected to (as
certmagic does, for IP sites), and `fallback_sni` when nothing matched. A name no
certificate covers ends the handshake (the connection closes: the alert OpenSSL makes is
dropped by the event loop's TLS layer). Each policy's settings
(versions, TLS 1.2 cipher suites, ALPN) make one `ssl.SSLContext` per certificate, built
on first use. Versions and cipher suites are settled by OpenSSL before the server name is
seen, so the first policy's apply to every handshake of the server; so does its client
authentication (`verify_if_given`, `require_and_verify`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import tempfile
from collections.abc import Callable
from typing import Any

from rws.errors import ConfigError
from rws.tls.certificates import Certificate
from rws.tls.challenges import Challenges
from rws.tls.names import match_wildcard

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0
MAX_LOCAL_ADDRESSES = 64  # handshake contexts kept, one per local address connections came to
_VERSIONS = {"tls1.2": ssl.TLSVersion.TLSv1_2, "tls1.3": ssl.TLSVersion.TLSv1_3}
# Go's names of the TLS 1.2 suites -> OpenSSL's (TLS 1.3 suites are not configurable in Go either)
_OPENSSL_CIPHERS = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}
_GO_CIPHERS = {openssl: go for go, openssl in _OPENSSL_CIPHERS.items()}
_ALPN = ("http/1.1",)  # HTTP/2 is not served yet: offering h2 would break clients that pick it


class _Policy:
    """One connection policy, its certificates indexed by name, its contexts."""

    def __init__(self, config: Any, certificates: list[Certificate], path: str) -> None:
        matchers = dict(config.match or {})
        sni = matchers.pop("sni", None)
        for name in matchers:
            raise ConfigError(f"{path}.match.{name}", f"handshake matcher {name!r} is not supported yet")
        if config.client_authentication is not None:
            client_verification(config.client_authentication, f"{path}.client_authentication")  # checked here
        if config.drop:
            raise ConfigError(f"{path}.drop", "dropping connections by policy is not supported yet")
        self.sni: tuple[str, ...] | None = tuple(n.lower() for n in sni.config) if sni is not None else None
        self.default_sni = config.default_sni.lower()
        self.fallback_sni = config.fallback_sni.lower()
        self.config = config
        self.by_name: dict[str, list[Certificate]] = {}
        for cert in certificates:
            if _selected(config.certificate_selection, cert):
                for name in cert.names:
                    self.by_name.setdefault(name, []).append(cert)
        self.contexts: dict[Certificate, ssl.SSLContext] = {}

    def matches(self, server_name: str) -> bool:
        return self.sni is None or any(match_wildcard(server_name, pattern) for pattern in self.sni)

    def certificate(self, server_name: str, local_ip: str = "") -> Certificate | None:
        """With no server name: `default_sni`, else the address the client connected to
        (as certmagic does, so an IP site's certificate serves clients that send no name)."""
        for name in (server_name or self.default_sni, "" if server_name else local_ip, self.fallback_sni):
            if not name:
                continue
            found = self.by_name.get(name) or self.by_name.get("*." + name.split(".", 1)[-1])
            if found:
                return min(found, key=lambda c: c.expired())  # an expired one only when nothing else
        return None

    def context(self, cert: Certificate) -> ssl.SSLContext:
        context = self.contexts.get(cert)
        if context is None:
            context = self.contexts[cert] = settings_context(self.config)
            load_certificate(context, cert)
        return context


def load_certificate(context: ssl.SSLContext, cert: Certificate) -> None:
    """`load_cert_chain` reads files only: the PEM goes through files that live in memory
    (Linux) or in a private temporary folder, gone when loaded."""
    if hasattr(os, "memfd_create"):
        fds = [os.memfd_create("rws-cert", os.MFD_CLOEXEC) for _ in range(2)]
        try:
            for fd, data in zip(fds, (cert.chain_pem, cert.key_pem), strict=True):
                os.write(fd, data)
            context.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory() as folder:
        chain, key = os.path.join(folder, "chain.pem"), os.path.join(folder, "key.pem")
        for path, data in ((chain, cert.chain_pem), (key, cert.key_pem)):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as fh:
                fh.write(data)
        context.load_cert_chain(chain, key)


def go_cipher_name(openssl_name: str) -> str:
    """A cipher suite as Go names it (TLS 1.3 suites have one name everywhere)."""
    return _GO_CIPHERS.get(openssl_name, openssl_name)


def client_verification(config: Any, path: str) -> tuple[ssl.VerifyMode, str]:
    """`client_authentication` as OpenSSL takes it: the verify mode and the trusted CAs
    (PEM). Caddy's modes `verify_if_given` and `require_and_verify` (the default when CAs
    are given); `request` and `require` ask for a certificate without verifying it, which
    Python's ssl can't do, so they fail the config, as does leaf pinning."""
    import base64

    from rws.tls.certificates import read_file

    if config.trusted_leaf_certs:
        raise ConfigError(f"{path}.trusted_leaf_certs", "trusting client certificates one by one is not supported yet")
    ders = [base64.b64decode(text) for text in config.trusted_ca_certs]
    pems = [read_file(name, f"{path}.trusted_ca_certs_pem_files[{i}]").decode("ascii", "replace")
            for i, name in enumerate(config.trusted_ca_certs_pem_files)]
    source = config.ca
    if source is not None:
        if source.id.endswith(".inline"):
            ders += [base64.b64decode(text) for text in source.config.trusted_ca_certs]
        elif source.id.endswith(".file"):
            pems += [read_file(name, f"{path}.ca.pem_files[{i}]").decode("ascii", "replace")
                     for i, name in enumerate(source.config.pem_files)]
        else:
            raise ConfigError(f"{path}.ca", f"CA pool source {source.id!r} is not supported yet")
    trusted = "".join(pems) + "".join(ssl.DER_cert_to_PEM_cert(der) for der in ders)
    mode = config.mode or ("require_and_verify" if trusted else "require")
    if mode in ("request", "require"):
        raise ConfigError(f"{path}.mode", f"client authentication mode {mode!r} (a certificate without verifying it) "
                                          "is not supported; use verify_if_given or require_and_verify with trusted CAs")
    if not trusted:
        raise ConfigError(path, f"mode {mode!r} needs trusted CA certificates")
    return (ssl.CERT_REQUIRED if mode == "require_and_verify" else ssl.CERT_OPTIONAL), trusted


def settings_context(config: Any) -> ssl.SSLContext:
    """A server context with a policy's versions, cipher suites, ALPN and client
    authentication (no certificate)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if config.client_authentication is not None:
        context.verify_mode, trusted = client_verification(config.client_authentication, "")
        try:
            context.load_verify_locations(cadata=trusted)
        except ssl.SSLError as exc:
            raise ConfigError("client_authentication", f"trusted CA certificates: {exc}") from None
    context.minimum_version = _VERSIONS[config.protocol_min or "tls1.2"]
    context.maximum_version = _VERSIONS[config.protocol_max or "tls1.3"]
    if config.cipher_suites:
        names = [_OPENSSL_CIPHERS[n] for n in config.cipher_suites if n in _OPENSSL_CIPHERS]
        if names:
            context.set_ciphers(":".join(names))
    alpn = [p for p in (config.alpn or _ALPN) if p in _ALPN]
    context.set_alpn_protocols(alpn or list(_ALPN))
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


def _selected(selection: Any, cert: Certificate) -> bool:
    """Caddy's CustomCertSelectionPolicy: every criterion that is set must hold."""
    if selection is None:
        return True
    if selection.serial_number and str(cert.serial) not in selection.serial_number:
        return False
    if selection.subject_organization and not set(selection.subject_organization) & set(cert.organizations):
        return False
    if selection.public_key_algorithm and selection.public_key_algorithm.lower() != cert.key_algorithm:
        return False
    if selection.any_tag and not set(selection.any_tag) & cert.tags:
        return False
    return not (selection.all_tags and not set(selection.all_tags) <= cert.tags)


class ServerTls:
    """The TLS side of one HTTP server (see the module docstring)."""

    def __init__(self, policies: tuple[Any, ...], certificates: list[Certificate], path: str,
                 challenges: Challenges | None = None) -> None:
        self.challenges = challenges
        self.policies = [_Policy(p, certificates, f"{path}.tls_connection_policies[{i}]")
                         for i, p in enumerate(policies)]
        self.first = policies[0]
        self.contexts: dict[str, ssl.SSLContext] = {}  # local address -> the context handshakes start with
        settings_context(self.first)  # its errors (trusted CAs that don't load) fail the config now

    def context(self, local_ip: str) -> ssl.SSLContext:
        """The context a connection to `local_ip` starts its handshake with (one per local
        address: what the server name callback falls back on when the client sends none)."""
        context = self.contexts.get(local_ip)
        if context is None:
            context = settings_context(self.first)
            context.sni_callback = lambda sslobj, name, _ctx: self._server_name(sslobj, name, local_ip)
            if len(self.contexts) < MAX_LOCAL_ADDRESSES:
                self.contexts[local_ip] = context
        return context

    def _server_name(self, sslobj: Any, server_name: str | None, local_ip: str) -> int | None:
        name = (server_name or "").lower()
        sslobj.rws_server_name = name  # for {http.request.tls.server_name}
        if self.challenges is not None:
            challenge = self.challenges.tls_alpn_context(name)
            if challenge is not None:
                log.info("answering ACME TLS-ALPN-01 challenge", extra={"identifier": name})
                sslobj.context = challenge
                return None
        for policy in self.policies:
            if policy.matches(name):
                cert = policy.certificate(name, local_ip)
                if cert is None:
                    break
                sslobj.context = policy.context(cert)
                return None
        log.debug("no certificate for the server name", extra={"server_name": name})
        return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME


class TlsAccept(asyncio.Protocol):
    """A new connection's first protocol: the TLS handshake, then HTTP over it. A failed
    or slow handshake (garbage, an unknown name, a silent client) closes the connection.

    uvloop starts reading once `connection_made` returns, whatever it asked: bytes that
    come before the handshake takes the transport over (the ClientHello) are kept here and
    handed to it then."""

    def __init__(self, tls: ServerTls, make: Callable[[], asyncio.Protocol], timeout: float) -> None:
        self.tls = tls
        self.make = make
        self.timeout = timeout
        self.task: asyncio.Task[None] | None = None
        self.early = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]  # asyncio honours it; uvloop does not
        local = transport.get_extra_info("sockname")
        context = self.tls.context(str(local[0]) if isinstance(local, tuple) else "")
        self.task = asyncio.get_running_loop().create_task(self._handshake(transport, context))

    def data_received(self, data: bytes) -> None:
        self.early += data
        if len(self.early) > MAX_EARLY_BYTES:  # no ClientHello is this big
            self.early.clear()
            if self.task is not None:
                self.task.cancel()

    async def _handshake(self, transport: Any, context: ssl.SSLContext) -> None:
        loop = asyncio.get_running_loop()
        protocol = self.make()
        handoff = _Handoff()
        starting = loop.create_task(loop.start_tls(transport, handoff, context, server_side=True,
                                                   ssl_handshake_timeout=self.timeout))
        try:
            await asyncio.sleep(0)  # `starting` takes the transport over
            if self.early and transport.get_protocol() is not self:
                _feed(transport.get_protocol(), bytes(self.early))
                self.early.clear()
            secure = await starting
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError, asyncio.CancelledError) as exc:
            starting.cancel()
            transport.abort()
            protocol.connection_lost(exc if isinstance(exc, Exception) else None)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        if secure is None or handoff.lost is not None:  # closed meanwhile
            protocol.connection_lost(handoff.lost[0] if handoff.lost else None)
            return
        protocol.connection_made(secure)
        secure.set_protocol(protocol)
        for data in handoff.data:  # what came right after the handshake, before the line above
            protocol.data_received(data)
        if handoff.eof:
            protocol.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()


MAX_EARLY_BYTES = 64 * 1024


class _Handoff(asyncio.Protocol):
    """What the TLS layer delivers to until the HTTP protocol has its transport: the
    handshake's end and the first request can come in one read."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.eof = False
        self.lost: tuple[Exception | None] | None = None

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def eof_received(self) -> None:
        self.eof = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = (exc,)


def _feed(protocol: Any, data: bytes) -> None:
    """Give bytes to a protocol as its transport would (buffered protocols too)."""
    if not hasattr(protocol, "get_buffer"):
        protocol.data_received(data)
        return
    view = memoryview(data)
    while view:
        buffer = protocol.get_buffer(len(view))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)
        view = view[size:]
