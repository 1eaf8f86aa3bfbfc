"""The `http` transport: requests to upstreams over pooled connections, in HTTP/1.1
(upstream_h1.py) or HTTP/2 (upstream_h2.py).

Which version: HTTP/2 by prior knowledge to a cleartext upstream when `versions` has
`h2c`; over TLS, when `versions` has `2` (as by default, `["1.1", "2"]`), ALPN offers h2
and http/1.1 and the upstream's choice holds for its address from then on; HTTP/1.1
otherwise, and always for upgrades (WebSocket), as Caddy does.

Each upstream address has a pool. HTTP/1.1 connections carry one exchange at a time and
wait idle between them (most recently used first, closed after `idle_timeout`; those
beyond `max_idle_conns_per_host` once they have been idle for `TRIM_GRACE`, so that a
burst of responses doesn't close the connections the next burst of requests would dial
again). HTTP/2 connections carry many exchanges at once: a request takes a stream on the
first connection with room; when none has any, one more is dialled (one dial at a time:
the requests that arrive meanwhile wait for its streams); one without streams closes
after `idle_timeout`. `max_conns_per_host` caps the connections of both kinds: callers
wait their turn.

Active health checks go through the transport too (`health_check`), so they speak what
proxied requests speak, but on a connection of their own, outside the pools (see there).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any, Callable

from rws.errors import ConfigError
from rws.handlers.reverse_proxy.dial_addresses import parse_network_address
from rws.handlers.reverse_proxy.exchange import DialError, UpstreamError, UpstreamResponse
from rws.handlers.reverse_proxy.forwarding import request_head
from rws.handlers.reverse_proxy.transport_config import HttpTransportConfig, KeepAliveConfig
from rws.handlers.reverse_proxy.upstream_h1 import UpstreamConnection
from rws.handlers.reverse_proxy.upstream_h2 import H2UpstreamConnection
from rws.handlers.reverse_proxy.upstream_h2_stream import StreamRefused
from rws.http.message import Headers

DEFAULT_DIAL_TIMEOUT = 3.0
DEFAULT_IDLE_CONNS_PER_HOST = 32
DEFAULT_IDLE_TIMEOUT = 120.0
DEFAULT_MAX_RESPONSE_HEADER_SIZE = 10 << 20  # as Go's transport
TRIM_GRACE = 1.0  # seconds a connection beyond max_idle_conns_per_host may stay idle
MAX_POOLS = 1024  # upstream addresses with a pool, before pools without connections are dropped
MAX_REFUSED = 5  # times a request refused by HTTP/2 upstreams (never processed) is sent again

# How a pool's connections speak
HTTP1 = "http/1.1"
H2C = "h2c"  # HTTP/2 by prior knowledge, in cleartext
ALPN = "alpn"  # TLS offering h2 and http/1.1: the upstream chooses


class Pool:
    """The connections to one upstream address."""

    def __init__(self, transport: HttpTransport, address: str, mode: str, max_conns: int | None = None) -> None:
        self.transport = transport
        self.address = address
        self.mode = mode  # becomes HTTP1 when an upstream offered h2 chooses http/1.1
        self.max_conns = transport.max_conns_per_host if max_conns is None else max_conns  # 0: no cap
        self.idle: collections.deque[UpstreamConnection] = collections.deque()
        self.h2: list[H2UpstreamConnection] = []
        self.open = 0  # connections of both kinds, and dials under way
        self.waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self.dialing: asyncio.Future[None] | None = None  # an HTTP/2 (or ALPN) dial under way
        self.sweep: asyncio.TimerHandle | None = None  # closes connections idle too long
        self.trim: asyncio.TimerHandle | None = None  # closes idle connections beyond the cap

    # --- HTTP/1.1 ----------------------------------------------------------------------------

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
        """An HTTP/1.1 connection, and whether it was reused from the pool."""
        conn = self.take_idle()
        if conn is not None:
            return conn, True
        limit = self.max_conns
        while limit and self.open >= limit:
            await self._wait_turn(dial_timeout)
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

    def detach(self, conn: UpstreamConnection) -> None:
        """`conn` switched protocols (101): the handler owns it now, not the pool."""
        conn.parser = None
        self.open -= 1
        self._wake_one()

    # --- HTTP/2 ------------------------------------------------------------------------------

    async def stream_connection(self, dial_timeout: float, avoid: H2UpstreamConnection | None = None
                                ) -> tuple[H2UpstreamConnection | UpstreamConnection, bool]:
        """An HTTP/2 connection with room for one more stream, and whether it was open
        already; or, when the upstream chose HTTP/1.1 by ALPN, the HTTP/1.1 connection
        that dial made. The caller opens its stream without waiting in between. `avoid`
        (a connection that refused a stream) is taken only when no other may be dialled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + dial_timeout
        while True:
            for conn in self.h2:
                if conn is not avoid and conn.has_room():
                    return conn, True
            if self.mode == HTTP1:
                return await self.acquire(_left(deadline, loop))
            if self.dialing is not None:  # a connection is on its way: its streams may do
                try:
                    await asyncio.wait_for(asyncio.shield(self.dialing), _left(deadline, loop))
                except asyncio.TimeoutError:
                    raise DialError(f"no connection to {self.address} within {dial_timeout}s") from None
                continue
            limit = self.max_conns
            if limit and self.open >= limit:
                if avoid is not None and avoid.has_room():
                    return avoid, True
                await self._wait_turn(_left(deadline, loop))
                continue
            return await self._dial_h2(_left(deadline, loop)), False

    async def _dial_h2(self, timeout: float) -> H2UpstreamConnection | UpstreamConnection:
        """Dial for HTTP/2; the requests that come meanwhile wait for this dial, and share
        its failure."""
        self.open += 1
        dialing = self.dialing = asyncio.get_running_loop().create_future()
        try:
            conn = await self.transport.connect_h2(self, timeout)
            if isinstance(conn, H2UpstreamConnection) and not conn.has_room():
                conn.close()
                raise DialError(f"dialing {self.address}: the upstream allows no streams")
        except BaseException as exc:
            self.open -= 1
            if isinstance(exc, DialError):
                dialing.set_exception(exc)
                dialing.exception()  # retrieved: maybe nobody waits
            else:
                dialing.set_result(None)  # the dialer was cancelled: the others try for themselves
            self._wake_one()
            raise
        finally:
            self.dialing = None
        if isinstance(conn, H2UpstreamConnection):
            self.h2.append(conn)
        else:
            self.mode = HTTP1  # the upstream chose HTTP/1.1: so be it for this address
        dialing.set_result(None)
        return conn

    def h2_room(self) -> None:
        """A stream ended (or an upstream allowed more): the next waiting request may go.
        A connection left without streams is closed by the sweep once idle too long."""
        self._wake_one()
        if self.sweep is None and self.h2:
            self.sweep = asyncio.get_running_loop().call_later(self.transport.idle_timeout, self._sweep)

    def h2_closed(self, conn: H2UpstreamConnection) -> None:
        if conn in self.h2:
            self.h2.remove(conn)
            self.open -= 1
            self._wake_one()

    # --- both --------------------------------------------------------------------------------

    async def _wait_turn(self, timeout: float) -> None:
        """Wait until a connection closes or frees a place (`max_conns_per_host`)."""
        waiter = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout or None)
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._wake_one()  # woken, but leaving: the free slot goes to the next in line
            if isinstance(exc, asyncio.TimeoutError):
                raise DialError(f"no free connection to {self.address} within {timeout}s") from None
            raise
        finally:
            if waiter in self.waiting:
                self.waiting.remove(waiter)

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
        for h2 in self.h2:
            if not h2.streams and h2.idle_since <= limit:
                h2.close()  # taken out of the pool once closed
        if keep or self.h2:
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
        for conn in list(self.h2):
            conn.retire()  # the streams in flight finish


class HttpTransport:
    """The runtime of `http.reverse_proxy.transport.http`."""

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
        versions = config.versions or ("1.1", "2")
        self.h2c = "h2c" in versions  # cleartext upstreams: HTTP/2 by prior knowledge
        self.h2 = "2" in versions or self.h2c  # TLS upstreams: offer h2 by ALPN (as Go, http/1.1 too)
        self.tls = config.tls is not None
        self.server_name = config.tls.server_name if config.tls is not None else ""
        self.plain_ports = frozenset(config.tls.except_ports) if config.tls is not None else frozenset()
        self.local_address = parse_network_address(config.local_address).host or None if config.local_address else None
        self.ssl: ssl.SSLContext | None = _client_context(config, ["http/1.1"]) if config.tls is not None else None
        self.ssl_h2: ssl.SSLContext | None = (_client_context(config, ["h2", "http/1.1"])
                                              if config.tls is not None and self.h2 else None)
        self.pools: dict[str, Pool] = {}

    def pool(self, address: str) -> Pool:
        pool = self.pools.get(address)
        if pool is None:
            if len(self.pools) >= MAX_POOLS:  # addresses may come from requests: stay bounded
                for key in [k for k, p in self.pools.items() if p.open == 0 and not p.waiting]:
                    del self.pools[key]
            pool = self.pools[address] = Pool(self, address, self._mode(address))
        return pool

    def _mode(self, address: str) -> str:
        """How to speak to `address`: see the module's docstring."""
        if self._context(address, self.ssl) is not None:
            return ALPN if self.ssl_h2 is not None else HTTP1
        return H2C if self.h2c else HTTP1

    def _context(self, address: str, context: ssl.SSLContext | None) -> ssl.SSLContext | None:
        """`context` unless `address` is on a port TLS is off for (`tls_except_ports`)."""
        if context is None or address.startswith("unix/"):
            return context
        return context if address.rpartition(":")[2] not in self.plain_ports else None

    async def connect(self, pool: Pool, timeout: float) -> UpstreamConnection:
        """A new HTTP/1.1 connection to the pool's address."""
        _, conn = await self._dial(pool.address, lambda: UpstreamConnection(pool),
                                   self._context(pool.address, self.ssl), timeout)
        return conn  # type: ignore[return-value]

    async def connect_h2(self, pool: Pool, timeout: float) -> H2UpstreamConnection | UpstreamConnection:
        """A new HTTP/2 connection to the pool's address, ready (its settings came); or an
        HTTP/1.1 one, if the upstream chose http/1.1 by ALPN."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        conn: asyncio.Protocol | None
        if pool.mode == H2C:
            _, conn = await self._dial(pool.address, lambda: H2UpstreamConnection(pool, "http"), None, timeout)
        else:
            negotiation = _Negotiation(pool)
            await self._dial(pool.address, lambda: negotiation, self._context(pool.address, self.ssl_h2), timeout)
            conn = negotiation.chosen
        if isinstance(conn, H2UpstreamConnection):
            try:
                await asyncio.wait_for(asyncio.shield(conn.ready), _left(deadline, loop))
            except asyncio.TimeoutError:
                conn.close()
                raise DialError(f"dialing {pool.address}: no HTTP/2 settings from the upstream within {timeout}s") from None
            except BaseException:  # a DialError, or the caller cancelled: nobody else will close it
                conn.close()
                raise
            return conn
        assert isinstance(conn, UpstreamConnection)
        return conn

    async def _dial(self, address: str, protocol: Callable[[], asyncio.Protocol], context: ssl.SSLContext | None,
                    timeout: float) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        loop = asyncio.get_running_loop()
        try:
            if address.startswith("unix/"):
                coro = loop.create_unix_connection(protocol, address[5:], ssl=context,
                                                   server_hostname=self.server_name or None if context else None)
            else:
                host, port = _split(address)
                local = (self.local_address, 0) if self.local_address else None
                coro = loop.create_connection(protocol, host, port, ssl=context,
                                              server_hostname=(self.server_name or host) if context else None,
                                              local_addr=local)
            return await asyncio.wait_for(coro, timeout)
        except asyncio.TimeoutError:
            raise DialError(f"dialing {address}: timed out after {timeout}s") from None
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise DialError(f"dialing {address}: {exc}") from exc

    async def round_trip(self, address: str, method: str, target: str, headers: Headers, body: Any, *,
                         chunked: bool, head_only: bool, replayable: bool = False, informational: Any = None,
                         upgrade: bool = False, pool: Pool | None = None) -> UpstreamResponse:
        """Send a request (`body`: None, bytes, or an async source with `read(n)`, which
        HTTP/1.1 sends chunked when `chunked`) and wait for the response head. The
        target must be one a request line can carry. `replayable`: the request may be
        sent twice (an idempotent method, no body). `upgrade`: the request asks to switch
        protocols, which only HTTP/1.1 does. `pool`: connections of the caller's to use
        instead of the address's pool (`health_check`)."""
        if pool is None:
            pool = self.pool(address)
        if pool.mode != HTTP1 and not upgrade:
            return await self._round_trip_h2(pool, method, target, headers, body, chunked=chunked,
                                             head_only=head_only, replayable=replayable, informational=informational)
        head = request_head(method, target, headers)
        conn = pool.take_idle()
        reused = conn is not None
        if conn is None:
            conn, reused = await pool.acquire(self.dial_timeout)
        try:
            return await conn.exchange(head, body, chunked=chunked, head_only=head_only, informational=informational)
        except UpstreamError as exc:
            # A pooled connection the upstream closed as we used it: send a replayable
            # request again on a new connection, once (as Go's transport does).
            if reused and not exc.answered and replayable:
                conn, _ = await pool.acquire(self.dial_timeout)
                return await conn.exchange(head, body, chunked=chunked, head_only=head_only,
                                           informational=informational)
            raise

    async def _round_trip_h2(self, pool: Pool, method: str, target: str, headers: Headers, body: Any, *,
                             chunked: bool, head_only: bool, replayable: bool, informational: Any) -> UpstreamResponse:
        """A request on a stream of an HTTP/2 connection. A stream the upstream refused
        (never processed) goes again, on another connection; one lost with a pooled
        connection before any answer goes again once if `replayable`, as over HTTP/1.1."""
        replayed = False
        refused_by: H2UpstreamConnection | None = None
        for _ in range(MAX_REFUSED):
            conn, reused = await pool.stream_connection(self.dial_timeout, avoid=refused_by)
            if isinstance(conn, UpstreamConnection):  # the upstream chose HTTP/1.1
                return await conn.exchange(request_head(method, target, headers), body, chunked=chunked,
                                           head_only=head_only, informational=informational)
            try:
                return await conn.exchange(method, target, headers, body, informational=informational)
            except StreamRefused:
                refused_by = conn  # the next try goes on another connection
                continue
            except UpstreamError as exc:
                if reused and not exc.answered and replayable and not replayed:
                    replayed = True
                    continue
                raise
        raise UpstreamError(f"the upstream refused the request {MAX_REFUSED} times", answered=False)

    @contextlib.asynccontextmanager
    async def health_check(self, address: str, method: str, target: str, headers: Headers,
                           body: bytes) -> AsyncIterator[UpstreamResponse]:
        """One exchange of an active health check with `address`, in the version and with
        the TLS settings that proxied requests to that address get (HTTP/1.1, h2c, or h2
        or HTTP/1.1 as ALPN decides), bounded by the same dial and response timeouts; the
        response is open within the block (its body unread), closed after it.

        Caddy sends its checks with an http.Client over the proxy's own transport, so in
        Go a check shares the pool of proxied requests: under `max_conns_per_host` it
        queues behind them (a busy upstream then fails its check by waiting at the
        proxy's own cap) and, while it runs, holds a place a proxied request waits for.
        Here a check dials a connection of its own, outside the pools and their cap, and
        closes it when the block ends: a check never waits for, nor takes, a connection
        or a stream proxied requests could use, and it tells whether the upstream takes
        new connections, as proxied requests will need. Its cost: at most one connection
        per checked address beyond `max_conns_per_host`, for the length of a check, and a
        handshake per check (rws's checks always dialled afresh)."""
        pool = Pool(self, address, self._mode(address), max_conns=0)
        try:
            response = await self.round_trip(address, method, target, headers, body or None, chunked=False,
                                             head_only=method == "HEAD", pool=pool)
            try:
                yield response
            finally:
                if response.body is not None:
                    await response.body.aclose()
        finally:
            pool.close()

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()


class _Negotiation(asyncio.Protocol):
    """The protocol of a TLS connection that offered h2 and http/1.1, for the moment its
    handshake is done: it hands the connection to the HTTP/2 or the HTTP/1.1 side,
    whichever the upstream chose (http/1.1 when it chose none)."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.chosen: H2UpstreamConnection | UpstreamConnection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tls = transport.get_extra_info("ssl_object")
        alpn = tls.selected_alpn_protocol() if tls is not None else None
        conn: H2UpstreamConnection | UpstreamConnection
        conn = H2UpstreamConnection(self.pool, "https") if alpn == "h2" else UpstreamConnection(self.pool)
        self.chosen = conn
        transport.set_protocol(conn)
        conn.connection_made(transport)


def _left(deadline: float, loop: asyncio.AbstractEventLoop) -> float:
    """Seconds until `deadline` (a little at least)."""
    return max(deadline - loop.time(), 0.001)


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _client_context(config: HttpTransportConfig, alpn: list[str]) -> ssl.SSLContext:
    """The TLS client settings of `transport http { tls ... }`: the system's roots unless
    trusted CAs are named (`ca` pool from files or inline DER, or the older
    `root_ca_pem_files`/`root_ca_pool`), a client certificate, verification off with
    `insecure_skip_verify`; ALPN offers `alpn`."""
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
    context.set_alpn_protocols(alpn)
    if tls.client_certificate_file:
        context.load_cert_chain(tls.client_certificate_file, tls.client_certificate_key_file)
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def unsupported(config: HttpTransportConfig) -> str | None:
    """What of a transport config rws can't do yet (it would otherwise be silently ignored)."""
    if "3" in config.versions:
        return "versions ['3']: HTTP/3 upstreams are not supported yet"
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
