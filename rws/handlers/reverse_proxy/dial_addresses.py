"""Network addresses as Caddy reads them, and upstream addresses as `reverse_proxy` reads them.

A network address is `[network/]host[:port[-port]]` (`unix//path` for sockets). An
upstream address written in an Rwsfile may also be a URL (`https://host:port`), whose
scheme only chooses the transport: `https` turns TLS on, `h2c` speaks cleartext HTTP/2.
Everything here is pure string work that follows Go's `net.SplitHostPort` and
`net/url` closely enough that the same inputs are accepted and rejected.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass


class AddressError(ValueError):
    """An address that cannot be used; the message is ready to show to a user."""


# --- Go's net.SplitHostPort / net.JoinHostPort -------------------------------------------


def split_host_port(hostport: str) -> tuple[str, str]:
    """Go's net.SplitHostPort; raises AddressError with Go's reasons."""
    i = hostport.rfind(":")
    if i < 0:
        raise AddressError(f"address {hostport}: missing port in address")
    j = k = 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise AddressError(f"address {hostport}: missing ']' in address")
        if end + 1 == len(hostport):
            raise AddressError(f"address {hostport}: missing port in address")
        if end + 1 != i:
            if hostport[end + 1] == ":":
                raise AddressError(f"address {hostport}: too many colons in address")
            raise AddressError(f"address {hostport}: missing port in address")
        host = hostport[1:end]
        j, k = 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            raise AddressError(f"address {hostport}: too many colons in address")
    if "[" in hostport[j:]:
        raise AddressError(f"address {hostport}: unexpected '[' in address")
    if "]" in hostport[k:]:
        raise AddressError(f"address {hostport}: unexpected ']' in address")
    return host, hostport[i + 1:]


def join_host_port(host: str, port: str) -> str:
    """Go's net.JoinHostPort: brackets around hosts that contain a colon."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


# --- Caddy's network addresses -------------------------------------------------------------


def is_unix_network(network: str) -> bool:
    return network.startswith("unix")


def is_fd_network(network: str) -> bool:
    return network.startswith("fd")


def split_network_address(address: str) -> tuple[str, str, str]:
    """(network, host, port) like caddy.SplitNetworkAddress; raises AddressError."""
    network = ""
    before, slash, after = address.partition("/")
    if slash:
        network = before.strip().lower()
        address = after
        if is_unix_network(network) or is_fd_network(network):
            return network, address, ""
    try:
        host, port = split_host_port(address)
        return network, host, port
    except AddressError as first:
        try:
            host, _ = split_host_port(join_host_port(address.strip("[]"), "0"))
        except AddressError as second:
            raise AddressError(f"{first}; {second}") from None
        return network, host, ""


def join_network_address(network: str, host: str, port: str) -> str:
    """caddy.JoinNetworkAddress."""
    out = f"{network}/" if network else ""
    if (host and not port) or is_unix_network(network) or is_fd_network(network):
        out += host
    elif port:
        out += join_host_port(host, port)
    return out


@dataclass(frozen=True, slots=True)
class NetworkAddress:
    network: str
    host: str
    start_port: int = 0
    end_port: int = 0


_GO_UINT = re.compile(r"[0-9]+")


def _port_number(text: str, which: str) -> int:
    if not _GO_UINT.fullmatch(text):
        raise AddressError(f'invalid {which} port: parsing "{text}": invalid syntax')
    value = int(text)
    if value > 65535:
        raise AddressError(f'invalid {which} port: parsing "{text}": value out of range')
    return value


def parse_network_address(address: str, default_network: str = "tcp", default_port: int = 0) -> NetworkAddress:
    """caddy.ParseNetworkAddressWithDefaults: network, host and an inclusive port range."""
    network, host, port = split_network_address(address)
    network = network or default_network
    if is_unix_network(network):
        _check_socket_mode(host)
        return NetworkAddress(network, host)
    if is_fd_network(network):
        return NetworkAddress(network, host)
    if not port:
        return NetworkAddress(network, host, default_port, default_port)
    first, dash, last = port.partition("-")
    start = _port_number(first, "start")
    end = _port_number(last if dash else first, "end")
    if end < start:
        raise AddressError("end port must not be less than start port")
    return NetworkAddress(network, host, start, end)


def _check_socket_mode(host: str) -> None:
    """`unix//path|0222`: the octal mode after `|` must give the owner write permission."""
    if "|" not in host:
        return
    _, _, bits = host.partition("|")
    if not re.fullmatch(r"[+]?[0-7]+", bits) or int(bits, 8) >= 2**32:
        raise AddressError(f"could not parse octal permission bits in {host}")
    if not int(bits, 8) & 0o200:
        raise AddressError(f"owner of the socket requires '-w-' (write, octal: '2') permissions at least; got {bits!r} in {host}")


# --- upstream addresses ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpstreamAddress:
    """One upstream as written: its scheme (may be "") and the dial addresses it expands to."""

    scheme: str
    dials: tuple[str, ...]


def parse_upstream(address: str) -> UpstreamAddress:
    """An upstream address or URL -> scheme and dial addresses (a port range expands)."""
    network, scheme, host, port = _split_upstream(address)
    if network == "unix+h2c":
        network, scheme = "unix", "h2c"
    if network:
        dial = join_network_address(network, host, port)
    elif not port and "{" in host:
        dial = host
    else:
        dial = join_host_port(host, port)
    if "{" in port and "}" in port:
        return UpstreamAddress(scheme, (dial,))
    parsed = parse_network_address(dial)
    if is_unix_network(network) or "-" not in port:
        return UpstreamAddress(scheme, (dial,))
    dials = tuple(join_network_address("", parsed.host, str(p)) for p in range(parsed.start_port, parsed.end_port + 1))
    return UpstreamAddress(scheme, dials)


def _split_upstream(address: str) -> tuple[str, str, str, str]:
    """(network, scheme, host, port) as Caddy's parseUpstreamDialAddress finds them."""
    if "://" not in address:
        try:
            network, host, port = split_network_address(address)
        except AddressError:
            network, host, port = "", address, ""
        if not port and "{" not in host and not is_unix_network(network) and not is_fd_network(network):
            port = "80"
        return network, "", host, port
    if "{" in address:
        raise AddressError("due to parsing difficulties, placeholders are not allowed when an upstream address contains a scheme")
    port = ""
    try:
        url = _parse_url(address)
    except AddressError as exc:
        message = str(exc)
        if "invalid port" not in message or "-" not in message:
            raise AddressError(f"parsing upstream URL: {message}") from None
        port_range = address[address.rfind(":") + 1:]
        if port_range.count("-") != 1:
            raise AddressError(f'parsing upstream URL: parse "{address}": port range invalid: {port_range}') from None
        try:
            url = _parse_url(address.replace(port_range, "0"))
        except AddressError as again:
            raise AddressError(f"parsing upstream URL: {again}") from None
        port = port_range
    port = port or url.port
    if url.path or url.query or url.fragment:
        raise AddressError("for now, URLs for proxy upstreams only support scheme, host, and port components")
    conflicts = {("http", "443"): "HTTPS", ("https", "80"): "HTTP", ("h2c", "443"): "HTTPS"}
    conflict = conflicts.get((url.scheme, port))
    if conflict:
        raise AddressError(
            f"upstream address has conflicting scheme ({url.scheme}://) and port (:{port}, the {conflict} port)"
        )
    if not port:
        port = {"": "80", "http": "80", "h2c": "80", "https": "443"}.get(url.scheme, "")
    return "", url.scheme, url.hostname, port


# --- just enough of Go's net/url.Parse -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Url:
    scheme: str
    hostname: str
    port: str
    path: str
    query: str
    fragment: str


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_HOST_CHARS = re.compile(r"[A-Za-z0-9\-_.~!$&'()*+,;=:\[\]<>\"%\x80-\U0010ffff]*")
_USERINFO_CHARS = re.compile(r"[A-Za-z0-9\-._:~!$&'()*+,;=%@\x80-\U0010ffff]*")


def _parse_url(raw: str) -> _Url:
    """Scheme, host, port, path, query and fragment of an absolute URL, as Go's url.Parse gives them."""
    rest, _, fragment = raw.partition("#")
    colon = rest.find(":")
    if colon == 0:
        raise AddressError(f'parse "{raw}": missing protocol scheme')
    scheme = rest[:colon] if colon > 0 else ""
    if not _SCHEME.fullmatch(scheme):
        raise AddressError(f'parse "{raw}": first path segment in URL cannot contain colon')
    rest = rest[colon + 1:]
    if rest.endswith("?") and rest.count("?") == 1:
        rest, query = rest[:-1], ""
    else:
        rest, _, query = rest.partition("?")
    if not rest.startswith("/"):
        return _Url(scheme.lower(), "", "", "", query, fragment)  # opaque, like "mailto:x"
    if not rest.startswith("//"):
        return _Url(scheme.lower(), "", "", rest, query, fragment)
    authority, slash, path = rest[2:].partition("/")
    userinfo, at, host = authority.rpartition("@")
    if at and not _USERINFO_CHARS.fullmatch(userinfo):
        raise AddressError(f'parse "{raw}": net/url: invalid userinfo')
    if at:
        _check_escapes(raw, userinfo, host_mode=False)
    hostname, port = _split_url_host(raw, host)
    return _Url(scheme.lower(), hostname, port, slash + path, query, fragment)


def _split_url_host(raw: str, host: str) -> tuple[str, str]:
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise AddressError(f'parse "{raw}": missing \']\' in host')
        colon_port = host[end + 1:]
        if not _valid_optional_port(colon_port):
            raise AddressError(f'parse "{raw}": invalid port "{colon_port}" after host')
        return host[1:end], colon_port[1:]
    i = host.rfind(":")
    if i >= 0 and not _valid_optional_port(host[i:]):
        raise AddressError(f'parse "{raw}": invalid port "{host[i:]}" after host')
    bad = next((c for c in host if not _HOST_CHARS.fullmatch(c)), None)
    if bad is not None:
        raise AddressError(f'parse "{raw}": invalid character "{bad}" in host name')
    _check_escapes(raw, host, host_mode=True)
    host = urllib.parse.unquote(host)
    if i >= 0:
        return host[:i], host[i + 1:]
    return host, ""


def _check_escapes(raw: str, text: str, host_mode: bool) -> None:
    """Go's unescape: `%` needs two hex digits; a host may escape only non-ASCII bytes and `%25`."""
    for escape in re.finditer(r"%.{0,2}", text):
        code = escape.group(0)
        if not re.fullmatch(r"%[0-9A-Fa-f]{2}", code) or (host_mode and code[1] < "8" and code != "%25"):
            raise AddressError(f'parse "{raw}": invalid URL escape "{code}"')


def _valid_optional_port(port: str) -> bool:
    if port == "":
        return True
    return port.startswith(":") and all("0" <= c <= "9" for c in port[1:])
