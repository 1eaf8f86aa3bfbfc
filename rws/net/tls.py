"""TLS on a server's connections: which certificate and settings a handshake gets
(`ServerTls`, from the server's `tls_connection_policies` and the certificates the config
holds), and the protocol that runs the handshake before HTTP (`TlsAccept`).

The ClientHello is read before OpenSSL sees it (its server_name and ALPN extensions), so the
context is chosen from its server name and ALPN list, as Go's GetConfigForClient does: the
first policy whose `sni` matcher takes the server name (or that has no matchers) decides;
among the certificates it may use (`certificate_selection`), the one for the exact name
wins, then one for its wildcard (`*.example.com`); with no server name the policy's
`default_sni` stands in, else the local address the client connected to (as certmagic
does, for IP sites), and `fallback_sni` when nothing matched. A name no certificate
covers gets the `unrecognized_name` alert. Each policy's settings (versions, TLS 1.2
cipher suites, ALPN, client authentication) make one `ssl.SSLContext` per certificate,
built on first use. A client offering only ALPN `acme-tls/1` for a name with a published
TLS-ALPN-01 challenge gets the challenge's context (rws.tls.challenges).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rws.errors import ConfigError
from rws.tls.certificates import Certificate
from rws.tls.challenges import ACME_TLS_ALPN, Challenges

if TYPE_CHECKING:
    from rws.tls.on_demand import OnDemand
from rws.tls.names import match_wildcard

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 2.0  # seconds a closing connection waits for the client's close_notify (not 30)
MAX_CONTEXTS = 10_000  # contexts a policy keeps, one per certificate
TICKET_ROTATION = 12 * 3600.0  # seconds, Caddy's default STEK rotation interval
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
SERVED_ALPN = ("h2", "http/1.1")  # what TCP listeners speak (h3 is QUIC's)


@dataclass(frozen=True)
class TlsMaterial:
    """What a config gives the TLS of all its servers: the certificates it holds, the ACME
    challenges to answer, on-demand TLS, and the tls app's `session_tickets`."""

    certificates: list[Certificate] = field(default_factory=list)
    challenges: Challenges | None = None
    on_demand: OnDemand | None = None
    session_tickets: Any = None


class _Policy:
    """One connection policy, its certificates indexed by name, its contexts. Each context
    has its own session ticket key (OpenSSL's, made with it); so that the key rotates
    (`session_tickets.rotation_interval`, 12 h by default), a context is made anew when it
    is that old. Python's ssl can't keep earlier keys for decryption, as Caddy does, so a
    ticket from before a rotation means a full handshake."""

    def __init__(self, config: Any, certificates: list[Certificate], path: str, tickets: Any = None,
                 alpn: tuple[str, ...] = ("http/1.1",)) -> None:
        self.alpn = alpn
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
        self.contexts: dict[Certificate, tuple[ssl.SSLContext, float]] = {}  # -> (context, made at)
        self.tickets = not (tickets is not None and tickets.disabled)
        self.rotation = (None if tickets is not None and tickets.disable_rotation
                         else (tickets.rotation_interval if tickets is not None and tickets.rotation_interval
                               else TICKET_ROTATION))

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
        made = self.contexts.get(cert)
        now = time.monotonic()
        if made is not None and (self.rotation is None or now - made[1] < self.rotation):
            return made[0]
        context = settings_context(self.config, self.alpn)
        if not self.tickets:  # (TLS 1.2 clients may still resume by session id)
            context.options |= ssl.OP_NO_TICKET
            context.num_tickets = 0
        load_certificate(context, cert)
        if len(self.contexts) >= MAX_CONTEXTS:  # on-demand names are many: start afresh
            self.contexts.clear()
        self.contexts[cert] = (context, now)
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


def settings_context(config: Any, alpn: tuple[str, ...] = ("http/1.1",)) -> ssl.SSLContext:
    """A server context with a policy's versions, cipher suites, ALPN (the policy's, else
    `alpn`: what the server speaks) and client authentication (no certificate)."""
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
    offered = [p for p in (config.alpn or alpn) if p in SERVED_ALPN]
    context.set_alpn_protocols(offered or ["http/1.1"])
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

    def __init__(self, policies: tuple[Any, ...], material: TlsMaterial, path: str,
                 alpn: tuple[str, ...] = ("http/1.1",)) -> None:
        """`alpn`: what the server speaks, for policies that name no ALPN."""
        self.challenges = material.challenges
        self.on_demand = material.on_demand
        self.policies = [_Policy(p, material.certificates, f"{path}.tls_connection_policies[{i}]",
                                 material.session_tickets, alpn) for i, p in enumerate(policies)]
        settings_context(policies[0])  # its errors (trusted CAs that don't load) fail the config now

    def select(self, server_name: str, alpn: list[str], local_ip: str) -> ssl.SSLContext | None:
        """The context for a ClientHello: the first policy that takes the name decides.
        None when no certificate covers it."""
        if ACME_TLS_ALPN in alpn and self.challenges is not None:
            challenge = self.challenges.tls_alpn_context(server_name)
            if challenge is not None:
                log.info("answering ACME TLS-ALPN-01 challenge", extra={"identifier": server_name})
                return challenge
        policy = self._policy(server_name)
        cert = policy.certificate(server_name, local_ip) if policy is not None else None
        return policy.context(cert) if policy is not None and cert is not None else None

    def quic_certificate(self, server_name: str, local_ip: str) -> Certificate | None:
        """The certificate for a QUIC handshake (TLS run by aioquic, not OpenSSL), chosen as
        `select` chooses, or one on-demand TLS already obtained for the name (rws.net.quic).
        None when nothing covers the name, or when the policy that takes it authenticates
        clients: that isn't offered over QUIC, so HTTP/3 never bypasses it."""
        policy = self._policy(server_name)
        if policy is None or policy.config.client_authentication is not None:
            return None
        cert = policy.certificate(server_name, local_ip)
        if cert is None and self.on_demand is not None:
            cert = self.on_demand.certificates.get(server_name)
        return cert

    def context_for(self, server_name: str, cert: Certificate) -> ssl.SSLContext | None:
        """The context of the policy that takes `server_name`, with `cert` (on-demand)."""
        policy = self._policy(server_name)
        return policy.context(cert) if policy is not None else None

    def _policy(self, server_name: str) -> _Policy | None:
        return next((p for p in self.policies if p.matches(server_name)), None)


def read_client_hello(data: bytes | bytearray) -> tuple[str, list[str]] | int:
    """The server name (lower-case, "" when none) and ALPN protocols of the ClientHello at
    the start of `data`; while it is incomplete, how long `data` must be before this can
    say more (so that a ClientHello trickled in byte by byte is not read again for each
    byte). ValueError when `data` is no TLS ClientHello: not a handshake, an empty record,
    more than `MAX_HELLO_RECORDS` records, or bigger than `MAX_EARLY_BYTES`."""
    message = bytearray()
    at = records = 0
    while True:
        if len(data) < at + 5:
            return at + 5
        if data[at] != _HANDSHAKE_RECORD:
            raise ValueError("not a TLS handshake record")
        length = int.from_bytes(data[at + 3:at + 5], "big")
        records += 1
        if length == 0 or records > MAX_HELLO_RECORDS:
            raise ValueError("an empty record, or too many records, for a ClientHello")
        end = at + 5 + length
        if len(data) < end:
            return end
        message += data[at + 5:end]
        at = end
        if len(message) >= 4:
            if message[0] != _CLIENT_HELLO:
                raise ValueError("not a ClientHello")
            size = 4 + int.from_bytes(message[1:4], "big")
            if size > MAX_EARLY_BYTES:
                raise ValueError("a ClientHello bigger than any client sends")
            if len(message) >= size:
                break
    try:
        return _hello_fields(bytes(message[4:size]))
    except (IndexError, UnicodeDecodeError):
        raise ValueError("malformed ClientHello") from None


def _hello_fields(body: bytes) -> tuple[str, list[str]]:
    """The server_name and ALPN extensions of a ClientHello's body (RFC 8446 §4.1.2). Only
    these two are read, and in place: a full parse (aioquic's) costs a tenth of a handshake."""
    at = 2 + 32  # legacy_version, random
    at += 1 + body[at]  # legacy_session_id
    at += 2 + int.from_bytes(body[at:at + 2], "big")  # cipher_suites
    at += 1 + body[at]  # legacy_compression_methods
    end = at + 2 + int.from_bytes(body[at:at + 2], "big")
    if end > len(body):
        raise IndexError("extensions run past the message")
    at += 2
    server_name, alpn = "", []
    while at < end:
        kind, size = int.from_bytes(body[at:at + 2], "big"), int.from_bytes(body[at + 2:at + 4], "big")
        extension = body[at + 4:at + 4 + size]
        at += 4 + size
        if len(extension) != size:
            raise IndexError("an extension runs past the message")
        if kind == 0 and extension and extension[2] == 0:  # server_name: its host_name entry
            server_name = extension[5:5 + int.from_bytes(extension[3:5], "big")].decode("ascii").lower()
        elif kind == 16:  # application_layer_protocol_negotiation
            i = 2
            while i < len(extension):
                alpn.append(extension[i + 1:i + 1 + extension[i]].decode("latin-1"))
                i += 1 + extension[i]
    return server_name, alpn


class TlsAccept(asyncio.Protocol):
    """A new connection's first protocol: reads the ClientHello, picks the context for its
    server name (and ALPN, for ACME's TLS-ALPN-01), then runs the handshake and HTTP over
    it. Garbage closes the connection; a name no certificate covers gets the
    `unrecognized_name` alert; a failed or slow handshake closes the connection. The
    bytes read so far go to the TLS layer when it takes the transport over."""

    def __init__(self, tls: ServerTls, make: Callable[[str | None], asyncio.Protocol], timeout: float) -> None:
        """`make`: the protocol for the ALPN protocol the handshake settled on."""
        self.tls = tls
        self.make = make
        self.timeout = timeout
        self.transport: Any = None
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self.early = bytearray()
        self.needed = 0  # bytes `early` must have before the ClientHello is read again

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.timer = asyncio.get_running_loop().call_later(self.timeout, transport.abort)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.early += data
        if len(self.early) > MAX_EARLY_BYTES:  # no ClientHello is this big; nor what may follow it
            self._close()
            return
        if self.task is not None or len(self.early) < self.needed:  # (bytes for the handshake, when it starts)
            return
        try:
            hello = read_client_hello(self.early)
        except ValueError as exc:
            log.debug("not a TLS ClientHello; closing", extra={"error": str(exc)})
            self._close()
            return
        if isinstance(hello, int):
            self.needed = hello
            return
        if self.timer is not None:
            self.timer.cancel()
        server_name, alpn = hello
        local = self.transport.get_extra_info("sockname")
        context = self.tls.select(server_name, alpn, str(local[0]) if isinstance(local, tuple) else "")
        loop = asyncio.get_running_loop()
        if context is not None:
            self.task = loop.create_task(self._handshake(context, server_name))
        elif self.tls.on_demand is not None and self.tls.on_demand.covers(server_name):
            self.task = loop.create_task(self._on_demand(self.tls.on_demand, server_name))
        else:
            self._unknown(server_name)

    def _unknown(self, server_name: str) -> None:
        log.debug("no certificate for the server name", extra={"server_name": server_name})
        self.transport.write(_ALERT_UNRECOGNIZED_NAME)
        self._close(flush=True)

    async def _on_demand(self, on_demand: OnDemand, server_name: str) -> None:
        """The handshake waits for the name's certificate (reading paused, at most
        `ON_DEMAND_WAIT`)."""
        self.transport.pause_reading()
        try:
            cert = await asyncio.wait_for(on_demand.certificate(server_name), ON_DEMAND_WAIT)
        except asyncio.TimeoutError:
            log.warning("no on-demand certificate in time", extra={"server_name": server_name})
            cert = None
        context = self.tls.context_for(server_name, cert) if cert is not None else None
        if self.transport.is_closing():
            return
        self.transport.resume_reading()
        if context is None:
            self._unknown(server_name)
            return
        await self._handshake(context, server_name)

    def _close(self, flush: bool = False) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.early.clear()
        if flush:
            self.transport.close()
        else:
            self.transport.abort()

    async def _handshake(self, context: ssl.SSLContext, server_name: str) -> None:
        loop = asyncio.get_running_loop()
        transport = self.transport
        handoff = _Handoff()
        starting = loop.create_task(loop.start_tls(transport, handoff, context, server_side=True,
                                                   ssl_handshake_timeout=self.timeout,
                                                   ssl_shutdown_timeout=SHUTDOWN_TIMEOUT))
        try:
            while transport.get_protocol() is self and not starting.done():
                await asyncio.sleep(0)  # `starting` takes the transport over
            if transport.get_protocol() is not self:
                _feed(transport.get_protocol(), bytes(self.early))
            self.early.clear()
            secure = await starting
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError, asyncio.CancelledError) as exc:
            starting.cancel()
            transport.abort()
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        if secure is None or handoff.lost is not None:  # closed meanwhile
            return
        ssl_object = secure.get_extra_info("ssl_object")
        if ssl_object is not None:
            ssl_object.rws_server_name = server_name  # for {http.request.tls.server_name}
        protocol = self.make(ssl_object.selected_alpn_protocol() if ssl_object is not None else None)
        protocol.connection_made(secure)
        secure.set_protocol(protocol)
        for data in handoff.data:  # what came right after the handshake, before the line above
            protocol.data_received(data)
        if handoff.eof:
            protocol.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.task is not None and not self.task.done():
            self.task.cancel()


MAX_EARLY_BYTES = 64 * 1024
MAX_HELLO_RECORDS = 8  # a ClientHello fits one record; a few, split up, at most
ON_DEMAND_WAIT = 120.0  # seconds a handshake waits for its on-demand certificate
_HANDSHAKE_RECORD, _CLIENT_HELLO = 22, 1
_ALERT_UNRECOGNIZED_NAME = bytes([21, 3, 3, 0, 2, 2, 112])  # a fatal unrecognized_name alert record


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
