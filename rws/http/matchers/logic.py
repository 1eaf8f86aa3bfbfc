"""The `not` and `expression` matchers.

`not <type> <args...>` or `not { <type> <args...> ... }` negates one matcher set; several
`not` lines in one named matcher give several sets, and the request matches when none of
them does (JSON: a list of matcher sets).

`expression <CEL>` holds a CEL expression (JSON: the expression string, or
`{"expr": ..., "name": ...}`). rws does not evaluate CEL: an Rwsfile that writes one
(`@m expression ...`, `@m "..."`) is refused at its line, and a JSON tree that uses one
fails validation, except for the status tests that `handle_errors <codes>` generates,
which rws evaluates itself (`is_status_expression`) against the status code of the error
being handled (`{http.error.status_code}`); outside error routes they do not match.
"""

from __future__ import annotations

import re

from dataclasses import dataclass
from typing import Annotated, Any

from rws.config.decode import ModuleMap
from rws.errors import ConfigError
from rws.http.message import Request
from rws.registry import ModuleSpec
from rws.rwsfile.directives import MatcherContext, parse_matcher_lines
from rws.rwsfile.dispenser import Dispenser
from rws.rwsfile.parse import Entry, Token

# --- not -----------------------------------------------------------------------------------


def _line(tokens: tuple[Token, ...], block: tuple[Entry, ...] | None, entry: Entry) -> Dispenser:
    return Dispenser(Entry(tokens, block, tokens[0].file, tokens[0].line, entry.imports))


def _expression_line(tok: Token, entry: Entry) -> Dispenser:
    """A quoted token standing alone is shorthand for `expression <token>`."""
    keyword = Token("expression", tok.file, tok.line, "", tok.imports)
    return _line((keyword, tok), None, entry)


def _nested_lines(tokens: tuple[Token, ...], block: tuple[Entry, ...] | None, entry: Entry) -> list[Dispenser]:
    """Split one run of tokens (and its block) into matcher lines, as Caddy's nested parse does."""
    lines = []
    pos = 0
    while pos < len(tokens):
        if tokens[pos].quoted:
            lines.append(_expression_line(tokens[pos], entry))
            pos += 1
            continue
        lines.append(_line(tokens[pos:], block, entry))
        return lines
    return lines


def _parse_not(lines: list[Dispenser], ctx: MatcherContext) -> Any:
    sets = []
    for d in lines:
        entry = d.entry
        if len(d.tokens) > 1:
            nested = _nested_lines(d.tokens[1:], entry.block, entry)
        else:
            nested = []
            for sub in entry.block or ():
                if not sub.tokens:
                    raise d.error("unexpected '{' in not block")
                nested.extend(_nested_lines(sub.tokens, sub.block, sub))
        if not nested:
            raise d.error("malformed not matcher: expected a matcher to negate")
        # Caddy parses nested sets without the named matcher's name: regexps and
        # expressions inside `not` get no default name.
        sets.append(parse_matcher_lines(nested, ""))
    return sets


NOT = ModuleSpec(
    id="http.matchers.not",
    config=tuple[Annotated[Any, ModuleMap("http.matchers")], ...],
    rwsfile=_parse_not,
    runtime="rws.http.matchers.logic:build_not",
)


class NotMatcher:
    """`not`: none of the matcher sets matches."""

    __slots__ = ("sets", "needs_body")

    def __init__(self, sets: tuple[Any, ...]) -> None:
        self.sets = sets  # rws.http.routes.MatcherSet values
        self.needs_body = any(getattr(m, "needs_body", False) for s in sets for m in s.matchers)

    def match(self, request: Request) -> bool:
        for matcher_set in self.sets:
            if matcher_set.match(request):
                return False
        return True


def build_not(config: tuple[Any, ...], ctx: Any) -> NotMatcher:
    return NotMatcher(ctx.build_matcher_sets(config))


# --- expression ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpressionConfig:
    """The object form of an expression: the CEL source and the name used for regexp captures."""

    expr: str
    name: str = ""


EXPRESSION_UNSUPPORTED = "the expression (CEL) matcher is not supported"

_STATUS = r"\{http\.error\.status_code\}"
_STATUS_TEST = rf"(?:{_STATUS} >= [1-9]00 && {_STATUS} <= [1-9]99|{_STATUS} in \[\d{{3}}(?:, \d{{3}})*\])"
_STATUS_EXPRESSION = re.compile(rf"{_STATUS_TEST}(?: \|\| {_STATUS_TEST})*")


def is_status_expression(expr: str) -> bool:
    """Whether `expr` has the shape `handle_errors <codes>` generates, which rws supports."""
    return _STATUS_EXPRESSION.fullmatch(expr) is not None


def check_expression(config: Any, path: str) -> None:
    """The check `rws validate` makes: only the generated status tests are accepted."""
    expr = config.expr if isinstance(config, ExpressionConfig) else config
    if not is_status_expression(expr):
        raise ConfigError(path, f"{EXPRESSION_UNSUPPORTED} (only the status tests of handle_errors are): {expr!r}")


def _raw(tok: Token) -> str:
    """A token as written, quotes included (heredocs are given as their text)."""
    if tok.quote in ('"', "`"):
        return tok.quote + tok.text + tok.quote
    return tok.text


def _parse_expression(lines: list[Dispenser], ctx: MatcherContext) -> Any:
    d = lines[0]
    raise d.error(
        f"{EXPRESSION_UNSUPPORTED}: rws does not evaluate CEL; use the other matcher types, "
        "or status codes on handle_errors (handle_errors 404 5xx)",
        d.tokens[0],
    )


EXPRESSION = ModuleSpec(id="http.matchers.expression", config=str | ExpressionConfig, rwsfile=_parse_expression,
                        runtime="rws.http.matchers.logic:build_expression")

_RANGE_TEST = re.compile(rf"{_STATUS} >= ([1-9])00 && {_STATUS} <= ([1-9])99")
_LIST_TEST = re.compile(rf"{_STATUS} in \[([\d, ]+)\]")


def _status_tests(expr: str) -> tuple[tuple[int, int], ...]:
    """The inclusive status ranges an expression of `handle_errors`' shape accepts."""
    ranges: list[tuple[int, int]] = []
    for test in expr.split(" || "):
        found = _RANGE_TEST.fullmatch(test)
        if found:
            ranges.append((int(found.group(1)) * 100, int(found.group(2)) * 100 + 99))
            continue
        codes = _LIST_TEST.fullmatch(test)
        assert codes is not None, test  # is_status_expression accepted the whole expression
        ranges.extend((int(code), int(code)) for code in codes.group(1).split(", "))
    return tuple(ranges)


class StatusExpressionMatcher:
    """The status tests `handle_errors <codes>` writes as an expression."""

    __slots__ = ("ranges",)

    def __init__(self, expr: str) -> None:
        self.ranges = _status_tests(expr)

    def match(self, request: Request) -> bool:
        status = request.values.get("http.error.status_code")
        if isinstance(status, str) and status.isdecimal():
            status = int(status)
        if not isinstance(status, int) or isinstance(status, bool):
            return False
        return any(lo <= status <= hi for lo, hi in self.ranges)


def build_expression(config: str | ExpressionConfig, ctx: Any) -> StatusExpressionMatcher:
    """Only the status tests of `handle_errors` can run; any other CEL expression is refused."""
    check_expression(config, "expression")
    expr = config.expr if isinstance(config, ExpressionConfig) else config
    return StatusExpressionMatcher(expr)
