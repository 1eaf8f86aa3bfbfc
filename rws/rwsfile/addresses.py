"""Site addresses: `[scheme://][host][:port][/path]`, parsed and normalised as Caddy does."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

DEFAULT_HTTP_PORT = 80
DEFAULT_HTTPS_PORT = 443


class AddressError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Address:
    original: str = ""
    scheme: str = ""
    host: str = ""
    port: str = ""
    path: str = ""

    def __str__(self) -> str:
        if not self.host and not self.port:
            return ""
        scheme = self.scheme or ("https" if self.port == str(DEFAULT_HTTPS_PORT) else "http")
        out = scheme + "://"
        if self.port and (
            (scheme == "https" and self.port != str(DEFAULT_HTTPS_PORT))
            or (scheme == "http" and self.port != str(DEFAULT_HTTP_PORT))
        ):
            out += join_host_port(self.host, self.port)
        else:
            out += self.host
        return out + self.path

    def normalize(self) -> Address:
        host = self.host.strip()
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
                host = str(ip)
        return Address(self.original, lower_except_placeholders(self.scheme), lower_except_placeholders(host),
                       self.port, self.path)


def parse_address(text: str) -> Address:
    remaining = text[:4096].strip()
    original = remaining
    scheme = ""
    if "://" in remaining:
        scheme, remaining = remaining.split("://", 1)
    host_part, slash, path = remaining.partition("/")
    try:
        host, port = split_host_port(host_part)
    except AddressError:
        try:
            host, port = split_host_port(host_part + ":")
        except AddressError:
            host, port = host_part, ""
    if port:
        if port.startswith("-") and port[1:].isdecimal():
            raise AddressError(f"port {port} is out of range")
        if not port.isdecimal():
            raise AddressError(f"invalid port '{port}'")
        if int(port) > 65535:
            raise AddressError(f"port {int(port)} is out of range")
    return Address(original, scheme, host, port, "/" + path if slash else "")


def split_host_port(text: str) -> tuple[str, str]:
    """Go's net.SplitHostPort."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise AddressError(f"missing ']' in address {text!r}")
        rest = text[end + 1:]
        if not rest.startswith(":"):
            raise AddressError(f"missing port in address {text!r}")
        host, port = text[1:end], rest[1:]
        if "[" in host or "]" in port or "[" in port:
            raise AddressError(f"unexpected bracket in address {text!r}")
        return host, port
    i = text.rfind(":")
    if i < 0:
        raise AddressError(f"missing port in address {text!r}")
    host, port = text[:i], text[i + 1:]
    if ":" in host:
        raise AddressError(f"too many colons in address {text!r}")
    if any(c in host + port for c in "[]"):
        raise AddressError(f"unexpected bracket in address {text!r}")
    return host, port


def join_host_port(host: str, port: str) -> str:
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def lower_except_placeholders(text: str) -> str:
    out = []
    escaped = in_placeholder = False
    for ch in text:
        if ch == "\\" and not escaped:
            escaped = True
            out.append(ch)
            continue
        if ch == "{" and not escaped:
            in_placeholder = True
        if ch == "}" and in_placeholder and not escaped:
            in_placeholder = False
        out.append(ch if in_placeholder else ch.lower())
        escaped = False
    return "".join(out)


def specificity(text: str) -> int:
    """Length without wildcards and `{placeholders}`: how specific a host or path is."""
    length = len(text) - text.count("*")
    rest = text
    while rest:
        start = rest.find("{")
        if start < 0:
            break
        end = rest.find("}", start)
        if end < 0:
            break
        length -= end + 1 - start
        rest = rest[end + 1:]
    return length
