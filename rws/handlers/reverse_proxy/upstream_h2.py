"""HTTP/2 to an upstream over the h2 library (sans-IO): exchanges share a connection, one
stream each.

A connection is ready once the upstream's SETTINGS have arrived; from then on it carries
up to `min(the upstream's MAX_CONCURRENT_STREAMS, MAX_STREAMS)` streams at once, and the
pool (upstream_pool.py) dials another when every stream is taken. Flow control both ways:

- Request bodies are read from the client only as far as the upstream's windows (the
  stream's and the connection's) allow, so nothing is read ahead of what the upstream
  takes; a body goes on streaming after the response head came (gRPC streaming calls).
- Response bodies: a stream may have `STREAM_WINDOW` bytes unread, and its window is
  given back only as the client's side takes them, so a slow client holds up its own
  stream and nothing else (the connection's window covers every stream's).

A GOAWAY from the upstream: the connection takes no new streams; the streams above its
last stream id were never processed, and neither were streams reset with REFUSED_STREAM:
both fail with `StreamRefused`, which the transport sends again on another stream. The
other streams finish, then the connection closes. A connection whose stream ids are
about to run out (`STREAM_ID_LIMIT`) is retired the same way, without the GOAWAY.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from h2.config import H2Configuration
from h2.errors import ErrorCodes
from h2.events import (ConnectionTerminated, DataReceived, InformationalResponseReceived,
                       RemoteSettingsChanged, ResponseReceived, StreamEnded, StreamReset, TrailersReceived,
                       WindowUpdated)
from h2.exceptions import H2Error, ProtocolError
from h2.settings import SettingCodes, Settings

from rws.handlers.reverse_proxy.exchange import DialError, UpstreamError, UpstreamResponse, UpstreamTimeout
from rws.handlers.reverse_proxy.forwarding import request_fields
from rws.handlers.reverse_proxy.upstream_h2_stream import H2Stream, StreamRefused
from rws.protocols.http2 import H2State
from rws.http.message import Headers

if TYPE_CHECKING:
    from rws.handlers.reverse_proxy.upstream_pool import Pool

log = logging.getLogger(__name__)

MAX_STREAMS = 100  # streams at once on one connection, whatever more the upstream allows
STREAM_WINDOW = 256 * 1024  # response bytes a stream may have unread
CONNECTION_WINDOW = STREAM_WINDOW * MAX_STREAMS  # ... every stream of a connection at once
MAX_BODY_READ = 256 * 1024  # request body bytes read from the client at once (within the window)
STREAM_ID_LIMIT = 2**31 - 1  # a connection whose next stream id would pass this is retired


class H2UpstreamConnection(asyncio.Protocol):
    """One HTTP/2 connection to an upstream (h2c or TLS with ALPN `h2`)."""

    def __init__(self, pool: Pool, scheme: str) -> None:
        self.pool = pool
        self.scheme = scheme.encode()  # `:scheme`: http for h2c, https over TLS
        self.loop = asyncio.get_running_loop()
        self.h2 = H2State(H2Configuration(client_side=True, header_encoding=None,
                                               validate_outbound_headers=False, normalize_outbound_headers=False))
        header_list = pool.transport.max_response_header_size
        self.h2.local_settings = Settings(client=True, initial_values={
            SettingCodes.ENABLE_PUSH: 0,
            SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            SettingCodes.MAX_HEADER_LIST_SIZE: header_list,
        })
        self.h2.decoder.max_header_list_size = header_list
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = self.loop.create_future()  # the upstream's SETTINGS came
        self.streams: dict[int, H2Stream] = {}
        self.next_stream_id = 1
        self.goaway = False  # the upstream sent GOAWAY: no new streams
        self.retiring = False  # no new streams; close once the last one is done
        self.closed = False
        self.idle_since = time.monotonic()
        self.write_paused: asyncio.Future[None] | None = None

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as exc:
            self._flush()  # h2's GOAWAY
            self._lose(UpstreamError(f"HTTP/2 protocol error from the upstream: {exc}"))
            return
        event: Any
        for event in events:
            kind = type(event)
            if kind is DataReceived:
                self._data(event)
            elif kind is ResponseReceived:
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.head_received(event.headers)
            elif kind is TrailersReceived:
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.trailers_received(event.headers)
            elif kind is StreamEnded:
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.ended()
            elif kind is InformationalResponseReceived:
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.informational_received(event.headers)
            elif kind is StreamReset:
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.reset_by_upstream(event.error_code)
            elif kind is WindowUpdated:
                self._wake_senders(event.stream_id)
            elif kind is RemoteSettingsChanged:
                self._settings(event)
            elif kind is ConnectionTerminated:
                self._goaway(event)
        self._flush()

    def eof_received(self) -> bool | None:
        self.retiring = True
        return None  # close: HTTP/2 has no half-closed connections

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._lose(UpstreamError(f"the upstream connection was lost{': ' + str(exc) if exc else ''}"))
        if self.write_paused is not None and not self.write_paused.done():
            self.write_paused.set_result(None)
        self.pool.h2_closed(self)

    def pause_writing(self) -> None:
        if self.write_paused is None or self.write_paused.done():
            self.write_paused = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.write_paused is not None and not self.write_paused.done():
            self.write_paused.set_result(None)

    # --- what the upstream sent ------------------------------------------------------------------

    def _data(self, event: DataReceived) -> None:
        sid = event.stream_id
        stream = self.streams.get(sid)
        size = event.flow_controlled_length or 0
        data = event.data or b""
        if stream is None or stream.released:  # nobody reads it: give the window back now
            if size:
                self.h2.acknowledge(sid, size)
            return
        if size > len(data):
            self.h2.acknowledge(sid, size - len(data))  # padding
        if data:
            stream.data_received(data)

    def _settings(self, event: RemoteSettingsChanged) -> None:
        if not self.ready.done():
            self.ready.set_result(None)
        changed = event.changed_settings
        if SettingCodes.INITIAL_WINDOW_SIZE in changed:
            self._wake_senders(0)
        if SettingCodes.MAX_CONCURRENT_STREAMS in changed:
            self.pool.h2_room()

    def _goaway(self, event: ConnectionTerminated) -> None:
        """No new streams; those the upstream will not process fail as refused."""
        self.goaway = self.retiring = True
        last = event.last_stream_id if event.last_stream_id is not None else 2**31
        if not self.ready.done():
            self.ready.set_exception(DialError(f"the upstream refused the connection (GOAWAY {event.error_code!r})"))
            self.ready.exception()  # retrieved: nobody may be waiting
        for sid, stream in list(self.streams.items()):
            if sid > last:
                stream.fail(StreamRefused(f"the upstream went away before stream {sid} (GOAWAY)"))
        if not self.streams:
            self.close()

    def _lose(self, error: UpstreamError) -> None:
        """The connection is gone (or unusable): every stream on it fails."""
        self.closed = self.retiring = True
        if not self.ready.done():
            self.ready.set_exception(DialError(f"the upstream closed the connection before its settings: {error}"))
            self.ready.exception()  # retrieved: nobody may be waiting
        for stream in list(self.streams.values()):
            stream.fail(UpstreamError(str(error), answered=stream.received_any))
            stream.wake_sender()
        if self.transport is not None:
            self.transport.close()

    # --- streams -----------------------------------------------------------------------------

    def has_room(self) -> bool:
        """Whether a new stream may start here now."""
        if self.retiring or not self.ready.done():  # (a connection whose settings never came is retiring)
            return False
        limit = min(self.h2.remote_settings.max_concurrent_streams, MAX_STREAMS)
        return len(self.streams) < limit and self.next_stream_id <= STREAM_ID_LIMIT

    async def exchange(self, method: str, target: str, headers: Headers, body: Any, *,
                       informational: Any) -> UpstreamResponse:
        """Send a request on a new stream (the caller checked `has_room`, with no wait
        since) and wait for the response head; the body (bytes, or an async source with
        `read(n)`) goes on streaming after it."""
        settings = self.pool.transport
        stream = self._open(method, target, headers, body, informational)
        try:
            if settings.response_header_timeout:
                await asyncio.wait_for(asyncio.shield(stream.head), settings.response_header_timeout)
            else:
                await stream.head
        except asyncio.TimeoutError:
            stream.release()
            raise UpstreamTimeout(f"no response from the upstream within {settings.response_header_timeout}s") from None
        except StreamRefused as exc:
            stream.release()
            if stream.body_read:  # part of a streamed body is gone: it can't be sent again
                raise UpstreamError(str(exc), answered=False) from None
            raise
        except BaseException:
            stream.release()
            raise
        return stream.response(settings.read_timeout)

    def _open(self, method: str, target: str, headers: Headers, body: Any, informational: Any) -> H2Stream:
        sid = self.next_stream_id
        self.next_stream_id += 2
        if self.next_stream_id > STREAM_ID_LIMIT or not self.pool.transport.keep_alive:
            self.retiring = True  # this is its last stream
        stream = self.streams[sid] = H2Stream(self, sid, informational)
        empty = body is None or body == b""
        try:
            self.h2.send_headers(sid, request_fields(method, self.scheme, target, headers), end_stream=empty)
            if empty:
                stream.sent_all = True
            elif isinstance(body, bytes) and len(body) <= self.h2.local_flow_control_window(sid):
                self.h2.send_within(sid, body, 0, True, len(body))  # the common case: no need to wait for a window
                stream.sent_all = True
            else:
                stream.sender = asyncio.ensure_future(self._send_body(stream, body))
        except H2Error as exc:
            stream.release()
            raise UpstreamError(f"sending the request: {exc}", answered=False) from None
        finally:
            self._flush()
        return stream

    async def _send_body(self, stream: H2Stream, body: Any) -> None:
        """Send a request body within the upstream's windows, reading from the client only
        as much as they allow. A failure fails the stream; a stream the upstream closed
        just stops (its response tells the rest)."""
        sid = stream.stream_id
        timeout = self.pool.transport.write_timeout or None
        try:
            if isinstance(body, bytes):
                await self._send(stream, body, True, timeout)
                return
            while True:
                window = await self._window(stream, timeout)
                data = await body.read(min(window, MAX_BODY_READ))
                if not data:
                    break
                stream.body_read = True
                await self._send(stream, data, False, timeout)
            await self._send(stream, b"", True, timeout)
        except asyncio.TimeoutError:
            stream.fail(UpstreamTimeout(f"the upstream took no request body for {timeout}s"))
            self._reset(sid)
        except (H2Error, _StreamGone):
            return  # the stream is closed or failed already
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the sending task's boundary: reading the client's body failed
            log.debug("request body not sent", extra={"error": str(exc)})
            stream.fail(UpstreamError(f"sending the request body: {exc}", answered=stream.received_any))
            self._reset(sid)

    async def _send(self, stream: H2Stream, data: bytes, end: bool, timeout: float | None) -> None:
        sid, pos, total = stream.stream_id, 0, len(data)
        while True:
            if self.transport is None:
                raise _StreamGone()
            pos = self.h2.send_within(sid, data, pos, end, self.h2.local_flow_control_window(sid))
            self._flush()
            if self.write_paused is not None and not self.write_paused.done():
                await asyncio.wait_for(asyncio.shield(self.write_paused), timeout)
            if pos >= total:
                break
            await self._window(stream, timeout)
        if end:
            stream.sent_all = True

    async def _window(self, stream: H2Stream, timeout: float | None) -> int:
        """The bytes the stream may send now, once the upstream's windows allow some."""
        while True:
            if stream.error is not None or stream.released:
                raise _StreamGone()
            window = self.h2.local_flow_control_window(stream.stream_id)
            if window > 0:
                return window
            stream.window_waiter = self.loop.create_future()
            try:
                await asyncio.wait_for(stream.window_waiter, timeout)
            finally:
                stream.window_waiter = None

    def _wake_senders(self, sid: int) -> None:
        if sid == 0:
            for each in self.streams.values():
                each.wake_sender()
            return
        stream = self.streams.get(sid)
        if stream is not None:
            stream.wake_sender()

    def consumed(self, sid: int, size: int) -> None:
        """The client's side took `size` bytes of a stream's response: open its window."""
        self.h2.acknowledge(sid, size)
        self._flush()

    def stream_done(self, stream: H2Stream) -> None:
        """A stream's exchange is over (its response read, failed or dropped)."""
        sid = stream.stream_id
        if stream.buffered:  # what nobody will read still counts against the connection window
            self.h2.acknowledge(sid, stream.buffered)
            stream.buffered = 0
        if not (stream.done and stream.sent_all):
            self._reset(sid)  # stop what is left of the stream, both ways
        if self.streams.get(sid) is stream:
            del self.streams[sid]
        self._flush()
        if not self.streams:
            if self.retiring:
                self.close()
            else:
                self.idle_since = time.monotonic()
        self.pool.h2_room()

    # --- lifecycle ---------------------------------------------------------------------------

    def retire(self) -> None:
        """Take no new streams; close once the last one is done."""
        self.retiring = True
        if not self.streams:
            self.close()

    def close(self) -> None:
        """Close now, saying GOAWAY first if the connection is still good."""
        self.retiring = True
        if self.closed:
            return
        self.closed = True
        if self.transport is not None:
            if not self.goaway:
                try:
                    self.h2.close_connection()
                except H2Error:
                    pass  # h2 has closed the connection itself: nothing more to say
                self._flush()
            self.transport.close()

    # --- helpers ---------------------------------------------------------------------------

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def _reset(self, sid: int) -> None:
        self.h2.reset_quietly(sid, ErrorCodes.CANCEL)
        self._flush()


class _StreamGone(Exception):
    """The stream a request body was being sent on has ended or failed."""
