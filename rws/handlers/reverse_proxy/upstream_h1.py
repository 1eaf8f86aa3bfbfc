"""HTTP/1.1 to an upstream: one connection carries one exchange at a time.

Responses are parsed by llhttp (httptools); bodies stream with flow control both ways:
reading from the upstream pauses while the client is slow, and the request body is read
from the client only as fast as the upstream takes it. A connection goes back to its
pool (upstream_pool.py) only after a complete exchange: the request was sent in full,
the response body was read to its end and both sides agreed to keep it open. One that
saw an error, or whose response body was abandoned, is closed.
"""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Any, Callable

import httptools

from rws.handlers.reverse_proxy.exchange import UpstreamError, UpstreamResponse, UpstreamTimeout
from rws.protocols.http1.core import chunk, last_chunk

if TYPE_CHECKING:
    from rws.handlers.reverse_proxy.upstream_pool import Pool

HIGH_WATER = 256 * 1024  # buffered response bytes before reading from the upstream pauses


class _ExtraResponse(Exception):
    """The upstream sent more after its response: a misbehaving upstream's bytes, dropped."""


class _Ignore:
    """The parser of a connection whose response is complete and whose other bytes are dropped."""

    def feed_data(self, data: bytes) -> None:
        return


_IGNORE = _Ignore()


class UpstreamConnection(asyncio.Protocol):
    """One HTTP/1.1 connection to an upstream; carries one exchange at a time."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser: Any = None
        self.head: asyncio.Future[None] | None = None  # resolved when a final response head arrived
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.trailers: list[tuple[str, str]] = []
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.done = False  # the response (body included) is complete
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None  # a body reader waiting for data
        self.drained: asyncio.Future[None] | None = None  # a writer waiting for the upstream
        self.paused = False
        self.received_any = False
        self.head_only = False  # a HEAD request: the response ends with its head
        self.upgrade_data = b""  # bytes after a 101 head
        self.informational: Any = None  # callback for 103 Early Hints
        self.idle_since = 0.0
        self.closed = False
        self.sending = False  # a request body is still being sent
        self.keep_alive = False  # the response lets the connection be reused
        self.head_size = 0  # bytes of header (and trailer) fields received
        self.tunnel: Any = None  # after a 101: the streaming.Tunnel that owns the connection
        self.upgraded = False  # a 101 came: what follows is the new protocol's

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.upstream_data(data)
            return
        if self.upgraded:  # after a 101, before the tunnel runs
            self.upgrade_data += data
            return
        self.received_any = True
        parser = self.parser
        if parser is None:  # bytes nobody asked for: the connection can't be trusted
            self._fail(UpstreamError("unexpected data from the upstream"))
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.upgrade_data = data[exc.args[0]:] if exc.args else b""
            self.upgraded = True
            self.done = True
            self._wake()
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _ExtraResponse):  # the response is complete; the rest is dropped
                self.keep_alive = False
                self.parser = _IGNORE
                return
            self._fail(cause if isinstance(cause, UpstreamError) else UpstreamError(f"malformed response: {exc}"))
            return
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"malformed response from the upstream: {exc}"))
            return
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        if self.tunnel is not None:
            self.tunnel.upstream_closed()
            return False
        if self.head is not None and self.head.done() and not self.done and self.error is None and self._ends_at_close():
            self.keep_alive = False  # a body delimited by the end of the connection ends here
            self.done = True
            self._wake()
        if not self.done:
            self._fail(UpstreamError("the upstream closed the connection", answered=self.received_any))
        return False

    def _ends_at_close(self) -> bool:
        """Whether the response's body runs to the end of the connection (no length, not chunked)."""
        for name, _ in self.headers:
            if name.lower() in ("content-length", "transfer-encoding"):
                return False
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        if self.tunnel is not None:
            self.tunnel.upstream_closed()
        if not self.done:
            self._fail(UpstreamError(f"the upstream connection was lost{': ' + str(exc) if exc else ''}",
                                     answered=self.received_any))
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def pause_writing(self) -> None:
        if self.drained is None or self.drained.done():
            self.drained = self.loop.create_future()
        if self.tunnel is not None:
            self.tunnel.upstream_pause_writing()

    def resume_writing(self) -> None:
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        if self.tunnel is not None:
            self.tunnel.upstream_resume_writing()

    # --- llhttp callbacks --------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.pool.transport.max_response_header_size:
            raise UpstreamError("the upstream's response header fields are too large")
        field = (name.decode("latin-1"), value.decode("latin-1"))
        (self.trailers if self.status else self.headers).append(field)  # after the head: trailer fields

    def on_message_begin(self) -> None:
        if self.done:
            raise _ExtraResponse()

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            if status == 103 and self.informational is not None:
                self.informational(103, self.headers)
            self.headers = []
            return
        for name, value in self.headers:
            if name.lower() == "transfer-encoding" and value.strip().lower() != "chunked":
                raise UpstreamError(f"unsupported transfer encoding from the upstream: {value!r}")
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        if self.head is not None and not self.head.done():
            self.head.set_result(None)
        if self.head_only:
            self.done = True

    def on_body(self, body: bytes) -> None:
        if self.head_only or not body:
            return
        self.chunks.append(body)
        self.buffered += len(body)
        self._wake()

    def on_message_complete(self) -> None:
        if self.status == 0:  # the end of a 1xx: the final response follows
            return
        self.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it once the message ends
        self.done = True
        self._wake()

    # --- the exchange --------------------------------------------------------------------------

    def begin(self, head_only: bool, informational: Any) -> None:
        """Get ready for the response to a request about to be sent."""
        self.parser = httptools.HttpResponseParser(self)
        self.head = self.loop.create_future()
        self.status = 0
        self.headers = []
        self.trailers = []
        self.head_size = 0
        self.chunks.clear()
        self.buffered = 0
        self.done = False
        self.error = None
        self.received_any = False
        self.head_only = head_only
        self.informational = informational

    async def exchange(self, head: bytes, body: Any, *, chunked: bool, head_only: bool,
                       informational: Any) -> UpstreamResponse:
        """Send a serialised request head and its body (bytes, or an async source with
        `read(n)`, sent chunked when `chunked`) and wait for the response head."""
        self.begin(head_only, informational)
        assert self.head is not None
        settings = self.pool.transport
        try:
            if isinstance(body, bytes) or body is None:
                self.write(head + body if body else head)
                sender = None
            else:
                self.write(head)
                self.sending = True
                sender = asyncio.ensure_future(self._send_body(body, chunked, settings.write_timeout))
            try:
                if settings.response_header_timeout:
                    await asyncio.wait_for(asyncio.shield(self.head), settings.response_header_timeout)
                else:
                    await self.head
            except asyncio.TimeoutError:
                raise UpstreamTimeout(f"no response from the upstream within {settings.response_header_timeout}s") from None
            finally:
                if sender is not None and not sender.done():
                    # The upstream answered before it took the whole body (or failed): stop
                    # sending; the connection is not reused, and the client's connection
                    # deals with the rest of the body.
                    sender.cancel()
                    await asyncio.gather(sender, return_exceptions=True)
        except BaseException:
            self.close()
            self.pool.finished(self)
            raise
        headers = self.headers
        length = None
        keep = self.keep_alive
        for name, value in headers:
            if len(name) == 14 and name.lower() == "content-length" and value.isdecimal():
                length = int(value)
        if self.status == 101:
            self.pool.detach(self)  # no longer the pool's: the handler owns the raw connection
            return UpstreamResponse(101, headers, None, None, False, upgraded=self)
        if self.done and self.error is None and not self.trailers:  # the whole response is here already
            data = b"".join(self.chunks) if self.chunks else b""
            self.chunks.clear()
            self.buffered = 0
            if self.paused and self.transport is not None:
                self.paused = False
                self.transport.resume_reading()
            self.pool.finished(self)
            return UpstreamResponse(self.status, headers, None, length, keep, data=data)
        return UpstreamResponse(self.status, headers, UpstreamBody(self, settings.read_timeout), length, keep,
                                trailers=self.trailers)  # filled in if trailer fields follow the body

    async def _send_body(self, body: Any, chunked: bool, write_timeout: float) -> None:
        try:
            while True:
                data = await body.read(256 * 1024)
                if not data:
                    break
                self.write(chunk(data) if chunked else data)
                if write_timeout:
                    await asyncio.wait_for(self.drain(), write_timeout)
                else:
                    await self.drain()
            if chunked:
                self.write(last_chunk())
            self.sending = False
        except asyncio.TimeoutError:
            self._fail(UpstreamTimeout(f"the upstream took no request body for {write_timeout}s"))
        except (ConnectionError, OSError) as exc:
            self._fail(UpstreamError(f"sending the request body: {exc}", answered=self.received_any))

    def write(self, data: bytes) -> None:
        if self.transport is None:
            raise UpstreamError("the upstream connection was lost", answered=self.received_any)
        self.transport.write(data)

    async def drain(self) -> None:
        if self.transport is None:
            raise UpstreamError("the upstream connection was lost")
        if self.drained is not None and not self.drained.done():
            await self.drained

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        if self.head is not None and not self.head.done():
            self.head.set_exception(error)
            self.head.exception()  # retrieved: the caller may be gone
        self._wake()
        self.close()

    def reusable(self) -> bool:
        return (self.done and self.error is None and not self.closed and self.transport is not None and not self.sending
                and self.parser is not None and self.keep_alive and not self.chunks and not self.paused)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamBody:
    """A response body as it arrives from the upstream: an async iterator of bytes that
    raises UpstreamError if the body ends early. When it ends, fails or is closed
    (`aclose`), the connection goes back to its pool (or is closed) and `on_release` runs,
    exactly once."""

    __slots__ = ("conn", "read_timeout", "released", "on_release")

    def __init__(self, conn: UpstreamConnection, read_timeout: float) -> None:
        self.conn = conn
        self.read_timeout = read_timeout
        self.released = False
        self.on_release: Callable[[], None] | None = None  # also called, once, at the end

    def __aiter__(self) -> UpstreamBody:
        return self

    async def __anext__(self) -> bytes:
        conn = self.conn
        try:
            while not conn.chunks and not conn.done and conn.error is None:
                conn.waiter = conn.loop.create_future()
                if self.read_timeout:
                    try:
                        await asyncio.wait_for(conn.waiter, self.read_timeout)
                    except asyncio.TimeoutError:
                        raise UpstreamTimeout("timed out reading the upstream response body") from None
                else:
                    await conn.waiter
        except BaseException:
            self.release()
            raise
        if conn.chunks:
            data = conn.chunks.popleft()
            conn.buffered -= len(data)
            if conn.paused and conn.buffered <= HIGH_WATER // 2 and conn.transport is not None:
                conn.paused = False
                conn.transport.resume_reading()
            return data
        self.release()
        if conn.error is not None:
            raise conn.error
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.release()

    def unread(self, data: bytes) -> None:
        """Put bytes read from the body back in front of the rest."""
        if data:
            self.conn.chunks.appendleft(data)
            self.conn.buffered += len(data)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.conn.pool.finished(self.conn)
            if self.on_release is not None:
                self.on_release()

