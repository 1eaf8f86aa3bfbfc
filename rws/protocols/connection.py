"""The asyncio shell of an HTTP/1 connection: moves bytes between the socket and the core,
runs one exchange at a time (pipelined requests wait their turn, responses stay in
order), streams bodies both ways with flow control, and enforces the timeouts.

It knows nothing of routes or handlers: an `App` turns a request head and its body
stream into a response object (status, headers, body, close, abort), and hears when the
response has been sent.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from dataclasses import dataclass
from typing import Any, Protocol

from rws.protocols.flow import (FILE_CHUNK, BodyStream, Deadlines, FileBody, addresses, close_body, http_date,
                                run_eagerly)
from rws.protocols.events import RequestReceived
from rws.protocols.http2 import PREFACE, SWITCHING_TO_H2C, h2c_head, h2c_upgrade
from rws.protocols.http1.core import (CONTINUE, Http1Core, chunk, error_response, header_line, last_chunk,
                                       response_head, status_line_text)

log = logging.getLogger(__name__)

HIGH_WATER = 256 * 1024  # buffered request body bytes before reading pauses
MAX_PIPELINED = 16  # requests waiting their turn before reading pauses
DRAIN_LIMIT = 256 * 1024  # unread body bytes we still read to keep a connection alive
SMALL_FILE = 64 * 1024  # file bodies up to this size go out in one write with the head


@dataclass(slots=True)
class Timeouts:
    read_header: float = 60.0
    read_body: float = 0.0  # 0: none
    write: float = 0.0
    idle: float = 300.0


class App(Protocol):
    async def handle(self, head: RequestReceived, body: BodyStream, conn: HttpConnection) -> Any: ...

    def sent(self, response: Any, head: RequestReceived, written: int, body: BodyStream) -> None: ...


class HttpConnection(asyncio.Protocol):
    def __init__(self, app: App, backend: type, *, scheme: str = "http", max_header_bytes: int = 0,
                 timeouts: Timeouts | None = None, on_close: Any = None, deadlines: Deadlines | None = None) -> None:
        self.app = app
        self.core = Http1Core(backend, self, max_header_bytes)
        self.scheme = scheme
        self.half_close = True if scheme == "http" else None  # TLS transports can't keep writing after EOF
        self.tls: Any = None  # the TLS layer's SSLObject, once connected over TLS
        self.timeouts = timeouts or Timeouts()
        self.on_close = on_close
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.remote: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)
        self.pending: collections.deque[tuple[RequestReceived, BodyStream]] = collections.deque()
        self.receiving: BodyStream | None = None  # the body being parsed now
        self.task: asyncio.Task[None] | None = None
        self.reading_paused = False
        self.write_paused: asyncio.Future[None] | None = None
        self.closing = False  # close after the current response
        self.deadline = 0.0  # loop time after which the connection times out (0: none)
        self.deadlines = deadlines or Deadlines.for_loop(self.loop)
        self.stop_after_current = False
        self.head_timer = False  # the read_header timer runs for the head being received
        self.exchange: Any = None  # the app's state for the exchange in flight
        self.upgrade_buffer: bytearray | None = None  # bytes after a request that asked to switch protocols
        self.tunnel: Any = None  # after a 101: what carries the bytes both ways
        self.exchange_version = "HTTP/1.1"
        self.upgrade_body: tuple[BodyStream, int] | None = None  # an upgrade request's body still to come
        self.sniff: bytes | None = None  # with h2c: the first bytes, until they show whether they start HTTP/2
        self.h2c: Any = None  # with h2c: switches the connection to HTTP/2 (`HttpServer._switch_to_h2c`)

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport subclasses
        self.remote, self.local = addresses(transport)
        if self.scheme == "https":
            self.tls = transport.get_extra_info("ssl_object")
        self.deadlines.watch(self)
        self._arm(self.timeouts.idle)

    def data_received(self, data: bytes) -> None:
        if self.sniff is not None:
            data = self.sniff + data
            if PREFACE.startswith(data[:len(PREFACE)]):
                if len(data) < len(PREFACE):
                    self.sniff = data
                    return
                self.sniff = None
                self.h2c(self, data, None)
                return
            self.sniff = None
        if self.tunnel is not None:
            self.tunnel.client_data(data)
            return
        if self.upgrade_body is not None:
            data = self._upgrade_body(data)
        if self.upgrade_buffer is not None:
            self.upgrade_buffer += data  # the new protocol's first bytes, before the 101
            if len(self.upgrade_buffer) > HIGH_WATER and self.transport is not None:
                self.reading_paused = True
                self.transport.pause_reading()
            return
        core = self.core
        core.receive_data(data)
        if core.in_head and core.head_bytes and not self.head_timer and not self.pending and self.task is None:
            self.head_timer = True  # part of a head came: it must be complete within read_header
            self._arm(self.timeouts.read_header)
        self._proceed()

    def eof_received(self) -> bool | None:
        if self.tunnel is not None:
            self.tunnel.client_eof()
            return self.half_close
        self.core.receive_data(b"")
        if self.receiving is not None and not self.receiving.complete:
            self.receiving.finish(ConnectionResetError("client closed the connection"))
        self.closing = True
        if self.task is not None and not self.pending:
            # The client gave up on the response in flight (as Go's server, whose request
            # context ends when the client's side closes): stop waiting for it, and close.
            self.task.cancel()
            self._close()
            return self.half_close
        if self.task is None and not self.pending:
            self._close()
        else:
            self._proceed()
        return self.half_close  # keep our side open until the pipelined responses are written

    def connection_lost(self, exc: Exception | None) -> None:
        if self.tunnel is not None:
            self.tunnel.client_lost()
        self._disarm()
        self.deadlines.forget(self)
        if self.receiving is not None and not self.receiving.complete:
            self.receiving.finish(ConnectionResetError("client closed the connection"))
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.write_paused is not None and not self.write_paused.done():
            self.write_paused.set_result(None)
        self.transport = None
        if self.on_close is not None:
            self.on_close(self)

    def pause_writing(self) -> None:
        if self.write_paused is None or self.write_paused.done():
            self.write_paused = self.loop.create_future()
        if self.tunnel is not None:
            self.tunnel.client_pause_writing()

    def resume_writing(self) -> None:
        if self.write_paused is not None and not self.write_paused.done():
            self.write_paused.set_result(None)
        if self.tunnel is not None:
            self.tunnel.client_resume_writing()

    # --- what the core received (the Receiver) -------------------------------------------

    def request_received(self, head: RequestReceived) -> None:
        body = BodyStream(self, head.expect_continue)
        if not head.has_body:
            body.complete = True
        self.receiving = body
        self.pending.append((head, body))
        self.head_timer = False
        if self.task is None:
            self._disarm()

    def body_received(self, data: bytes) -> None:
        if self.receiving is not None:
            self.receiving.feed(data)

    def request_ended(self) -> None:
        if self.receiving is not None:
            self.receiving.finish()
            self.receiving = None

    def _proceed(self) -> None:
        """After input: pause reading if too much waits, and start the next exchange."""
        if self.core.failed or self.transport is None:
            return
        if not self.reading_paused and (len(self.pending) > 1 or self.receiving is not None):
            self._flow_control()
        if self.task is None and self.pending:
            self._start_next()

    def protocol_error(self, status: int, message: str) -> None:
        log.debug("malformed request", extra={"status": status, "reason": message})
        if self.receiving is not None and not self.receiving.complete:
            self.receiving.finish(ConnectionResetError(message))
        if self.task is None and self.transport is not None:
            self.transport.write(error_response(status))
            self._close()
        else:
            self.closing = True
            self.stop_after_current = True
            self.pending.clear()

    def upgrade_requested(self, leftover: bytes) -> None:
        """The request just received switches protocols if its handler agrees (a `101`
        with a tunnel); otherwise the connection closes after the response. Its
        Content-Length body, if the parser left it unread, comes first."""
        self.closing = True
        if self.pending:
            head, body = self.pending[-1]
            remaining = (head.content_length or 0) - body.bytes_read
            if remaining > 0:
                body.complete = False
                self.receiving = body
                self.upgrade_body = (body, remaining)
                leftover = self._upgrade_body(leftover)
        self.upgrade_buffer = bytearray(leftover)
        if self.task is None and self.pending:
            self._start_next()

    def _upgrade_body(self, data: bytes) -> bytes:
        """Feed an upgrade request's body from `data`; return what follows it."""
        assert self.upgrade_body is not None
        body, remaining = self.upgrade_body
        part, data = data[:remaining], data[remaining:]
        if part:
            body.feed(part)
        remaining -= len(part)
        self.upgrade_body = (body, remaining) if remaining > 0 else None
        if remaining <= 0:
            body.finish()
            self.receiving = None
        else:
            self._flow_control()
        return data

    def _flow_control(self) -> None:
        buffered = sum(b.size for _, b in self.pending) + (self.receiving.size if self.receiving else 0)
        if not self.reading_paused and (buffered > HIGH_WATER or len(self.pending) > MAX_PIPELINED):
            self.reading_paused = True
            if self.transport is not None:
                self.transport.pause_reading()

    def resume_if_needed(self) -> None:
        if not self.reading_paused or self.transport is None:
            return
        buffered = sum(b.size for _, b in self.pending) + (self.receiving.size if self.receiving else 0)
        if buffered <= HIGH_WATER // 2 and len(self.pending) <= MAX_PIPELINED:
            self.reading_paused = False
            self.transport.resume_reading()

    def send_continue(self) -> None:
        if self.transport is not None:
            self.transport.write(CONTINUE)

    def send_informational(self, status: int, headers: list[tuple[str, str]]) -> None:
        """A 1xx response (103 Early Hints) ahead of the final one, on HTTP/1.1 only."""
        if self.transport is not None and self.exchange_version == "HTTP/1.1":
            self.transport.write(response_head(status, headers))

    # --- exchanges ---------------------------------------------------------------------

    def _start_next(self) -> None:
        head, body = self.pending.popleft()
        self._disarm()
        if self.timeouts.read_body and not body.complete:
            self._arm(self.timeouts.read_body)
        # Run the exchange eagerly: most responses are ready without waiting for anything,
        # and then no task is created at all. If it has to wait, a task takes over.
        self.task = run_eagerly(self._exchange(head, body), self.loop)

    async def _exchange(self, head: RequestReceived, body: BodyStream) -> None:
        keep = False
        self.exchange_version = head.version
        if head.upgrade and self.h2c is not None and self.upgrade_buffer is not None:
            settings = h2c_upgrade(head)
            if settings is not None:
                self.task = None
                self._write(SWITCHING_TO_H2C)
                leftover = bytes(self.upgrade_buffer)
                self.upgrade_buffer = None
                self.h2c(self, leftover, (settings, h2c_head(head)))
                return
        try:
            response = await self.app.handle(head, body, self)
            if response.abort:
                self._close(abort=True)
                return
            keep = head.keep_alive and not self.closing and not response.close and not self.stop_after_current
            if body.complete:
                body.chunks.clear()
                body.size = 0
            else:
                keep = await self._unread_body_allows(body, keep)
            tunnel = getattr(response, "tunnel", None)
            if response.status == 101 and tunnel is not None and self.upgrade_buffer is not None:
                self._write_response(head, response, True)
                await self._run_tunnel(tunnel)
                return
            written = self._write_response(head, response, keep)
            if written < 0:
                written = await self._write_stream(response.body, written == _CHUNKED, response)
            if type(response.body) is FileBody and written < response.body.length and head.method != "HEAD":
                keep = False  # the file shrank: the body fell short of its Content-Length
            self.app.sent(response, head, written, body)
        except asyncio.CancelledError:
            return
        except ConnectionError:
            keep = False
        except TimeoutError as exc:  # what the body came from took too long (an upstream)
            log.warning("response body timed out", extra={"error": str(exc)})
            keep = False
        except Exception:  # the connection's task boundary: log once, drop the connection
            log.exception("error writing response")
            keep = False
        finally:
            self.task = None
        if not keep or self.transport is None:
            self._close()
            return
        if self.pending:
            self._start_next()
        else:
            self._arm(self.timeouts.idle)
            if self.reading_paused:
                self.resume_if_needed()

    async def _run_tunnel(self, tunnel: Any) -> None:
        """Carry the new protocol's bytes both ways until either side ends it; then close."""
        self._disarm()
        leftover = bytes(self.upgrade_buffer or b"")
        self.upgrade_buffer = None
        self.tunnel = tunnel
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()
        try:
            await tunnel.run(self, leftover)
        finally:
            self.tunnel = None
            self._close()

    async def _unread_body_allows(self, body: BodyStream, keep: bool) -> bool:
        """Whether the connection can go on after a handler left part of the body unread."""
        if not keep or body.expect_continue:
            return False  # the client never sent the body we never asked for
        read = 0
        while read <= DRAIN_LIMIT:
            data = await body.read(FILE_CHUNK)
            if not data:
                return keep
            read += len(data)
        return False

    def _write_response(self, head: RequestReceived, response: Any, keep: bool) -> int:
        """Write the status line and headers, and the body when it is in memory. Return the
        body bytes written, or `_STREAM`/`_CHUNKED` when the body must be streamed."""
        status: int = response.status
        body = response.body
        bodiless = status in (204, 304) or 100 <= status < 200
        no_body = bodiless or head.method == "HEAD"
        length: int | None = None
        kind = type(body)
        if kind is bytes or kind is bytearray or kind is memoryview:
            length = len(body)
        elif kind is FileBody:
            length = body.length
        lines = [status_line_text(status)]
        has_length = has_date = False
        connection_at: list[int] = []
        in_memory = length is not None and kind is not FileBody
        for name, value in response.headers:
            if len(name) in _SPECIAL_LENGTHS:
                lname = name.lower()
                if lname == "content-length":
                    # a body in memory is sent with its own length (except to HEAD, whose
                    # length describes the body a GET would get)
                    if bodiless or (in_memory and head.method != "HEAD" and value.strip() != str(length)):
                        continue
                    has_length = True
                elif lname == "transfer-encoding":
                    if bodiless or in_memory:
                        continue
                elif lname == "date":
                    has_date = True
                elif lname == "connection":
                    connection_at.append(len(lines))
            lines.append(header_line(name, value))
        streamed = _STREAM
        if not bodiless and not has_length:
            if length is not None:
                # as Go: a HEAD answer gets a computed length only if the handler wrote a body
                if head.method != "HEAD" or length:
                    lines.append(f"Content-Length: {length}\r\n")
            elif head.method != "HEAD":
                if head.version == "HTTP/1.1":
                    streamed = _CHUNKED
                    lines.append("Transfer-Encoding: chunked\r\n")
                else:
                    keep = False
        if not has_date:
            lines.append(_http_date())
        if not keep:
            for i in connection_at:
                lines[i] = ""
            if head.version != "HTTP/1.0" or head.keep_alive:  # an HTTP/1.0 client expects the close
                lines.append("Connection: close\r\n")
        elif head.version == "HTTP/1.0":
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        start = "".join(lines).encode("latin-1", "replace")
        if self.timeouts.write:
            self._arm(self.timeouts.write)
        if no_body:
            self._write(start)
            close_body(body)
            return 0
        if kind is FileBody:
            if length is not None and length <= SMALL_FILE:  # read at once, sent with the head
                try:
                    data = os.pread(body.file.fileno(), length, body.offset)
                finally:
                    body.file.close()
                self._write(start + data)
                return len(data)
        elif length is not None:
            self._write(start + bytes(body))
            return length
        self._write(start)
        return streamed

    async def _write_stream(self, body: Any, chunked: bool, response: Any) -> int:
        if type(body) is FileBody:
            try:
                return await self._write_file(body.file.fileno(), body.offset, body.length)
            finally:
                body.file.close()
        written = 0
        try:
            async for data in body:
                if not data:
                    continue
                written += len(data)
                self._write(chunk(data) if chunked else data)
                await self._drain()
        finally:
            close = getattr(body, "aclose", None)
            if close is not None:
                await close()
        if chunked:
            trailers = getattr(response, "trailers", None)
            self._write(last_chunk(list(trailers.items()) if trailers else None))
        return written

    async def _write_file(self, fd: int, offset: int, length: int) -> int:
        """Send `length` bytes of a file from `offset`: with zero-copy `sendfile` straight
        to the socket whenever the transport has nothing buffered (plain TCP and Unix
        sockets), else a chunk through the transport, waiting until it is flushed."""
        transport = self.transport
        if transport is None:
            raise ConnectionResetError("client closed the connection")
        sock = transport.get_extra_info("socket") if transport.get_extra_info("sslcontext") is None else None
        out = sock.fileno() if sock is not None else -1
        written = 0
        if out >= 0:
            transport.set_write_buffer_limits(high=0)  # pause_writing until each chunk is out
        try:
            while written < length:
                if self.transport is None or transport.is_closing():  # the descriptor may not be ours now
                    raise ConnectionResetError("client closed the connection")
                if out >= 0 and transport.get_write_buffer_size() == 0:
                    try:
                        sent = os.sendfile(out, fd, offset + written, min(length - written, 4 * FILE_CHUNK))
                    except BlockingIOError:
                        sent = -1
                    except OSError as exc:
                        raise ConnectionResetError(str(exc)) from exc
                    if sent == 0:
                        break  # the file shrank
                    if sent > 0:
                        written += sent
                        continue
                # the socket is full (or can't take sendfile): queue a chunk, wait until it is out
                data = os.pread(fd, min(length - written, FILE_CHUNK), offset + written)
                if not data:
                    break  # the file shrank
                self._write(data)
                written += len(data)
                await self._drain()
        finally:
            if out >= 0 and self.transport is not None:
                transport.set_write_buffer_limits()
        return written

    def _write(self, data: bytes) -> None:
        if self.transport is None:
            raise ConnectionResetError("client closed the connection")
        self.transport.write(data)

    async def _drain(self) -> None:
        if self.transport is None:
            raise ConnectionResetError("client closed the connection")
        if self.write_paused is not None and not self.write_paused.done():
            await self.write_paused

    # --- lifecycle -------------------------------------------------------------------------

    def detach(self) -> asyncio.Transport | None:
        """Hand the transport over to another protocol (HTTP/2): this one forgets it."""
        transport = self.transport
        self._disarm()
        self.deadlines.forget(self)
        self.transport = None
        if transport is not None and self.reading_paused:
            self.reading_paused = False
            transport.resume_reading()
        if self.on_close is not None:
            self.on_close(self)
        return transport

    def drain(self, close_idle: bool = True) -> None:
        """Stop taking requests: close after the response in flight. An idle connection is
        closed now, or with `close_idle=False` (a reload) kept until its next request, which
        is answered with `Connection: close`: a client can never lose a request it sent
        at the moment we closed."""
        self.closing = True
        if self.tunnel is not None:
            self.tunnel.drain()
        elif close_idle and self.task is None and not self.pending:
            self._close()

    def _close(self, abort: bool = False) -> None:
        self._disarm()
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    def _arm(self, seconds: float) -> None:
        self.deadline = self.loop.time() + seconds if seconds > 0 else 0.0

    def _disarm(self) -> None:
        self.deadline = 0.0

    def _timed_out(self) -> None:
        self.deadline = 0.0
        if self.task is not None and self.task.done() is False:
            self.task.cancel()
        self._close(abort=self.task is not None)


_STREAM = -1  # _write_response: the body streams as it is
_CHUNKED = -2  # _write_response: the body streams in chunks
_SPECIAL_LENGTHS = frozenset(len(n) for n in ("content-length", "transfer-encoding", "date", "connection"))


_DATE_LINE = ["", ""]


def _http_date() -> str:
    """The `Date` header line (made anew once a second)."""
    value = http_date()
    if value is not _DATE_LINE[0]:
        _DATE_LINE[0], _DATE_LINE[1] = value, f"Date: {value}\r\n"
    return _DATE_LINE[1]
