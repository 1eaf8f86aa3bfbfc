"""HTTP/3 over a QUIC connection (rws.net.quic), with aioquic's H3Connection (QPACK by
pylsqpack).

Each request stream runs as a `Stream` (rws.protocols.multiplexed), so handlers see what
they see over HTTP/1 and HTTP/2; the request's version is "HTTP/3.0".

- Request bodies: a stream's receive window opens as its handler reads (rws.net.quic's
  `ServerQuic`), so a client can't make rws hold more than `STREAM_WINDOW` unread bytes per
  stream, `CONNECTION_WINDOW` per connection. Request trailers are read and dropped, as over
  HTTP/1 and HTTP/2.
- Responses: a stream writes while fewer than `SEND_BUFFER` of its bytes wait for the
  client's acknowledgement, then waits for acknowledgements (and is reset after the write
  timeout, else the idle timeout, without any).
- Request heads: a header section can't be bigger than the stream's first window, nor than
  `max_header_bytes` (a stream with a bigger one is reset with H3_EXCESSIVE_LOAD); a
  connection with more than four such heads' worth of unfinished ones is closed.
- QUIC bounds the request streams a client may have open (128, one more as each ends); a
  client whose streams are reset while their handlers run far more often than they finish
  gets H3_EXCESSIVE_LOAD, as Go's HTTP/2 server does for rapid resets.
- Graceful close (reload, shutdown, a handler's `Connection: close`, `timeouts.idle` without
  a request): GOAWAY naming the first stream not taken; the streams in flight finish, later
  ones are rejected (H3_REQUEST_REJECTED: clients retry them on a new connection), then the
  connection closes with H3_NO_ERROR. A connection still in its handshake just closes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import ErrorCode, FrameType, H3Connection, ProtocolError, encode_frame
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.events import (HandshakeCompleted, ProtocolNegotiated, QuicEvent, StopSendingReceived,
                                 StreamDataReceived, StreamReset)

from rws.net.quic import QuicTransport
from rws.net.quic_connection import CONNECTION_WINDOW, STREAM_WINDOW, ServerQuic
from rws.protocols.flow import Deadlines
from rws.protocols.http1.core import DEFAULT_MAX_HEADER_BYTES
from rws.protocols.multiplexed import GOAWAY_LINGER, Stream, abusive_resets, request_head

log = logging.getLogger(__name__)

__all__ = ["Http3Connection", "STREAM_WINDOW", "CONNECTION_WINDOW", "SEND_BUFFER"]

SEND_BUFFER = 256 * 1024  # response bytes a stream may have unacknowledged


class _H3(H3Connection):
    def send_goaway(self, stream_id: int) -> None:
        """GOAWAY on our control stream: requests on `stream_id` and later are not served."""
        assert self._local_control_stream_id is not None
        self._quic.send_stream_data(self._local_control_stream_id,
                                    encode_frame(FrameType.GOAWAY, encode_uint_var(stream_id)))


class Http3Connection:
    """One HTTP/3 connection; `app` is the server (`handle`, `sent`). It is the protocol of
    a `QuicTransport` and the `Mux` of its streams."""

    def __init__(self, app: Any, *, timeouts: Any, max_header_bytes: int = 0, on_close: Any = None) -> None:
        self.app = app
        self.timeouts = timeouts
        self.max_header_bytes = max_header_bytes or DEFAULT_MAX_HEADER_BYTES
        self.max_heading = 4 * min(self.max_header_bytes, STREAM_WINDOW)  # unfinished heads of a connection
        self.on_close = on_close
        self.loop = asyncio.get_running_loop()
        self.scheme = "https"
        self.remote: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)
        self.tls: Any = None  # a QuicTlsState once the handshake is complete
        self.transport: QuicTransport | None = None
        self.quic: ServerQuic | None = None
        self.h3: _H3 | None = None
        self.streams: dict[int, Stream] = {}
        self.finished: set[int] = set()  # streams whose exchange is over while the client still sends
        self.heading: dict[int, int] = {}  # request streams whose head has not arrived -> bytes so far
        self.heading_total = 0
        self.send_waiters: dict[int, asyncio.Future[None]] = {}
        self.highest = -4  # the highest request stream ID taken
        self.goaway_sent = False
        self.goaway_id = 0
        self.closing = False  # closes once the client has acknowledged the responses
        self.resets = self.completed = 0
        self.deadline = 0.0  # loop time after which the idle connection closes (0: none)
        self.deadlines = Deadlines.for_loop(self.loop)

    def _held(self, stream_id: int | None) -> int:
        """Bytes aioquic's HTTP/3 layer holds for a stream (a frame it waits to complete),
        or for all of them (None)."""
        if self.h3 is None:
            return 0
        streams = self.h3._stream
        if stream_id is None:
            return sum(len(stream.buffer) for stream in streams.values())
        stream = streams.get(stream_id)
        return len(stream.buffer) if stream is not None else 0

    # --- the QUIC protocol ------------------------------------------------------------------

    def connection_made(self, transport: QuicTransport) -> None:
        self.transport = transport
        self.quic = transport.quic
        self.remote = transport.remote
        self.local = transport.local
        self.deadlines.watch(self)

    def quic_received(self, events: list[QuicEvent]) -> None:
        for event in events:
            if isinstance(event, (StreamDataReceived, StreamReset, StopSendingReceived)):
                sid = event.stream_id
                if sid % 4 == 0:
                    if isinstance(event, StreamDataReceived):
                        if sid not in self.streams and sid not in self.finished:
                            self._head_bytes(sid, len(event.data), event.end_stream)
                    else:
                        self._reset(sid)
                if self.h3 is not None:
                    for h3_event in self.h3.handle_event(event):
                        if isinstance(h3_event, HeadersReceived):
                            self._headers(h3_event)
                        elif isinstance(h3_event, DataReceived):
                            self._data(h3_event)
                if isinstance(event, StreamDataReceived) and event.end_stream and sid in self.heading:
                    self.heading_total -= self.heading.pop(sid)  # it ended without a head
            elif isinstance(event, ProtocolNegotiated):
                assert self.quic is not None
                self.h3 = _H3(self.quic)  # our SETTINGS go out with the handshake
                self.quic.held = self._held
            elif isinstance(event, HandshakeCompleted):
                assert self.transport is not None
                self.tls = self.transport.tls_state()
                self._arm(self.timeouts.idle)
        if self.send_waiters:
            self._wake_senders()
        if self.closing:
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.deadline = 0.0
        self.deadlines.forget(self)
        for stream in list(self.streams.values()):
            stream.cancel()
        self.streams.clear()
        self.finished.clear()
        for waiter in self.send_waiters.values():
            if not waiter.done():
                waiter.set_result(None)
        self.send_waiters.clear()
        if self.on_close is not None:
            self.on_close(self)

    # --- what the client sent ----------------------------------------------------------------

    def _headers(self, event: HeadersReceived) -> None:
        sid = event.stream_id
        stream = self.streams.get(sid)
        if stream is not None or sid in self.finished:  # trailers: read and dropped
            if event.stream_ended:
                self._client_done(sid, stream)
            return
        if sid % 4 != 0:
            return
        self.heading_total -= self.heading.pop(sid, 0)
        if self.goaway_sent and sid >= self.goaway_id:
            self._refuse(sid, ErrorCode.H3_REQUEST_REJECTED)
            return
        head = request_head(sid, event.headers, not event.stream_ended, "HTTP/3.0")
        if head is None:
            self._refuse(sid, ErrorCode.H3_MESSAGE_ERROR)
            return
        self.highest = max(self.highest, sid)
        assert self.quic is not None
        self.quic.head_received(sid)
        stream = Stream(self, sid, head)
        self.streams[sid] = stream
        self.deadline = 0.0
        stream.start(self.app)

    def _data(self, event: DataReceived) -> None:
        sid = event.stream_id
        stream = self.streams.get(sid)
        if stream is not None and not stream.body.complete and event.data:
            assert self.quic is not None
            self.quic.received(sid, len(event.data))
            stream.body.feed(event.data)
        if event.stream_ended:
            self._client_done(sid, stream)

    def _client_done(self, sid: int, stream: Stream | None) -> None:
        """The client's side of the stream has ended."""
        self.finished.discard(sid)
        self.heading_total -= self.heading.pop(sid, 0)
        if stream is not None and not stream.body.complete:
            stream.body.finish()

    def _head_bytes(self, sid: int, size: int, ended: bool) -> None:
        """Bytes of a request stream whose head has not arrived (see the module docstring)."""
        so_far = self.heading.get(sid, 0) + size
        self.heading_total += size
        self.heading[sid] = so_far
        if ended:  # its head, if any, is in this very data
            return
        if self.heading_total > self.max_heading:
            self._calm("request heads too big")
        elif so_far > self.max_header_bytes:
            self._refuse(sid, ErrorCode.H3_EXCESSIVE_LOAD)

    def _reset(self, sid: int) -> None:
        """The client reset the stream, or asked us to stop sending on it."""
        self.finished.discard(sid)
        self.heading_total -= self.heading.pop(sid, 0)
        self._wake(sid)
        stream = self.streams.pop(sid, None)
        if stream is None:
            return
        if not stream.ended:
            self.resets += 1
            if abusive_resets(self.resets, self.completed):
                self._calm("too many streams reset")
        stream.cancel()

    def _refuse(self, sid: int, code: int) -> None:
        """Answer a request stream with a reset, and read nothing more of it."""
        self.finished.add(sid)
        self._send_reset(sid, code)
        self._stop_reading(sid, code)
        if self.transport is not None:
            self.transport.transmit_soon()

    # --- what streams send (the Mux interface) ------------------------------------------------

    def send_headers(self, stream_id: int, fields: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        h3, transport = self.h3, self.transport
        if h3 is None or transport is None:
            raise ConnectionResetError("client closed the connection")
        try:
            h3.send_headers(stream_id, fields, end_stream=end_stream)
        except (ProtocolError, ValueError, RuntimeError, AssertionError) as exc:
            raise ConnectionResetError(f"stream {stream_id}: {exc}") from None
        transport.transmit_soon()

    async def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        total = len(data)
        pos = 0
        while True:
            h3, quic, transport = self.h3, self.quic, self.transport
            if h3 is None or quic is None or transport is None:
                raise ConnectionResetError("client closed the connection")
            room = SEND_BUFFER - quic.unacked(stream_id)
            if room > 0 or pos == total:
                size = min(room, total - pos) if room > 0 else 0
                part = data if size == total else data[pos:pos + size]
                pos += size
                last = end_stream and pos == total
                if part or last:
                    try:
                        h3.send_data(stream_id, part, end_stream=last)
                    except (ProtocolError, ValueError, RuntimeError, AssertionError) as exc:
                        raise ConnectionResetError(f"stream {stream_id}: {exc}") from None
                    transport.transmit_soon()
                if pos == total:
                    return
            await self._writable(stream_id)

    def end_stream(self, stream_id: int) -> None:
        h3, transport = self.h3, self.transport
        if h3 is None or transport is None:
            raise ConnectionResetError("client closed the connection")
        try:
            h3.send_data(stream_id, b"", end_stream=True)
        except (ProtocolError, ValueError, RuntimeError, AssertionError) as exc:
            raise ConnectionResetError(f"stream {stream_id}: {exc}") from None
        transport.transmit_soon()

    def reset(self, stream_id: int, internal_error: bool = False) -> None:
        code = ErrorCode.H3_INTERNAL_ERROR if internal_error else ErrorCode.H3_REQUEST_CANCELLED
        self._send_reset(stream_id, code)
        stream = self.streams.get(stream_id)
        if stream is None or not stream.body.complete:
            self._stop_reading(stream_id, code)
        if self.transport is not None:
            self.transport.transmit_soon()

    def consumed(self, stream_id: int, size: int) -> None:
        if self.quic is not None and self.transport is not None:
            self.quic.consumed(stream_id, size)
            self.transport.transmit_soon()  # the window update, when one is due

    def stream_done(self, stream: Stream, complete: bool) -> None:
        sid = stream.stream_id
        if self.streams.get(sid) is stream:
            del self.streams[sid]
        if complete:
            self.completed += 1
        self._wake(sid)
        if self.quic is not None:
            self.quic.forget_stream(sid)  # what the handler left unread opens the windows again
        body = stream.body
        if not body.complete and self.transport is not None:
            body.finish()
            self.finished.add(sid)
            self._stop_reading(sid, ErrorCode.H3_NO_ERROR)  # the response is complete: stop sending the body
        if self.transport is None:
            return
        self.transport.transmit_soon()
        if not self.streams:
            if self.goaway_sent:
                self._close()
            else:
                self._arm(self.timeouts.idle)

    def close_after_streams(self) -> None:
        self.drain()

    # --- lifecycle -------------------------------------------------------------------------

    def drain(self, close_idle: bool = True) -> None:
        """Graceful close: GOAWAY now; the streams in flight finish; then close."""
        if self.transport is None or self.goaway_sent:
            return
        self.goaway_sent = True
        if self.h3 is None or self.tls is None:  # still in the handshake: no request to finish
            self._close()
            return
        self.goaway_id = self.highest + 4
        self.h3.send_goaway(self.goaway_id)
        self.transport.transmit_soon()
        if not self.streams:
            self._arm(GOAWAY_LINGER)  # a request already on its way is rejected, not lost

    def _timed_out(self) -> None:
        self.deadline = 0.0
        if self.streams or self.transport is None:
            return
        if not self.goaway_sent and self.h3 is not None and self.tls is not None:
            self.goaway_sent = True
            self.goaway_id = self.highest + 4
            self.h3.send_goaway(self.goaway_id)
        self._close()

    def _close(self) -> None:
        """Close gracefully once every response written has been acknowledged (the QUIC
        idle timeout, or the grace period, ends a client that never acknowledges)."""
        self.closing = True
        if self.transport is not None and self.quic is not None and self.quic.responses_delivered():
            self.transport.close(ErrorCode.H3_NO_ERROR)

    def _calm(self, reason: str) -> None:
        log.warning("closing an abusive HTTP/3 connection", extra={"reason": reason, "remote_ip": self.remote[0]})
        self.goaway_sent, self.goaway_id = True, 0  # no request more is taken
        for stream in list(self.streams.values()):
            stream.cancel()
        self.streams.clear()
        if self.transport is not None:
            self.transport.close(ErrorCode.H3_EXCESSIVE_LOAD, reason)

    def _arm(self, seconds: float) -> None:
        self.deadline = self.loop.time() + seconds if seconds > 0 else 0.0

    # --- helpers ---------------------------------------------------------------------------

    def _send_reset(self, sid: int, code: int) -> None:
        if self.quic is not None:
            try:
                self.quic.reset_stream(sid, code)
            except ValueError:
                pass  # the stream is over already

    def _stop_reading(self, sid: int, code: int) -> None:
        if self.quic is not None:
            try:
                self.quic.stop_stream(sid, code)
            except ValueError:
                pass  # the stream is over already

    def _wake(self, sid: int) -> None:
        waiter = self.send_waiters.pop(sid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_senders(self) -> None:
        """Acknowledgements came: wake the streams whose unacknowledged bytes fell below half."""
        quic = self.quic
        if quic is None:
            return
        for sid in [s for s in self.send_waiters if quic.unacked(s) < SEND_BUFFER // 2]:
            self._wake(sid)

    async def _writable(self, stream_id: int) -> None:
        """Wait until the client has acknowledged enough of the stream; reset the stream after
        the write timeout (else the idle timeout) without progress."""
        waiter = self.send_waiters.get(stream_id)
        if waiter is None or waiter.done():
            waiter = self.send_waiters[stream_id] = self.loop.create_future()
        timeout = self.timeouts.write or self.timeouts.idle or None
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            self.send_waiters.pop(stream_id, None)
            self.reset(stream_id)
            raise ConnectionResetError(f"stream {stream_id}: the client acknowledged nothing for {timeout}s") from None


