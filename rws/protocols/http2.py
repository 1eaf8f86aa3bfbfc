"""The asyncio shell of an HTTP/2 connection over the h2 library (sans-IO).

Each request stream runs as a `Stream` (rws.protocols.multiplexed), so handlers see the
same App interface as over HTTP/1. Flow control ties h2's windows to asyncio:

- Request bodies: a stream's window (and the connection's) is given back only as its
  handler reads, so a client can't make rws buffer more than the windows: a slow handler
  slows its own upload only while its stream window (`STREAM_WINDOW`) is full, and
  the connection window is `CONNECTION_WINDOW`.
- Responses: a stream sends within its own window and the connection's, and waits while
  the transport's buffer is full; a stream whose window stays shut waits alone (and is
  reset after `idle` without progress). A client that sends frames but doesn't read the
  answers (SETTINGS, PING floods) stops being read once `MAX_WRITE_BUFFER` waits.

Rapid reset: at most `max_concurrent_streams` handlers run at once; further streams wait
their turn (a reset removes a waiting stream without running it) and a connection with
four times as many waiting gets GOAWAY `ENHANCE_YOUR_CALM`, as Go's server does. So does
one whose resets outnumber its completed requests by far.

Graceful close (shutdown, reload, a handler's `Connection: close`): GOAWAY with the last
stream taken; the streams in flight finish, newer ones are refused (REFUSED_STREAM, so
clients retry them), then the connection closes. The GOAWAY frame is written here, not
by h2, whose connection state can't send anything after its own GOAWAY; and a client's
graceful GOAWAY lets the streams it opened finish (`H2State`).

Writes: what h2 queues goes out at the end of the loop's turn (`_flush`), so the streams
that answer in the same turn share one write; while a read is handled, once at its end.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import logging
import re
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (ConnectionTerminated, DataReceived, Event, RemoteSettingsChanged, RequestReceived as H2Request,
                       StreamEnded, StreamReset, TrailersReceived, WindowUpdated)
from h2.exceptions import H2Error, ProtocolError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import Frame, GoAwayFrame

from rws.protocols.events import RequestReceived
from rws.protocols.flow import Deadlines, addresses
from rws.protocols.http1.core import DEFAULT_MAX_HEADER_BYTES
from rws.protocols.multiplexed import CONNECTION_FIELDS, GOAWAY_LINGER, Stream, abusive_resets, request_head

log = logging.getLogger(__name__)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_CONCURRENT_STREAMS = 250  # Go's default
STREAM_WINDOW = 256 * 1024  # request body bytes a stream may have unread
CONNECTION_WINDOW = 2 * 1024 * 1024  # ... all the streams of a connection together
MAX_FRAME_SIZE = 16384
MAX_WRITE_BUFFER = 1024 * 1024  # bytes waiting to go out before the client stops being read
MAX_ENCODER_TABLE = 4096  # our HPACK table, whatever size the client allows (as Go)
BATCH_LIMIT = 64 * 1024  # body bytes held back while batching


class H2State(H2Connection):
    """h2's connection as rws runs it, serving clients here and to upstreams
    (rws.handlers.reverse_proxy.upstream_h2):

    - A GOAWAY from the peer doesn't end it at once: h2 refuses every frame after one,
      but the streams the GOAWAY lets finish must be able to (RFC 9113 6.8). Whoever uses
      it opens no new stream after the GOAWAY.
    - `send_within` sends DATA frames within a window; `acknowledge` and `reset_quietly`
      do nothing on a stream or connection that is over already."""

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[Frame], list[Event]]:
        event = ConnectionTerminated()
        try:
            event.error_code = ErrorCodes(frame.error_code)
        except ValueError:
            event.error_code = frame.error_code
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]

    def send_within(self, stream_id: int, data: bytes, start: int, end_stream: bool, window: int) -> int:
        """DATA frames of `data` from `start`, `window` bytes at most, each within the peer's
        frame size; END_STREAM with the last when `end_stream` and all of it went (alone
        for empty data). Where the bytes sent end."""
        total, pos = len(data), start
        if total == 0 and end_stream:
            self.end_stream(stream_id)
        frame = self.max_outbound_frame_size
        while pos < total and window > 0:
            size = min(window, frame, total - pos)
            part = data if size == total else data[pos:pos + size]
            pos += size
            window -= size
            self.send_data(stream_id, part, end_stream=end_stream and pos == total)
        return pos

    def acknowledge(self, stream_id: int, size: int) -> None:
        """Give `size` received bytes back to the windows (the connection's only, once the
        stream is gone)."""
        try:
            self.acknowledge_received_data(size, stream_id)
        except H2Error:
            pass  # the connection is closing: no window to give back

    def reset_quietly(self, stream_id: int, code: int) -> None:
        try:
            self.reset_stream(stream_id, code)
        except H2Error:
            pass  # closed already: nothing to stop


class Http2Connection(asyncio.Protocol):
    """One HTTP/2 connection; `app` is the server (`handle`, `sent`)."""

    def __init__(self, app: Any, *, scheme: str, timeouts: Any, max_header_bytes: int = 0,
                 on_close: Any = None, upgrade: tuple[bytes, RequestReceived] | None = None) -> None:
        """`upgrade`: an HTTP/1.1 `Upgrade: h2c` request's HTTP2-Settings and head, which
        becomes stream 1."""
        self.app = app
        self.scheme = scheme
        self.timeouts = timeouts
        self.on_close = on_close
        self.upgrade = upgrade
        self.loop = asyncio.get_running_loop()
        config = H2Configuration(client_side=False, header_encoding=None, validate_outbound_headers=False,
                                 normalize_outbound_headers=False, validate_inbound_headers=False,
                                 normalize_inbound_headers=False)
        self.h2 = H2State(config)
        header_list = max_header_bytes or DEFAULT_MAX_HEADER_BYTES
        self.h2.local_settings = Settings(client=False, initial_values={
            SettingCodes.ENABLE_PUSH: 0,
            SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
            SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            SettingCodes.MAX_FRAME_SIZE: MAX_FRAME_SIZE,
            SettingCodes.MAX_HEADER_LIST_SIZE: header_list,
        })
        self.h2.decoder.max_header_list_size = header_list
        self.transport: asyncio.Transport | None = None
        self.remote: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)
        self.tls: Any = None
        self.streams: dict[int, Stream] = {}
        self.waiting: collections.deque[Stream] = collections.deque()  # streams not yet started
        self.running = 0  # handlers started and not finished
        self.window_waiters: dict[int, asyncio.Future[None]] = {}
        self.write_paused: asyncio.Future[None] | None = None
        self.reading_paused = False
        self.batching = False  # inside data_received: write once, at the end
        self.queued = 0  # body bytes given to h2 since the last write
        self.flush_scheduled = False
        self.goaway_sent = False
        self.abandoned = False  # closed for misbehaving: the rest of what was read is ignored
        self.last_stream_id = 0
        self.resets = 0
        self.completed = 0
        self.deadline = 0.0
        self.deadlines = Deadlines.for_loop(self.loop)

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.remote, self.local = addresses(transport)
        if self.scheme == "https":
            self.tls = transport.get_extra_info("ssl_object")
        self.deadlines.watch(self)
        if self.upgrade is not None:
            settings, head = self.upgrade
            self.upgrade = None
            try:
                self.h2.initiate_upgrade_connection(settings)
            except (H2Error, ValueError) as exc:  # bad HTTP2-Settings (checked before the 101, but still)
                log.debug("bad HTTP2-Settings", extra={"error": str(exc)})
                transport.close()
                return
            self.h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
            self._write_now()
            self._open_stream(1, head)
        else:
            self.h2.initiate_connection()
            self.h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
            self._write_now()
            self._arm(self.timeouts.idle)

    def data_received(self, data: bytes) -> None:
        self.batching = True
        try:
            try:
                events = self.h2.receive_data(data)
            except ProtocolError as exc:
                log.debug("HTTP/2 protocol error", extra={"error": str(exc)})
                self._fail()
                return
            event: Any
            for event in events:
                kind = type(event)
                if kind is DataReceived:
                    self._data(event)
                elif kind is H2Request:
                    self._request(event)
                elif kind is StreamEnded:
                    stream = self.streams.get(event.stream_id)
                    if stream is not None and not stream.body.complete:
                        stream.body.finish()
                elif kind is WindowUpdated:
                    self._wake(event.stream_id)
                elif kind is StreamReset:
                    self._reset(event.stream_id)
                elif kind is RemoteSettingsChanged:
                    self._settings(event)
                elif kind is TrailersReceived:
                    pass  # request trailers are not passed on (as HTTP/1 chunked trailers)
                elif kind is ConnectionTerminated:
                    self._terminated(event)
                    if self.transport is None or self.abandoned:
                        return
                if self.abandoned:
                    return
        finally:
            self.batching = False
            self._write_now()
        transport = self.transport
        if transport is not None and not self.reading_paused and transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            self.reading_paused = True  # the client sends but doesn't read what it is answered
            transport.pause_reading()

    def eof_received(self) -> bool | None:
        for stream in list(self.streams.values()):
            if not stream.body.complete:
                stream.body.finish(ConnectionResetError("client closed the connection"))
        return None  # close: HTTP/2 has no half-closed connections

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.deadline = 0.0
        self.deadlines.forget(self)
        for stream in list(self.streams.values()):
            stream.cancel()
        self.streams.clear()
        self.waiting.clear()
        for waiter in self.window_waiters.values():
            if not waiter.done():
                waiter.set_result(None)
        if self.write_paused is not None and not self.write_paused.done():
            self.write_paused.set_result(None)
        if self.on_close is not None:
            self.on_close(self)

    def pause_writing(self) -> None:
        if self.write_paused is None or self.write_paused.done():
            self.write_paused = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.write_paused is not None and not self.write_paused.done():
            self.write_paused.set_result(None)
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()

    # --- what the client sent ----------------------------------------------------------------

    def _request(self, event: H2Request) -> None:
        sid = event.stream_id
        if self.goaway_sent and sid > self.last_stream_id:
            self.h2.reset_quietly(sid, ErrorCodes.REFUSED_STREAM)
            return
        head = _head(sid, event.headers or [], event.stream_ended is None)
        if head is None:
            self.h2.reset_quietly(sid, ErrorCodes.PROTOCOL_ERROR)
            return
        self._open_stream(sid, head)

    def _open_stream(self, sid: int, head: RequestReceived) -> None:
        stream = Stream(self, sid, head)
        self.streams[sid] = stream
        self.deadline = 0.0
        if self.running < MAX_CONCURRENT_STREAMS:
            self.running += 1
            stream.start(self.app)
        else:
            self.waiting.append(stream)
            if len(self.waiting) > 4 * MAX_CONCURRENT_STREAMS:
                self._calm("too many streams waiting for a handler")

    def _data(self, event: DataReceived) -> None:
        sid = event.stream_id
        stream = self.streams.get(sid)
        size = event.flow_controlled_length
        data = event.data
        if stream is None or stream.body.complete:  # nobody reads it: give the window back now
            if size:
                self.h2.acknowledge(sid, size)
            return
        if size > len(data):
            self.h2.acknowledge(sid, size - len(data))  # padding
        if data:
            stream.body.feed(data)

    def _reset(self, sid: int) -> None:
        stream = self.streams.pop(sid, None)
        if stream is None:
            return
        if stream in self.waiting:
            self.waiting.remove(stream)
            unread = stream.body.bytes_read - stream.acked
            if unread > 0:  # its body will never be read: the connection's window gets it back
                self.h2.acknowledge(sid, unread)
        elif not stream.ended:
            self.resets += 1
            if abusive_resets(self.resets, self.completed):
                self._calm("too many streams reset")
        stream.cancel()

    def _settings(self, event: RemoteSettingsChanged) -> None:
        table = event.changed_settings.get(SettingCodes.HEADER_TABLE_SIZE)
        if table is not None and table.new_value > MAX_ENCODER_TABLE:
            self.h2.encoder.header_table_size = MAX_ENCODER_TABLE
        if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
            self._wake(0)

    def _terminated(self, event: ConnectionTerminated) -> None:
        """The client sent GOAWAY: a graceful one lets the streams it opened finish, and
        then the connection closes; any other ends the connection now."""
        if event.error_code != ErrorCodes.NO_ERROR:
            self._write_now()
            self._abandon()
            return
        if not self.goaway_sent:
            self._goaway(ErrorCodes.NO_ERROR)  # (streams it might still open are refused)
        if not self.streams and self.transport is not None:
            self.transport.close()

    # --- what streams send (the Mux interface) ------------------------------------------------

    def send_headers(self, stream_id: int, fields: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        try:
            self.h2.send_headers(stream_id, fields, end_stream=end_stream)
        except H2Error as exc:
            raise ConnectionResetError(f"stream {stream_id}: {exc}") from None
        self._flush()

    async def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        h2 = self.h2
        total = len(data)
        pos = 0
        while True:
            if self.write_paused is not None and not self.write_paused.done():
                await self.write_paused
            if self.transport is None:
                raise ConnectionResetError("client closed the connection")
            try:
                pos = h2.send_within(stream_id, data, pos, end_stream, h2.local_flow_control_window(stream_id))
            except H2Error as exc:
                raise ConnectionResetError(f"stream {stream_id}: {exc}") from None
            self.queued += total
            if self.queued > BATCH_LIMIT:
                self._write_now()  # so that a full transport is noticed before more is queued
            else:
                self._flush()
            if pos == total:
                return
            await self._window(stream_id)

    def end_stream(self, stream_id: int) -> None:
        try:
            self.h2.end_stream(stream_id)
        except H2Error as exc:
            raise ConnectionResetError(f"stream {stream_id}: {exc}") from None
        self._flush()

    def reset(self, stream_id: int, internal_error: bool = False) -> None:
        self.h2.reset_quietly(stream_id, ErrorCodes.INTERNAL_ERROR if internal_error else ErrorCodes.CANCEL)
        self._flush()

    def consumed(self, stream_id: int, size: int) -> None:
        self.h2.acknowledge(stream_id, size)
        self._flush()

    def stream_done(self, stream: Stream, complete: bool) -> None:
        sid = stream.stream_id
        if self.streams.get(sid) is stream:
            del self.streams[sid]
        self.running -= 1
        if complete:
            self.completed += 1
        body = stream.body
        unread = body.bytes_read - stream.acked
        if unread > 0:  # what the handler never read still counts against the connection window
            stream.acked += unread
            self.h2.acknowledge(sid, unread)
        if not body.complete and self.transport is not None:
            body.finish()
            self.h2.reset_quietly(sid, ErrorCodes.NO_ERROR)  # the response is complete: stop sending the body
        while self.waiting and self.running < MAX_CONCURRENT_STREAMS and self.transport is not None:
            self.running += 1
            self.waiting.popleft().start(self.app)
        if not self.streams and self.transport is not None and self.goaway_sent:
            self._write_now()
            self.transport.close()
            return
        self._flush()
        if not self.streams and self.transport is not None:
            self._arm(self.timeouts.idle)

    def close_after_streams(self) -> None:
        self.drain()

    # --- lifecycle -------------------------------------------------------------------------

    def drain(self, close_idle: bool = True) -> None:
        """Graceful close: GOAWAY now; the streams in flight finish; then close."""
        if self.transport is None or self.goaway_sent:
            return
        self._goaway(ErrorCodes.NO_ERROR)
        if not self.streams:
            if close_idle:  # shutting down
                self.transport.close()
            else:  # a reload: a request already on its way is refused (and retried), not lost
                self._arm(GOAWAY_LINGER)

    def _goaway(self, code: int, reason: bytes = b"") -> None:
        self.goaway_sent = True
        self.last_stream_id = self.h2.highest_inbound_stream_id
        self._write_now()
        frame = GoAwayFrame(0, last_stream_id=self.last_stream_id, error_code=code, additional_data=reason)
        if self.transport is not None:
            self.transport.write(frame.serialize())

    def _calm(self, reason: str) -> None:
        log.warning("closing an abusive HTTP/2 connection", extra={"reason": reason, "remote_ip": self.remote[0]})
        self._goaway(ErrorCodes.ENHANCE_YOUR_CALM, reason.encode())
        self._abandon()

    def _fail(self) -> None:
        """A connection error: h2 has queued its GOAWAY; send it and close."""
        self.batching = False
        self._write_now()
        self._abandon()

    def _abandon(self) -> None:
        self.abandoned = True
        for stream in list(self.streams.values()):
            stream.cancel()
        self.streams.clear()
        self.waiting.clear()
        if self.transport is not None:
            self.transport.close()

    def _timed_out(self) -> None:
        self.deadline = 0.0
        if self.streams:
            return
        if not self.goaway_sent:
            self._goaway(ErrorCodes.NO_ERROR)
        if self.transport is not None:
            self.transport.close()

    def _arm(self, seconds: float) -> None:
        self.deadline = self.loop.time() + seconds if seconds > 0 else 0.0

    # --- helpers ---------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write what h2 queued at the end of this turn of the loop: the streams that
        answer in the same turn go out in one write (one TLS record, one system call)."""
        if not self.batching and not self.flush_scheduled and self.transport is not None:
            self.flush_scheduled = True
            self.loop.call_soon(self._write_now)

    def _write_now(self) -> None:
        self.flush_scheduled = False
        self.queued = 0
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)


    def _wake(self, stream_id: int) -> None:
        if stream_id == 0:
            waiters = list(self.window_waiters.values())
            self.window_waiters.clear()
        else:
            found = self.window_waiters.pop(stream_id, None)
            waiters = [found] if found is not None else []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _window(self, stream_id: int) -> None:
        """Wait until the client opens the stream's window (or the connection's); reset
        the stream after `idle` seconds without."""
        waiter = self.window_waiters.get(stream_id)
        if waiter is None or waiter.done():
            waiter = self.window_waiters[stream_id] = self.loop.create_future()
        timeout = self.timeouts.write or self.timeouts.idle or None
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            self.reset(stream_id)
            raise ConnectionResetError(f"stream {stream_id}: the client opened no window for {timeout}s") from None
        finally:
            if self.window_waiters.get(stream_id) is waiter:  # (a reset stream's task is cancelled here)
                del self.window_waiters[stream_id]


def _head(sid: int, raw: list[tuple[bytes, bytes]], has_body: bool) -> RequestReceived | None:
    """A request head from a HEADERS block, or None if it is malformed (RFC 9113 8.2,
    8.3: the stream is reset)."""
    return request_head(sid, raw, has_body, "HTTP/2.0") if well_formed(raw) else None


def well_formed(fields: list[tuple[bytes, bytes]]) -> bool:
    """What h2's own inbound checks would see to, in one pass: lower-case token names,
    the four request pseudo-fields (each once, before the others), no connection-specific
    fields, `te` only `trailers`, and no NUL, CR, LF or surrounding whitespace in values.
    (h2's checks run as a chain of generators, a fifth of the cost of a proxied request.)"""
    seen: set[bytes] = set()
    regular = False
    for name, value in fields:
        if value and _BAD_VALUE.search(value):
            return False
        if name[:1] == b":":
            if regular or name not in _PSEUDO_FIELDS or name in seen:
                return False
            seen.add(name)
        else:
            regular = True
            if name not in _GOOD_NAMES:
                if not _NAME.fullmatch(name) or name in _CONNECTION_NAMES:
                    return False
                if len(_GOOD_NAMES) < 4096:
                    _GOOD_NAMES.add(name)
            if name == b"te" and value != b"trailers":
                return False
    return True


_PSEUDO_FIELDS = frozenset({b":method", b":scheme", b":authority", b":path"})
_CONNECTION_NAMES = frozenset(name.encode() for name in CONNECTION_FIELDS)
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_BAD_VALUE = re.compile(rb"[\x00\r\n]|^[ \t]|[ \t]\Z")
_GOOD_NAMES: set[bytes] = set()


SWITCHING_TO_H2C = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
_UPGRADE_FIELDS = frozenset({"connection", "upgrade", "http2-settings", "keep-alive", "proxy-connection", "te"})


def h2c_upgrade(head: RequestReceived) -> bytes | None:
    """The HTTP2-Settings of an HTTP/1.1 request asking to switch to h2c (RFC 7540 3.2),
    or None if it doesn't, or can't: a request with a body is answered over HTTP/1.1
    (as the RFC allows), and so is one whose settings are malformed."""
    if head.has_body or head.version != "HTTP/1.1":
        return None
    upgrade = settings = None
    for name, value in head.headers:
        lname = name.lower()
        if lname == "upgrade":
            upgrade = value
        elif lname == "http2-settings":
            if settings is not None:
                return None
            settings = value
    if settings is None or upgrade is None or "h2c" not in (t.strip().lower() for t in upgrade.split(",")):
        return None
    encoded = settings.strip().encode("latin-1")
    try:
        raw = base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4))
    except ValueError:
        return None
    if len(raw) % 6:
        return None
    return encoded


def h2c_head(head: RequestReceived) -> RequestReceived:
    """The upgrading request as HTTP/2's stream 1."""
    headers = [(n, v) for n, v in head.headers if n.lower() not in _UPGRADE_FIELDS]
    return RequestReceived(head.method, head.target, "HTTP/2.0", headers, True, False, False, None, False, False,
                           head.host, 1)
