"""Which listener addresses each site block is served on, and which blocks share a server:
the keys' ports (or `http_port`/`https_port`), the `bind` or `default_bind` hosts, and
listeners serving the very same blocks merged into one server."""

from __future__ import annotations

from typing import Any

from rws.rwsfile.addresses import (
    DEFAULT_HTTP_PORT,
    DEFAULT_HTTPS_PORT,
    Address,
    AddressError,
    join_host_port,
    parse_address,
    split_host_port,
)
from rws.rwsfile.options import Bind
from rws.rwsfile.sites import ListenerAddress, Pairing, SiteBlock


def ports(options: dict[str, Any]) -> tuple[str, str]:
    """The HTTP and HTTPS ports, as the text site addresses compare with."""
    return str(options.get("http_port", DEFAULT_HTTP_PORT)), str(options.get("https_port", DEFAULT_HTTPS_PORT))


def pair_sites_with_listeners(sites: list[SiteBlock], options: dict[str, Any]) -> list[Pairing]:
    """Which site blocks each listener serves; listeners serving the same blocks share a server."""
    by_addr: dict[str, dict[str, list[SiteBlock]]] = {}
    for site in sites:
        per_addr: dict[str, dict[str, list[tuple[Any, Address]]]] = {}
        for key in site.keys:
            try:
                addr = parse_address(key.text).normalize()
            except AddressError as exc:
                raise key.error(f"parsing key: {exc}") from None
            try:
                listeners = _listeners_for(site, addr, options)
            except ValueError as exc:
                raise key.error(f"determining listener address for {key.text!r}: {exc}") from None
            for lnaddr, protocols in listeners.items():
                for proto in protocols or {""}:
                    per_addr.setdefault(lnaddr, {}).setdefault(proto, []).append((key, addr))
        for lnaddr in sorted(per_addr):
            for proto in sorted(per_addr[lnaddr]):
                pairs = per_addr[lnaddr][proto]
                view = SiteBlock(tuple(k for k, _ in pairs), site.entries, [a for _, a in pairs], site.pile,
                                 site.has_braces)
                by_addr.setdefault(lnaddr, {}).setdefault(proto, []).append(view)
    return _consolidate(by_addr)


def _listeners_for(site: SiteBlock, addr: Address, options: dict[str, Any]) -> dict[str, set[str]]:
    if addr.scheme == "wss":
        raise ValueError("the scheme wss:// is only supported in browsers; use https:// instead")
    if addr.scheme == "ws":
        raise ValueError("the scheme ws:// is only supported in browsers; use http:// instead")
    if addr.scheme not in ("https", "http", ""):
        raise ValueError(f"unsupported URL scheme {addr.scheme}://")
    http_port, https_port = ports(options)
    port = addr.port or (http_port if addr.scheme == "http" else https_port)
    if (addr.scheme == "http" and port == https_port) or (addr.scheme == "https" and port == http_port):
        raise ValueError(f"[{addr}] scheme and port violate convention")
    binds: list[Bind] = [v.value for v in site.pile.get("bind", [])]
    if not binds:
        binds = [v.value for v in options.get("default_bind") or []] or [Bind(("",))]
    listeners: dict[str, set[str]] = {}
    for bind in binds:
        for host in bind.addresses:
            listeners.setdefault(_network_address(host, port), set()).update(bind.protocols)
    return listeners


def _network_address(bind_host: str, port: str) -> str:
    """Caddy's JoinNetworkAddress + ParseNetworkAddress round trip, for listener strings."""
    network, slash, rest = bind_host.partition("/")
    if not slash:
        network, rest = "", bind_host
    network = network.strip().lower()
    if network.startswith(("unix", "fd")):
        return f"{network}/{rest}"
    try:
        host, _ = split_host_port(rest)
    except AddressError:
        host = rest.strip("[]")
    address = join_host_port(host, port)
    if network and network != "tcp":
        return f"{network}/{address}"
    return address


def _consolidate(by_addr: dict[str, dict[str, list[SiteBlock]]]) -> list[Pairing]:
    pairings = []
    for addr in sorted(by_addr):
        for proto in sorted(by_addr[addr]):
            if proto not in by_addr[addr]:
                continue
            blocks = by_addr[addr][proto]
            listeners: dict[str, set[str]] = {}
            for other_addr, protos in by_addr.items():
                for other_proto, other_blocks in list(protos.items()):
                    if (other_addr == addr and other_proto == proto) or _same_blocks(blocks, other_blocks):
                        listeners.setdefault(other_addr, set()).add(other_proto)
                        del protos[other_proto]
            addresses = [ListenerAddress(a, tuple(sorted(listeners[a]))) for a in sorted(listeners)]
            pairings.append(Pairing(addresses, blocks))
    return pairings


def _same_blocks(a: list[SiteBlock], b: list[SiteBlock]) -> bool:
    return len(a) == len(b) and all(
        x.pile is y.pile and x.key_texts() == y.key_texts() and x.addresses == y.addresses for x, y in zip(a, b)
    )
