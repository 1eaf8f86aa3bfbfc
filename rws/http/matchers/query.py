"""The `query` matcher: `query key=value ...` (JSON: `{"key": ["v1", "v2"]}`).

Every configured key must be present; for a key, any configured value may match (`*`
matches any value). An empty matcher (`query ""`) matches only an empty query string.

At run time the query is parsed as Go's url.ParseQuery parses it; a query that does not
parse completely (a bad `%` escape, a `;`) never matches a non-empty matcher. Keys and
values may hold placeholders, expanded per request.
"""

from __future__ import annotations

from typing import Any

from rws.http.matchers.path import refuse_block
from rws.http.message import Request
from rws.http.placeholders import compile_template
from rws.http.uri import query_values
from rws.registry import ModuleSpec
from rws.rwsfile.directives import MatcherContext
from rws.rwsfile.dispenser import Dispenser


def _parse_query(lines: list[Dispenser], ctx: MatcherContext) -> Any:
    params: dict[str, list[str]] = {}
    for d in lines:
        while d.next_arg():
            pair = d.val()
            if pair == "":
                continue
            key, sep, value = pair.partition("=")
            if not sep:
                raise d.error(f"malformed query matcher token: {pair}; must be in param=val format")
            params.setdefault(key, []).append(value)
        refuse_block(d, "query")
    return params


QUERY = ModuleSpec(id="http.matchers.query", config=dict[str, tuple[str, ...] | None], rwsfile=_parse_query,
                   runtime="rws.http.matchers.query:build_query")


class QueryMatcher:
    """`query`: every key is present with one of its values (`*`: any value)."""

    __slots__ = ("params", "needs_body")

    def __init__(self, params: dict[str, tuple[str, ...] | None]) -> None:
        self.params = tuple((compile_template(key), tuple(compile_template(v) for v in values or ()))
                            for key, values in params.items())
        self.needs_body = any(t.needs_body for key, values in self.params for t in (key, *values))

    def match(self, request: Request) -> bool:
        parsed, ok = query_values(request.query)
        if not self.params:
            return not parsed
        if not ok:
            return False
        for key, wanted in self.params:
            present = parsed.get(key.render(request))
            if present is None:
                return False
            for value in wanted:
                text = value.render(request)
                if text == "*" or text in present:
                    break
            else:
                return False
        return True


def build_query(config: dict[str, tuple[str, ...] | None], ctx: Any) -> QueryMatcher:
    return QueryMatcher(config)
