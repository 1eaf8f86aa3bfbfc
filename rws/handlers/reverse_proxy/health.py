"""Health of a proxy's upstreams: active checks, passive checks and the circuit breaker.

**Active checks** (`health_checks.active`, on when `uri`, `path` or `port` is set) send
one request to every static upstream each `interval` (30s), all upstreams of a round at
once, each exchange bounded by `timeout` (5s). They go through the proxy's transport
(`HttpTransport.health_check`), so an upstream is checked in the protocol its proxied
requests use (HTTP/1.1, TLS, h2c or h2 by ALPN), over a connection of the check's own
that never competes with proxied requests for a pooled connection or `max_conns_per_host`.
A check passes when the status is 2xx (or matches `expect_status`: `503`, or `5` for any
5xx) and, with `expect_body`, when that Go regexp matches the first `max_size` bytes of
the body (only those are read). A 3xx fails unless `follow_redirects` is on (then up to
10 redirects are followed, always to the same upstream, as Caddy's transport dials its
upstream whatever the URL says). A host goes down after `fails` failed checks in a row
and up after `passes` passed checks in a row (both 1 by default), so a flapping backend
does not bounce; the verdict is `Host.healthy`, shared by every proxy that uses the host
and logged when it changes ("host is down" as a warning, "host is up" as info). With
worker processes the supervisor runs the checks (upstreams.py). `port` checks the same
host on another port, `upstream` checks another address; `headers` may set `Host`;
header values and `body` may use global placeholders (`{env.*}`, `{system.*}`,
`{time.*}`) and `{http.reverse_proxy.active.target_upstream}` (the upstream's dial
address). When the last checker of a host stops (its config was replaced by one without
active checks), the host counts as up again.

**Passive checks** (`health_checks.passive`, counting when `fail_duration` > 0) look at
the proxy's own requests (`record`): a transport error, a status in `unhealthy_status`,
or a response slower than `unhealthy_latency` counts a failure (a slow bad status counts
two, as in Caddy), forgotten `fail_duration` later. A host with `max_fails` (default 1)
failures or more is unhealthy. `unhealthy_request_count` is a default `max_requests` for
upstreams that set none (`max_requests`), which makes hosts with that many requests in
flight unavailable, as in Caddy.

**The circuit breaker** (rws's addition, see `CircuitBreaker`) opens a host's circuit
when its passive failures reach `max_fails`, keeps it open for `fail_duration`, then lets
one probe request through; the probe's outcome closes the circuit or opens it again. An
active check that brings a host back up closes its circuit too.
"""

from __future__ import annotations

import asyncio
import logging
import re
import urllib.parse
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from rws.handlers.reverse_proxy.config import ActiveHealthChecksConfig, HealthChecksConfig
from rws.handlers.reverse_proxy.dial_addresses import (
    AddressError,
    is_fd_network,
    is_unix_network,
    join_host_port,
    parse_network_address,
)
from rws.handlers.reverse_proxy.exchange import UpstreamError, UpstreamResponse, UpstreamTimeout
from rws.handlers.reverse_proxy.forwarding import sendable_target
from rws.handlers.reverse_proxy.upstreams import (
    CLOSED, OPEN, CircuitBreaker, Host, Upstream, active_checks_here, forget_failure_later, set_verdict,
)
from rws.http.message import Headers, Request, canonical_header_key
from rws.http.placeholders import GLOBAL_PREFIXES, Template, compile_template, lookup, replace_known, to_string
from rws.http.regexp import compile_regexp

log = logging.getLogger(__name__)

# How a check is sent: (address, method, target, headers, body) -> the response, open
# within the block; the transport's `health_check`.
SendCheck = Callable[[str, str, str, Headers, bytes], AbstractAsyncContextManager[UpstreamResponse]]

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 5.0
MAX_REDIRECTS = 10  # as Go's http.Client
MAX_BODY_BYTES = 16 << 20  # how much of a body `expect_body` looks at when `max_size` is not set
TARGET_UPSTREAM = "http.reverse_proxy.active.target_upstream"
USER_AGENT = "Go-http-client/1.1"  # what Caddy's checks send unless `headers` set one
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

# Hosts under active checks -> how many checkers watch them; the last one to stop resets
# the host's verdict, so that a config without active checks does not inherit a "down".
_WATCHED: dict[Host, int] = {}


def status_matches(status: int, code: int) -> bool:
    """Caddy's StatusCodeMatches: `code` itself, or its class when it has one digit."""
    return status == code or (0 < code < 10 and code * 100 <= status < code * 100 + 100)


class Health:
    """The health checking of one proxy (see the module docstring)."""

    def __init__(self, config: HealthChecksConfig | None, upstreams: Sequence[Upstream], *, send: SendCheck) -> None:
        passive = config.passive if config is not None else None
        active = config.active if config is not None else None
        self.max_fails = (passive.max_fails or 1) if passive is not None else 0
        self.fail_duration = passive.fail_duration if passive is not None else 0.0
        self.request_limit = passive.unhealthy_request_count if passive is not None else 0
        self.unhealthy_status = passive.unhealthy_status if passive is not None else ()
        self.unhealthy_latency = passive.unhealthy_latency if passive is not None else 0.0
        self.breaker = CircuitBreaker(self.max_fails, self.fail_duration) if self.fail_duration > 0 else None
        self.active = (ActiveChecker(active, upstreams, send)
                       if active is not None and (active.uri or active.path or active.port) else None)
        self._failures: dict[asyncio.TimerHandle, Host] = {}  # failures counted and not yet forgotten
        self._start_pending = False

    def max_requests(self, configured: int) -> int:
        """An upstream's limit of requests in flight: its own, else `unhealthy_request_count`."""
        return configured or self.request_limit

    def start(self) -> None:
        """Start the active checks on the running event loop. Called where no loop runs
        (a config built in a worker thread), it leaves them to start with the first
        `record` or a later `start` from the loop."""
        if self.active is None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._start_pending = True
            return
        self._start_pending = False
        self.active.start()

    def close(self) -> None:
        """Stop checking, and forget the failures this proxy counted, as Caddy does when a
        handler is unloaded."""
        self._start_pending = False
        if self.active is not None:
            self.active.close()
        for handle, host in self._failures.items():
            handle.cancel()
            host.count_fail(-1)
        self._failures.clear()

    def record(self, upstream: Upstream, status: int | None, latency: float, error: bool) -> None:
        """Passive checks: the outcome of one attempt (status None when `error`)."""
        if self._start_pending:
            self.start()
        if self.fail_duration <= 0:
            return
        failures = 1 if error else 0
        if not error and status is not None and any(status_matches(status, c) for c in self.unhealthy_status):
            failures += 1
        if not error and self.unhealthy_latency > 0 and latency >= self.unhealthy_latency:
            failures += 1
        host = upstream.host
        for _ in range(failures):
            forget_failure_later(host, self.fail_duration, self._failures)
        if self.breaker is not None:
            changed = self.breaker.record(host, failures == 0)
            if changed == OPEN:
                log.warning("circuit opened", extra={"host": host.address, "fails": host.fails,
                                                      "open_for": self.fail_duration})
            elif changed == CLOSED:
                log.info("circuit closed", extra={"host": host.address})


# --- active checks -------------------------------------------------------------------------


@dataclass(slots=True)
class _Target:
    """What one upstream's check talks to, and this checker's results in a row for it
    (kept per checker, as Caddy keeps them per handler: two proxies checking one host
    differently, or the old and new config during a reload, do not add up)."""

    host: Host  # gets the verdict
    dial: str  # the address the check goes to: the upstream's, or the one `port`/`upstream` make
    address: str  # the upstream as logged: host:port ("localhost" for a socket)
    authority: str  # the check URL's host, the default Host header
    target_upstream: str  # {http.reverse_proxy.active.target_upstream}
    passes: int = 0
    fails: int = 0


class CheckFailed(Exception):
    """A check that did not pass; the message is the log record's, `fields` its fields."""

    def __init__(self, message: str, **fields: object) -> None:
        super().__init__(message)
        self.fields = fields


class ActiveChecker:
    """The background task of active checks, built once from the config."""

    def __init__(self, config: ActiveHealthChecksConfig, upstreams: Sequence[Upstream], send: SendCheck) -> None:
        self.config = config
        self.send = send
        self.interval = config.interval if config.interval > 0 else DEFAULT_INTERVAL
        self.timeout = config.timeout if config.timeout > 0 else DEFAULT_TIMEOUT
        self.passes = max(config.passes, 1)
        self.fails = max(config.fails, 1)
        self.method = config.method or "GET"
        self.target = _request_target(config)
        self.body = compile_template(config.body) if config.body else None
        self.expect_body = compile_regexp(config.expect_body) if config.expect_body else None
        self.max_body = config.max_size if config.max_size > 0 else MAX_BODY_BYTES
        merged: dict[str, list[str]] = {}
        for name, values in (config.headers or {}).items():
            merged.setdefault(canonical_header_key(name), []).extend(values)
        self.headers = [(compile_template(k), [compile_template(v) for v in vs]) for k, vs in merged.items()]
        self.targets: list[_Target] = []
        for upstream in upstreams:
            target = _target(config, upstream)
            if target is not None and all(t.host is not target.host for t in self.targets):
                self.targets.append(target)
        self._task: asyncio.Task[None] | None = None
        self._watching = False

    def start(self) -> None:
        if self._task is not None or not active_checks_here():
            return
        for target in self.targets:
            _WATCHED[target.host] = _WATCHED.get(target.host, 0) + 1
        self._watching = True
        self._task = asyncio.get_running_loop().create_task(self._run(), name="active health checks")

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if not self._watching:
            return
        self._watching = False
        for target in self.targets:
            left = _WATCHED.get(target.host, 1) - 1
            if left > 0:
                _WATCHED[target.host] = left
                continue
            _WATCHED.pop(target.host, None)
            set_verdict(target.host, True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await self.check_all()
            await asyncio.sleep(max(0.0, began + self.interval - loop.time()))

    async def check_all(self) -> None:
        """One round: every target at once."""
        await asyncio.gather(*(self._check(t) for t in self.targets), return_exceptions=True)

    async def _check(self, target: _Target) -> None:
        """Check one target and count the result; nothing escapes but cancellation."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._exchange(target)
        except CheckFailed as exc:
            log.info(str(exc), extra={"host": target.address, **exc.fields})
            passed = False
        except TimeoutError:
            log.info("HTTP request failed", extra={"host": target.address, "error": "timeout"})
            passed = False
        except (OSError, ValueError) as exc:  # dial, I/O or protocol failures (DialError, UpstreamError)
            log.info("HTTP request failed", extra={"host": target.address, "error": str(exc) or repr(exc)})
            passed = False
        except Exception:  # a bug: log it and leave the verdict alone
            log.exception("active health check failed", extra={"host": target.address})
            return
        else:
            passed = True
        self._count(target, passed)

    def _count(self, target: _Target, passed: bool) -> None:
        """The passes/fails thresholds: only results in a row change the verdict."""
        host = target.host
        if passed:
            target.fails = 0
            target.passes += 1
            if not host.healthy and target.passes >= self.passes:
                target.passes = 0
                log.info("host is up", extra={"host": target.address})
                if host.circuit != CLOSED:
                    log.info("circuit closed", extra={"host": host.address})
                set_verdict(host, True)
        else:
            target.passes = 0
            target.fails += 1
            if host.healthy and target.fails >= self.fails:
                set_verdict(host, False)
                target.fails = 0
                log.warning("host is down", extra={"host": target.address})

    async def _exchange(self, target: _Target) -> None:
        """Send the check (following redirects if asked) and judge the response; raises
        CheckFailed (or a transport error) when the check fails."""
        method, path, authority = self.method, self.target, target.authority
        fields, host_header = self._headers(target)
        body = self.body.render(_blank(target), empty="").encode() if self.body is not None else b""
        for _ in range(MAX_REDIRECTS + 1):
            headers = _request_headers(method, path, host_header or authority, fields, body)
            async with self.send(target.dial, method, path, headers, body) as response:
                status = response.status
                location = next((v for k, v in response.headers if k.lower() == "location"), None)
                if not (self.config.follow_redirects and status in _REDIRECTS and location):
                    self._judge_status(status)
                    if self.expect_body is not None:
                        self._judge_body(await _read_body(response, self.max_body))
                    return
            path, authority, relative = _redirect(authority, path, location)
            if not relative:
                host_header = ""
            if status in (301, 302, 303):
                body = b""
                if method not in ("GET", "HEAD"):
                    method = "GET"
        raise CheckFailed("HTTP request failed", error=f"stopped after {MAX_REDIRECTS} redirects")

    def _judge_status(self, status: int) -> None:
        expected = self.config.expect_status
        if expected > 0:
            if not status_matches(status, expected):
                raise CheckFailed("unexpected status code", status_code=status)
        elif not 200 <= status < 300:
            raise CheckFailed("status code out of tolerances", status_code=status)

    def _judge_body(self, body: bytes) -> None:
        assert self.expect_body is not None
        if not self.expect_body.search(body.decode("utf-8", "replace")):
            raise CheckFailed("response body failed expectations")

    def _headers(self, target: _Target) -> tuple[list[tuple[str, str]], str]:
        """The configured headers for this check, and the Host override ("" if none)."""
        request = _blank(target)
        out: list[tuple[str, str]] = []
        host = ""
        for key_template, value_templates in self.headers:
            key = canonical_header_key(_replace_all(key_template, request))
            if key == "Host":
                host = _replace_all(value_templates[0], request) if value_templates else ""
                continue
            out.extend((key, replace_known(t.text, lambda k: _lookup(request, k))) for t in value_templates)
        return out, host


def _target(config: ActiveHealthChecksConfig, upstream: Upstream) -> _Target | None:
    """Where the check of `upstream` goes, or None (logged) if its address cannot be checked."""
    try:
        addr = parse_network_address(upstream.dial)
    except AddressError as exc:
        log.error("bad network address", extra={"address": upstream.dial, "error": str(exc)})
        return None
    socket = is_unix_network(addr.network) or is_fd_network(addr.network)
    start, end = addr.start_port, addr.end_port
    if config.port and not config.upstream:
        socket, start, end = False, config.port, config.port  # a port means TCP, even for a socket
    if end != start:
        log.error("multiple addresses (upstream must map to only one address)", extra={"address": upstream.dial})
        return None
    address = "localhost" if socket else join_host_port(addr.host, str(start))
    if config.upstream:
        dial, authority = config.upstream, config.upstream
    elif config.port:
        dial, authority = address, address
    else:
        dial, authority = upstream.dial, address
    return _Target(upstream.host, dial, address, authority, upstream.dial)


def _request_target(config: ActiveHealthChecksConfig) -> str:
    """The request-target: `uri`'s path (re-escaped, as Go sends a URL's Path) and query,
    or the deprecated `path`."""
    if config.uri:
        parts = urllib.parse.urlsplit(config.uri)
        path, query = urllib.parse.unquote(parts.path), parts.query
    else:
        path, query = config.path, ""
    escaped = path if path == "*" else urllib.parse.quote(path, safe="$&+,/:;=@")
    return (escaped or "/") + ("?" + query if query else "")


# --- placeholders: only global ones and the target upstream, as Caddy's health checker -----


def _blank(target: _Target) -> Request:
    request = Request("GET", "/", Headers())
    request.values[TARGET_UPSTREAM] = target.target_upstream
    return request


def _lookup(request: Request, key: str) -> tuple[object, bool]:
    if key == TARGET_UPSTREAM or key.startswith(GLOBAL_PREFIXES):
        return lookup(request, key)
    return None, False


def _replace_all(template: Template, request: Request) -> str:
    """Caddy's ReplaceAll with the health checker's replacer: unknown placeholders -> ""."""
    if template.static or template.broken:
        return template.text_value
    out = []
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
        else:
            value, found = _lookup(request, part[0])
            out.append(to_string(value) if found else "")
    return "".join(out)


# --- the request and the response ----------------------------------------------------------

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _request_headers(method: str, target: str, host: str, fields: list[tuple[str, str]], body: bytes) -> Headers:
    """The check request's header fields, after the checks Go's client makes before it
    sends anything (a request it refuses fails the check). Go sends its User-Agent and a
    Content-Length for a body (and an empty one for POST, PUT and PATCH)."""
    if not _TOKEN.fullmatch(method):
        raise CheckFailed("HTTP request failed", error=f"invalid method {method!r}")
    if not sendable_target(target):
        raise CheckFailed("HTTP request failed", error=f"invalid request target {target!r}")
    if _BAD_VALUE.search(host) or " " in host:
        raise CheckFailed("HTTP request failed", error=f"invalid Host header {host!r}")
    headers = Headers([("Host", host)])
    for name, value in fields:
        if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            raise CheckFailed("HTTP request failed", error=f"invalid header field {name!r}")
        headers.add(name, value)
    if "User-Agent" not in headers:
        headers.add("User-Agent", USER_AGENT)
    if body or method in ("POST", "PUT", "PATCH"):
        headers.add("Content-Length", str(len(body)))
    return headers


async def _read_body(response: UpstreamResponse, limit: int) -> bytes:
    """Up to `limit` bytes of the response's body; the rest is never read (the transport
    closes the check's connection). A body cut short fails the check."""
    if response.body is None:
        return response.data[:limit]
    data = bytearray()
    try:
        async for part in response.body:
            data += part
            if len(data) >= limit:
                break
    except (UpstreamError, UpstreamTimeout) as exc:
        raise CheckFailed("failed to read response body", error=str(exc)) from exc
    return bytes(data[:limit])


def _redirect(authority: str, path: str, location: str | None) -> tuple[str, str, bool]:
    """Where a redirect goes: (request-target, URL host, whether `location` was relative)."""
    assert location is not None
    url = urllib.parse.urlsplit(urllib.parse.urljoin(f"http://{authority}{path}", location))
    target = (url.path or "/") + ("?" + url.query if url.query else "")
    return target, url.netloc or authority, not urllib.parse.urlsplit(location).scheme
