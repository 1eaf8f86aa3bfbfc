"""The `header` and `header_regexp` matchers.

- `header <field> <value>` / `header !<field>`: JSON `{"Field": ["v1", "v2"], "Gone": null}`.
  Values of one field are OR'ed, fields are AND'ed; `null` means the field must be absent.
  Field names are canonicalised the way Go's `http.Header.Add` does, except in the
  `!Field` form, which Caddy stores as written.
- `header_regexp [<name>] <field> <regexp>`: JSON `{"Field": {"name": ..., "pattern": ...}}`,
  one regexp per field per matcher.

At run time a field's values are the values of its header lines; `Host` is the request's
Host (with port), and `Transfer-Encoding` falls back to `chunked` for a chunked request.
A value pattern `*` means any value, `a*` a prefix, `*a` a suffix, `*a*` a substring,
anything else an exact, case-sensitive value; placeholders in it are expanded per request.
"""

from __future__ import annotations

from typing import Any, Callable

from rws.http.matchers.path import Regexp, RegexpConfig, refuse_block, regexp_json
from rws.http.message import Request, canonical_header_key
from rws.http.placeholders import Template, compile_template
from rws.registry import ModuleSpec
from rws.rwsfile.directives import MatcherContext
from rws.rwsfile.dispenser import Dispenser

# --- header --------------------------------------------------------------------------------


def _parse_header(lines: list[Dispenser], ctx: MatcherContext) -> Any:
    fields: dict[str, list[str] | None] = {}
    for d in lines:
        if not d.next_arg():
            raise d.error("malformed header matcher: expected field")
        field = d.val()
        if field.startswith("!"):
            if len(field) == 1:
                raise d.error("malformed header matcher: must have field name following ! character")
            fields[field[1:]] = None
            if d.next_arg():
                raise d.error("malformed header matcher: null matching headers cannot have a field value")
        else:
            if not d.next_arg():
                raise d.error("malformed header matcher: expected both field and value")
            key = canonical_header_key(field)
            values = fields.get(key)
            fields[key] = [*(values or []), d.val()]
            if d.next_arg():
                raise d.error(f"malformed header matcher: expected one field and one value, got extra argument {d.val()!r}")
        refuse_block(d, "header")
    return fields


HEADER = ModuleSpec(id="http.matchers.header", config=dict[str, tuple[str, ...] | None], rwsfile=_parse_header,
                    runtime="rws.http.matchers.header:build_header")


def field_values(request: Request, name: str) -> list[str] | None:
    """The values a header matcher sees for a field; None when the field is absent."""
    key = canonical_header_key(name)
    if key == "Host":
        return [request.hostport] if request.hostport else None
    values = request.headers.get_all(name)
    if values or name in request.headers:
        return values
    if key == "Transfer-Encoding" and request.chunked:
        return ["chunked"]
    return None


def value_test(pattern: str) -> Callable[[str], bool]:
    """Caddy's header value comparison: `*`, prefix `a*`, suffix `*a`, substring `*a*`, exact."""
    if pattern == "*":
        return lambda value: True
    if pattern.startswith("*") and pattern.endswith("*"):
        middle = pattern[1:-1]
        return lambda value: middle in value
    if pattern.startswith("*"):
        suffix = pattern[1:]
        return lambda value: value.endswith(suffix)
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        return lambda value: value.startswith(prefix)
    return lambda value: value == pattern


class _FieldRule:
    """What one field must look like: absent (None), present (no patterns), or matching."""

    __slots__ = ("name", "absent", "tests", "static_tests")

    def __init__(self, name: str, patterns: tuple[str, ...] | None) -> None:
        self.name = name
        self.absent = patterns is None
        compiled = [compile_template(p) for p in patterns or ()]
        self.tests: tuple[Callable[[str], bool] | Template, ...] = tuple(
            value_test(t.text_value) if t.static else t for t in compiled)
        static = all(t.static for t in compiled)
        self.static_tests = tuple(value_test(t.text_value) for t in compiled) if static else None

    def match(self, request: Request) -> bool:
        values = field_values(request, self.name)
        if self.absent:
            return values is None
        if not self.tests:
            return values is not None
        tests = self.static_tests
        if tests is None:
            tests = tuple(value_test(t.render(request)) if isinstance(t, Template) else t for t in self.tests)
        for value in values or ():
            for test in tests:
                if test(value):
                    return True
        return False


class HeaderMatcher:
    """`header`: every configured field matches (values of one field are alternatives)."""

    __slots__ = ("rules", "needs_body")

    def __init__(self, fields: dict[str, tuple[str, ...] | None]) -> None:
        self.rules = tuple(_FieldRule(name, patterns) for name, patterns in fields.items())
        self.needs_body = any(isinstance(t, Template) and t.needs_body for r in self.rules for t in r.tests)

    def match(self, request: Request) -> bool:
        for rule in self.rules:
            if not rule.match(request):
                return False
        return True


def build_header(config: dict[str, tuple[str, ...] | None], ctx: Any) -> HeaderMatcher:
    return HeaderMatcher(config)


# --- header_regexp -------------------------------------------------------------------------


def _parse_header_regexp(lines: list[Dispenser], ctx: MatcherContext) -> Any:
    fields: dict[str, dict[str, str]] = {}
    for d in lines:
        args = d.remaining_args()
        if len(args) == 2:
            name, (field, pattern) = "", args
        elif len(args) == 3:
            name, field, pattern = args
        else:
            raise d.arg_error()
        if field in fields:
            raise d.error(f"header_regexp matcher can only be used once per named matcher, per header field: {field}")
        fields[field] = regexp_json(d, name or ctx.name, pattern)
        refuse_block(d, "header_regexp")
    return fields


HEADER_REGEXP = ModuleSpec(id="http.matchers.header_regexp", config=dict[str, RegexpConfig],
                           rwsfile=_parse_header_regexp, runtime="rws.http.matchers.header:build_header_regexp")


class HeaderRegexpMatcher:
    """`header_regexp`: for every field, one of its values matches the field's regexp."""

    __slots__ = ("rules",)

    def __init__(self, fields: dict[str, RegexpConfig]) -> None:
        self.rules = tuple((name, Regexp(config)) for name, config in fields.items())

    def match(self, request: Request) -> bool:
        for name, regexp in self.rules:
            if not any(regexp.match(value, request) for value in field_values(request, name) or ()):
                return False
        return True


def build_header_regexp(config: dict[str, RegexpConfig], ctx: Any) -> HeaderRegexpMatcher:
    return HeaderRegexpMatcher(config)
