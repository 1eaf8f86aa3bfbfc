"""The `host` matcher: `host example.com *.example.net` (JSON: a list of host patterns).

Hosts compare case-insensitively after IDNA conversion; `*` stands for one label.
Listing the same host twice is a config error, as in Caddy.
"""

from __future__ import annotations

from typing import Any

from rws.errors import ConfigError
from rws.http.matchers.path import refuse_block
from rws.registry import ModuleSpec
from rws.rwsfile.directives import MatcherContext
from rws.rwsfile.dispenser import Dispenser


def ascii_host(host: str) -> str:
    """The host's ASCII (punycode) form; hosts that IDNA rejects are kept as written."""
    if host.isascii():
        return host
    try:
        return ".".join(label.encode("idna").decode("ascii") if label else label for label in host.split("."))
    except UnicodeError:
        return host


def _is_fuzzy(host: str) -> bool:
    return "{" in host or "*" in host


def normalized_host(host: str) -> str:
    """The form in which a configured host is compared: ASCII, and lower case unless fuzzy."""
    text = ascii_host(host)
    return text if _is_fuzzy(text) else text.lower()


def validate_hosts(hosts: tuple[str, ...] | None, path: str) -> None:
    """Caddy's provisioning check (a list cannot carry a `validate` method; the builder calls this)."""
    seen: dict[str, int] = {}
    for i, host in enumerate(hosts or ()):
        key = ascii_host(host).lower()
        if key in seen:
            raise ConfigError(f"{path}[{i}]", f"host at index {seen[key]} is repeated at index {i}: {host!r}")
        seen[key] = i


def _parse_host(lines: list[Dispenser], ctx: MatcherContext) -> Any:
    hosts: list[str] = []
    for d in lines:
        hosts.extend(d.remaining_args())
        refuse_block(d, "host")
    try:
        validate_hosts(tuple(hosts), "host")
    except ConfigError as exc:
        raise lines[0].error(exc.message) from None
    return hosts or None


HOST = ModuleSpec(id="http.matchers.host", config=tuple[str, ...] | None, rwsfile=_parse_host)
