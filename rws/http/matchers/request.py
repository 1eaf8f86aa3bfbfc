"""Matchers on the request line and connection: `method`, `protocol` and `tls`.

- `method GET POST` (JSON: a list of methods, compared upper-cased);
- `protocol https` (JSON: one string: http, https, grpc, http/1.0, http/1.1, http/2,
  http/3, each version optionally with `+` for "this or newer");
- `tls [early_data]` (JSON: `{}` or `{"handshake_complete": false}`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from rws.errors import ConfigError
from rws.http.matchers.path import refuse_block
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


METHOD = ModuleSpec(id="http.matchers.method", config=tuple[str, ...] | None, rwsfile=_parse_method)


def validate_methods(methods: tuple[str, ...] | None, path: str) -> None:
    """The check the runtime builder applies to a decoded method list."""
    for i, method in enumerate(methods or ()):
        problem = method_problem(method)
        if problem:
            raise ConfigError(f"{path}[{i}]", problem)


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


PROTOCOL = ModuleSpec(id="http.matchers.protocol", config=Literal[PROTOCOLS], rwsfile=_parse_protocol)


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


TLS = ModuleSpec(id="http.matchers.tls", config=TlsMatchConfig, rwsfile=_parse_tls)
