"""The `remote_ip` and `client_ip` matchers, and the IP range syntax other config shares.

`remote_ip <ranges...>` matches the TCP peer; `client_ip <ranges...>` matches the client
address worked out from trusted proxies. A range is a CIDR (`10.0.0.0/8`) or a single
address, optionally with an IPv6 `%zone`; `private_ranges` stands for the private and
loopback ranges. JSON: `{"ranges": [...]}`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from rws.errors import ConfigError
from rws.http.matchers.path import refuse_block
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
    if not bits.isdigit() or (len(bits) > 1 and bits.startswith("0")) or not bits.isascii():
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


REMOTE_IP = ModuleSpec(id="http.matchers.remote_ip", config=IpRangesConfig, rwsfile=_ranges_parser("remote_ip"))
CLIENT_IP = ModuleSpec(id="http.matchers.client_ip", config=IpRangesConfig, rwsfile=_ranges_parser("client_ip"))
