"""Matchers on the request line and connection: `method`, `protocol` and `tls`.

- `method GET POST` (JSON: a list of methods, compared upper-cased);
- `protocol https` (JSON: one string: http, https, grpc, http/1.0, http/1.1, http/2,
  http/3, each version optionally with `+` for "this or newer");
- `tls [early_data]` (JSON: `{}` or `{"handshake_complete": false}`).

At run time `https` and `tls` look at the connection (`request.scheme`, `request.tls`);
a TLS state object may say `handshake_complete = False` for requests sent as early data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Literal

from rws.errors import ConfigError
from rws.http.matchers.path import refuse_block
from rws.http.message import Request
from rws.registry import ModuleSpec
from rws.rwsfile.directives import MatcherContext
from rws.rwsfile.dispenser import Dispenser

# --- method --------------------------------------------------------------------------------

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def method_problem(method: str) -> str | None:
    if not _TOKEN.fullmatch(method):
        return f"invalid HTTP method {method!r}"
    return None


def _parse_method(lines: list[Dispenser], ctx: MatcherContext) -> Any:
    methods: list[str] = []
    for d in lines:
        while d.next_arg():
            problem = method_problem(d.val())
            if problem:
                raise d.error(problem)
            methods.append(d.val())
        refuse_block(d, "method")
    return methods or None


METHOD = ModuleSpec(id="http.matchers.method", config=tuple[str, ...] | None, rwsfile=_parse_method,
                    runtime="rws.http.matchers.request:build_method")


def validate_methods(methods: tuple[str, ...] | None, path: str) -> None:
    """The check the runtime builder applies to a decoded method list."""
    for i, method in enumerate(methods or ()):
        problem = method_problem(method)
        if problem:
            raise ConfigError(f"{path}[{i}]", problem)


class MethodMatcher:
    """`method`: the request method is one of the methods (upper-cased when built)."""

    __slots__ = ("methods",)

    def __init__(self, methods: tuple[str, ...]) -> None:
        self.methods = frozenset(m.upper() for m in methods)

    def match(self, request: Request) -> bool:
        return request.method in self.methods


def build_method(config: tuple[str, ...] | None, ctx: Any) -> MethodMatcher:
    validate_methods(config, "method")
    return MethodMatcher(config or ())


# --- protocol ------------------------------------------------------------------------------

PROTOCOLS = (
    "http", "https", "grpc",
    "http/1.0", "http/1.0+", "http/1.1", "http/1.1+", "http/2", "http/2+", "http/3", "http/3+",
)


def protocol_problem(value: str) -> str | None:
    if value not in PROTOCOLS:
        return f"unknown protocol {value!r}: expected one of {', '.join(PROTOCOLS)}"
    return None


def _parse_protocol(lines: list[Dispenser], ctx: MatcherContext) -> Any:
    proto = ""
    for d in lines:
        if d.count_remaining_args() != 1:
            raise d.error("expected exactly one protocol")
        d.next_arg()
        proto = d.val()
        problem = protocol_problem(proto)
        if problem:
            raise d.error(problem)
        refuse_block(d, "protocol")
    return proto


PROTOCOL = ModuleSpec(id="http.matchers.protocol", config=Literal[PROTOCOLS], rwsfile=_parse_protocol,
                      runtime="rws.http.matchers.request:build_protocol")


def http_version(request: Request) -> tuple[int, int]:
    """(major, minor) of the request's protocol: `HTTP/1.1` -> (1, 1), `HTTP/2.0` -> (2, 0)."""
    _, _, number = request.version.partition("/")
    major, _, minor = number.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return 0, 0


def _is_tls(request: Request) -> bool:
    return request.tls is not None or request.scheme == "https"


def _protocol_test(proto: str) -> Callable[[Request], bool]:
    if proto == "grpc":
        return lambda r: (r.headers.get("Content-Type") or "").startswith("application/grpc")
    if proto == "https":
        return _is_tls
    if proto == "http":
        return lambda r: not _is_tls(r)
    major, _, minor = proto.removeprefix("http/").rstrip("+").partition(".")
    wanted = (int(major), int(minor or 0))
    if proto.endswith("+"):
        return lambda r: http_version(r) >= wanted
    if wanted[0] >= 2:  # Caddy compares only the major version from 2 on
        return lambda r: http_version(r)[0] == wanted[0]
    return lambda r: http_version(r) == wanted


class ProtocolMatcher:
    """`protocol`: the request came over the given protocol (or a newer version, with `+`)."""

    __slots__ = ("test",)

    def __init__(self, proto: str) -> None:
        self.test = _protocol_test(proto)

    def match(self, request: Request) -> bool:
        return self.test(request)


def build_protocol(config: str, ctx: Any) -> ProtocolMatcher:
    problem = protocol_problem(config)
    if problem:
        raise ConfigError("protocol", problem)
    return ProtocolMatcher(config)


# --- tls -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsMatchConfig:
    """Matches TLS requests; with handshake_complete set, only those in that handshake state."""

    handshake_complete: bool | None = None


def _parse_tls(lines: list[Dispenser], ctx: MatcherContext) -> Any:
    out: dict[str, Any] = {}
    for d in lines:
        if d.next_arg():
            if d.val() != "early_data":
                raise d.error(f"unrecognized option {d.val()!r}")
            out["handshake_complete"] = False
        if d.next_arg():
            raise d.arg_error()
        refuse_block(d, "tls", " yet")
    return out


TLS = ModuleSpec(id="http.matchers.tls", config=TlsMatchConfig, rwsfile=_parse_tls,
                 runtime="rws.http.matchers.request:build_tls")


def handshake_complete(request: Request) -> bool:
    """Whether the TLS handshake of the request's connection is complete (False: early data)."""
    return getattr(request.tls, "handshake_complete", True) is not False


class TlsMatcher:
    """`tls`: a TLS request; with `handshake_complete` set, only in that handshake state."""

    __slots__ = ("handshake_complete",)

    def __init__(self, config: TlsMatchConfig) -> None:
        self.handshake_complete = config.handshake_complete

    def match(self, request: Request) -> bool:
        if not _is_tls(request):
            return False
        return self.handshake_complete is None or handshake_complete(request) == self.handshake_complete


def build_tls(config: TlsMatchConfig, ctx: Any) -> TlsMatcher:
    return TlsMatcher(config)
