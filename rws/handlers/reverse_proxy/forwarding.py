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

from rws.http.message import Headers, Request

HOP_BY_HOP = frozenset({"connection", "proxy-connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "transfer-encoding", "upgrade"})
_WEBSOCKET_CASE = {"sec-websocket-accept": "Sec-WebSocket-Accept", "sec-websocket-extensions": "Sec-WebSocket-Extensions",
                   "sec-websocket-key": "Sec-WebSocket-Key", "sec-websocket-protocol": "Sec-WebSocket-Protocol",
                   "sec-websocket-version": "Sec-WebSocket-Version"}
VIA = "1.1 rws"


def connection_tokens(headers: Headers) -> set[str]:
    return {t.strip().lower() for v in headers.get_all("Connection") for t in v.split(",") if t.strip()}


def upgrade_type(headers: Headers) -> str:
    """The protocol a request or response upgrades to ("" for none)."""
    if "upgrade" not in connection_tokens(headers):
        return ""
    return (headers.get("Upgrade") or "").strip()


def upstream_request_headers(request: Request, trusted: bool) -> tuple[Headers, str]:
    """The header fields the upstream gets (before `header_up`), and the upgrade asked for."""
    source = request.headers
    upgrade = upgrade_type(source)
    drop = HOP_BY_HOP | connection_tokens(source) if "connection" in source else HOP_BY_HOP
    items: list[tuple[str, str]] = []
    te_trailers = False
    for name, value in source:
        lname = name.lower()
        if lname in drop:
            if lname == "te" and "trailers" in (t.strip().lower() for t in value.split(",")):
                te_trailers = True
            continue
        if upgrade and lname in _WEBSOCKET_CASE:
            name = _WEBSOCKET_CASE[lname]
        items.append((name, value))
    headers = Headers(items)
    if te_trailers:
        headers.add("Te", "trailers")
    if upgrade:
        headers.set("Connection", "Upgrade")
        headers.set("Upgrade", upgrade)
    _forwarded(headers, request, trusted)
    headers.add("Via", VIA if request.version == "HTTP/1.1" else request.version[5:] + " rws")
    return headers, upgrade


def _forwarded(headers: Headers, request: Request, trusted: bool) -> None:
    client = request.remote_ip.partition("%")[0]
    prior = ", ".join(v.strip() for v in headers.get_all("X-Forwarded-For"))
    if trusted and prior:
        headers.set("X-Forwarded-For", f"{prior}, {client}" if client else prior)
    elif client:
        headers.set("X-Forwarded-For", client)
    else:
        headers.delete("X-Forwarded-For")
    values = headers.get_all("X-Forwarded-Proto")
    proto = values[-1] if trusted and values and values[-1] else request.scheme
    headers.set("X-Forwarded-Proto", proto)
    values = headers.get_all("X-Forwarded-Host")
    host = values[-1] if trusted and values and values[-1] else request.authority
    headers.set("X-Forwarded-Host", host)


def client_response_headers(upstream: list[tuple[str, str]], base: Headers) -> Headers:
    """The response fields for the client: those already set for it (`base`, e.g. by
    `header` directives that ran before), rws's `Server` removed, then the upstream's
    end-to-end fields and `Via`."""
    base.delete("Server")
    drop = HOP_BY_HOP
    for name, value in upstream:
        lname = name.lower()
        if lname == "connection":
            drop = drop | {t.strip().lower() for t in value.split(",")}
    for name, value in upstream:
        if name.lower() not in drop:
            base.add(name, value)
    base.add("Via", VIA)
    return base


def request_head(method: str, target: str, headers: Headers) -> bytes:
    """The serialised head of an HTTP/1.1 request."""
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    for name, value in headers:
        if "\r" in value or "\n" in value:
            value = value.replace("\r", " ").replace("\n", " ")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1", "replace")
