"""QUIC on the UDP side of an HTTPS port, for HTTP/3 (rws.protocols.http3), over aioquic.

`QuicEndpoint` serves one UDP socket, which rws.net.listeners keeps across config
generations as it keeps a TCP listener. It hands each datagram to the connection its
destination connection ID names, and decides whether an Initial packet from a client it
doesn't know may start a connection. A connection (`QuicTransport`, around aioquic's
`QuicConnection`) stays with the generation that was serving when it arrived; for a new
one the endpoint asks the generation serving now (`QuicService`) for its protocol and,
during the handshake, its certificate (rws.net.quic_connection has what rws changes in
aioquic's connection: the certificate chosen by server name, windows opened by reading).

What datagrams may cost (nothing here grows with what clients send):
- A datagram that is no QUIC packet, an Initial in a datagram under 1200 bytes, and an
  Initial that doesn't decrypt under its Initial keys make nothing. An unknown version gets
  one Version Negotiation packet, and only for a datagram of 1200 bytes or more.
- Address validation (RFC 9000 8.1): while fewer than `RETRY_THRESHOLD` handshakes are under
  way, a new client is taken at once (until its address is validated it gets at most three
  times what it sent); beyond that it gets a stateless Retry and is taken when it comes back
  with the token (bound to its address, valid for 30 s). A spoofed address can't come back.
- At most `MAX_CONNECTIONS_PER_IP` connections per client address and `MAX_CONNECTIONS` in
  all: a new one beyond that is refused (CONNECTION_REFUSED), and the client stays on TCP.
  A handshake must be complete within `HANDSHAKE_TIMEOUT` seconds.

Process model: a QUIC connection's state lives in the process whose socket received its
first packet. With worker processes each worker has its own UDP socket on the address
(SO_REUSEPORT, rws.net.listeners), and the kernel sends each client address to one of
them; see the README's HTTP/3 section for what that implies.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Protocol

from aioquic._buffer import Buffer
from aioquic._crypto import CryptoError
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE, QuicConfiguration
from aioquic.quic.connection import TRANSPORT_CLOSE_FRAME_CAPACITY, NetworkAddress
from aioquic.quic.crypto import CryptoPair
from aioquic.quic.events import (ConnectionIdIssued, ConnectionIdRetired, ConnectionTerminated, HandshakeCompleted,
                                 QuicEvent)
from aioquic.quic.packet import (QuicErrorCode, QuicFrameType, QuicHeader, QuicPacketType, encode_quic_retry,
                                 encode_quic_version_negotiation, pull_quic_header)
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.retry import QuicRetryTokenHandler
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from rws.net.quic_connection import CONNECTION_WINDOW, STREAM_WINDOW, Chosen, QuicTlsState, ServerQuic
from rws.net.tls import ServerTls
from rws.tls.certificates import Certificate

log = logging.getLogger(__name__)


class _PerConnectionDetail(logging.Filter):
    """aioquic logs each connection's events at info, and a client's protocol errors at
    warning: detail of one connection, which rws logs at debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


logging.getLogger("quic").addFilter(_PerConnectionDetail())

CID_LENGTH = 8  # bytes of the connection IDs rws issues
MAX_CONNECTIONS = 4096  # QUIC connections an endpoint holds (a process, with workers)
MAX_CONNECTIONS_PER_IP = 64
RETRY_THRESHOLD = 32  # handshakes under way beyond which new clients must validate their address
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 30.0  # QUIC's max_idle_timeout (quic-go's default); HTTP's idle timeout is the server's
MAX_KEYS = 10_000  # certificates a service keeps loaded for aioquic
_SUPPORTED_VERSIONS = QuicConfiguration(is_client=False).supported_versions


class QuicProtocol(Protocol):
    """What runs over a QUIC connection (HTTP/3)."""

    def connection_made(self, transport: QuicTransport) -> None: ...

    def quic_received(self, events: list[QuicEvent]) -> None:
        """Called after every datagram and timer, with the events it brought (often none:
        acknowledgements free send buffers without an event)."""

    def connection_lost(self, exc: Exception | None) -> None: ...


class QuicService:
    """What one server of a config generation gives the QUIC endpoints of its addresses:
    the QUIC settings, the certificate for a server name, and the protocol of each new
    connection (`make`)."""

    def __init__(self, tls_settings: ServerTls, make: Callable[[], QuicProtocol]) -> None:
        self.tls = tls_settings
        self.make = make
        self.configuration = QuicConfiguration(is_client=False, alpn_protocols=["h3"], idle_timeout=IDLE_TIMEOUT,
                                               max_data=CONNECTION_WINDOW, max_stream_data=STREAM_WINDOW,
                                               connection_id_length=CID_LENGTH)
        # aioquic wants a certificate here; each connection gets its own (ServerQuic)
        self.configuration.certificate = self.configuration.private_key = _CHOSEN_PER_CONNECTION
        self.loaded: dict[Certificate, Chosen] = {}

    def certificate(self, server_name: str, local_ip: str) -> Chosen | None:
        """The certificate for a QUIC handshake with this server name, as aioquic takes it."""
        cert = self.tls.quic_certificate(server_name, local_ip)
        if cert is None:
            return None
        chosen = self.loaded.get(cert)
        if chosen is None:
            chain = x509.load_pem_x509_certificates(cert.chain_pem)
            key = serialization.load_pem_private_key(cert.key_pem, password=None)
            chosen = (chain[0], chain[1:], key)
            if len(self.loaded) >= MAX_KEYS:  # on-demand names are many: start afresh
                self.loaded.clear()
            self.loaded[cert] = chosen
        return chosen


_CHOSEN_PER_CONNECTION = object()


class QuicTransport:
    """One QUIC connection: aioquic's state machine, its one timer, its datagrams out through
    the endpoint's socket. Its protocol gets the events."""

    def __init__(self, endpoint: QuicEndpoint, quic: ServerQuic, protocol: QuicProtocol,
                 address: NetworkAddress) -> None:
        self.endpoint = endpoint
        self.quic = quic
        self.protocol = protocol
        self.loop = endpoint.loop
        self.remote = (str(address[0]), int(address[1]))
        self.local = endpoint.local
        self.cids: set[bytes] = set()
        self.handshaking = True
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: float | None = None
        self.soon: asyncio.Handle | None = None
        self.handshake_timer: asyncio.TimerHandle | None = self.loop.call_later(HANDSHAKE_TIMEOUT, self._slow_handshake)

    def tls_state(self) -> QuicTlsState:
        """Once the handshake is complete."""
        suite = self.quic.tls.key_schedule.cipher_suite if self.quic.tls.key_schedule is not None else None
        return QuicTlsState(self.quic.server_name, f"TLS_{suite.name}" if suite is not None else "")

    def datagram_received(self, data: bytes, address: NetworkAddress) -> None:
        try:
            self.quic.receive_datagram(data, address, now=self.loop.time())
            self._process()
            self.transmit()
        except Exception:  # the connection's boundary: log once, drop the connection
            log.exception("QUIC connection failed", extra={"remote_ip": self.remote[0]})
            self._finish()

    def transmit(self) -> None:
        """Send what aioquic has to send and set the timer for its next deadline."""
        if self.soon is not None:
            self.soon.cancel()
            self.soon = None
        if self.closed:
            return
        send = self.endpoint.send
        for data, address in self.quic.datagrams_to_send(now=self.loop.time()):
            send(data, address)
        at = self.quic.get_timer()
        if self.timer is not None and self.timer_at != at:
            self.timer.cancel()
            self.timer = None
        if self.timer is None and at is not None:
            self.timer = self.loop.call_at(at, self._timer_fired)
        self.timer_at = at

    def transmit_soon(self) -> None:
        """Send once the current callback is done (what several writes queue goes out together)."""
        if self.soon is None and not self.closed:
            self.soon = self.loop.call_soon(self.transmit)

    def close(self, error_code: int, reason: str = "") -> None:
        """Close with an application error code (H3_NO_ERROR for a graceful close); the
        connection ends after QUIC's closing period."""
        self.quic.close(error_code=error_code, reason_phrase=reason)
        self.transmit()

    def abort(self) -> None:
        """Close now: one CONNECTION_CLOSE, and the connection is gone."""
        if self.closed:
            return
        self.quic.close(error_code=QuicErrorCode.NO_ERROR, frame_type=QuicFrameType.PADDING, reason_phrase="closing")
        self.transmit()
        self._finish()

    def _timer_fired(self) -> None:
        self.timer = None
        now = max(self.timer_at or 0.0, self.loop.time())
        self.timer_at = None
        try:
            self.quic.handle_timer(now=now)
            self._process()
            self.transmit()
        except Exception:  # the connection's boundary: log once, drop the connection
            log.exception("QUIC connection failed", extra={"remote_ip": self.remote[0]})
            self._finish()

    def _process(self) -> None:
        events: list[QuicEvent] = []
        terminated = False
        while (event := self.quic.next_event()) is not None:
            if isinstance(event, ConnectionIdIssued):
                self.endpoint.route(event.connection_id, self)
            elif isinstance(event, ConnectionIdRetired):
                self.endpoint.unroute(event.connection_id, self)
            elif isinstance(event, HandshakeCompleted):
                self._handshake_done()
            elif isinstance(event, ConnectionTerminated):
                terminated = True
            events.append(event)
        if not self.closed:
            self.protocol.quic_received(events)
        if terminated:
            self._finish()

    def _handshake_done(self) -> None:
        if self.handshaking:
            self.handshaking = False
            self.endpoint.handshakes -= 1
        if self.handshake_timer is not None:
            self.handshake_timer.cancel()
            self.handshake_timer = None

    def _slow_handshake(self) -> None:
        self.handshake_timer = None
        log.debug("QUIC handshake not complete in time", extra={"remote_ip": self.remote[0]})
        self.abort()

    def _finish(self) -> None:
        if self.closed:
            return
        self.closed = True
        for handle in (self.timer, self.soon, self.handshake_timer):
            if handle is not None:
                handle.cancel()
        self.timer = self.soon = self.handshake_timer = None
        self.endpoint.forget(self)
        self.protocol.connection_lost(None)


class QuicEndpoint(asyncio.DatagramProtocol):
    """The protocol of one UDP socket (see the module docstring). `current` gives the
    service new connections go to (None: refuse them)."""

    def __init__(self, current: Callable[[], QuicService | None]) -> None:
        self.current = current
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.DatagramTransport | None = None
        self.local: tuple[str, int] = ("", 0)
        self.routes: dict[bytes, QuicTransport] = {}  # connection ID -> its connection
        self.connections: set[QuicTransport] = set()
        self.per_ip: dict[str, int] = {}
        self.handshakes = 0  # connections whose handshake is not complete
        self.retry = QuicRetryTokenHandler()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        name = transport.get_extra_info("sockname")
        if isinstance(name, tuple):
            self.local = (str(name[0]), int(name[1]))

    def datagram_received(self, data: bytes, addr: NetworkAddress) -> None:
        buf = Buffer(data=data)
        try:
            header = pull_quic_header(buf, host_cid_length=CID_LENGTH)
        except ValueError:
            return  # not QUIC
        conn = self.routes.get(header.destination_cid)
        if conn is not None:
            conn.datagram_received(data, addr)
            return
        if len(data) < SMALLEST_MAX_DATAGRAM_SIZE or header.packet_type == QuicPacketType.VERSION_NEGOTIATION:
            return  # too small to start a connection: nothing to say
        if header.version not in _SUPPORTED_VERSIONS:
            self.send(encode_quic_version_negotiation(source_cid=header.destination_cid,
                                                      destination_cid=header.source_cid,
                                                      supported_versions=_SUPPORTED_VERSIONS), addr)
            return
        if header.packet_type == QuicPacketType.INITIAL and _decrypts(data[:header.packet_length], header, buf.tell()):
            self._admit(data, addr, header)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error", extra={"error": str(exc)})  # an ICMP error for some client: nothing to do here

    def _admit(self, data: bytes, addr: NetworkAddress, header: QuicHeader) -> None:
        """A client's first Initial (which decrypts): refuse it, ask it to validate its
        address, or start its connection."""
        service = self.current()
        ip = str(addr[0])
        full = len(self.connections) >= MAX_CONNECTIONS or self.per_ip.get(ip, 0) >= MAX_CONNECTIONS_PER_IP
        if service is None or full:
            log.debug("QUIC connection refused", extra={"remote_ip": ip, "connections": len(self.connections)})
            self.send(_initial_close(header, QuicErrorCode.CONNECTION_REFUSED), addr)
            return
        now = self.loop.time()
        original, retry_source = header.destination_cid, None
        if header.token:
            try:
                original = self.retry.validate_token(address=addr, destination_cid=header.destination_cid,
                                                     token=header.token, now=now)
            except ValueError:  # (tokens from NEW_TOKEN frames are never issued here)
                self.send(_initial_close(header, QuicErrorCode.INVALID_TOKEN), addr)
                return
            retry_source = header.destination_cid
        elif self.handshakes >= RETRY_THRESHOLD:
            source = os.urandom(CID_LENGTH)
            token = self.retry.create_token(address=addr, original_destination_connection_id=header.destination_cid,
                                            retry_source_connection_id=source, now=now)
            self.send(encode_quic_retry(version=header.version or 0, source_cid=source,
                                        destination_cid=header.source_cid,
                                        original_destination_cid=header.destination_cid, retry_token=token), addr)
            return
        local_ip = "" if self.local[0] in ("0.0.0.0", "::", "") else self.local[0]
        quic = ServerQuic(choose=lambda name: service.certificate(name, local_ip), configuration=service.configuration,
                          original_destination_connection_id=original, retry_source_connection_id=retry_source)
        conn = QuicTransport(self, quic, service.make(), addr)
        self.connections.add(conn)
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
        self.handshakes += 1
        self.route(header.destination_cid, conn)
        self.route(quic.host_cid, conn)
        conn.protocol.connection_made(conn)
        conn.datagram_received(data, addr)

    def send(self, data: bytes, addr: NetworkAddress) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)

    def route(self, cid: bytes, conn: QuicTransport) -> None:
        if not conn.closed:
            self.routes[cid] = conn
            conn.cids.add(cid)

    def unroute(self, cid: bytes, conn: QuicTransport) -> None:
        if self.routes.get(cid) is conn:
            del self.routes[cid]
        conn.cids.discard(cid)

    def forget(self, conn: QuicTransport) -> None:
        """The connection is gone."""
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        for cid in conn.cids:
            if self.routes.get(cid) is conn:
                del self.routes[cid]
        conn.cids.clear()
        ip = conn.remote[0]
        left = self.per_ip.get(ip, 1) - 1
        if left > 0:
            self.per_ip[ip] = left
        else:
            self.per_ip.pop(ip, None)
        if conn.handshaking:
            conn.handshaking = False
            self.handshakes -= 1

    def close(self) -> None:
        """Close every connection now, then the socket."""
        for conn in list(self.connections):
            conn.abort()
        if self.transport is not None:
            self.transport.close()


def _decrypts(packet: bytes, header: QuicHeader, encrypted_offset: int) -> bool:
    """Whether a client's Initial packet decrypts under the Initial keys of its destination
    connection ID: random bytes shaped like an Initial don't."""
    crypto = CryptoPair()
    crypto.setup_initial(cid=header.destination_cid, is_client=False, version=header.version or 0)
    try:
        crypto.decrypt_packet(packet, encrypted_offset, 0)
    except CryptoError:
        return False
    return True


def _initial_close(header: QuicHeader, error_code: int) -> bytes:
    """A server Initial packet closing the connection the client's Initial began
    (CONNECTION_REFUSED, INVALID_TOKEN), made without keeping any state."""
    crypto = CryptoPair()
    crypto.setup_initial(cid=header.destination_cid, is_client=False, version=header.version or 0)
    builder = QuicPacketBuilder(host_cid=header.destination_cid, peer_cid=header.source_cid,
                                version=header.version or 0, is_client=False,
                                max_datagram_size=SMALLEST_MAX_DATAGRAM_SIZE)
    builder.start_packet(QuicPacketType.INITIAL, crypto)
    buf = builder.start_frame(QuicFrameType.TRANSPORT_CLOSE, capacity=TRANSPORT_CLOSE_FRAME_CAPACITY)
    buf.push_uint_var(error_code)
    buf.push_uint_var(QuicFrameType.PADDING)
    buf.push_uint_var(0)  # no reason phrase
    datagrams, _ = builder.flush()
    return datagrams[0]
