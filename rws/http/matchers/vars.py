"""The `vars` and `vars_regexp` matchers (OR across keys).

- `vars <key> <values...>`: JSON `{"key": ["v1", "v2"]}`. A key is a variable name or a
  placeholder such as `{http.request.uri}`; values are compared as strings.
- `vars_regexp [<name>] <key> <regexp>`: JSON `{"key": {"name": ..., "pattern": ...}}`.

At run time a key written as one placeholder (`{http.request.uri}`) is looked up as a
placeholder, any other key as a variable; the value is compared as text (a missing one
is ""). Placeholders in `vars` values are expanded per request.
"""

from __future__ import annotations

from typing import Any, Callable

from rws.http.matchers.path import Regexp, RegexpConfig, refuse_block, regexp_json
from rws.http.message import Request
from rws.http.placeholders import compile_template, lookup, to_string
from rws.registry import ModuleSpec
from rws.rwsfile.directives import MatcherContext
from rws.rwsfile.dispenser import Dispenser


def _parse_vars(lines: list[Dispenser], ctx: MatcherContext) -> Any:
    out: dict[str, list[str]] = {}
    for d in lines:
        if not d.next_arg():
            raise d.error("malformed vars matcher: expected field name")
        key = d.val()
        values = d.remaining_args()
        if not values:
            raise d.error("malformed vars matcher: expected at least one value to match against")
        out.setdefault(key, []).extend(values)
        refuse_block(d, "vars")
    return out


VARS = ModuleSpec(id="http.matchers.vars", config=dict[str, tuple[str, ...] | None], rwsfile=_parse_vars,
                  runtime="rws.http.matchers.vars:build_vars")


def key_reader(key: str) -> Callable[[Request], str]:
    """How a vars matcher reads its key: a placeholder `{a.b}` or a variable name."""
    if key.startswith("{") and key.endswith("}") and key.count("{") == 1:
        name = key[1:-1]
        return lambda request: to_string(lookup(request, name)[0])
    return lambda request: to_string(request.vars.get(key))


def _is_body_key(key: str) -> bool:
    return key in ("{http.request.body}", "{http.request.body_base64}")


class VarsMatcher:
    """`vars`: some key's value equals one of its values (an empty matcher matches all)."""

    __slots__ = ("rules", "needs_body")

    def __init__(self, config: dict[str, tuple[str, ...] | None]) -> None:
        self.rules = tuple((key_reader(key), tuple(compile_template(v) for v in values or ()))
                           for key, values in config.items())
        self.needs_body = any(_is_body_key(k) for k in config) or any(
            t.needs_body for _, values in self.rules for t in values)

    def match(self, request: Request) -> bool:
        if not self.rules:
            return True
        for read, values in self.rules:
            text = read(request)
            for value in values:
                if text == value.render(request):
                    return True
        return False


def build_vars(config: dict[str, tuple[str, ...] | None], ctx: Any) -> VarsMatcher:
    return VarsMatcher(config)


def _parse_vars_regexp(lines: list[Dispenser], ctx: MatcherContext) -> Any:
    out: dict[str, dict[str, str]] = {}
    for d in lines:
        args = d.remaining_args()
        if len(args) == 2:
            name, (key, pattern) = "", args
        elif len(args) == 3:
            name, key, pattern = args
        else:
            raise d.arg_error()
        # a later line for the same key replaces the earlier one, as in Caddy
        out[key] = regexp_json(d, name or ctx.name, pattern)
        refuse_block(d, "vars_regexp")
    return out


VARS_REGEXP = ModuleSpec(id="http.matchers.vars_regexp", config=dict[str, RegexpConfig], rwsfile=_parse_vars_regexp,
                         runtime="rws.http.matchers.vars:build_vars_regexp")


class VarsRegexpMatcher:
    """`vars_regexp`: some key's value matches its regexp (captures as for `path_regexp`)."""

    __slots__ = ("rules", "needs_body")

    def __init__(self, config: dict[str, RegexpConfig]) -> None:
        self.rules = tuple((key_reader(key), Regexp(regexp)) for key, regexp in config.items())
        self.needs_body = any(_is_body_key(k) for k in config)

    def match(self, request: Request) -> bool:
        for read, regexp in self.rules:
            if regexp.match(read(request), request):
                return True
        return False


def build_vars_regexp(config: dict[str, RegexpConfig], ctx: Any) -> VarsRegexpMatcher:
    return VarsRegexpMatcher(config)
