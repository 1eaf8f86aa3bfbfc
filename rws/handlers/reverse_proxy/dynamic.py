"""Dynamic upstream sources: the dial addresses of a proxy, found per request.

The handler asks `await source.get_upstreams(request)` for a list of dial addresses
(`host:port`, `[::1]:port` or `unix//path`). Each source keeps its own answers:

- `a`: A/AAAA records of `name`, dialled on `port` (both may hold placeholders, rendered
  per request); each rendered (name, port) is looked up at most once per `refresh` (1m).
- `srv`: SRV records of `_service._proto.name` (or of `name` alone), as `target:port` in
  RFC 2782 order: by priority, then a weighted random order within one priority, kept
  until the next refresh. `grace_period` keeps serving the old answer when a refresh fails.
- `file` (rws's own): one upstream address per line of a file, read again when the file
  changes (checked at most every `refresh`, 1s); the last good list survives a missing file.
- `multi`: the concatenated results of several sources; a failing source is skipped.

Concurrent requests that need the same lookup share it. With `resolver.addresses` the
queries go to those DNS servers (one chosen at random per lookup, as Caddy does), with
`dial_timeout` (default 5s) bounding the whole lookup; otherwise `a` asks the system
(getaddrinfo: /etc/hosts, nsswitch) and `srv` the servers of /etc/resolv.conf. A lookup
that fails with no answer to fall back on raises HttpError(502).
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from rws.errors import ConfigError, HttpError
from rws.handlers.reverse_proxy.dial_addresses import AddressError, join_host_port, parse_network_address, parse_upstream
from rws.handlers.reverse_proxy.upstreams_config import (
    AUpstreamsConfig,
    FileUpstreamsConfig,
    IpVersionsConfig,
    MultiUpstreamsConfig,
    SrvUpstreamsConfig,
    UpstreamResolverConfig,
)
from rws.http.message import Request
from rws.http.placeholders import compile_template
from rws.http.routes import BuildContext

log = logging.getLogger(__name__)

DNS_REFRESH = 60.0  # seconds an answer of `a` or `srv` stays fresh by default
FILE_REFRESH = 1.0  # seconds between two looks at the file of `file` by default
DNS_TIMEOUT = 5.0  # seconds a lookup at the configured DNS servers may take by default
MAX_CACHED = 100  # names one source remembers (Caddy's limit); the oldest goes first

K = TypeVar("K", bound=Hashable)


class LookupFailed(Exception):
    """A lookup that gave no usable answer; the message says which and why, like Go's."""


# --- answers, cached per key, one lookup in flight per key -----------------------------------


@dataclass(slots=True)
class _Answer:
    dials: tuple[str, ...]
    fresh_until: float  # time.monotonic()


class LookupCache(Generic[K]):
    """The answers of one source, each fresh for `refresh` seconds. A stale or missing key
    starts one lookup that every request wanting that key awaits. When it fails, the old
    answer is served for `grace` more seconds if there is one and grace > 0; else 502."""

    def __init__(self, lookup: Callable[[K], Awaitable[tuple[str, ...]]], refresh: float, grace: float = 0.0) -> None:
        self._lookup = lookup
        self._refresh = refresh
        self._grace = grace
        self._answers: dict[K, _Answer] = {}
        self._pending: dict[K, asyncio.Task[tuple[str, ...]]] = {}

    async def get(self, key: K) -> tuple[str, ...]:
        answer = self._answers.get(key)
        if answer is not None and time.monotonic() < answer.fresh_until:
            return answer.dials
        task = self._pending.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._update(key))
            task.add_done_callback(_consume_result)
            self._pending[key] = task
        return await asyncio.shield(task)  # a request that goes away does not cancel the others' lookup

    async def _update(self, key: K) -> tuple[str, ...]:
        try:
            dials = await self._lookup(key)
        except LookupFailed as exc:
            return self._failed(key, exc)
        finally:
            self._pending.pop(key, None)
        if key not in self._answers and len(self._answers) >= MAX_CACHED:
            del self._answers[next(iter(self._answers))]
        self._answers[key] = _Answer(dials, time.monotonic() + self._refresh)
        return dials

    def _failed(self, key: K, exc: LookupFailed) -> tuple[str, ...]:
        old = self._answers.get(key)
        if old is None or self._grace <= 0:
            log.error("dynamic upstream lookup failed", extra={"error": str(exc)})
            raise HttpError(502, str(exc))
        log.error("dynamic upstream lookup failed; using the previous answer", extra={"error": str(exc)})
        old.fresh_until = time.monotonic() + self._grace
        return old.dials

    def close(self) -> None:
        for task in list(self._pending.values()):
            task.cancel()
        self._pending.clear()


def _consume_result(task: asyncio.Task[Any]) -> None:
    """Mark a lookup's error as seen even when every request that wanted it went away."""
    if not task.cancelled():
        task.exception()


# --- DNS ---------------------------------------------------------------------------------------


class _Server(NamedTuple):
    host: str
    port: int
    tcp: bool


class DnsClient:
    """Queries the DNS servers of `resolver.addresses`, or those of /etc/resolv.conf."""

    def __init__(self, config: UpstreamResolverConfig | None, timeout: float) -> None:
        self._servers = [_server(address, i) for i, address in enumerate(config.addresses if config else ())]
        self._timeout = timeout if timeout > 0 else DNS_TIMEOUT
        self._resolvers: dict[tuple[str, int], dns.asyncresolver.Resolver] = {}
        self._system: dns.asyncresolver.Resolver | None = None

    @property
    def configured(self) -> bool:
        """Whether queries go to the configured servers rather than the system's."""
        return bool(self._servers)

    async def query(self, name: str, rdtype: dns.rdatatype.RdataType) -> dns.resolver.Answer:
        """The answer of `name`'s records of `rdtype`; LookupFailed when there is none."""
        try:
            if not self._servers:
                return await self._system_resolver().resolve(name, rdtype, search=True)
            server = random.choice(self._servers)
            resolver = await self._resolver(server)
            return await resolver.resolve(name, rdtype, tcp=server.tcp, search=False, lifetime=self._timeout)
        except (dns.exception.DNSException, OSError, UnicodeError) as exc:
            raise LookupFailed(f"lookup {name}: {_dns_reason(exc)}") from None

    def _system_resolver(self) -> dns.asyncresolver.Resolver:
        if self._system is None:
            self._system = dns.asyncresolver.Resolver()  # reads /etc/resolv.conf
        return self._system

    async def _resolver(self, server: _Server) -> dns.asyncresolver.Resolver:
        """A resolver asking only `server`; a server named by host name is looked up first."""
        ip = server.host
        if not _is_ip(ip):
            infos = await asyncio.get_running_loop().getaddrinfo(ip, server.port, type=socket.SOCK_DGRAM)
            ip = str(infos[0][4][0])
        resolver = self._resolvers.get((ip, server.port))
        if resolver is None:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, server.port)]
            resolver.timeout = resolver.lifetime = self._timeout
            self._resolvers[(ip, server.port)] = resolver
        return resolver


def _server(address: str, index: int) -> _Server:
    parsed = parse_network_address(address, "udp", 53)
    if not parsed.network.startswith(("udp", "tcp")):
        raise ConfigError(f"resolver.addresses[{index}]", f"unsupported network {parsed.network!r} for a DNS server")
    return _Server(parsed.host, parsed.start_port, parsed.network.startswith("tcp"))


def _dns_reason(exc: Exception) -> str:
    """Go's words for what went wrong with a lookup."""
    if isinstance(exc, (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer)):
        return "no such host"
    if isinstance(exc, dns.exception.Timeout):
        return "i/o timeout"
    if isinstance(exc, dns.resolver.NoNameservers):
        return "server misbehaving"
    if isinstance(exc, socket.gaierror):
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# --- a -----------------------------------------------------------------------------------------


class ASource:
    """`a`: the A/AAAA records of `name`, each dialled on `port`."""

    def __init__(self, config: AUpstreamsConfig) -> None:
        self._name = compile_template(config.name)
        self._port = compile_template(config.port or "80")
        self._ipv4, self._ipv6 = _versions(config.versions)
        self._dns = DnsClient(config.resolver, config.dial_timeout)
        self._cache: LookupCache[tuple[str, str]] = LookupCache(self._lookup, config.refresh or DNS_REFRESH)

    async def get_upstreams(self, request: Request) -> list[str]:
        key = (self._name.render(request), self._port.render(request))
        return list(await self._cache.get(key))

    async def _lookup(self, key: tuple[str, str]) -> tuple[str, ...]:
        name, port = key
        if not name:
            raise LookupFailed("lookup : no such host")
        if self._dns.configured:
            ips = await self._query(name)
        else:
            ips = await self._getaddrinfo(name)
        if not ips:
            raise LookupFailed(f"lookup {name}: no suitable address found")
        return tuple(join_host_port(ip, port) for ip in dict.fromkeys(ips))

    async def _getaddrinfo(self, name: str) -> list[str]:
        family = socket.AF_UNSPEC if self._ipv4 == self._ipv6 else socket.AF_INET if self._ipv4 else socket.AF_INET6
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(name, None, family=family, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise LookupFailed(f"lookup {name}: {_dns_reason(exc)}") from None
        return [str(info[4][0]) for info in infos]

    async def _query(self, name: str) -> list[str]:
        """A and AAAA answers of the configured servers (asked together); one may fail."""
        if _is_ip(name):
            version = ipaddress.ip_address(name).version
            return [name] if (self._ipv4 and version == 4) or (self._ipv6 and version == 6) else []
        kinds = [t for t, wanted in ((dns.rdatatype.A, self._ipv4), (dns.rdatatype.AAAA, self._ipv6)) if wanted]
        results = await asyncio.gather(*(self._dns.query(name, t) for t in kinds), return_exceptions=True)
        ips = [rdata.address for r in results if isinstance(r, dns.resolver.Answer) for rdata in r]
        if not ips:
            error = next((r for r in results if isinstance(r, LookupFailed)), None)
            raise error or LookupFailed(f"lookup {name}: no such host")
        return ips

    def close(self) -> None:
        self._cache.close()


def _versions(versions: IpVersionsConfig | None) -> tuple[bool, bool]:
    """(ipv4, ipv6) to look up, as Caddy reads `versions`: naming neither means both."""
    if versions is None or (versions.ipv4 is None and versions.ipv6 is None):
        return True, True
    ipv4, ipv6 = bool(versions.ipv4), bool(versions.ipv6)
    return (True, True) if ipv4 == ipv6 else (ipv4, ipv6)


# --- srv ---------------------------------------------------------------------------------------


class SrvRecord(NamedTuple):
    priority: int
    weight: int
    target: str
    port: int


class SrvSource:
    """`srv`: the targets of the SRV records of `_service._proto.name` (or of `name`)."""

    def __init__(self, config: SrvUpstreamsConfig) -> None:
        self._service = compile_template(config.service)
        self._proto = compile_template(config.proto)
        self._name = compile_template(config.name)
        self._whole_name = not config.service and not config.proto
        self._prefix = f"{config.dial_network}/" if config.dial_network else ""
        self._dns = DnsClient(config.resolver, config.dial_timeout)
        self._cache: LookupCache[str] = LookupCache(self._lookup, config.refresh or DNS_REFRESH, config.grace_period)

    async def get_upstreams(self, request: Request) -> list[str]:
        name = self._name.render(request)
        if not self._whole_name:
            name = f"_{self._service.render(request)}._{self._proto.render(request)}.{name}"
        return list(await self._cache.get(name))

    async def _lookup(self, name: str) -> tuple[str, ...]:
        answer = await self._dns.query(name, dns.rdatatype.SRV)
        records = [SrvRecord(r.priority, r.weight, r.target.to_text(), r.port) for r in answer]
        # A target of "." says the service is not offered there (RFC 2782).
        return tuple(self._prefix + join_host_port(r.target, str(r.port)) for r in rfc2782_order(records) if r.target != ".")

    def close(self) -> None:
        self._cache.close()


def rfc2782_order(records: list[SrvRecord]) -> list[SrvRecord]:
    """Ascending priority; within one priority, each next record drawn at random with a
    chance proportional to its weight (RFC 2782), as Go's LookupSRV orders them."""
    ordered: list[SrvRecord] = []
    by_priority = sorted(records, key=lambda r: (r.priority, r.weight))
    for _, group in itertools.groupby(by_priority, key=lambda r: r.priority):
        ordered.extend(_weighted_shuffle(list(group)))
    return ordered


def _weighted_shuffle(group: list[SrvRecord]) -> list[SrvRecord]:
    out: list[SrvRecord] = []
    total = sum(r.weight for r in group)
    while total > 0 and len(group) > 1:
        point = random.randrange(total)
        for i, record in enumerate(group):
            point -= record.weight
            if point < 0:
                break
        chosen = group.pop(i)
        out.append(chosen)
        total -= chosen.weight
    return out + group  # the rest all weigh 0: kept in order


# --- file --------------------------------------------------------------------------------------


class FileSource:
    """`file`: one upstream address per line (`#` starts a comment). The file is looked at
    (one stat) at most every `refresh` and read again when its identity, size or times
    changed. Lines that are not an upstream address are logged and skipped; when the file
    cannot be read, the last good list stays (an empty one if there never was one)."""

    def __init__(self, config: FileUpstreamsConfig) -> None:
        self._path = os.path.abspath(config.path)
        self._refresh = config.refresh or FILE_REFRESH
        self._dials: tuple[str, ...] = ()
        self._stamp: tuple[int, ...] | None = None  # of the file as last read
        self._next_look = 0.0
        self._failing = False  # a failure is logged once, until the file is read again
        self._look(time.monotonic())

    async def get_upstreams(self, request: Request) -> list[str]:
        now = time.monotonic()
        if now >= self._next_look:
            self._look(now)
        return list(self._dials)

    def _look(self, now: float) -> None:
        self._next_look = now + self._refresh
        try:
            info = os.stat(self._path)
            stamp = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
            if stamp == self._stamp:
                return
            with open(self._path, encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeError) as exc:
            if not self._failing:
                log.warning("cannot read the upstreams file; keeping the last list",
                            extra={"path": self._path, "error": str(exc), "upstreams": len(self._dials)})
            self._failing = True
            return
        self._failing = False
        self._stamp = stamp
        self._dials = parse_upstreams_file(text, self._path)
        log.info("upstreams file read", extra={"path": self._path, "upstreams": len(self._dials)})


def parse_upstreams_file(text: str, path: str) -> tuple[str, ...]:
    """The dial addresses of a file's lines (a port range expands); bad lines are logged."""
    dials: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        address = line.partition("#")[0].strip()
        if not address:
            continue
        try:
            dials.extend(_file_line_dials(address))
        except AddressError as exc:
            log.warning("skipping a bad line of the upstreams file",
                        extra={"path": path, "line": number, "address": address, "error": str(exc)})
    return tuple(dials)


def _file_line_dials(address: str) -> tuple[str, ...]:
    if any(c.isspace() for c in address):
        raise AddressError("one upstream address per line")
    if "{" in address or "}" in address:
        raise AddressError("placeholders are not allowed in an upstreams file")
    upstream = parse_upstream(address)
    if upstream.scheme:
        raise AddressError(f"a scheme ({upstream.scheme}://) is not allowed here; the transport decides how to connect")
    return upstream.dials


# --- multi -------------------------------------------------------------------------------------


class MultiSource:
    """`multi`: each source's dial addresses in turn; a source that fails is logged and skipped."""

    def __init__(self, sources: list[Any]) -> None:
        self._sources = sources

    async def get_upstreams(self, request: Request) -> list[str]:
        dials: list[str] = []
        for i, source in enumerate(self._sources):
            try:
                found = await source.get_upstreams(request)
            except HttpError as exc:
                log.error("upstream source returned error", extra={"source_idx": i, "error": exc.message})
                continue
            if not found:
                log.warning("upstream source returned 0 upstreams", extra={"source_idx": i})
            dials.extend(found)
        return dials


# --- builders ----------------------------------------------------------------------------------


def build_a(config: AUpstreamsConfig, ctx: BuildContext) -> ASource:
    source = ASource(config)
    ctx.on_close(source.close)
    return source


def build_srv(config: SrvUpstreamsConfig, ctx: BuildContext) -> SrvSource:
    source = SrvSource(config)
    ctx.on_close(source.close)
    return source


def build_file(config: FileUpstreamsConfig, ctx: BuildContext) -> FileSource:
    return FileSource(config)


def build_multi(config: MultiUpstreamsConfig, ctx: BuildContext) -> MultiSource:
    return MultiSource([ctx.build(source) for source in config.sources])
