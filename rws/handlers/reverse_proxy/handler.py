"""The `reverse_proxy` handler: choose an upstream, send it the request, stream back the
response; try another upstream when that is safe.

Per request: the upstream-bound header fields are prepared once (forwarding.py); then
each attempt picks an upstream with the selection policy among the available ones, sets
the `{http.reverse_proxy.upstream.*}` placeholders, applies `header_up`, and sends the
request through the transport (upstream_pool.py: HTTP/1.1 or HTTP/2, as the transport's
`versions` and the upstream agree). A failed attempt counts against the
upstream's health and is retried, within `lb_retries`/`lb_try_duration` and the retry
budget, when no byte reached the upstream (a dial error, or no upstream available) or
when the request is idempotent and its body can be sent again. The response streams to
the client with `header_down` applied; an upstream's `101 Switching Protocols` turns the
exchange into a two-way byte stream (streaming.py).

Errors: no upstream available → 503; a dial or protocol failure → 502; no response
within the transport's timeouts → 504.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from rws.errors import HttpError
from rws.handlers.headers import HeaderOps, ResponseMatcher
from rws.handlers.reverse_proxy.config import ReverseProxyConfig
from rws.handlers.reverse_proxy.exchange import DialError, UpstreamError, UpstreamResponse, UpstreamTimeout
from rws.handlers.reverse_proxy.forwarding import (client_response_headers, sendable_method, sendable_target,
                                                  upstream_request_headers)
from rws.handlers.reverse_proxy.transport_config import HttpTransportConfig
from rws.handlers.reverse_proxy.upstream_pool import HttpTransport
from rws.handlers.reverse_proxy.response_handling import RESPONSE_KEY, build_response_handlers, handle_response
from rws.handlers.reverse_proxy.upstreams import Upstream, acquire_host, release_host
from rws.handlers.rewrite_runtime import Rewrite
from rws.http.matchers.ip import parse_range
from rws.http.message import EMPTY_BODY, Headers, Next, Request, Response, status_text
from rws.http.placeholders import compile_template, prefix_provider

log = logging.getLogger(__name__)

UPSTREAM_KEY = "http.reverse_proxy.upstream"  # request.values: the upstream of the current attempt

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
DEFAULT_TRY_INTERVAL = 0.25
MAX_KNOWN_HOSTS = 1024  # dynamic and templated upstreams remembered per proxy


class RetryBudget:
    """Retries of requests already sent may add at most `ratio` of the requests (plus a
    few per second), so a failing upstream can't turn into a retry storm. (Retrying a
    failed dial sends nothing twice: it needs no budget.)"""

    __slots__ = ("ratio", "tokens", "cap", "minimum", "window", "spent")

    def __init__(self, ratio: float = 0.2, minimum: int = 10) -> None:
        self.ratio = ratio
        self.cap = 100.0
        self.tokens = 0.0
        self.minimum = minimum  # retries allowed per second regardless of traffic
        self.window = 0
        self.spent = 0

    def deposit(self) -> None:
        self.tokens = min(self.cap, self.tokens + self.ratio)

    def withdraw(self) -> bool:
        second = int(time.monotonic())
        if second != self.window:
            self.window, self.spent = second, 0
        if self.spent < self.minimum:
            self.spent += 1
            return True
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class ReverseProxy:
    """The runtime of `http.handlers.reverse_proxy`."""

    def __init__(self, config: ReverseProxyConfig, ctx: Any) -> None:
        from rws.handlers.reverse_proxy.health import Health
        from rws.handlers.reverse_proxy.selection import build_random

        self.transport: HttpTransport = (ctx.build(config.transport) if config.transport is not None
                                         else _default_transport(ctx))
        lb = config.load_balancing
        self.policy: Any = (ctx.build(lb.selection_policy) if lb is not None and lb.selection_policy is not None
                            else build_random(None, ctx))
        self.retries = lb.retries if lb is not None else 0
        self.try_duration = lb.try_duration if lb is not None else 0.0
        self.try_interval = (lb.try_interval or (DEFAULT_TRY_INTERVAL if self.try_duration else 0.0)) if lb else 0.0
        self.retry_match = ctx.build_matcher_sets(lb.retry_match) if lb is not None and lb.retry_match else ()
        self.budget = RetryBudget()
        self.trusted = tuple(parse_range(r)[0] for r in config.trusted_proxies)
        headers = config.headers
        self.header_up = HeaderOps(headers.request) if headers is not None and headers.request is not None else None
        response_ops = headers.response if headers is not None else None
        self.header_down = HeaderOps(response_ops) if response_ops is not None else None
        self.header_down_require = (ResponseMatcher(response_ops.require)
                                    if response_ops is not None and response_ops.require is not None else None)
        self.rewrite = Rewrite(config.rewrite) if config.rewrite is not None else None
        self.dynamic = ctx.build(config.dynamic_upstreams) if config.dynamic_upstreams is not None else None
        self.response_handlers = build_response_handlers(config.handle_response, ctx)
        self.request_buffers = config.request_buffers  # -1: all of it
        self.response_buffers = config.response_buffers
        self.stream_timeout = config.stream_timeout
        self.stream_close_delay = config.stream_close_delay
        self.templated = any("{" in u.dial for u in config.upstreams)
        self.hosts: dict[str, Upstream] = {}  # dial address -> upstream, for templated and dynamic ones
        static = [] if self.templated else [Upstream(u.dial, acquire_host(u.dial), u.max_requests)
                                            for u in config.upstreams]
        self.health = Health(config.health_checks, static, send=self.transport.health_check)
        self.upstreams: list[Upstream] = [self._checked(u) for u in static]
        self.dial_templates = [(compile_template(u.dial), u.max_requests) for u in config.upstreams] if self.templated else []
        ctx.on_start(self.health.start)
        ctx.on_close(self.close)

    # --- upstreams ---------------------------------------------------------------------------

    def _checked(self, upstream: Upstream) -> Upstream:
        """`upstream` with the limits the health checks set."""
        upstream.max_requests = self.health.max_requests(upstream.max_requests)
        upstream.max_fails, upstream.breaker = self.health.max_fails, self.health.breaker
        return upstream

    def _known(self, dial: str, max_requests: int = 0) -> Upstream:
        upstream = self.hosts.get(dial)
        if upstream is None:
            if len(self.hosts) >= MAX_KNOWN_HOSTS:  # addresses may come from requests: stay bounded
                self._forget_idle_hosts()
            upstream = self.hosts[dial] = self._checked(Upstream(dial, acquire_host(dial), max_requests))
        return upstream

    def _forget_idle_hosts(self) -> None:
        """Drop the oldest half of the dynamic and templated upstreams with nothing in flight."""
        for dial in list(self.hosts)[:MAX_KNOWN_HOSTS // 2]:
            if self.hosts[dial].host.num_requests == 0:
                release_host(self.hosts.pop(dial).host)

    async def _pool(self, request: Request) -> list[Upstream]:
        if self.dynamic is not None:
            try:
                dials = await self.dynamic.get_upstreams(request)
            except HttpError:
                if not self.upstreams:
                    raise
                log.error("failed getting dynamic upstreams; falling back to static upstreams")
            else:
                return [self._known(d) for d in dials]
        if self.templated:
            return [self._known(t.render(request), n) for t, n in self.dial_templates]
        return self.upstreams

    def close(self) -> None:
        self.health.close()
        for upstream in [*self.upstreams, *self.hosts.values()]:
            release_host(upstream.host)
        self.upstreams = []
        self.hosts.clear()

    # --- requests ----------------------------------------------------------------------------

    async def handle(self, request: Request, next: Next) -> Response:
        self.budget.deposit()
        method, target = request.method, request.uri
        body: Any = request.body
        selecting = request  # what the selection policy looks at: the request as it goes upstream
        if self.rewrite is not None:
            selecting = self.rewrite.rewrite(request)
            if selecting.method != method and selecting.method in ("GET", "HEAD"):
                body = None  # as Caddy: a rewrite to GET or HEAD sends no body
            method, target = selecting.method, selecting.uri
        trusted = bool(request.vars.get("trusted_proxy")) or self._trusted(request.remote_ip)
        base_headers, upgrade = upstream_request_headers(request, trusted)
        # The framing and the Host are rws's own, never copied from the client's fields
        # (which a `Connection` token may have removed).
        base_headers.delete("Content-Length")
        base_headers.delete("Transfer-Encoding")
        if request.authority:
            base_headers.set("Host", request.authority)
        has_body = body is not None and body is not EMPTY_BODY and (request.chunked or bool(request.content_length))
        chunked = request.chunked
        if has_body and self.request_buffers:
            body, chunked = await self._buffer_request(body, base_headers)
        elif has_body:
            base_headers.add(*(("Transfer-Encoding", "chunked") if chunked else
                               ("Content-Length", str(request.content_length))))
        if not has_body:
            body = None
        if not sendable_target(target) or not sendable_method(method):
            raise HttpError(502, f"cannot send the request {method!r} {target!r} upstream")
        start = time.monotonic()
        retries = 0
        tried: set[str] = set()
        resendable = body is None or isinstance(body, bytes)  # not a stream read from the client
        replayable = resendable and method in IDEMPOTENT
        while True:
            pool = await self._pool(request) if self.dynamic is not None or self.templated else self.upstreams
            if tried:  # a retry goes to another upstream while there is one
                pool = [u for u in pool if u.dial not in tried] or pool
            upstream = self.policy.select(pool, selecting)
            if upstream is None:
                error = HttpError(503, "no upstreams available")
                if not self._try_again(start, retries, request, sent=False):
                    raise error
                retries += 1
                await self._pause()
                continue
            request.values[UPSTREAM_KEY] = upstream
            headers = base_headers
            if self.header_up is not None:
                headers = base_headers.copy()
                self.header_up.apply(headers, request)
            if "Host" not in headers:
                headers.add("Host", request.authority or upstream.dial)
            began = time.monotonic()
            host = upstream.host
            host.num_requests += 1
            if upstream.breaker is not None and host.circuit != "closed":
                host.probing = True
            try:
                response = await self.transport.round_trip(upstream.dial, method, target, headers, body,
                                                           chunked=chunked, head_only=method == "HEAD",
                                                           replayable=replayable, informational=request.informational,
                                                           upgrade=bool(upgrade))
            except (DialError, UpstreamTimeout, UpstreamError) as exc:
                host.num_requests -= 1
                tried.add(upstream.dial)
                self.health.record(upstream, None, time.monotonic() - began, True)
                sent = not isinstance(exc, DialError)
                status = 504 if isinstance(exc, UpstreamTimeout) else 502
                log.debug("upstream attempt failed", extra={"upstream": upstream.dial, "error": str(exc)})
                if not self._try_again(start, retries, request, sent=sent, has_body=not resendable):
                    raise HttpError(status, str(exc)) from None
                retries += 1
                await self._pause()
                continue
            except BaseException:  # the client went away
                host.num_requests -= 1
                raise
            self.health.record(upstream, response.status, time.monotonic() - began, False)
            return await self._finish(request, next, upstream, response, upgrade)

    async def _finish(self, request: Request, next: Next, upstream: Upstream, response: UpstreamResponse,
                      upgrade: str) -> Response:
        """The client's response to an upstream response: buffered (`response_buffers`),
        handled by `handle_response` routes, or copied. The upstream's request stays
        counted in flight until its body is done with, whatever happens here."""
        copied: list[Response] = []

        def finalize(held: UpstreamResponse) -> Response:
            copied.append(self._respond(request, upstream, held, upgrade))
            return copied[-1]

        try:
            if self.response_buffers and response.body is not None:
                try:
                    await self._buffer_response(response)
                except (UpstreamTimeout, UpstreamError) as exc:
                    raise HttpError(504 if isinstance(exc, UpstreamTimeout) else 502, str(exc)) from None
            values = request.values
            values[RESPONSE_KEY] = response
            values["http.reverse_proxy.status_code"] = response.status
            values["http.reverse_proxy.status_text"] = status_text(response.status)
            if self.response_handlers:
                handled = await handle_response(self.response_handlers, request, next, response, finalize)
                if handled is not None:
                    return handled
            return finalize(response)
        finally:
            if not copied:  # the upstream's response was dropped (or failed)
                upstream.host.num_requests -= 1
                if response.body is not None:
                    await response.body.aclose()
                if response.upgraded is not None:
                    response.upgraded.close()

    async def _buffer_request(self, body: Any, headers: Headers) -> tuple[Any, bool]:
        """`request_buffers`: read up to that many bytes of the body first (all for -1).
        A body that fits is sent with its Content-Length (and may be sent again on a
        retry); a longer one is sent as read so far, then streamed, in chunks."""
        data, complete = await _read_up_to(body.read, self.request_buffers)
        if complete:
            headers.add("Content-Length", str(len(data)))
            return data, False
        headers.add("Transfer-Encoding", "chunked")
        return _Prefixed(data, body), True

    async def _buffer_response(self, response: UpstreamResponse) -> None:
        """`response_buffers`: read up to that many bytes of the response body before
        answering; a body that fits goes out in one piece, a longer one streams on."""
        body = response.body
        assert body is not None

        async def read(n: int) -> bytes:
            try:
                return await body.__anext__()
            except StopAsyncIteration:
                return b""
        data, complete = await _read_up_to(read, self.response_buffers)
        if complete:
            response.body, response.data = None, data
        else:
            body.unread(data)

    def _trusted(self, remote_ip: str) -> bool:
        if not self.trusted or not remote_ip:
            return False
        from rws.http.matchers.ip import parse_address

        parsed = parse_address(remote_ip)
        return parsed is not None and any(parsed[0].version == n.version and parsed[0] in n for n in self.trusted)

    def _try_again(self, start: float, retries: int, request: Request, *, sent: bool, has_body: bool = False) -> bool:
        if not self.try_duration and not self.retries:
            return False
        if self.try_duration and time.monotonic() - start >= self.try_duration:
            return False
        if self.retries and retries >= self.retries:
            return False
        if sent:
            if has_body:
                return False  # the body was read from the client and can't be sent again
            if self.retry_match:
                from rws.http.routes import match_any

                if not match_any(self.retry_match, request):
                    return False
            elif request.method not in IDEMPOTENT:
                return False
            return self.budget.withdraw()
        return True  # a dial that failed put nothing on any upstream: no budget needed

    async def _pause(self) -> None:
        if self.try_interval:
            await asyncio.sleep(self.try_interval * random.uniform(0.5, 1.5))

    def _respond(self, request: Request, upstream: Upstream, response: UpstreamResponse, upgrade: str) -> Response:
        headers = client_response_headers(response.headers, request.response_headers)
        if self.header_down is not None and (self.header_down_require is None
                                             or self.header_down_require.match(response.status, headers)):
            self.header_down.apply(headers, request)
        host = upstream.host
        if response.status == 101:
            offered = response_header(response, "Upgrade")
            if response.upgraded is None or not upgrade or offered.lower() != upgrade.lower():
                raise HttpError(502, f"the upstream switched to {offered!r}, which the client did not ask for")
            from rws.handlers.reverse_proxy.streaming import tunnel_response

            headers.set("Connection", "Upgrade")
            headers.set("Upgrade", response_header(response, "Upgrade") or upgrade)
            return tunnel_response(headers, response.upgraded, on_close=lambda: _done(host),
                                   timeout=self.stream_timeout, close_delay=self.stream_close_delay)
        if response.body is None:
            host.num_requests -= 1
            return Response(response.status, headers, response.data)
        response.body.on_release = lambda: _done(host)  # in flight until its body is done with
        proxied = Response(response.status, headers, response.body)
        if response.length is None:
            proxied.trailers = Headers(response.trailers)  # the upstream's trailers, once its body ends
        return proxied


@prefix_provider(UPSTREAM_KEY + ".")
def _upstream_placeholder(request: Request, key: str) -> tuple[Any, bool]:
    """`{http.reverse_proxy.upstream.*}`: the upstream of the current attempt."""
    upstream = request.values.get(UPSTREAM_KEY)
    if not isinstance(upstream, Upstream):
        return None, False
    dial = upstream.dial
    host, _, port = ("", "", "") if dial.startswith("unix/") else dial.rpartition(":")
    values = {"address": dial, "hostport": dial, "host": host.strip("[]"), "port": port,
              "requests": upstream.host.num_requests, "max_requests": upstream.max_requests,
              "fails": upstream.host.fails}
    return (values[key], True) if key in values else (None, False)


def response_header(response: UpstreamResponse, name: str) -> str:
    lname = name.lower()
    return next((v for k, v in response.headers if k.lower() == lname), "")


def _done(host: Any) -> None:
    host.num_requests -= 1


async def _read_up_to(read: Any, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes (no limit for -1) from `read(n)`, and whether that was all."""
    parts: list[bytes] = []
    size = 0
    while limit < 0 or size <= limit:
        data = await read(256 * 1024 if limit < 0 else limit + 1 - size)
        if not data:
            return b"".join(parts), True
        parts.append(data)
        size += len(data)
    return b"".join(parts), False


class _Prefixed:
    """A request body whose first bytes were already read."""

    __slots__ = ("first", "rest")

    def __init__(self, first: bytes, rest: Any) -> None:
        self.first = first
        self.rest = rest

    async def read(self, n: int = -1) -> bytes:
        if self.first:
            data, self.first = self.first, b""
            return data
        return await self.rest.read(n)  # type: ignore[no-any-return]


def _default_transport(ctx: Any) -> HttpTransport:
    from rws.handlers.reverse_proxy.upstream_pool import build_http_transport

    return build_http_transport(HttpTransportConfig(), ctx)


def build_reverse_proxy(config: ReverseProxyConfig, ctx: Any) -> ReverseProxy:
    return ReverseProxy(config, ctx)

