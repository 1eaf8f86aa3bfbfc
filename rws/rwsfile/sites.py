"""Site blocks as the adapter sees them after parsing their directives, grouped by listener."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rws.rwsfile.addresses import DEFAULT_HTTP_PORT, DEFAULT_HTTPS_PORT, Address, join_host_port
from rws.rwsfile.directives import ConfigValue
from rws.rwsfile.parse import Entry, Token


@dataclass(slots=True)
class SiteBlock:
    keys: tuple[Token, ...]
    entries: tuple[Entry, ...]
    addresses: list[Address] = field(default_factory=list)  # parsed and normalised keys
    pile: dict[str, list[ConfigValue]] = field(default_factory=dict)  # config values by class
    has_braces: bool = True

    def key_texts(self) -> list[str]:
        return [k.text for k in self.keys]

    def hosts_from_keys(self, logger_mode: bool = False) -> list[str]:
        """The distinct hosts of the keys; [] if any key is a catch-all (except in logger mode,
        where a non-standard port is kept with its host)."""
        hosts: dict[str, None] = {}
        for addr in self.addresses:
            if not addr.host:
                if not logger_mode:
                    return []
                continue
            if logger_mode and addr.port and addr.port not in (str(DEFAULT_HTTP_PORT), str(DEFAULT_HTTPS_PORT)):
                hosts[join_host_port(addr.host, addr.port)] = None
            else:
                hosts[addr.host] = None
        return list(hosts)

    def hosts_from_keys_not_http(self, http_port: str) -> list[str]:
        hosts: dict[str, None] = {}
        for addr in self.addresses:
            if addr.host and addr.scheme != "http" and addr.port != http_port:
                hosts[addr.host] = None
        return list(hosts)

    def has_host_catch_all_key(self) -> bool:
        return any(not a.host for a in self.addresses)

    def is_all_http(self) -> bool:
        return all(a.scheme == "http" for a in self.addresses)

    def values(self, cls: str) -> list[Any]:
        return [v.value for v in self.pile.get(cls, [])]


@dataclass(frozen=True, slots=True)
class ListenerAddress:
    address: str
    protocols: tuple[str, ...]


@dataclass(slots=True)
class Pairing:
    """One server to be: its listener addresses and the site blocks it serves."""

    addresses: list[ListenerAddress]
    blocks: list[SiteBlock]
