"""A raw HTTP/2 client for tests: h2's client state machine over a blocking socket, with
every frame the server sends kept per stream, and the means to misbehave (hold windows
shut, send frames h2 itself would refuse to)."""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (DataReceived, InformationalResponseReceived, ResponseReceived, StreamEnded, StreamReset,
                       TrailersReceived)


GOAWAY = 7


@dataclass
class GoAway:
    last_stream_id: int
    error_code: ErrorCodes
    additional_data: bytes


@dataclass
class Reply:
    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    trailers: list[tuple[str, str]] = field(default_factory=list)
    ended: bool = False
    reset: int | None = None  # the RST_STREAM error code
    informational: list[list[tuple[str, str]]] = field(default_factory=list)  # 1xx heads

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)


class H2Client:
    """`request()` opens a stream; `pump(until)` reads until `until()` holds. Received
    data is acknowledged (windows reopened) unless `ack` is off for that stream."""

    def __init__(self, port: int, *, tls: ssl.SSLContext | None = None, server_name: str = "localhost",
                 settings: dict[int, int] | None = None, connection_window: int = 0, rcvbuf: int = 0) -> None:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.settimeout(10)
        raw.connect(("127.0.0.1", port))
        self.sock: socket.socket = tls.wrap_socket(raw, server_hostname=server_name) if tls is not None else raw
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8", validate_outbound_headers=False,
                                               normalize_outbound_headers=False))  # (tests send bad ones)
        self.h2.initiate_connection()
        if settings:
            self.h2.update_settings(settings)
        if connection_window:
            self.h2.increment_flow_control_window(connection_window)
        self.flush()
        self.replies: dict[int, Reply] = {}
        self.goaway: GoAway | None = None
        self.pending = bytearray()  # the start of a frame
        self.closed = False
        self.no_ack: set[int] = set()  # streams whose data is not acknowledged

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path: str, method: str = "GET", body: bytes | None = None, *, authority: str = "localhost",
                headers: list[tuple[str, str]] | None = None, end: bool = True, stream_id: int | None = None,
                scheme: str = "https", fields: list[tuple[str, str]] | None = None) -> int:
        """`fields`: the whole header list as given (pseudo-fields too), instead of the usual."""
        sid = stream_id or self.h2.get_next_available_stream_id()
        if fields is None:
            fields = [(":method", method), (":path", path), (":scheme", scheme), (":authority", authority)]
            fields += headers or []
        self.h2.send_headers(sid, fields, end_stream=end and not body)
        if body:
            self.h2.send_data(sid, body, end_stream=end)
        self.replies[sid] = Reply()
        self.flush()
        return sid

    def pump(self, until: Callable[[], bool], timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            if self.closed:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the server did not send what the test waited for")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except (ConnectionError, ssl.SSLError):
                data = b""
            if not data:
                self.closed = True
                return
            self.receive(data)

    def receive(self, data: bytes) -> list[Any]:
        """Feed the server's bytes to h2, all but GOAWAY frames: h2 would take nothing
        more after one, while the streams it lets finish are still sending."""
        self.pending += data
        frames = bytearray()
        while len(self.pending) >= 9:
            length = int.from_bytes(self.pending[:3], "big")
            if len(self.pending) < 9 + length:
                break
            frame, self.pending = self.pending[:9 + length], self.pending[9 + length:]
            if frame[3] == GOAWAY:
                self.goaway = GoAway(int.from_bytes(frame[9:13], "big") & 0x7FFFFFFF,
                                     ErrorCodes(int.from_bytes(frame[13:17], "big")), bytes(frame[17:]))
            else:
                frames += frame
        events = self.h2.receive_data(bytes(frames)) if frames else []
        for event in events:
            sid = getattr(event, "stream_id", 0)
            reply = self.replies.setdefault(sid, Reply()) if sid else None
            if isinstance(event, (ResponseReceived, InformationalResponseReceived)) and reply is not None:
                headers = [(k, v) for k, v in event.headers]  # type: ignore[misc]
                status = dict(headers).get(":status", "0")
                if status.startswith("1"):
                    reply.informational.append(headers)
                else:
                    reply.status = int(status)
                    reply.headers = headers
            elif isinstance(event, DataReceived) and reply is not None:
                reply.data += event.data
                if sid not in self.no_ack:
                    self.h2.acknowledge_received_data(event.flow_controlled_length, sid)
            elif isinstance(event, TrailersReceived) and reply is not None:
                reply.trailers = [(k, v) for k, v in event.headers]  # type: ignore[misc]
            elif isinstance(event, StreamEnded) and reply is not None:
                reply.ended = True
            elif isinstance(event, StreamReset) and reply is not None:
                reply.reset = int(event.error_code or 0)
        try:
            self.flush()
        except OSError:
            self.closed = True
        return events

    def done(self, sid: int) -> Callable[[], bool]:
        return lambda: self.replies[sid].ended or self.replies[sid].reset is not None

    def get(self, path: str, **options: Any) -> Reply:
        sid = self.request(path, **options)
        self.pump(self.done(sid))
        return self.replies[sid]

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
