"""The `remote_ip` and `client_ip` matchers, and the IP range syntax other config shares.

`remote_ip <ranges...>` matches the TCP peer; `client_ip <ranges...>` matches the client
address worked out from trusted proxies. A range is a CIDR (`10.0.0.0/8`) or a single
address, optionally with an IPv6 `%zone`; `private_ranges` stands for the private and
loopback ranges. JSON: `{"ranges": [...]}`.

At run time a range with a zone matches only addresses from that zone. Placeholders in
ranges are the global ones (`{env.*}`...), expanded once when the matcher is built. A
request sent as TLS early data gets a 425 error, since its address is not verified yet.
The client IP is `request.vars["client_ip"]`, which the server sets from its trusted
proxies; without it, the peer address is used.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Any, Callable

from rws.errors import ConfigError, HttpError
from rws.http.matchers.path import refuse_block
from rws.http.matchers.request import handshake_complete
from rws.http.message import Request
from rws.http.placeholders import replace_global
from rws.registry import ModuleSpec
from rws.rwsfile.directives import MatcherContext
from rws.rwsfile.dispenser import Dispenser

PRIVATE_RANGES = ("192.168.0.0/16", "172.16.0.0/12", "10.0.0.0/8", "127.0.0.1/8", "fd00::/8", "::1")


def prefix_problem(text: str) -> str | None:
    """Why `text` is not a CIDR prefix (Go's netip.ParsePrefix rules), or None."""
    addr_text, _, bits = text.partition("/")
    try:
        addr = ipaddress.ip_address(addr_text)
    except ValueError:
        return f"parsing CIDR expression {text!r}: invalid IP address {addr_text!r}"
    if not bits.isdecimal() or (len(bits) > 1 and bits.startswith("0")) or not bits.isascii():
        return f"parsing CIDR expression {text!r}: bad bits after slash: {bits!r}"
    if int(bits) > addr.max_prefixlen:
        return f"parsing CIDR expression {text!r}: prefix length out of range"
    return None


def address_problem(text: str) -> str | None:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return f"invalid IP address: {text!r}"
    return None


def range_problem(text: str, allow_zone: bool = True) -> str | None:
    """Why `text` is neither an IP address nor a CIDR range, or None if it is one of them.

    Values holding placeholders are checked only once they are known, at run time.
    """
    if "{" in text:
        return None
    if allow_zone and "%" in text:
        text = text.split("%")[0]
    if "/" in text:
        return prefix_problem(text)
    return address_problem(text)


@dataclass(frozen=True, slots=True, kw_only=True)
class IpRangesConfig:
    """The IPs or CIDR ranges to match."""

    ranges: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        for i, text in enumerate(self.ranges):
            problem = range_problem(text)
            if problem:
                raise ConfigError(f"{path}.ranges[{i}]", problem)


def parse_ranges(d: Dispenser, ranges: list[str], forwarded_is_error: bool) -> None:
    """Append the remaining arguments of `d` to `ranges`, expanding `private_ranges`."""
    while d.next_arg():
        value = d.val()
        if value == "forwarded" and forwarded_is_error:
            raise d.error("the 'forwarded' option is no longer supported; use the 'client_ip' matcher instead")
        if value == "private_ranges":
            ranges.extend(PRIVATE_RANGES)
            continue
        problem = range_problem(value)
        if problem:
            raise d.error(problem)
        ranges.append(value)


def _ranges_parser(kind: str) -> Any:
    def parse(lines: list[Dispenser], ctx: MatcherContext) -> Any:
        ranges: list[str] = []
        for d in lines:
            parse_ranges(d, ranges, forwarded_is_error=kind == "remote_ip")
            refuse_block(d, kind)
        return {"ranges": ranges} if ranges else {}

    return parse


REMOTE_IP = ModuleSpec(id="http.matchers.remote_ip", config=IpRangesConfig, rwsfile=_ranges_parser("remote_ip"),
                       runtime="rws.http.matchers.ip:build_remote_ip")
CLIENT_IP = ModuleSpec(id="http.matchers.client_ip", config=IpRangesConfig, rwsfile=_ranges_parser("client_ip"),
                       runtime="rws.http.matchers.ip:build_client_ip")


# --- runtime -------------------------------------------------------------------------------

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_range(text: str) -> tuple[IpNetwork, str]:
    """A range as (network, zone); raises ConfigError as Caddy's provisioning does."""
    text, _, zone = text.partition("%")
    zone = zone.split("%")[0]
    problem = prefix_problem(text) if "/" in text else address_problem(text)
    if problem:
        raise ConfigError("ranges", problem)
    return ipaddress.ip_network(text, strict=False), zone


@functools.lru_cache(maxsize=4096)
def parse_address(text: str) -> tuple[IpAddress, str] | None:
    """An address as (IP, zone), from `ip`, `ip%zone`, `ip:port` or `[ip]:port`; None if it
    is not one. An IPv4-mapped IPv6 address counts as the IPv4 address."""
    host = text
    if text.startswith("["):
        host = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        host = text.partition(":")[0]
    host, _, zone = host.partition("%")
    try:
        addr: IpAddress = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr, zone.split("%")[0]


class IpMatcher:
    """The address `address_of(request)` is in one of the ranges (and zone, if it has one)."""

    __slots__ = ("ranges", "address_of")

    def __init__(self, ranges: tuple[str, ...], address_of: Callable[[Request], str]) -> None:
        self.ranges = tuple(parse_range(replace_global(text)) for text in ranges)
        self.address_of = address_of

    def match(self, request: Request) -> bool:
        if request.tls is not None and not handshake_complete(request):
            raise HttpError(425, "TLS handshake not complete, remote IP cannot be verified")
        parsed = parse_address(self.address_of(request))
        if parsed is None:
            return False
        addr, zone = parsed
        for network, wanted_zone in self.ranges:
            if addr.version == network.version and addr in network and (not wanted_zone or wanted_zone == zone):
                return True
        return False


def _remote_address(request: Request) -> str:
    return request.remote_ip


def _client_address(request: Request) -> str:
    client = request.vars.get("client_ip")
    return client if isinstance(client, str) and client else request.remote_ip


def build_remote_ip(config: IpRangesConfig, ctx: Any) -> IpMatcher:
    return IpMatcher(config.ranges, _remote_address)


def build_client_ip(config: IpRangesConfig, ctx: Any) -> IpMatcher:
    return IpMatcher(config.ranges, _client_address)
