"""An HTTP/3 client for tests: aioquic's QUIC client with its H3Connection, every response
kept per stream (headers, body, trailers, resets), and the GOAWAY frames the server sends
read off its control stream (aioquic's client ignores them)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.buffer import Buffer, BufferReadError
from aioquic.h3.connection import H3Connection, H3Stream
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamDataReceived, StreamReset
from cryptography import x509

GOAWAY_FRAME = 0x7
SERVER_CONTROL_STREAM = 3


@dataclass
class Reply:
    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    trailers: list[tuple[str, str]] = field(default_factory=list)
    reset: int | None = None  # the RESET_STREAM error code
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)


class _H3(H3Connection):
    """aioquic's client checks a response's content-length against its body, not knowing
    that a response to HEAD has none."""

    heads: set[int] = set()

    def _check_content_length(self, stream: H3Stream) -> None:
        if stream.stream_id not in self.heads:
            super()._check_content_length(stream)


class H3Client(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = _H3(self._quic)
        self.h3.heads = set()
        self.replies: dict[int, Reply] = {}
        self.goaways: list[int] = []
        self.control = b""  # the server's control stream, as received
        self.terminated: ConnectionTerminated | None = None
        self.changed = asyncio.Event()

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        super().datagram_received(data, addr)
        self.changed.set()  # (some frames change the state `until` waits on without an event)

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived) and event.stream_id == SERVER_CONTROL_STREAM:
            self.control += event.data
            self._read_control()
        if isinstance(event, StreamReset) and event.stream_id in self.replies:
            reply = self.replies[event.stream_id]
            reply.reset = event.error_code
            reply.done.set()
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
            for reply in self.replies.values():
                reply.done.set()
        for h3_event in self.h3.handle_event(event):
            reply = self.replies.get(getattr(h3_event, "stream_id", -1))
            if reply is None:
                continue
            if isinstance(h3_event, HeadersReceived):
                fields = [(k.decode(), v.decode()) for k, v in h3_event.headers]
                if reply.status and not reply.status < 200:
                    reply.trailers = fields
                else:
                    reply.status = int(dict(fields)[":status"])
                    reply.headers = [(k, v) for k, v in fields if not k.startswith(":")]
                if h3_event.stream_ended:
                    reply.done.set()
            elif isinstance(h3_event, DataReceived):
                reply.data += h3_event.data
                if h3_event.stream_ended:
                    reply.done.set()
        self.changed.set()

    def _read_control(self) -> None:
        """GOAWAY frames (after the stream type and SETTINGS)."""
        buf = Buffer(data=self.control)
        buf.pull_uint_var()  # the stream type
        self.goaways = []
        try:
            while not buf.eof():
                kind, size = buf.pull_uint_var(), buf.pull_uint_var()
                payload = buf.pull_bytes(size)
                if kind == GOAWAY_FRAME:
                    self.goaways.append(Buffer(data=payload).pull_uint_var())
        except BufferReadError:
            pass  # a frame not all here yet

    def send_request(self, method: str, path: str, *, authority: str = "a.test", headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
                     body: bytes | None = None, end: bool = True, trailers: list[tuple[str, str]] = ()) -> int:  # type: ignore[assignment]
        """Open a stream with the request; `end=False` leaves the body open (`send_body`)."""
        sid = self._quic.get_next_available_stream_id()
        fields = [(b":method", method.encode()), (b":scheme", b"https"), (b":authority", authority.encode()),
                  (b":path", path.encode())] + [(k.lower().encode(), v.encode()) for k, v in headers]
        self.replies[sid] = Reply()
        if method == "HEAD":
            self.h3.heads.add(sid)
        only_headers = not body and not trailers and end
        self.h3.send_headers(sid, fields, end_stream=only_headers)
        if body:
            self.h3.send_data(sid, body, end_stream=end and not trailers)
        if trailers:
            self.h3.send_headers(sid, [(k.encode(), v.encode()) for k, v in trailers], end_stream=True)
        elif end and not only_headers and not body:
            self.h3.send_data(sid, b"", end_stream=True)
        self.transmit()
        return sid

    def can_open(self) -> bool:
        """Whether the server's MAX_STREAMS lets a new request stream open now."""
        return self._quic.get_next_available_stream_id() // 4 < self._quic._remote_max_streams_bidi

    def send_body(self, sid: int, data: bytes, end: bool = False) -> None:
        self.h3.send_data(sid, data, end_stream=end)
        self.transmit()

    def reset_stream(self, sid: int, code: int = 0x10C) -> None:
        """RESET_STREAM and STOP_SENDING (H3_REQUEST_CANCELLED)."""
        self._quic.reset_stream(sid, code)
        self._quic.stop_stream(sid, code)
        self.transmit()

    async def wait(self, sid: int, timeout: float = 20) -> Reply:
        reply = self.replies[sid]
        await asyncio.wait_for(reply.done.wait(), timeout)
        return reply

    async def request(self, method: str, path: str, **options: Any) -> Reply:
        return await self.wait(self.send_request(method, path, **options))

    async def until(self, condition: Any, timeout: float = 20) -> None:
        """Wait until `condition()` holds (checked after every event)."""
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    def peer_certificate(self) -> x509.Certificate:
        return self._quic.tls._peer_certificate  # type: ignore[no-any-return]

    def bytes_sent(self, sid: int) -> int:
        """How far the stream's data has been sent (what the server's window allowed)."""
        return int(self._quic._streams[sid].sender.highest_offset)


def configuration(ca: Path, server_name: str = "a.test") -> QuicConfiguration:
    config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name=server_name,
                               verify_mode=ssl.CERT_REQUIRED)
    config.load_verify_locations(cafile=str(ca))
    return config


@asynccontextmanager
async def h3_connect(port: int, ca: Path, server_name: str = "a.test", **options: Any) -> AsyncIterator[H3Client]:
    """A connected client (the handshake done) to 127.0.0.1:`port`."""
    config = configuration(ca, server_name)
    for name, value in options.items():
        setattr(config, name, value)
    async with connect("127.0.0.1", port, configuration=config, create_protocol=H3Client,
                       wait_connected=True) as client:
        yield client  # type: ignore[misc]
