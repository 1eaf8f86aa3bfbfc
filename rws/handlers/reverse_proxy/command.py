"""The config that `rws reverse-proxy` runs: one server, one route, one `reverse_proxy` handler.

It is the JSON tree Caddy's `caddy reverse-proxy` builds from the same options, except:
- `--from` without a scheme is plain HTTP not only where Caddy says so (port 80, or no
  host) but also for `localhost` or an IP address with a port other than 443, which Caddy
  would serve over HTTPS with a certificate from its local CA (rws cannot issue one yet);
- an IP address in `--from` is also the address rws listens on; Caddy listens on every
  interface (`:<port>`) whatever the host;
- `--to` is checked as the `reverse_proxy` directive checks its upstreams: one scheme for
  all, no scheme but http, https and h2c, and h2c speaks cleartext HTTP/2; Caddy's command
  uses the first scheme it sees and ignores h2c.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rws.errors import RwsError
from rws.handlers.reverse_proxy import dial_addresses
from rws.http.message import canonical_header_key
from rws.rwsfile import addresses
from rws.rwsfile.addresses import DEFAULT_HTTP_PORT, DEFAULT_HTTPS_PORT, Address, join_host_port

UPSTREAM_HOSTPORT = "{http.reverse_proxy.upstream.hostport}"


@dataclass(frozen=True, slots=True)
class ProxyPlan:
    """What `rws reverse-proxy` will run: the JSON tree, and what it says at startup."""

    tree: dict[str, Any]
    from_url: str
    dials: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def downstream_address(text: str) -> Address:
    """`--from` as a site address with its scheme and port filled in."""
    try:
        address = addresses.parse_address(text)
    except addresses.AddressError as exc:
        raise RwsError(f"--from {text!r}: invalid downstream address: {exc}") from None
    if address.path:
        raise RwsError(f"--from {text!r}: paths are not allowed")
    scheme = address.scheme or ("http" if _is_plain_http(address) else "https")
    port = address.port or str(DEFAULT_HTTP_PORT if scheme == "http" else DEFAULT_HTTPS_PORT)
    return Address(address.original, scheme, address.host, port, "")


def _is_plain_http(address: Address) -> bool:
    if address.port == str(DEFAULT_HTTP_PORT) or not address.host:
        return True  # as Caddy
    # rws cannot issue certificates yet: a local address with its own port stays plain HTTP
    return bool(address.port) and address.port != str(DEFAULT_HTTPS_PORT) and _is_local(address.host)


def _is_local(host: str) -> bool:
    return host == "localhost" or _is_ip(host)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def upstream_dials(to: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """The `--to` values (each may list several, comma-separated, as Caddy allows) ->
    (the scheme they name, or "" when none names one; their dial addresses)."""
    scheme = ""
    dials: list[str] = []
    for text in (piece.strip() for value in to for piece in value.split(",")):
        if not text:
            continue
        try:
            upstream = dial_addresses.parse_upstream(text)
        except dial_addresses.AddressError as exc:
            raise RwsError(f"--to {text!r}: invalid upstream address: {exc}") from None
        if upstream.scheme not in ("", "http", "https", "h2c"):
            raise RwsError(f"--to {text!r}: unsupported URL scheme {upstream.scheme}://")
        if scheme and upstream.scheme and upstream.scheme != scheme:
            raise RwsError(f"--to {text!r}: all upstreams must use the same scheme; expected {scheme}://, "
                           f"got {upstream.scheme}://")
        scheme = scheme or upstream.scheme
        dials.extend(upstream.dials)
    if not dials:
        raise RwsError("--to is required")
    return scheme, tuple(dials)


def header_fields(option: str, values: Sequence[str]) -> dict[str, list[str]]:
    """`"Field: value"` options -> a header `set` map; a later value of a field replaces an earlier one."""
    fields: dict[str, list[str]] = {}
    for value in values:
        name, colon, text = value.partition(":")
        name, text = name.strip(), text.strip()
        if not colon or not name or not text:
            raise RwsError(f"{option} {value!r}: expected 'Field: value'")
        fields[canonical_header_key(name)] = [text]
    return fields


def proxy_plan(*, from_address: str, to: Sequence[str], change_host_header: bool = False, insecure: bool = False,
               disable_redirects: bool = False, internal_certs: bool = False, header_up: Sequence[str] = (),
               header_down: Sequence[str] = (), access_log: bool = False, debug: bool = False) -> ProxyPlan:
    """The config of `rws reverse-proxy` with these options; raises RwsError for bad input."""
    downstream = downstream_address(from_address)
    scheme, dials = upstream_dials(to)
    handler = _handler(scheme, insecure, dials, header_fields("--header-up", header_up),
                       header_fields("--header-down", header_down), change_host_header)
    route: dict[str, Any] = {"match": [{"host": [downstream.host]}]} if downstream.host else {}
    route["handle"] = [handler]
    server: dict[str, Any] = {"listen": [_listen_address(downstream)], "routes": [route]}
    if access_log:
        server["logs"] = {}
    if downstream.scheme == "http":
        server["automatic_https"] = {"disable": True}
    elif disable_redirects:
        server["automatic_https"] = {"disable_redirects": True}
    apps: dict[str, Any] = {"http": {"servers": {"proxy": server}}}
    if internal_certs and downstream.host:
        policy = {"subjects": [downstream.host], "issuers": [{"module": "internal"}]}
        apps["tls"] = {"automation": {"policies": [policy]}}
    tree: dict[str, Any] = {"admin": {"disabled": True, "config": {"persist": False}}, "apps": apps}
    if debug:
        tree["logging"] = {"logs": {"default": {"level": "DEBUG"}}}
    warnings: list[str] = []
    if downstream.scheme == "https":
        warnings.append(f"{downstream} needs a certificate, and rws has no automatic HTTPS yet: "
                        f"it serves plain HTTP on {_listen_address(downstream)}")
    if insecure and scheme != "https":
        warnings.append("--insecure has no effect: no upstream is an https:// URL, "
                        "so rws does not use TLS to reach them")
    return ProxyPlan(tree, str(downstream), dials, tuple(warnings))


def _handler(scheme: str, insecure: bool, dials: tuple[str, ...], up: dict[str, list[str]],
             down: dict[str, list[str]], change_host_header: bool) -> dict[str, Any]:
    transport: dict[str, Any] = {"protocol": "http"}
    if scheme == "https":
        transport["tls"] = {"insecure_skip_verify": True} if insecure else {}
    elif scheme == "h2c":
        transport["versions"] = ["h2c", "2"]  # as `reverse_proxy h2c://...` in an Rwsfile
    handler: dict[str, Any] = {"handler": "reverse_proxy", "transport": transport,
                               "upstreams": [{"dial": dial} for dial in dials]}
    if change_host_header:
        up = {**up, "Host": [UPSTREAM_HOSTPORT]}
    headers: dict[str, Any] = {}
    if up:
        headers["request"] = {"set": up}
    if down:
        headers["response"] = {"set": down}
    if headers:
        handler["headers"] = headers
    return handler


def _listen_address(downstream: Address) -> str:
    if _is_ip(downstream.host):
        return join_host_port(downstream.host, downstream.port)
    return ":" + downstream.port
