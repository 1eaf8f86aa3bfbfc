"""The `headers` handler: set, add, delete and rewrite request and response header fields.

Directives: `header` (response fields) and `request_header` (request fields). Also the
Rwsfile form of a response matcher (`match { status ...; header ... }`), which `encode`
uses too.

At run time (`HeadersHandler`, `HeaderOps`, `ResponseMatcher`) operations run in Caddy's
order: delete `*`, add, set (values joined with ","), delete (wildcards), replace
(substring, or a Go regexp with `$1` templates). Field names are written in Go's
canonical spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from rws.errors import ConfigError
from rws.handlers.static_response import go_atoi
from rws.http.message import Headers, Next, Request, Response, canonical_header_key, split_host
from rws.http.placeholders import Template, compile_template
from rws.http.regexp import compile_regexp, go_template, regexp_problem, replace_all
from rws.registry import ModuleSpec
from rws.rwsfile.directives import ConfigValue, Directive, Helper
from rws.rwsfile.dispenser import Dispenser

if TYPE_CHECKING:
    from rws.http.routes import BuildContext

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


# --- runtime -------------------------------------------------------------------------------


class ResponseMatcher:
    """A response matcher: status codes (`2` means any 2xx) and header fields, where a
    null field must be absent, an empty list only present, and values may use `*` at
    either end as a wildcard."""

    __slots__ = ("status_codes", "headers")

    def __init__(self, config: ResponseMatcherConfig) -> None:
        self.status_codes = config.status_code
        self.headers = tuple((field, values) for field, values in (config.headers or {}).items())

    def match(self, status: int, headers: Headers) -> bool:
        if self.status_codes and not any(_status_matches(status, code) for code in self.status_codes):
            return False
        for field, allowed in self.headers:
            actual = headers.get_all(field)
            if allowed is None:
                if actual:
                    return False
            elif allowed or not actual:
                if not any(_value_matches(value, want) for value in actual for want in allowed):
                    return False
        return True


def _status_matches(status: int, code: int) -> bool:
    return status == code or (code < 100 and code * 100 <= status < (code + 1) * 100)


def _value_matches(value: str, want: str) -> bool:
    if want == "*":
        return True
    if len(want) > 1 and want.startswith("*") and want.endswith("*"):
        return want[1:-1] in value
    if want.startswith("*"):
        return value.endswith(want[1:])
    if want.endswith("*"):
        return value.startswith(want[:-1])
    return value == want


class _Replacement:
    __slots__ = ("search", "pattern", "pattern_template", "replace")

    def __init__(self, config: ReplacementConfig) -> None:
        self.search = compile_template(config.search)
        self.replace = compile_template(config.replace)
        self.pattern: re.Pattern[str] | None = None
        self.pattern_template: Template | None = None
        if config.search_regexp and _has_placeholder(config.search_regexp):
            self.pattern_template = compile_template(config.search_regexp)  # compiled per request
        elif config.search_regexp:
            self.pattern = compile_regexp(config.search_regexp)

    def replacer(self, request: Request) -> Callable[[str], str] | None:
        """The function this replacement applies to one value; None to skip it (a
        per-request regexp that does not compile)."""
        replace = self.replace.render(request, keep_unknown=True)
        pattern = self.pattern
        if self.pattern_template is not None:
            try:
                pattern = compile_regexp(self.pattern_template.render(request, keep_unknown=True))
            except (re.error, OverflowError, RecursionError):
                return None
        if pattern is not None:
            parts = go_template(replace)
            compiled = pattern
            return lambda value: replace_all(compiled, value, parts)
        search = self.search.render(request, keep_unknown=True)
        return lambda value: value.replace(search, replace)


def _named(name: str) -> str | Template:
    """A field name: canonical text when it has no placeholders, else a template."""
    template = compile_template(name)
    return canonical_header_key(template.text_value) if template.static else template


class HeaderOps:
    """Compiled header operations, applied in Caddy's order: delete `*`, add, set,
    delete (with `*` wildcards at either end), replace. Names and values expand known
    placeholders and keep unknown ones as written."""

    __slots__ = ("add", "set", "delete", "replace")

    def __init__(self, config: HeaderOpsConfig) -> None:
        self.add = tuple((_named(k), tuple(compile_template(v) for v in vs)) for k, vs in (config.add or {}).items())
        self.set = tuple((_named(k), tuple(compile_template(v) for v in vs)) for k, vs in (config.set or {}).items())
        self.delete = tuple(compile_template(name) for name in config.delete)
        self.replace = tuple((compile_template(k), tuple(_Replacement(r) for r in rs))
                             for k, rs in (config.replace or {}).items())

    def apply(self, headers: Headers, request: Request) -> None:
        deletes = [t.render(request, keep_unknown=True).lower() for t in self.delete]
        if "*" in deletes:
            headers.clear()
        for key, values in self.add:
            name = _name(key, request)
            for value in values:
                headers.add(name, value.render(request, keep_unknown=True))
        for key, values in self.set:
            headers.set(_name(key, request), ",".join(v.render(request, keep_unknown=True) for v in values))
        for pattern in deletes:
            _delete(headers, pattern)
        for field_template, replacements in self.replace:
            field = canonical_header_key(field_template.render(request, keep_unknown=True)).lower()
            for replacement in replacements:
                change = replacement.replacer(request)
                if change is not None:
                    _replace_values(headers, field, change)


def _name(key: str | Template, request: Request) -> str:
    return key if isinstance(key, str) else canonical_header_key(key.render(request, keep_unknown=True))


def _delete(headers: Headers, pattern: str) -> None:
    """Delete one field, or (`*` at either end) every field whose lowercased name has the
    rest as a suffix, prefix or substring."""
    if pattern == "*":
        return  # done first
    if not pattern.startswith("*") and not pattern.endswith("*"):
        headers.delete(pattern)
        return
    if len(pattern) > 1 and pattern.startswith("*") and pattern.endswith("*"):
        test: Callable[[str], bool] = lambda name: pattern[1:-1] in name
    elif pattern.startswith("*"):
        test = lambda name: name.endswith(pattern[1:])
    else:
        test = lambda name: name.startswith(pattern[:-1])
    for name in headers.names():
        if test(name.lower()):
            headers.delete(name)


def _replace_values(headers: Headers, field: str, change: Callable[[str], str]) -> None:
    """Rewrite in place the values of one field (lowercased), or of all fields for `*`."""
    items = headers.items()
    if field != "*" and not any(k.lower() == field for k, _ in items):
        return
    headers.clear()
    for name, value in items:
        headers.add(name, change(value) if field == "*" or name.lower() == field else value)


class HeadersHandler:
    """The runtime of `headers`. Request operations apply to a copy of the request (a
    `Host` field there changes the request's host). Response operations apply to the
    response header map before the next handler runs, or, when deferred or conditional
    on `require`, to the response the next handler returns."""

    __slots__ = ("request_ops", "response_ops", "deferred", "require")

    def __init__(self, config: HeadersConfig) -> None:
        self.request_ops = HeaderOps(config.request) if config.request is not None else None
        response = config.response
        self.response_ops = HeaderOps(response) if response is not None else None
        self.require = ResponseMatcher(response.require) if response is not None and response.require else None
        self.deferred = response is not None and (response.deferred or response.require is not None)

    async def handle(self, request: Request, next: Next) -> Response:
        if self.request_ops is not None:
            request = self._apply_to_request(self.request_ops, request)
        ops = self.response_ops
        if ops is None:
            return await next(request)
        if not self.deferred:
            ops.apply(request.response_headers, request)
            return await next(request)
        response = await next(request)
        if self.require is None or self.require.match(response.status, response.headers):
            ops.apply(response.headers, request)
        return response

    @staticmethod
    def _apply_to_request(ops: HeaderOps, request: Request) -> Request:
        headers = request.headers.copy()
        ops.apply(headers, request)
        hosts = headers.get_all("Host")
        hostport = hosts[-1] if hosts else ""
        if len(hosts) > 1:
            headers.set("Host", hostport)  # the last Host wins, as the request's host
        host, port = split_host(hostport)
        return request.with_changes(headers=headers, host=host, port=port, authority=hostport)


def build_headers(config: HeadersConfig, ctx: BuildContext) -> HeadersHandler:
    return HeadersHandler(config)


HEADERS = ModuleSpec(
    id="http.handlers.headers",
    config=HeadersConfig,
    directives={
        "header": Directive(_parse_header, handler=False),
        "request_header": Directive(_parse_request_header),
    },
    runtime="rws.handlers.headers:build_headers",
)
