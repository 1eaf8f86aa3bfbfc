"""The `host` matcher: `host example.com *.example.net` (JSON: a list of host patterns).

Hosts compare case-insensitively after IDNA conversion; `*` stands for one label.
Listing the same host twice is a config error, as in Caddy.

At run time the request's host (port and IPv6 brackets removed) is compared; a pattern
with `*` needs the same number of labels, each `*` standing for any one label.
Placeholders in patterns are expanded per request.
"""

from __future__ import annotations

from typing import Any

from rws.errors import ConfigError
from rws.http.matchers.path import refuse_block
from rws.http.message import Request
from rws.http.placeholders import Template, compile_template
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


HOST = ModuleSpec(id="http.matchers.host", config=tuple[str, ...] | None, rwsfile=_parse_host,
                  runtime="rws.http.matchers.host:build_host")


# --- runtime -------------------------------------------------------------------------------


def _labels_match(pattern: str, host: str) -> bool:
    pattern_labels = pattern.split(".")
    host_labels = host.split(".")
    if len(pattern_labels) != len(host_labels):
        return False
    return all(p == "*" or p.lower() == h.lower() for p, h in zip(pattern_labels, host_labels))


class HostMatcher:
    """`host`: the request host is one of the hosts (exact ones are looked up in a set)."""

    __slots__ = ("exact", "fuzzy", "needs_body")

    def __init__(self, hosts: tuple[str, ...]) -> None:
        normalized = [normalized_host(h) for h in hosts]
        self.exact = frozenset(h for h in normalized if not _is_fuzzy(h))
        self.fuzzy: tuple[Template, ...] = tuple(compile_template(h) for h in normalized if _is_fuzzy(h))
        self.needs_body = any(t.needs_body for t in self.fuzzy)

    def match(self, request: Request) -> bool:
        host = request.host
        if host.lower() in self.exact:
            return True
        for template in self.fuzzy:
            pattern = template.render(request)
            if "*" in pattern:
                if _labels_match(pattern, host):
                    return True
            elif pattern.lower() == host.lower():
                return True
        return False


def build_host(config: tuple[str, ...] | None, ctx: Any) -> HostMatcher:
    validate_hosts(config, "host")
    return HostMatcher(config or ())
