"""The `http` transport: HTTP/1.1 to upstreams over pooled keep-alive connections.

Each upstream address has a pool of idle connections (most recently used first, closed
after `idle_timeout`; those beyond `max_idle_conns_per_host` once they have been idle for
`TRIM_GRACE`, so that a burst of responses doesn't close the connections the next burst
of requests would dial again) and an optional cap on open
connections (`max_conns_per_host`: callers wait their turn). A connection goes back to
its pool only after a complete exchange: the request was sent in full, the response
body was read to its end and both sides agreed to keep it open. One that saw an error,
or whose response body was abandoned, is closed.

Responses are parsed by llhttp (httptools); bodies stream with flow control both ways:
reading from the upstream pauses while the client is slow, and the request body is read
from the client only as fast as the upstream takes it.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import httptools

from rws.errors import ConfigError
from rws.handlers.reverse_proxy.dial_addresses import parse_network_address
from rws.handlers.reverse_proxy.transport_config import HttpTransportConfig, KeepAliveConfig
from rws.protocols.http1.core import chunk, last_chunk

HIGH_WATER = 256 * 1024  # buffered response bytes before reading from the upstream pauses
DEFAULT_DIAL_TIMEOUT = 3.0
DEFAULT_IDLE_CONNS_PER_HOST = 32
DEFAULT_IDLE_TIMEOUT = 120.0
DEFAULT_MAX_RESPONSE_HEADER_SIZE = 10 << 20  # as Go's transport
TRIM_GRACE = 1.0  # seconds a connection beyond max_idle_conns_per_host may stay idle
MAX_POOLS = 1024  # upstream addresses with a pool, before pools without connections are dropped


class DialError(ConnectionError):
    """No connection to the upstream: nothing was sent, so another upstream may be tried."""


class _ExtraResponse(Exception):
    """The upstream sent more after its response: a misbehaving upstream's bytes, dropped."""


class _Ignore:
    """The parser of a connection whose response is complete and whose other bytes are dropped."""

    def feed_data(self, data: bytes) -> None:
        return


_IGNORE = _Ignore()


class UpstreamTimeout(TimeoutError):
    """The upstream did not answer in time (504)."""


class UpstreamError(ConnectionError):
    """The exchange failed after the request was written (502); `answered` tells whether
    any byte of a response had arrived."""

    def __init__(self, message: str, answered: bool = True) -> None:
        super().__init__(message)
        self.answered = answered


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[str, str]]
    body: UpstreamBody | None  # None when the whole body is in `data`
    length: int | None  # Content-Length, when the upstream gave one
    keep_alive: bool
    trailers: list[tuple[str, str]] = field(default_factory=list)
    upgraded: UpstreamConnection | None = None  # after a 101: the raw connection
    data: bytes = b""  # the whole body, when it came with the head


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


class Pool:
    """The connections to one upstream address."""

    def __init__(self, transport: HttpTransport, address: str) -> None:
        self.transport = transport
        self.address = address
        self.idle: collections.deque[UpstreamConnection] = collections.deque()
        self.open = 0
        self.waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self.sweep: asyncio.TimerHandle | None = None  # closes connections idle too long
        self.trim: asyncio.TimerHandle | None = None  # closes idle connections beyond the cap

    def take_idle(self) -> UpstreamConnection | None:
        """The most recently used idle connection that is still good, if any."""
        idle_timeout = self.transport.idle_timeout
        while self.idle:
            conn = self.idle.pop()
            if conn.closed or conn.transport is None or time.monotonic() - conn.idle_since > idle_timeout:
                conn.close()
                self.open -= 1
                continue
            return conn
        return None

    async def acquire(self, dial_timeout: float) -> tuple[UpstreamConnection, bool]:
        """A connection, and whether it was reused from the pool."""
        conn = self.take_idle()
        if conn is not None:
            return conn, True
        limit = self.transport.max_conns_per_host
        while limit and self.open >= limit:
            waiter = asyncio.get_running_loop().create_future()
            self.waiting.append(waiter)
            try:
                await asyncio.wait_for(waiter, dial_timeout or None)
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, but leaving: the free slot goes to the next in line
                if isinstance(exc, asyncio.TimeoutError):
                    raise DialError(f"no free connection to {self.address} within {dial_timeout}s") from None
                raise
            finally:
                if waiter in self.waiting:
                    self.waiting.remove(waiter)
            if self.idle:
                return await self.acquire(dial_timeout)
        self.open += 1
        try:
            conn = await self.transport.connect(self, dial_timeout)
        except BaseException:
            self.open -= 1
            self._wake_one()
            raise
        return conn, False

    def finished(self, conn: UpstreamConnection) -> None:
        """The exchange on `conn` is over: keep it for the next one, or close it."""
        if conn.parser is None:
            return  # already handed back
        if conn.reusable() and self.transport.keep_alive:
            conn.parser = None
            conn.head = None
            conn.informational = None
            conn.idle_since = time.monotonic()
            self.idle.append(conn)
            if self.sweep is None:
                self.sweep = conn.loop.call_later(self.transport.idle_timeout, self._sweep)
            if self.trim is None and len(self.idle) > self.transport.max_idle_per_host:
                self.trim = conn.loop.call_later(TRIM_GRACE, self._trim)
        else:
            conn.parser = None
            conn.close()
            self.open -= 1
        self._wake_one()

    def _sweep(self) -> None:
        self.sweep = None
        limit = time.monotonic() - self.transport.idle_timeout
        keep: collections.deque[UpstreamConnection] = collections.deque()
        for conn in self.idle:
            if conn.idle_since <= limit or conn.closed:
                conn.close()
                self.open -= 1
            else:
                keep.append(conn)
        self.idle = keep
        if keep:
            self.sweep = asyncio.get_running_loop().call_later(self.transport.idle_timeout, self._sweep)

    def _trim(self) -> None:
        """Close the idle connections beyond `max_idle_conns_per_host` that have been idle
        `TRIM_GRACE` (least recently used first). Under steady load connections are idle
        for moments only, so none is closed to be dialed again."""
        self.trim = None
        cap, now = self.transport.max_idle_per_host, time.monotonic()
        while len(self.idle) > cap and now - self.idle[0].idle_since >= TRIM_GRACE:
            self.idle.popleft().close()
            self.open -= 1
        if len(self.idle) > cap:
            wait = TRIM_GRACE - (now - self.idle[0].idle_since)
            self.trim = asyncio.get_running_loop().call_later(wait, self._trim)

    def _wake_one(self) -> None:
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        for timer in (self.sweep, self.trim):
            if timer is not None:
                timer.cancel()
        self.sweep = self.trim = None
        while self.idle:
            self.idle.pop().close()


class HttpTransport:
    """The runtime of `http.reverse_proxy.transport.http` (HTTP/1.1)."""

    def __init__(self, config: HttpTransportConfig) -> None:
        keep_alive = config.keep_alive or KeepAliveConfig()
        self.keep_alive = keep_alive.enabled is not False
        self.max_idle_per_host = keep_alive.max_idle_conns_per_host or DEFAULT_IDLE_CONNS_PER_HOST
        self.idle_timeout = keep_alive.idle_timeout or DEFAULT_IDLE_TIMEOUT
        self.max_conns_per_host = config.max_conns_per_host
        self.dial_timeout = config.dial_timeout or DEFAULT_DIAL_TIMEOUT
        self.response_header_timeout = config.response_header_timeout
        self.read_timeout = config.read_timeout
        self.write_timeout = config.write_timeout
        self.max_response_header_size = config.max_response_header_size or DEFAULT_MAX_RESPONSE_HEADER_SIZE
        self.tls = config.tls is not None
        self.server_name = config.tls.server_name if config.tls is not None else ""
        self.plain_ports = frozenset(config.tls.except_ports) if config.tls is not None else frozenset()
        self.local_address = parse_network_address(config.local_address).host or None if config.local_address else None
        self.ssl: ssl.SSLContext | None = _client_context(config) if config.tls is not None else None
        self.pools: dict[str, Pool] = {}

    def pool(self, address: str) -> Pool:
        pool = self.pools.get(address)
        if pool is None:
            if len(self.pools) >= MAX_POOLS:  # addresses may come from requests: stay bounded
                for key in [k for k, p in self.pools.items() if p.open == 0 and not p.waiting]:
                    del self.pools[key]
            pool = self.pools[address] = Pool(self, address)
        return pool

    async def connect(self, pool: Pool, timeout: float) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        address = pool.address

        def protocol() -> UpstreamConnection:
            return UpstreamConnection(pool)

        try:
            if address.startswith("unix/"):
                path = address[5:]
                coro = loop.create_unix_connection(protocol, path, ssl=self.ssl,
                                                   server_hostname=self.server_name or None if self.ssl else None)
            else:
                host, port = _split(address)
                context = self.ssl if str(port) not in self.plain_ports else None
                server_name = (self.server_name or host) if context else None
                local = (self.local_address, 0) if self.local_address else None
                coro = loop.create_connection(protocol, host, port, ssl=context, server_hostname=server_name,
                                              local_addr=local)
            _, conn = await asyncio.wait_for(coro, timeout)
        except asyncio.TimeoutError:
            raise DialError(f"dialing {address}: timed out after {timeout}s") from None
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise DialError(f"dialing {address}: {exc}") from exc
        return conn

    async def open_stream(self, address: str, timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A plain stream connection to `address` (TLS when the transport uses it), for
        health checks."""
        try:
            if address.startswith("unix/"):
                coro = asyncio.open_unix_connection(address[5:], ssl=self.ssl,
                                                    server_hostname=self.server_name or None if self.ssl else None)
            else:
                host, port = _split(address)
                context = self.ssl if str(port) not in self.plain_ports else None
                local = (self.local_address, 0) if self.local_address else None
                coro = asyncio.open_connection(host, port, ssl=context, local_addr=local,
                                               server_hostname=(self.server_name or host) if context else None)
            return await asyncio.wait_for(coro, timeout)
        except asyncio.TimeoutError:
            raise DialError(f"dialing {address}: timed out after {timeout}s") from None
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise DialError(f"dialing {address}: {exc}") from exc

    async def round_trip(self, address: str, head: bytes, body: Any, *, chunked: bool, head_only: bool,
                         replayable: bool = False, informational: Any = None) -> UpstreamResponse:
        """Send a serialised request head and its body (bytes, or an async source with
        `read(n)`, sent chunked when `chunked`) and wait for the response head.
        `replayable`: the request may be sent twice (an idempotent method, no body)."""
        pool = self.pool(address)
        conn = pool.take_idle()
        reused = conn is not None
        if conn is None:
            conn, reused = await pool.acquire(self.dial_timeout)
        try:
            return await self._exchange(conn, head, body, chunked=chunked, head_only=head_only,
                                        informational=informational)
        except UpstreamError as exc:
            # A pooled connection the upstream closed as we used it: send a replayable
            # request again on a new connection, once (as Go's transport does).
            if reused and not exc.answered and replayable:
                conn, _ = await pool.acquire(self.dial_timeout)
                return await self._exchange(conn, head, body, chunked=chunked, head_only=head_only,
                                            informational=informational)
            raise

    async def _exchange(self, conn: UpstreamConnection, head: bytes, body: Any, *, chunked: bool,
                        head_only: bool, informational: Any) -> UpstreamResponse:
        conn.begin(head_only, informational)
        assert conn.head is not None
        try:
            if isinstance(body, bytes) or body is None:
                conn.write(head + body if body else head)
                sender = None
            else:
                conn.write(head)
                conn.sending = True
                sender = asyncio.ensure_future(self._send_body(conn, body, chunked))
            try:
                if self.response_header_timeout:
                    await asyncio.wait_for(asyncio.shield(conn.head), self.response_header_timeout)
                else:
                    await conn.head
            except asyncio.TimeoutError:
                raise UpstreamTimeout(f"no response from the upstream within {self.response_header_timeout}s") from None
            finally:
                if sender is not None and not sender.done():
                    # The upstream answered before it took the whole body (or failed): stop
                    # sending; the connection is not reused, and the client's connection
                    # deals with the rest of the body.
                    sender.cancel()
                    await asyncio.gather(sender, return_exceptions=True)
        except BaseException:
            conn.close()
            conn.pool.finished(conn)
            raise
        headers = conn.headers
        length = None
        keep = conn.keep_alive
        for name, value in headers:
            if len(name) == 14 and name.lower() == "content-length" and value.isdecimal():
                length = int(value)
        if conn.status == 101:
            conn.pool.open -= 1  # no longer the pool's: the handler owns the raw connection
            conn.pool._wake_one()
            conn.parser = None
            return UpstreamResponse(101, headers, None, None, False, upgraded=conn)
        if conn.done and conn.error is None and not conn.trailers:  # the whole response is here already
            data = b"".join(conn.chunks) if conn.chunks else b""
            conn.chunks.clear()
            conn.buffered = 0
            if conn.paused and conn.transport is not None:
                conn.paused = False
                conn.transport.resume_reading()
            conn.pool.finished(conn)
            return UpstreamResponse(conn.status, headers, None, length, keep, data=data)
        return UpstreamResponse(conn.status, headers, UpstreamBody(conn, self.read_timeout), length, keep,
                                trailers=conn.trailers)  # filled in if trailer fields follow the body

    async def _send_body(self, conn: UpstreamConnection, body: Any, chunked: bool) -> None:
        try:
            while True:
                data = await body.read(256 * 1024)
                if not data:
                    break
                conn.write(chunk(data) if chunked else data)
                if self.write_timeout:
                    await asyncio.wait_for(conn.drain(), self.write_timeout)
                else:
                    await conn.drain()
            if chunked:
                conn.write(last_chunk())
            conn.sending = False
        except asyncio.TimeoutError:
            conn._fail(UpstreamTimeout(f"the upstream took no request body for {self.write_timeout}s"))
        except (ConnectionError, OSError) as exc:
            conn._fail(UpstreamError(f"sending the request body: {exc}", answered=conn.received_any))

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _client_context(config: HttpTransportConfig) -> ssl.SSLContext:
    """The TLS client settings of `transport http { tls ... }`: the system's roots unless
    trusted CAs are named (`ca` pool from files or inline DER, or the older
    `root_ca_pem_files`/`root_ca_pool`), a client certificate, verification off with
    `insecure_skip_verify`."""
    tls = config.tls
    assert tls is not None
    pem_files = list(tls.root_ca_pem_files)
    der = [base64.b64decode(c) for c in tls.root_ca_pool]
    if tls.ca is not None:
        pem_files += list(getattr(tls.ca.config, "pem_files", ()))
        der += [base64.b64decode(c) for c in getattr(tls.ca.config, "trusted_ca_certs", ())]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if pem_files or der:
        for path in pem_files:
            context.load_verify_locations(cafile=path)
        for cert in der:
            context.load_verify_locations(cadata=cert)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    context.set_alpn_protocols(["http/1.1"])
    if tls.client_certificate_file:
        context.load_cert_chain(tls.client_certificate_file, tls.client_certificate_key_file)
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def unsupported(config: HttpTransportConfig) -> str | None:
    """What of a transport config rws can't do yet (it would otherwise be silently ignored)."""
    if config.versions and "1.1" not in config.versions:
        return (f"versions {list(config.versions)}: rws speaks HTTP/1.1 to upstreams "
                "(HTTP/2, h2c and HTTP/3 upstreams are not supported yet)")
    if config.proxy_protocol:
        return "proxy_protocol is not supported yet"
    if config.network_proxy is not None or config.forward_proxy_url:
        return "outbound proxies (network_proxy, forward_proxy_url) are not supported yet"
    if config.resolver is not None:
        return "a resolver for dialing upstreams is not supported yet (the system's is used)"
    if config.tls is not None and config.tls.client_certificate_automate:
        return "tls client_certificate_automate is not supported yet"
    return None


def build_http_transport(config: HttpTransportConfig, ctx: Any) -> HttpTransport:
    problem = unsupported(config)
    if problem:
        raise ConfigError("http.reverse_proxy.transport.http", problem)
    transport = HttpTransport(config)
    ctx.on_close(transport.close)
    return transport
