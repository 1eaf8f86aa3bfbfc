"""The `query` matcher: `query key=value ...` (JSON: `{"key": ["v1", "v2"]}`).

Every configured key must be present; for a key, any configured value may match (`*`
matches any value). An empty matcher (`query ""`) matches only an empty query string.
"""

from __future__ import annotations

from typing import Any

from rws.http.matchers.path import refuse_block
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


QUERY = ModuleSpec(id="http.matchers.query", config=dict[str, tuple[str, ...] | None], rwsfile=_parse_query)
