"""The `header` and `header_regexp` matchers.

- `header <field> <value>` / `header !<field>`: JSON `{"Field": ["v1", "v2"], "Gone": null}`.
  Values of one field are OR'ed, fields are AND'ed; `null` means the field must be absent.
  Field names are canonicalised the way Go's `http.Header.Add` does, except in the
  `!Field` form, which Caddy stores as written.
- `header_regexp [<name>] <field> <regexp>`: JSON `{"Field": {"name": ..., "pattern": ...}}`,
  one regexp per field per matcher.
"""

from __future__ import annotations

from typing import Any

from rws.http.matchers.path import RegexpConfig, refuse_block, regexp_json
from rws.registry import ModuleSpec
from rws.rwsfile.directives import MatcherContext
from rws.rwsfile.dispenser import Dispenser

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def canonical_header_key(name: str) -> str:
    """Go's textproto.CanonicalMIMEHeaderKey: `content-type` -> `Content-Type`.

    A name holding any byte that is not a token character is returned unchanged.
    """
    if any(c not in _TOKEN_CHARS for c in name):
        return name
    out = []
    upper = True
    for c in name:
        if upper and "a" <= c <= "z":
            c = c.upper()
        elif not upper and "A" <= c <= "Z":
            c = c.lower()
        out.append(c)
        upper = c == "-"
    return "".join(out)


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


HEADER = ModuleSpec(id="http.matchers.header", config=dict[str, tuple[str, ...] | None], rwsfile=_parse_header)


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


HEADER_REGEXP = ModuleSpec(id="http.matchers.header_regexp", config=dict[str, RegexpConfig], rwsfile=_parse_header_regexp)
