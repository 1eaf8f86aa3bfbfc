"""Config of the `http` app: servers, routes, listener wrappers and trusted-proxy sources.

`apps.http` decodes into `HttpAppConfig`; each `servers.<name>` into `ServerConfig`, which
has every field of Caddy's `caddyhttp.Server`. Routes hold matcher sets (module maps in
the `http.matchers` namespace) and handlers (modules named by their `handler` key).

Also here: the listener wrappers `http_redirect`, `tls` and `proxy_protocol`
(`caddy.listeners.*`, written in `servers { listener_wrappers { ... } }`) and the `static`
IP range source (`http.ip_sources.static`, written `trusted_proxies static <ranges...>`).
Their Rwsfile parsers take a dispenser whose current token is the module's name and
return the module's JSON object, inline key included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from rws.config.decode import Duration, Module, ModuleMap
from rws.errors import ConfigError
from rws.http.matchers.ip import PRIVATE_RANGES, prefix_problem, range_problem
from rws.registry import ModuleSpec
from rws.rwsfile.dispenser import Dispenser

from rws.tls.config import ConnectionPolicyConfig

MatcherSet = Annotated[Any, ModuleMap("http.matchers")]
Handler = Annotated[Any, Module("http.handlers", "handler")]
ListenerWrapper = Annotated[Any, Module("caddy.listeners", "wrapper")]
PacketConnWrapper = Annotated[Any, Module("caddy.packetconns", "wrapper")]
IpSource = Annotated[Any, Module("http.ip_sources", "source")]


# --- network addresses ---------------------------------------------------------------------

NETWORKS = ("tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "unix", "unixgram", "unixpacket", "fd", "fdgram")


@dataclass(frozen=True, slots=True)
class NetworkAddress:
    """A parsed `[network/]host:port[-port]`; unix and fd addresses have only a host."""

    network: str
    host: str
    start_port: int = 0
    end_port: int = 0

    @property
    def has_ports(self) -> bool:
        return not self.network.startswith(("unix", "fd"))


def _split_host_port(text: str) -> tuple[str, str] | None:
    """Go's net.SplitHostPort, or None where it fails."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1:end + 2] != ":":
            return None
        host, port = text[1:end], text[end + 2:]
        return (host, port) if ":" not in port and "[" not in port and "]" not in port else None
    colon = text.rfind(":")
    if colon < 0:
        return None
    host, port = text[:colon], text[colon + 1:]
    if ":" in host or "[" in host or "]" in host or "[" in port or "]" in port:
        return None
    return host, port


def _port(text: str, which: str) -> int:
    if not text.isdecimal() or not text.isascii() or int(text) > 65535:
        raise ValueError(f"invalid {which} port {text!r}")
    return int(text)


def parse_network_address(addr: str) -> NetworkAddress:
    """Caddy's ParseNetworkAddress (default network tcp, no default port); raises ValueError."""
    network, sep, rest = addr.partition("/")
    if sep:
        network = network.strip().lower()
    else:
        network, rest = "", addr
    if network and network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}: expected one of {', '.join(NETWORKS)}")
    if network.startswith("unix"):
        path, bar, mode = rest.partition("|")
        if bar and (not mode or any(c not in "01234567" for c in mode) or not int(mode, 8) & 0o200):
            raise ValueError(f"bad permission bits {mode!r} for unix socket {path!r}: need at least owner write (0200)")
        return NetworkAddress(network, path)
    if network.startswith("fd"):
        return NetworkAddress(network, rest)
    split = _split_host_port(rest)
    if split is None:
        # no port: Caddy parses the host alone (port 0)
        bare = rest.strip("[]")
        split = _split_host_port(f"[{bare}]:0" if ":" in bare else f"{bare}:0")
        if split is None:
            raise ValueError(f"invalid host and port {rest!r}")
        return NetworkAddress(network or "tcp", split[0])
    host, port = split
    if not port:
        return NetworkAddress(network or "tcp", host)
    first, dash, last = port.partition("-")
    start = _port(first, "start")
    end = _port(last, "end") if dash else start
    if end < start:
        raise ValueError("end port must not be less than start port")
    return NetworkAddress(network or "tcp", host, start, end)


def listen_problem(addr: str) -> str | None:
    try:
        parse_network_address(addr)
    except ValueError as exc:
        return f"invalid listener address {addr!r}: {exc}"
    return None


# --- routes --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteConfig:
    """Matcher sets (OR'ed; each set AND's its matchers), then handlers in order."""

    group: str = ""
    match: tuple[MatcherSet, ...] = ()
    handle: tuple[Handler, ...] = ()
    terminal: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpErrorConfig:
    routes: tuple[RouteConfig, ...] = ()


# --- servers -------------------------------------------------------------------------------

PROTOCOL_NAMES = ("h1", "h2", "h2c", "h3")


@dataclass(frozen=True, slots=True, kw_only=True)
class AutoHttpsConfig:
    disable: bool = False
    disable_redirects: bool = False
    disable_certificates: bool = False
    skip: tuple[str, ...] = ()
    skip_certificates: tuple[str, ...] = ()
    ignore_loaded_certificates: bool = False
    prefer_wildcard: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerLogConfig:
    """Access logging; present at all means access logs are on."""

    default_logger_name: str = ""
    # values: one logger name (older form) or a list of names
    logger_names: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    skip_hosts: tuple[str, ...] = ()
    skip_unmapped_hosts: bool = False
    should_log_credentials: bool = False
    trace: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsConfig:
    per_host: bool = False
    observe_catchall_hosts: bool = False
    otlp: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    listen: tuple[str, ...] = ()
    listener_wrappers: tuple[ListenerWrapper, ...] = ()
    packet_conn_wrappers: tuple[PacketConnWrapper, ...] = ()
    read_timeout: Duration = 0.0
    read_header_timeout: Duration = 0.0
    read_idle_timeout: Duration = 0.0
    read_min_rate: int = 0
    write_timeout: Duration = 0.0
    write_idle_timeout: Duration = 0.0
    write_min_rate: int = 0
    max_write_chunk: int = 0
    idle_timeout: Duration = 0.0
    keepalive_interval: Duration = 0.0
    keepalive_idle: Duration = 0.0
    keepalive_count: int = 0
    max_header_bytes: int = 0
    enable_full_duplex: bool = False
    expected_underscore_headers: tuple[str, ...] = ()
    expected_dot_headers: tuple[str, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    errors: HttpErrorConfig | None = None
    named_routes: dict[str, RouteConfig] = field(default_factory=dict)
    tls_connection_policies: tuple[ConnectionPolicyConfig, ...] | None = None
    automatic_https: AutoHttpsConfig | None = None
    strict_sni_host: bool | None = None
    trusted_proxies: IpSource | None = None
    client_ip_headers: tuple[str, ...] = ()
    trusted_proxies_strict: int = 0
    trusted_proxies_unix: bool = False
    logs: ServerLogConfig | None = None
    protocols: tuple[str, ...] = ()
    listen_protocols: tuple[tuple[str, ...] | None, ...] | None = None
    allow_0rtt: bool | None = None
    metrics: MetricsConfig | None = None

    def validate(self, path: str) -> None:
        for i, addr in enumerate(self.listen):
            problem = listen_problem(addr)
            if problem:
                raise ConfigError(f"{path}.listen[{i}]", problem)
        for i, proto in enumerate(self.protocols):
            if proto not in PROTOCOL_NAMES:
                raise ConfigError(f"{path}.protocols[{i}]", f"unknown protocol {proto!r}: expected one of {', '.join(PROTOCOL_NAMES)}")
        if self.listen_protocols is not None:
            if len(self.listen_protocols) != len(self.listen):
                raise ConfigError(f"{path}.listen_protocols", "listener protocols count does not match address count: "
                                  f"{len(self.listen_protocols)} != {len(self.listen)}")
            for i, protos in enumerate(self.listen_protocols):
                for j, proto in enumerate(protos or ()):
                    if proto and proto not in PROTOCOL_NAMES:
                        raise ConfigError(f"{path}.listen_protocols[{i}][{j}]",
                                          f"unknown protocol {proto!r}: expected one of {', '.join(PROTOCOL_NAMES)}")
        for name, value in (("read_min_rate", self.read_min_rate), ("write_min_rate", self.write_min_rate),
                            ("max_write_chunk", self.max_write_chunk), ("keepalive_count", self.keepalive_count)):
            if value < 0:
                raise ConfigError(f"{path}.{name}", f"must not be negative, got {value}")
        if self.trusted_proxies_strict not in (0, 1):
            raise ConfigError(f"{path}.trusted_proxies_strict", f"expected 0 or 1, got {self.trusted_proxies_strict}")


# --- the app -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpAppConfig:
    http_port: int = 0
    https_port: int = 0
    grace_period: Duration = 0.0
    shutdown_delay: Duration = 0.0
    metrics: MetricsConfig | None = None
    servers: dict[str, ServerConfig] = field(default_factory=dict)

    def validate(self, path: str) -> None:
        for name, port in (("http_port", self.http_port), ("https_port", self.https_port)):
            if not 0 <= port <= 65535:
                raise ConfigError(f"{path}.{name}", f"port out of range: {port}")
        claimed: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
        for srv_name, srv in self.servers.items():
            for i, addr in enumerate(srv.listen):
                parsed = parse_network_address(addr)  # checked by ServerConfig.validate
                if parsed.has_ports and parsed.start_port == parsed.end_port == 0:
                    continue  # port 0: each gets its own ephemeral port
                ranges = claimed.setdefault((parsed.network, parsed.host), [])
                for start, end, other in ranges:
                    overlaps = not parsed.has_ports or (start <= parsed.end_port and parsed.start_port <= end)
                    if overlaps:
                        raise ConfigError(f"{path}.servers.{srv_name}.listen[{i}]",
                                          f"listener address repeated: {addr!r} (already claimed by server {other!r})")
                ranges.append((parsed.start_port, parsed.end_port, srv_name))


HTTP_APP = ModuleSpec(id="http", config=HttpAppConfig)


# --- listener wrappers ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRedirectWrapperConfig:
    """Answers plain HTTP on a TLS listener with a redirect to HTTPS."""

    max_header_bytes: int = 0


def _parse_http_redirect(d: Dispenser) -> dict[str, Any]:
    # Caddy's Caddyfile form takes no options and ignores any it is given
    return {"wrapper": "http_redirect"}


HTTP_REDIRECT_WRAPPER = ModuleSpec(id="caddy.listeners.http_redirect", config=HttpRedirectWrapperConfig,
                                   rwsfile=_parse_http_redirect)


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsWrapperConfig:
    """Marks where in the wrapper chain TLS is terminated."""


def _parse_tls_wrapper(d: Dispenser) -> dict[str, Any]:
    return {"wrapper": "tls"}


TLS_WRAPPER = ModuleSpec(id="caddy.listeners.tls", config=TlsWrapperConfig, rwsfile=_parse_tls_wrapper)


PROXY_POLICIES = ("IGNORE", "USE", "REJECT", "REQUIRE", "SKIP")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyProtocolConfig:
    """Reads the PROXY protocol header from connections whose peer is allowed."""

    timeout: Duration = 0.0
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    fallback_policy: str | int = 0

    def validate(self, path: str) -> None:
        for key in ("allow", "deny"):
            for i, cidr in enumerate(getattr(self, key)):
                problem = prefix_problem(cidr)
                if problem:
                    raise ConfigError(f"{path}.{key}[{i}]", problem)
        policy = self.fallback_policy
        if isinstance(policy, int):
            if not 0 <= policy < len(PROXY_POLICIES):
                raise ConfigError(f"{path}.fallback_policy", f"invalid policy {policy}")
        elif policy.upper() not in PROXY_POLICIES:
            raise ConfigError(f"{path}.fallback_policy",
                              f"invalid policy {policy!r}: expected one of {', '.join(PROXY_POLICIES)}")


def _parse_proxy_protocol(d: Dispenser) -> dict[str, Any]:
    out: dict[str, Any] = {"wrapper": "proxy_protocol"}
    if d.next_arg():
        raise d.arg_error()
    for sub in d.block():
        if sub.name == "timeout":
            out["timeout"] = sub.duration_arg()
        elif sub.name in ("allow", "deny"):
            for cidr in sub.remaining_args():
                problem = prefix_problem(cidr)
                if problem:
                    raise sub.error(problem)
                out.setdefault(sub.name, []).append(cidr)
        elif sub.name == "fallback_policy":
            if not sub.next_arg():
                raise sub.arg_error()
            policy = sub.val().upper()
            if policy not in PROXY_POLICIES:
                raise sub.error(f"{sub.val()} is invalid policy: expected one of {', '.join(p.lower() for p in PROXY_POLICIES)}")
            if policy != "IGNORE":  # the zero value, which Caddy leaves out
                out["fallback_policy"] = policy
        else:
            raise sub.unknown_subdirective(("timeout", "allow", "deny", "fallback_policy"))
    return out


PROXY_PROTOCOL_WRAPPER = ModuleSpec(id="caddy.listeners.proxy_protocol", config=ProxyProtocolConfig,
                                    rwsfile=_parse_proxy_protocol)


# --- trusted proxy sources -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StaticIpSourceConfig:
    """A fixed list of IP ranges (CIDRs or single addresses)."""

    ranges: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        for i, text in enumerate(self.ranges):
            problem = range_problem(text, allow_zone=False)
            if problem:
                raise ConfigError(f"{path}.ranges[{i}]", problem)


def _parse_static_ip_source(d: Dispenser) -> dict[str, Any]:
    """`static <ranges...>` (the current token is `static`); `private_ranges` expands."""
    ranges: list[str] = []
    while d.next_arg():
        if d.val() == "private_ranges":
            ranges.extend(PRIVATE_RANGES)
            continue
        problem = range_problem(d.val(), allow_zone=False)
        if problem:
            raise d.error(problem)
        ranges.append(d.val())
    out: dict[str, Any] = {"source": "static"}
    if ranges:
        out["ranges"] = ranges
    return out


STATIC_IP_SOURCE = ModuleSpec(id="http.ip_sources.static", config=StaticIpSourceConfig, rwsfile=_parse_static_ip_source)
