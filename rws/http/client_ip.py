"""The client's IP: the peer, or — when the peer is a trusted proxy — the address it
forwarded in `X-Forwarded-For` (or the configured `client_ip_headers`).

By default the left-most valid address of the joined header values is taken; with
`trusted_proxies_strict` the list is read from the right, skipping trusted addresses.
"""

from __future__ import annotations

from typing import Any

from rws.http.matchers.ip import IpAddress, IpNetwork, parse_address, parse_range
from rws.http.message import Request


class ClientIp:
    __slots__ = ("ranges", "headers", "strict")

    def __init__(self, server_config: Any) -> None:
        source = server_config.trusted_proxies
        texts: tuple[str, ...] = tuple(source.config.ranges) if source is not None else ()
        self.ranges: tuple[IpNetwork, ...] = tuple(parse_range(t)[0] for t in texts)
        self.headers: tuple[str, ...] = tuple(server_config.client_ip_headers or ("X-Forwarded-For",))
        self.strict = bool(server_config.trusted_proxies_strict)

    def _trusted(self, addr: IpAddress) -> bool:
        return any(addr.version == net.version and addr in net for net in self.ranges)

    def peer_trusted(self, request: Request) -> bool:
        """Whether the connection comes from one of the trusted proxies."""
        if not self.ranges:
            return False
        parsed = parse_address(request.remote_ip)
        return parsed is not None and self._trusted(parsed[0])

    def of(self, request: Request) -> str:
        peer = request.remote_ip
        if not self.peer_trusted(request):
            return peer
        values = [v.strip() for name in self.headers for joined in request.headers.get_all(name)
                  for v in joined.split(",") if v.strip()]
        if self.strict:
            for value in reversed(values):
                found = parse_address(value)
                if found is None:
                    return peer
                if not self._trusted(found[0]):
                    return str(found[0])
            return peer
        for value in values:
            found = parse_address(value)
            if found is not None:
                return str(found[0])
        return peer
