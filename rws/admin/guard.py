"""Who may talk to the admin API: the Host check (DNS rebinding) and the Origin check (CSRF)."""

from __future__ import annotations

from urllib.parse import urlsplit

from rws.errors import AdminError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def allowed_hosts(listen: str, origins: tuple[str, ...]) -> set[str] | None:
    """The `Host` values accepted for an admin address; None means no Host check (wildcard
    listeners and Unix sockets)."""
    network, slash, rest = listen.partition("/")
    if slash and network.startswith(("unix", "fd")):
        return None
    address = rest if slash else listen
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        return None
    if host in ("localhost", "127.0.0.1", "::1"):
        hosts = {f"{name}:{port}" for name in LOOPBACK_NAMES}
    else:
        hosts = {f"[{host}]:{port}" if ":" in host else f"{host}:{port}"}
    for origin in origins:
        hosts.add(_host_of(origin))
    return hosts


def _host_of(origin: str) -> str:
    if "://" in origin:
        return urlsplit(origin).netloc
    return origin


def check(method: str, headers: dict[str, str], hosts: set[str] | None, origins: tuple[str, ...],
          enforce_origin: bool) -> str | None:
    """Raise AdminError(403/400) for a request the admin API must refuse; return the origin
    to echo in Access-Control-Allow-Origin when one was checked."""
    if headers.get("upgrade", "").lower() == "websocket":
        raise AdminError(400, "WebSocket connections aren't allowed.")
    if headers.get("sec-fetch-mode", "").lower() == "no-cors":
        raise AdminError(400, "no-cors requests are not allowed")
    origin_header = headers.get("origin")
    if origin_header == "null":
        raise AdminError(400, "the 'null' origin is not allowed")
    if hosts is not None and headers.get("host", "") not in hosts:
        raise AdminError(403, f"host not allowed: {headers.get('host', '')}")
    if not (enforce_origin or origin_header is not None or "sec-fetch-mode" in headers):
        return None
    origin = origin_header or _origin_of_referer(headers.get("referer", ""))
    if not origin:
        raise AdminError(403, "required Origin header is missing or invalid")
    allowed = set(origins) if origins else (hosts or set())
    parsed = urlsplit(origin) if "://" in origin else None
    netloc = parsed.netloc if parsed else origin
    for entry in allowed:
        if "://" in entry:
            if entry.rstrip("/") == origin.rstrip("/"):
                return origin
        elif entry == netloc:
            return origin
    raise AdminError(403, f"client is not allowed to access from origin '{origin}'")


def _origin_of_referer(referer: str) -> str:
    if not referer:
        return ""
    parts = urlsplit(referer)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
