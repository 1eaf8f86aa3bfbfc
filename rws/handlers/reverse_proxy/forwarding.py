"""What changes on the way through the proxy, as Caddy does it.

Upstream-bound: hop-by-hop fields are removed (and any the client's `Connection` names),
`Te: trailers` is kept, an upgrade keeps `Connection: Upgrade` and its `Upgrade`;
`X-Forwarded-For`, `-Proto` and `-Host` are set from what rws saw, and earlier values are
kept only when the peer is a trusted proxy; `Via` names the hop. The Host is passed
through as the client sent it (header operations may change it).

Client-bound: hop-by-hop fields of the upstream's response are removed, rws's own
`Server` field gives way to the upstream's, and `Via` names the hop.
"""

from __future__ import annotations

import re

from rws.http.message import Headers, Request
from rws.protocols.http1.core import header_line
from rws.protocols.multiplexed import CONNECTION_FIELDS

HOP_BY_HOP = frozenset({"connection", "proxy-connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "transfer-encoding", "upgrade"})
_WEBSOCKET_CASE = {"sec-websocket-accept": "Sec-WebSocket-Accept", "sec-websocket-extensions": "Sec-WebSocket-Extensions",
                   "sec-websocket-key": "Sec-WebSocket-Key", "sec-websocket-protocol": "Sec-WebSocket-Protocol",
                   "sec-websocket-version": "Sec-WebSocket-Version"}
VIA = "1.1 rws"


def connection_tokens(headers: Headers) -> set[str]:
    return {t.strip().lower() for v in headers.get_all("Connection") for t in v.split(",") if t.strip()}


def upstream_request_headers(request: Request, trusted: bool) -> tuple[Headers, str]:
    """The header fields the upstream gets (before `header_up`), and the upgrade asked for."""
    source = request.headers
    upgrade = ""
    drop = HOP_BY_HOP
    if "connection" in source:
        tokens = connection_tokens(source)
        drop = drop | tokens
        if "upgrade" in tokens:
            upgrade = (source.get("Upgrade") or "").strip()
    items: list[tuple[str, str]] = []
    te_trailers = False
    forwarded_for: list[str] = []
    proto = host = ""
    for name, value in source:
        lname = name.lower()
        if lname in drop:
            if lname == "te" and "trailers" in (t.strip().lower() for t in value.split(",")):
                te_trailers = True
            continue
        if lname[:12] == "x-forwarded-":
            if lname == "x-forwarded-for":
                forwarded_for.append(value.strip())
                continue
            if lname == "x-forwarded-proto":
                proto = value
                continue
            if lname == "x-forwarded-host":
                host = value
                continue
        if upgrade and lname in _WEBSOCKET_CASE:
            name = _WEBSOCKET_CASE[lname]
        items.append((name, value))
    if te_trailers:
        items.append(("Te", "trailers"))
    if upgrade:
        items.append(("Connection", "Upgrade"))
        items.append(("Upgrade", upgrade))
    # X-Forwarded-*: earlier values count only when they come from a trusted proxy
    client = request.remote_ip.partition("%")[0]
    prior = ", ".join(forwarded_for) if trusted else ""
    chain = f"{prior}, {client}" if prior and client else prior or client
    if chain:
        items.append(("X-Forwarded-For", chain))
    items.append(("X-Forwarded-Proto", proto if trusted and proto else request.scheme))
    items.append(("X-Forwarded-Host", host if trusted and host else request.authority))
    items.append(("Via", VIA if request.version == "HTTP/1.1" else request.version[5:] + " rws"))
    return Headers(items), upgrade


def client_response_headers(upstream: list[tuple[str, str]], base: Headers) -> Headers:
    """The response fields for the client: those already set for it (`base`, e.g. by
    `header` directives that ran before), rws's `Server` removed, then the upstream's
    end-to-end fields and `Via`."""
    base.delete("Server")
    drop = HOP_BY_HOP
    for name, value in upstream:
        if len(name) == 10 and name.lower() == "connection":
            drop = drop | {t.strip().lower() for t in value.split(",")}
    base.extend([(name, value) for name, value in upstream if name.lower() not in drop])
    base.add("Via", VIA)
    return base


def sendable_method(method: str) -> bool:
    """Whether a method can go upstream as it is: a token (HTTP/2 and HTTP/3 clients, and
    rewrites, could give anything else, which would break the request line)."""
    return _METHOD.fullmatch(method) is not None


def sendable_target(target: str) -> bool:
    """Whether a request target can go upstream as it is: not if it holds characters a
    request line (or HTTP/2's `:path`) can't carry (controls, spaces, non-ASCII), which a
    rewrite may have put there."""
    return _SAFE_TARGET.fullmatch(target) is not None


def request_head(method: str, target: str, headers: Headers) -> bytes:
    """The serialised head of an HTTP/1.1 request (`sendable_target(target)` holds).
    Fields whose names are not tokens are dropped; CR, LF and NUL in values become spaces."""
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    lines.extend(header_line(name, value) for name, value in headers)
    lines.append("\r\n")
    return "".join(lines).encode("latin-1", "replace")


def request_fields(method: str, scheme: bytes, target: str, headers: Headers) -> list[tuple[bytes, bytes]]:
    """A proxied request's HTTP/2 fields: the pseudo-fields (`:authority` from the Host the
    proxy sends), then the other fields with lower-case names, without the fields of an
    HTTP/1 connection (`te` only as `trailers`). As for HTTP/1.1, fields whose names are
    not tokens are dropped, and CR, LF and NUL in values become spaces."""
    authority = ""
    fields = [(b":method", method.encode("latin-1")), (b":scheme", scheme)]
    rest: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        lname = name.lower()
        if lname in CONNECTION_FIELDS:
            continue
        if lname == "host":
            authority = authority or value
            continue
        if lname == "te" and value.strip().lower() != "trailers" or not _FIELD_NAME.fullmatch(lname):
            continue
        rest.append((lname.encode("latin-1", "replace"), _field_value(value)))
    if authority:
        fields.append((b":authority", _field_value(authority)))
    fields.append((b":path", target.encode("latin-1", "replace")))
    fields.extend(rest)
    return fields


def _field_value(value: str) -> bytes:
    if "\r" in value or "\n" in value or "\x00" in value:
        value = value.replace("\r", " ").replace("\n", " ").replace("\x00", " ")
    return value.encode("latin-1", "replace")


_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SAFE_TARGET = re.compile(r"[\x21-\x7e]+")
_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
