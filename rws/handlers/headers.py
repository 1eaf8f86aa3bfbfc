"""The `headers` handler: set, add, delete and rewrite request and response header fields.

Directives: `header` (response fields) and `request_header` (request fields). Also the
Rwsfile form of a response matcher (`match { status ...; header ... }`), which `encode`
uses too, and Go's canonical header-name spelling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rws.errors import ConfigError
from rws.http.regexp import regexp_problem
from rws.handlers.static_response import go_atoi
from rws.registry import ModuleSpec
from rws.rwsfile.directives import ConfigValue, Directive, Helper
from rws.rwsfile.dispenser import Dispenser

# --- header names ------------------------------------------------------------------------

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def canonical_header_key(name: str) -> str:
    """Go's textproto.CanonicalMIMEHeaderKey: `content-type` -> `Content-Type`.

    A name with a character that is not allowed in a field name (a space, a brace of a
    placeholder, anything non-ASCII) is returned unchanged.
    """
    if not name or any(c not in _TOKEN_CHARS for c in name):
        return name
    out = []
    upper = True
    for c in name:
        out.append(c.upper() if upper else c.lower())
        upper = c == "-"
    return "".join(out)


# --- response matchers -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseMatcherConfig:
    status_code: tuple[int, ...] = ()
    headers: dict[str, tuple[str, ...] | None] | None = None


def parse_response_matcher(d: Dispenser) -> dict[str, Any]:
    """`<name> status <codes...>` / `<name> header <field> [<value>]`, on the line or in a block.

    `d` is the line that names the matcher (e.g. `match`); the result is the JSON of a
    response matcher: {"status_code": [...], "headers": {...}}.
    """
    matcher: dict[str, Any] = {}
    lines: list[tuple[Dispenser, list[str]]] = []
    if d.count_remaining_args():
        d.next_arg()
        lines.append((d, [d.val(), *d.remaining_args()]))
    for sub in d.block():
        lines.append((sub, [sub.name, *sub.remaining_args()]))
    for line, words in lines:
        kind, args = words[0], words[1:]
        if kind == "status":
            if not args:
                raise line.error(f"wrong argument count or unexpected line ending after {kind!r}")
            codes = matcher.setdefault("status_code", [])
            for arg in args:
                text = arg[:1] if len(arg) == 3 and arg.endswith("xx") else arg
                number = go_atoi(text)
                if number is None:
                    raise line.error(f"bad status value {arg!r}")
                codes.append(number)
        elif kind == "header":
            headers = matcher.setdefault("headers", {})
            _header_matcher_line(line, args, headers)
        else:
            raise line.error(f"unrecognized response matcher {kind!r}" + _hint(kind, ("status", "header")))
    return matcher


def _header_matcher_line(d: Dispenser, args: list[str], headers: dict[str, Any]) -> None:
    if not args:
        raise d.error("malformed header matcher: expected field")
    field = args[0]
    if field.startswith("!"):
        if len(field) == 1:
            raise d.error("malformed header matcher: must have field name following ! character")
        if len(args) > 1:
            raise d.error("malformed header matcher: null matching headers cannot have a field value")
        headers[field[1:]] = None
        return
    if len(args) != 2:
        raise d.error("malformed header matcher: expected both field and value")
    key = canonical_header_key(field)
    values = headers.get(key) or []
    headers[key] = [*values, args[1]]


def _hint(word: str, known: tuple[str, ...]) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- config ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplacementConfig:
    search: str = ""
    search_regexp: str = ""
    replace: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderOpsConfig:
    add: dict[str, tuple[str, ...]] | None = None
    set: dict[str, tuple[str, ...]] | None = None
    delete: tuple[str, ...] = ()
    replace: dict[str, tuple[ReplacementConfig, ...]] | None = None

    def validate(self, path: str) -> None:
        for field, replacements in (self.replace or {}).items():
            for i, r in enumerate(replacements):
                where = f"{path}.replace[{field!r}][{i}]"
                if r.search and r.search_regexp:
                    raise ConfigError(where, f"cannot specify both a substring search and a regular expression search for field {field!r}")
                if r.search_regexp and not _has_placeholder(r.search_regexp):
                    problem = regexp_problem(r.search_regexp)
                    if problem:
                        raise ConfigError(f"{where}.search_regexp", problem)


@dataclass(frozen=True, slots=True, kw_only=True)
class RespHeaderOpsConfig(HeaderOpsConfig):
    require: ResponseMatcherConfig | None = None
    deferred: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadersConfig:
    request: HeaderOpsConfig | None = None
    response: RespHeaderOpsConfig | None = None


def _has_placeholder(text: str) -> bool:
    """Caddy's test: a `{` followed later by a `}` with something between them."""
    _, brace, after = text.partition("{")
    return bool(brace) and after.find("}") > 0


# --- building header operations ----------------------------------------------------------


class _Ops:
    """Header operations being collected; `json()` writes them as Caddy marshals them."""

    def __init__(self, response: bool) -> None:
        self.response = response
        self.add: dict[str, list[str]] = {}
        self.set: dict[str, list[str]] = {}
        self.delete: list[str] = []
        self.replace: dict[str, list[dict[str, str]]] = {}
        self.require: dict[str, Any] | None = None
        self.deferred = False

    def apply(self, field: str, value: str, replacement: str | None) -> str | None:
        """One `[+|-|?|>]field [value [replacement]]` operation; returns an error message or None."""
        if field.startswith("+"):
            self.add.setdefault(canonical_header_key(field[1:]), []).append(value)
        elif field.startswith("-"):
            self.delete.append(field[1:])
            if self.response:
                self.deferred = True
        elif field.startswith("?"):
            if not self.response:
                return (f"{field}: the default header modifier ('?') can only be used on response headers; "
                        "for conditional manipulation of request headers, use matchers")
            if self.require is None:
                self.require = {"headers": {}}
            self.require.setdefault("headers", {})[field[1:]] = None
            self.set[canonical_header_key(field[1:])] = [value]
        elif replacement is not None:
            if field.startswith(">") and self.response:
                self.deferred = True
            self.replace.setdefault(field.lstrip("+-?>"), []).append({"search_regexp": value, "replace": replacement})
        elif field.startswith(">"):
            self.set[canonical_header_key(field[1:])] = [value]
            if self.response:
                self.deferred = True
        else:
            self.set[canonical_header_key(field)] = [value]
        return None

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.add:
            out["add"] = self.add
        if self.set:
            out["set"] = self.set
        if self.delete:
            out["delete"] = self.delete
        if self.replace:
            out["replace"] = {k: [{key: v for key, v in r.items() if v} for r in rs] for k, rs in self.replace.items()}
        if self.require is not None:
            out["require"] = self.require
        if self.deferred:
            out["deferred"] = True
        return out


def _field_args(d: Dispenser) -> tuple[str, str | None]:
    """The optional value and replacement after a field name; more is an error."""
    value = d.val() if d.next_arg() else ""
    replacement = d.val() if d.next_arg() else None
    if d.next_arg():
        raise d.arg_error()
    return value, replacement


# --- header ------------------------------------------------------------------------------


def _parse_header(h: Helper) -> list[ConfigValue]:
    """`header [<matcher>] [[+|-|?|>]<field> [<value|regexp>] [<replacement>]] { ...; defer; match {...} }`"""
    d = h.d
    matcher_set, _ = h.matcher_token()
    ops, ops_with_require = _Ops(response=True), _Ops(response=True)
    has_args = False
    if d.next_arg():
        has_args = True
        field = d.val()
        value, replacement = _field_args(d)
        problem = ops.apply(field, value, replacement)
        if problem:
            raise d.error(problem)
    for sub in d.block():
        field = sub.name
        if field == "defer":
            sub.args_exactly(0)
            ops.deferred = True
            continue
        if field == "match":
            ops.require = parse_response_matcher(sub)
            continue
        if has_args:
            raise sub.error("cannot specify headers in both arguments and block", sub.tokens[0])
        field = field.removesuffix(":")  # a habit from writing raw HTTP
        value, replacement = _field_args(sub)
        target = ops_with_require if field.startswith("?") else ops
        problem = target.apply(field, value, replacement)
        if problem:
            raise sub.error(problem, sub.tokens[0])
    values: list[ConfigValue] = []
    for one in (ops, ops_with_require):
        response = one.json()
        if response:
            values.extend(h.new_route(matcher_set, {"handler": "headers", "response": response}))
    return values


# --- request_header ----------------------------------------------------------------------


def _parse_request_header(h: Helper) -> Any:
    """`request_header [<matcher>] [+|-]<field> [<value|regexp> [<replacement>]]`"""
    d = h.d
    if not d.next_arg():
        raise d.arg_error()
    field = d.val().removesuffix(":")
    value, replacement = _field_args(d)
    if d.has_block:
        raise d.error("request_header does not take a block")
    ops = _Ops(response=False)
    problem = ops.apply(field, value, replacement)
    if problem:
        raise d.error(problem)
    return {"handler": "headers", "request": ops.json()}


HEADERS = ModuleSpec(
    id="http.handlers.headers",
    config=HeadersConfig,
    directives={
        "header": Directive(_parse_header, handler=False),
        "request_header": Directive(_parse_request_header),
    },
)
