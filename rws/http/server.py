"""One HTTP server of a config generation: its routes, error routes, connection settings
and access log. It is the `App` its connections call for each request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from typing import Any, Callable

from rws.errors import HttpError
from rws.http.client_ip import ClientIp
from rws.http.message import Headers, Request, Response
from rws.http.routes import BuildContext, RouteList, error_id, serve_errors
from rws.http.sniff import detect_content_type
from rws.net.quic import QuicService
from rws.net.tls import HANDSHAKE_TIMEOUT, ServerTls, TlsAccept, TlsMaterial
from rws.observability.metrics import REQUEST_ERRORS_TOTAL, REQUESTS_IN_FLIGHT, REQUESTS_TOTAL
from rws.protocols.connection import HttpConnection, Timeouts
from rws.protocols.flow import BodyStream
from rws.protocols.events import RequestReceived
from rws.protocols.http1 import default_backend
from rws.protocols.http2 import Http2Connection
from rws.protocols.http3 import Http3Connection
from rws.tls.challenges import HTTP_PREFIX

log = logging.getLogger(__name__)

SERVER_HEADER = "rws"
DEFAULT_PROTOCOLS = ("h1", "h2", "h3")
_VALID_HOST = re.compile(r"[A-Za-z0-9.\-_~!$&'()*+,;=:%\[\]]*")  # Go's validHostHeader
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


class HttpServer:
    """Built from a decoded server config; `connection()` makes the protocol for a socket."""

    def __init__(self, name: str, config: Any, ctx: BuildContext, *, metrics: bool = False,
                 tls: TlsMaterial | None = None, tls_policies: tuple[Any, ...] | None = None) -> None:
        """`tls_policies`: the connection policies automatic HTTPS settled on (else the config's);
        `tls`: certificates and more for them, and the ACME challenges to answer (HTTP-01
        before the routes)."""
        self.name = name
        self.metrics = metrics or config.metrics is not None  # count requests per server
        self.config = config
        named = dict(config.named_routes or {})
        ctx.named_routes = named
        self.routes: RouteList = ctx.build_routes(config.routes)
        self.errors: RouteList | None = ctx.build_routes(config.errors.routes) if config.errors else None
        self.timeouts = Timeouts(
            read_header=config.read_header_timeout if config.read_header_timeout else 60.0,
            read_body=config.read_timeout or 0.0,
            write=config.write_timeout or 0.0,
            idle=config.idle_timeout if config.idle_timeout else 300.0,
        )
        self.max_header_bytes = config.max_header_bytes or 0
        self.client_ip = ClientIp(config)
        self.valid_hosts: set[str] = set()  # Host values seen well-formed (bounded)
        self.labels = (name, "")  # the metrics' label values for this server
        self.backend = default_backend()
        self.access_log: Any = _access_logger(config, ctx)
        self.connections: set[HttpConnection | Http2Connection | Http3Connection] = set()
        policies = tls_policies or config.tls_connection_policies
        material = tls or TlsMaterial()
        self.challenges = material.challenges
        self.protocols = tuple(config.protocols or DEFAULT_PROTOCOLS)
        self.h2c = "h2c" in self.protocols
        self._tls_args = (policies, material, f"apps.http.servers.{name}")
        self.tls = ServerTls(*self._tls_args, _alpn(self.protocols)) if policies else None
        self._factories: dict[tuple[str, ...], Callable[[], asyncio.Protocol]] = {}
        # HTTP/3: served where rws.runtime.generation binds UDP for this server, which sets alt_svc
        self.quic = QuicService(self.tls, self._h3_connection) if self.tls is not None else None
        self.alt_svc = ""
        self.idle: asyncio.Event | None = None
        self.draining = False

    def connection(self) -> asyncio.Protocol:
        """A new connection on a listener that speaks the server's protocols."""
        return self._connect(self.tls, self.h2c)

    def listener_factory(self, protocols: tuple[str, ...] | list[str] | None) -> Callable[[], asyncio.Protocol]:
        """What makes the connections of a listener that speaks `protocols` (its entry in
        `listen_protocols`; None: the server's): on TLS the ALPN offered, h2c on cleartext."""
        if not protocols or tuple(protocols) == self.protocols:
            return self.connection
        key = tuple(protocols)
        factory = self._factories.get(key)
        if factory is None:
            tls = ServerTls(*self._tls_args, _alpn(key)) if self.tls is not None else None
            factory = self._factories[key] = functools.partial(self._connect, tls, "h2c" in key)
        return factory

    def _connect(self, tls: ServerTls | None, h2c: bool) -> asyncio.Protocol:
        if tls is not None:
            return TlsAccept(tls, self._secure_connection, min(self.timeouts.read_header, HANDSHAKE_TIMEOUT))
        conn = self._http_connection()
        if h2c:
            conn.sniff = b""  # prior knowledge: the first bytes may be HTTP/2's preface
            conn.h2c = self._switch_to_h2c
        return conn

    def _secure_connection(self, alpn: str | None) -> asyncio.Protocol:
        return self._h2_connection() if alpn == "h2" else self._http_connection()

    def _http_connection(self) -> HttpConnection:
        conn = HttpConnection(self, self.backend, scheme="https" if self.tls is not None else "http",
                              max_header_bytes=self.max_header_bytes, timeouts=self.timeouts, on_close=self._closed)
        self.connections.add(conn)
        return conn

    def _h2_connection(self, upgrade: tuple[bytes, RequestReceived] | None = None) -> Http2Connection:
        conn = Http2Connection(self, scheme="https" if self.tls is not None else "http", timeouts=self.timeouts,
                               max_header_bytes=self.max_header_bytes, on_close=self._closed, upgrade=upgrade)
        self.connections.add(conn)
        return conn

    def _h3_connection(self) -> Http3Connection:
        conn = Http3Connection(self, timeouts=self.timeouts, max_header_bytes=self.max_header_bytes,
                               on_close=self._closed)
        self.connections.add(conn)
        return conn

    def _switch_to_h2c(self, old: HttpConnection, data: bytes, upgrade: tuple[bytes, RequestReceived] | None) -> None:
        """A cleartext connection turns to HTTP/2: its client knew we speak it (the
        preface), or asked to switch (`Upgrade: h2c`, answered with 101 already)."""
        transport = old.detach()
        if transport is None:
            return
        conn = self._h2_connection(upgrade)
        transport.set_protocol(conn)
        conn.connection_made(transport)
        if data:
            conn.data_received(data)
        if self.draining:  # switched after the drain began: it is drained too
            conn.drain(close_idle=False)

    def _closed(self, conn: Any) -> None:
        self.connections.discard(conn)
        if not self.connections and self.idle is not None:
            self.idle.set()

    # --- the App interface ------------------------------------------------------------------

    async def handle(self, head: RequestReceived, body: BodyStream, conn: Any) -> Response:
        """`conn`: the HTTP/1 connection, or the HTTP/2 or HTTP/3 stream."""
        request = Request(head.method, head.target, Headers(head.headers), version=head.version,
                          scheme=conn.scheme, remote=conn.remote, local=conn.local, body=body,
                          server_name=self.name, host=head.host,
                          response_headers=Headers([("Server", SERVER_HEADER)]))
        if self.alt_svc and head.version != "HTTP/3.0":  # as Caddy: HTTP/1 and HTTP/2 responses advertise HTTP/3
            request.response_headers.add("Alt-Svc", self.alt_svc)
        if "%" in request.raw_path and _BAD_ESCAPE.search(request.raw_path):
            return _bad_request(b"invalid URL escape")
        authority = request.authority
        if authority not in self.valid_hosts:
            if not _VALID_HOST.fullmatch(authority):
                return _bad_request(b"malformed Host header")
            if len(self.valid_hosts) < 1024:
                self.valid_hosts.add(authority)
        request.content_length = head.content_length
        request.chunked = head.chunked
        if self.client_ip.ranges:
            request.vars["client_ip"] = self.client_ip.of(request)
            request.vars["trusted_proxy"] = self.client_ip.peer_trusted(request)
        else:
            request.vars["client_ip"] = request.remote_ip
        conn.exchange = request
        if self.challenges is not None and request.raw_path.startswith(HTTP_PREFIX):
            answer = self.challenges.http_answer(request.host, request.raw_path)
            if answer is not None:
                log.info("served ACME HTTP-01 challenge", extra={"identifier": request.host})
                return Response(200, Headers([("Content-Type", "text/plain")]), answer)
        request.tls = conn.tls
        request.informational = conn.send_informational
        metrics = self.metrics
        if metrics:
            REQUESTS_IN_FLIGHT.add(self.labels, 1.0)
        try:
            try:
                response = await self.routes.serve(request)
            except HttpError as exc:
                response = await serve_errors(self.errors, request, exc)
            if metrics and request.error is not None:
                REQUEST_ERRORS_TOTAL.add(self.labels, 1.0)
            content: Any = response.body
            if content and type(content) is bytes and "Content-Type" not in response.headers:
                response.headers.add("Content-Type", detect_content_type(content[:512]))  # as Go's server sniffs
            return response
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:  # a handler's bug: one log record with an id the client also sees
            ident = error_id()
            log.exception("handler failed", extra={"error_id": ident, "uri": request.uri})
            if metrics:
                REQUEST_ERRORS_TOTAL.add(self.labels, 1.0)
            headers = Headers([("Server", SERVER_HEADER), ("Content-Type", "text/plain; charset=utf-8")])
            return Response(500, headers, f"internal server error (id {ident})\n".encode())
        finally:
            if metrics:
                REQUESTS_IN_FLIGHT.add(self.labels, -1.0)
                REQUESTS_TOTAL.add(self.labels, 1.0)

    def sent(self, response: Response, head: RequestReceived, written: int, body: BodyStream) -> None:
        if self.access_log is None:
            return
        request = getattr(response, "request", None)
        request = request if request is not None else _current(body)
        if request is not None:
            self.access_log.log(request, response.status, response.headers, written, body.bytes_read,
                                time.time() - request.start_time)

    # --- draining ----------------------------------------------------------------------

    def drain(self, close_idle: bool = True) -> None:
        self.draining = True
        for conn in list(self.connections):
            conn.drain(close_idle)

    async def wait_idle(self, timeout: float | None) -> bool:
        """Wait until every connection has closed; False if `timeout` ran out first."""
        if not self.connections:
            return True
        self.idle = asyncio.Event()
        try:
            await asyncio.wait_for(self.idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def abort_all(self) -> None:
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()


def _alpn(protocols: tuple[str, ...]) -> tuple[str, ...]:
    """The ALPN protocol ids a TCP listener offers for `protocols` (h3 is QUIC's)."""
    return tuple(name for proto, name in (("h2", "h2"), ("h1", "http/1.1")) if proto in protocols)


def _bad_request(reason: bytes) -> Response:
    return Response(400, Headers([("Content-Type", "text/plain; charset=utf-8")]), b"400 Bad Request: " + reason + b"\n",
                    close=True)


def _current(body: BodyStream) -> Request | None:
    request = getattr(body.conn, "exchange", None)
    return request if isinstance(request, Request) else None


def _access_logger(config: Any, ctx: BuildContext) -> Any:
    """The server's access logger, or None when its config asks for no access logs."""
    if config.logs is None:
        return None
    from rws.observability.access_log import AccessLogger

    return AccessLogger(config.logs, ctx)


__all__ = ["HttpServer", "HttpError"]
