"""The `path` and `path_regexp` matchers, and the regexp config all regexp matchers share.

`path /a /b*` matches the cleaned, decoded request path against glob-like patterns
(JSON: a list of strings). `path_regexp [<name>] <regexp>` matches it against a regular
expression whose captures become `{http.regexp.<name>.<N>}` placeholders (JSON:
`{"name": ..., "pattern": ...}`); a regexp without an explicit name takes the named
matcher's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rws.errors import ConfigError
from rws.http.regexp import regexp_problem as go_regexp_problem
from rws.registry import ModuleSpec
from rws.rwsfile.directives import MatcherContext
from rws.rwsfile.dispenser import Dispenser

_WORD = re.compile(r"\w")


def regexp_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be used as a matcher regexp, or None if it can."""
    return go_regexp_problem(pattern, "compiling matcher regexp")


@dataclass(frozen=True, slots=True, kw_only=True)
class RegexpConfig:
    """A named regular expression (Caddy's MatchRegexp)."""

    name: str = ""
    pattern: str = ""

    def validate(self, path: str) -> None:
        if self.name and not _WORD.search(self.name):
            raise ConfigError(f"{path}.name", f"invalid regexp name (must contain only word characters): {self.name!r}")
        problem = regexp_problem(self.pattern)
        if problem:
            raise ConfigError(f"{path}.pattern", problem)


def regexp_json(d: Dispenser, name: str, pattern: str) -> dict[str, str]:
    """The JSON of one regexp, checked so that a bad pattern is an error at its line."""
    problem = regexp_problem(pattern)
    if problem:
        raise d.error(problem)
    return {"name": name, "pattern": pattern} if name else {"pattern": pattern}


def refuse_block(d: Dispenser, kind: str, suffix: str = "") -> None:
    """Matchers other than `file` and `not` take no block."""
    if d.has_block:
        raise d.error(f"malformed {kind} matcher: blocks are not supported{suffix}")


# --- path ----------------------------------------------------------------------------------


def _parse_path(lines: list[Dispenser], ctx: MatcherContext) -> Any:
    patterns: list[str] = []
    for d in lines:
        patterns.extend(d.remaining_args())
        refuse_block(d, "path")
    # Caddy marshals an empty list as null
    return patterns or None


PATH = ModuleSpec(id="http.matchers.path", config=tuple[str, ...] | None, rwsfile=_parse_path)


# --- path_regexp ---------------------------------------------------------------------------


def _parse_path_regexp(lines: list[Dispenser], ctx: MatcherContext) -> Any:
    if len(lines) > 1:
        raise lines[1].error("regular expression can only be used once per named matcher")
    d = lines[0]
    args = d.remaining_args()
    if len(args) == 1:
        name, pattern = "", args[0]
    elif len(args) == 2:
        name, pattern = args
    else:
        raise d.arg_error()
    refuse_block(d, "path_regexp")
    return regexp_json(d, name or ctx.name, pattern)


PATH_REGEXP = ModuleSpec(id="http.matchers.path_regexp", config=RegexpConfig, rwsfile=_parse_path_regexp)
