"""Config of the dynamic upstream sources (`http.reverse_proxy.upstreams.*`): `a`, `srv`, `multi`.

A source is a JSON object named by its `"source"` key. `a` looks up A/AAAA records of
`name` and dials `port` on each address; `srv` looks up SRV records of
`_service._proto.name` (or of `name` alone when service and proto are empty); `file`
(rws's own) reads one address per line of a file; `multi` concatenates the results of
several sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from rws.config.decode import Duration, Module
from rws.errors import ConfigError
from rws.handlers.reverse_proxy.dial_addresses import AddressError, parse_network_address

UPSTREAM_SOURCE = Module("http.reverse_proxy.upstreams", inline_key="source")


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamResolverConfig:
    """DNS servers to query instead of the system's: `host[:port]`, UDP port 53 by default."""

    addresses: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        for i, address in enumerate(self.addresses):
            problem = resolver_address_problem(address)
            if problem:
                raise ConfigError(f"{path}.addresses[{i}]", problem)


def resolver_address_problem(address: str) -> str | None:
    """Why `address` cannot name one DNS server (`[network/]host[:port]`, UDP port 53 by default), or None."""
    try:
        parsed = parse_network_address(address, "udp", 53)
    except AddressError as exc:
        return str(exc)
    if parsed.start_port != parsed.end_port:
        return f"resolver address must have exactly one address; cannot call {address!r}"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class SrvUpstreamsConfig:
    service: str = ""
    proto: str = ""
    name: str = ""
    refresh: Duration = 0.0  # 0 means the default, 1m
    grace_period: Duration = 0.0
    resolver: UpstreamResolverConfig | None = None
    dial_timeout: Duration = 0.0
    dial_fallback_delay: Duration = 0.0
    dial_network: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class IpVersionsConfig:
    ipv4: bool | None = None
    ipv6: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AUpstreamsConfig:
    name: str = ""
    port: str = ""  # "" means the default, 80
    refresh: Duration = 0.0  # 0 means the default, 1m
    resolver: UpstreamResolverConfig | None = None
    dial_timeout: Duration = 0.0
    dial_fallback_delay: Duration = 0.0
    versions: IpVersionsConfig | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FileUpstreamsConfig:
    """rws's own source: one upstream address per line of a file (`#` starts a comment),
    read again when the file changes (checked every `refresh`)."""

    path: str = ""
    refresh: Duration = 0.0  # 0 means the default, 1s

    def validate(self, path: str) -> None:
        if not self.path:
            raise ConfigError(f"{path}.path", "a file path is required")


@dataclass(frozen=True, slots=True, kw_only=True)
class MultiUpstreamsConfig:
    sources: tuple[Annotated[Any, UPSTREAM_SOURCE], ...] = ()
