"""The `vars` and `vars_regexp` matchers (OR across keys).

- `vars <key> <values...>`: JSON `{"key": ["v1", "v2"]}`. A key is a variable name or a
  placeholder such as `{http.request.uri}`; values are compared as strings.
- `vars_regexp [<name>] <key> <regexp>`: JSON `{"key": {"name": ..., "pattern": ...}}`.
"""

from __future__ import annotations

from typing import Any

from rws.http.matchers.path import RegexpConfig, refuse_block, regexp_json
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


VARS = ModuleSpec(id="http.matchers.vars", config=dict[str, tuple[str, ...] | None], rwsfile=_parse_vars)


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


VARS_REGEXP = ModuleSpec(id="http.matchers.vars_regexp", config=dict[str, RegexpConfig], rwsfile=_parse_vars_regexp)
