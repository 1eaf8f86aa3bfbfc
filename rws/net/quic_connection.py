"""aioquic's server connection as rws runs it (`ServerQuic`), and a QUIC connection's TLS
state as requests see it (`QuicTlsState`). The endpoint and its connections' I/O are in
rws.net.quic.

Certificates come from the server's `ServerTls`, chosen by the server name the client
sent. aioquic runs TLS 1.3 itself with one certificate per configuration and no SNI hook,
and it makes a connection's TLS state at its first Initial, when the ClientHello may not
be complete (it can span several packets). So `ServerQuic` wraps the handler its TLS state
calls with the complete ClientHello (`tls.Context._server_handle_hello`): the wrapper
parses the ClientHello once more, picks the certificate for its server name
(`ServerTls.quic_certificate`: the policy and certificate a TCP handshake for that name
gets), sets it on the TLS state, and then lets aioquic go on (its signature algorithm is
negotiated from that certificate's key). A name no certificate covers gets the
`unrecognized_name` alert. The `ServerTls` is the generation's: after a certificate is
renewed (which applies the config again) new connections get the new one.

Request body flow control: aioquic opens a stream's receive window (and the connection's)
by what has arrived, doubling it, so a slow handler would let a client fill memory.
`ServerQuic` opens them by what handlers have read instead: the protocol reports body
bytes held for a handler (`received`) and read by it (`consumed`), and a window opens
again once half of it has been read. A request stream's window opens only once its head
has arrived (`head_received`), so a header section can't be bigger than `STREAM_WINDOW`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aioquic import tls
from aioquic._buffer import Buffer
from aioquic.quic.connection import MAX_STREAM_DATA_FRAME_CAPACITY, QuicConnection
from aioquic.quic.packet import QuicFrameType
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.recovery import QuicPacketSpace
from aioquic.quic.stream import QuicStream
from cryptography import x509

log = logging.getLogger(__name__)

STREAM_WINDOW = 256 * 1024  # request body bytes a stream may have unread
CONNECTION_WINDOW = 2 * 1024 * 1024  # ... all the streams of a connection together

Chosen = tuple[x509.Certificate, list[x509.Certificate], Any]  # leaf, intermediates, private key


class _UnrecognizedName(tls.Alert):
    description = tls.AlertDescription.unrecognized_name


class ServerQuic(QuicConnection):
    """aioquic's server connection with the two changes the module docstring describes:
    the certificate chosen by server name, and receive windows that open as handlers read."""

    def __init__(self, *, choose: Callable[[str], Chosen | None], **options: Any) -> None:
        self.choose = choose
        self.server_name = ""  # what the client sent (lower-case)
        self.unread: dict[int, int] = {}  # request stream -> body bytes held for its handler
        self.unread_total = 0
        self.heads: set[int] = set()  # request streams whose head has arrived, exchange not over
        # bytes the HTTP/3 layer holds for a stream (a frame not complete yet), or for all
        # (None): they count as unread, so that no frame can grow beyond the windows
        self.held: Callable[[int | None], int] = lambda stream_id: 0
        super().__init__(**options)

    # --- what the protocol tells ------------------------------------------------------------

    def head_received(self, stream_id: int) -> None:
        """The stream's request head arrived: its window may open from now on (before, it
        stays at `STREAM_WINDOW`, which bounds a header section)."""
        self.heads.add(stream_id)

    def received(self, stream_id: int, size: int) -> None:
        """`size` body bytes of the stream went to its handler, unread yet."""
        self.unread[stream_id] = self.unread.get(stream_id, 0) + size
        self.unread_total += size

    def consumed(self, stream_id: int, size: int) -> None:
        """The handler read `size` of them."""
        held = self.unread.get(stream_id, 0)
        size = min(size, held)
        self.unread[stream_id] = held - size
        self.unread_total -= size

    def forget_stream(self, stream_id: int) -> None:
        """The exchange is over: what it left unread will never be read, and the stream's
        window opens no more."""
        self.unread_total -= self.unread.pop(stream_id, 0)
        self.heads.discard(stream_id)

    def unacked(self, stream_id: int) -> int:
        """Bytes written to the stream that the client has not acknowledged yet."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        return int(sender._buffer_stop - sender._buffer_start)

    def responses_delivered(self) -> bool:
        """Whether the client has acknowledged everything written to request streams (their
        FIN or reset too): a CONNECTION_CLOSE now loses nothing. (aioquic sends nothing but
        the close once it is asked to close.)"""
        for sid, stream in self._streams.items():
            sender = stream.sender
            if sid % 4 == 0 and not sender.is_finished and (
                    sender._buffer_stop or sender._buffer_fin is not None or sender._reset_error_code is not None):
                return False
        return True

    # --- the certificate, chosen from the ClientHello ---------------------------------------

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        context = self.tls
        handle_hello = context._server_handle_hello

        def choose_then_handle(input_buf: Buffer, initial_buf: Buffer, handshake_buf: Buffer) -> None:
            message = input_buf.data_slice(0, input_buf.capacity)  # (a copy: aioquic reads input_buf next)
            hello = tls.pull_client_hello(Buffer(data=message))
            self.server_name = (hello.server_name or "").lower()
            try:
                chosen = self.choose(self.server_name)
            except (ValueError, TypeError) as exc:  # a key aioquic can't use
                log.warning("certificate unusable for QUIC", extra={"server_name": self.server_name,
                                                                     "error": str(exc)})
                raise tls.AlertInternalError("certificate unusable") from None
            if chosen is None:
                raise _UnrecognizedName("no certificate for the server name")
            context.certificate, context.certificate_chain, context.certificate_private_key = chosen
            handle_hello(input_buf, initial_buf, handshake_buf)

        context._server_handle_hello = choose_then_handle  # type: ignore[method-assign]

    # --- receive windows opened by what handlers read ----------------------------------------

    def _write_connection_limits(self, builder: QuicPacketBuilder, space: QuicPacketSpace) -> None:
        limit = self._local_max_data
        target = limit.used - self.unread_total - self.held(None) + CONNECTION_WINDOW
        if target - limit.value >= CONNECTION_WINDOW // 2:
            limit.value = target
        used, limit.used = limit.used, 0  # aioquic would double the window by what arrived: not that
        try:
            super()._write_connection_limits(builder, space)  # sends MAX_DATA (and MAX_STREAMS) as needed
        finally:
            limit.used = used

    def _write_stream_limits(self, builder: QuicPacketBuilder, space: QuicPacketSpace, stream: QuicStream) -> None:
        """A client stream's window opens by what was taken from it: a request stream's by
        what its handler read (and only once its head came), a unidirectional one's (control,
        QPACK) by what the HTTP/3 layer consumed; never by what waits in a frame not complete
        yet (aioquic would double any window by what arrived)."""
        sid = stream.stream_id
        if sid is None or sid % 2 != 0 or not stream.max_stream_data_local:  # not a stream the client opened
            super()._write_stream_limits(builder, space, stream)
            return
        if sid % 4 == 0 and sid not in self.heads:
            return
        target = stream.receiver.highest_offset - self.unread.get(sid, 0) - self.held(sid) + STREAM_WINDOW
        if target - stream.max_stream_data_local >= STREAM_WINDOW // 2:
            stream.max_stream_data_local = target
        if stream.max_stream_data_local_sent != stream.max_stream_data_local:
            buf = builder.start_frame(QuicFrameType.MAX_STREAM_DATA, capacity=MAX_STREAM_DATA_FRAME_CAPACITY,
                                      handler=self._on_max_stream_data_delivery, handler_args=(stream,))
            buf.push_uint_var(sid)
            buf.push_uint_var(stream.max_stream_data_local)
            stream.max_stream_data_local_sent = stream.max_stream_data_local


class QuicTlsState:
    """A QUIC connection's TLS as requests see it: the part of `ssl.SSLObject` that
    placeholders and access logs read."""

    session_reused = False
    handshake_complete = True

    def __init__(self, server_name: str, cipher_suite: str) -> None:
        self.rws_server_name = self.sni = server_name
        self.cipher_suite = cipher_suite

    def version(self) -> str:
        return "TLSv1.3"

    def cipher(self) -> tuple[str, str, int]:
        return self.cipher_suite, "TLSv1.3", 256 if "256" in self.cipher_suite else 128

    def selected_alpn_protocol(self) -> str:
        return "h3"

    def getpeercert(self, binary_form: bool = False) -> None:
        return None  # no client certificates over QUIC
