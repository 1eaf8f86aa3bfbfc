"""The `path` and `path_regexp` matchers, and the regexp config all regexp matchers share.

`path /a /b*` matches the cleaned, decoded request path against glob-like patterns
(JSON: a list of strings). `path_regexp [<name>] <regexp>` matches it against a regular
expression whose captures become `{http.regexp.<name>.<N>}` placeholders (JSON:
`{"name": ..., "pattern": ...}`); a regexp without an explicit name takes the named
matcher's name.

At run time (Caddy's rules): path patterns compare case-insensitively with the decoded
path after cleaning (`..` resolved; repeated slashes merged unless the pattern has `//`).
`/a*` is a prefix, `*.x` a suffix, `*s*` a substring, other `*`, `?` and `[...]` a Go glob
(`*` stops at `/`). A pattern holding `%` is compared with the escaped path instead,
byte for byte where the pattern has an escape (`%2F` is not `/`), and `%*` spans escaped
text without decoding it. Placeholders in patterns are expanded per request.
`path_regexp` runs on the cleaned decoded path, case-sensitively.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable

from rws.errors import ConfigError
from rws.http.matchers.pattern import glob_match, glob_regex
from rws.http.message import Request
from rws.http.placeholders import Template, compile_template
from rws.http.regexp import compile_regexp
from rws.http.regexp import regexp_problem as go_regexp_problem
from rws.http.uri import clean_path, path_unescape_bytes
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


PATH = ModuleSpec(id="http.matchers.path", config=tuple[str, ...] | None, rwsfile=_parse_path,
                  runtime="rws.http.matchers.path:build_path")


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


PATH_REGEXP = ModuleSpec(id="http.matchers.path_regexp", config=RegexpConfig, rwsfile=_parse_path_regexp,
                         runtime="rws.http.matchers.path:build_path_regexp")


# --- regexp runtime (shared by every regexp matcher) ---------------------------------------


class Regexp:
    """A compiled matcher regexp; a match stores its captures in `request.values` as
    `http.regexp.<name>.<N>` and `http.regexp.<N>` (and the same for named groups)."""

    __slots__ = ("compiled", "keys")

    def __init__(self, config: RegexpConfig) -> None:
        self.compiled = compile_regexp(config.pattern)
        prefixes = ["http.regexp." + config.name + ".", "http.regexp."] if config.name else ["http.regexp."]
        groups = [str(i) for i in range(self.compiled.groups + 1)]
        named = sorted(self.compiled.groupindex.items(), key=lambda item: item[1])
        # (group index, value keys): numbered groups first, then names, as Caddy sets them
        keys = [(i, tuple(p + g for p in prefixes)) for i, g in enumerate(groups)]
        keys += [(index, tuple(p + name for p in prefixes)) for name, index in named]
        self.keys = tuple(keys)

    def match(self, text: str, request: Request) -> bool:
        found = self.compiled.search(text)
        if found is None:
            return False
        values = request.values
        for index, names in self.keys:
            value = found.group(index) or ""
            for name in names:
                values[name] = value
        return True


# --- path runtime --------------------------------------------------------------------------


def _escaped_subject(escaped_path: str, pattern: str) -> str | None:
    """The text Caddy compares a `%` pattern with: the path decoded, except where the pattern
    asks for escaped bytes (`%2f` stays `%2f`; `%*` spans stay escaped). None: no match."""
    path = escaped_path.lower().encode("utf-8", "surrogateescape")
    pat = pattern.encode("utf-8", "surrogateescape")
    out = bytearray()
    ip = iq = 0
    while iq < len(pat) and ip < len(path):
        path_ch, escaped_ch = path[ip:ip + 1], b""
        if path_ch == b"%" and len(path) >= ip + 3:
            escaped_ch = path[ip:ip + 3]
            decoded = path_unescape_bytes(escaped_ch)
            if decoded is None:
                return None
            path_ch = decoded
            ip += 2
        c = pat[iq]
        normalize = True
        if c == 0x25 and len(pat) >= iq + 3 and pat[iq + 1] != 0x2A:  # "%xx": keep the escape
            out += escaped_ch
            ip += 1
            iq += 3
            continue
        if c == 0x25:  # "%*"
            iq += 1
            normalize = False
        if c in (0x25, 0x2A):  # a wildcard: take path bytes up to the pattern's next byte
            remaining = path[ip:]
            until = len(remaining)
            if iq < len(pat) - 1:
                until = remaining.find(pat[iq + 1:iq + 2])
                if until < 0:
                    return None
            span: bytes | None = remaining[:until]
            if normalize and span:
                span = path_unescape_bytes(span)
                if span is None:
                    return None
            out += span or b""
            ip += until
        else:
            out += path_ch
            ip += 1
        iq += 1
    if ip < len(path):
        rest = path[ip:]
        out += path_unescape_bytes(rest) or rest
    return out.decode("utf-8", "surrogateescape").lower()


class _PathPattern:
    """One path pattern, classified once."""

    __slots__ = ("text", "merge_slashes", "escaped", "test")

    def __init__(self, text: str) -> None:
        self.text = text
        self.merge_slashes = "//" not in text
        self.escaped = "%" in text
        self.test = _path_test(text)


def _path_test(pattern: str) -> Callable[[str], bool]:
    """The comparison for a pattern without `%`: substring, suffix, prefix or glob."""
    stars = pattern.count("*")
    if pattern == "*":
        return lambda path: True
    if stars == 2 and pattern.startswith("*") and pattern.endswith("*"):
        middle = pattern[1:-1]
        return lambda path: middle in path
    if stars == 1 and pattern.startswith("*"):
        suffix = pattern[1:]
        return lambda path: path.endswith(suffix)
    if stars == 1 and pattern.endswith("*"):
        prefix = pattern[:-1]
        return lambda path: path.startswith(prefix)
    compiled = glob_regex(pattern)
    if compiled is None:
        return lambda path: False
    return lambda path: compiled.match(path) is not None


@functools.lru_cache(maxsize=1024)
def _dynamic_pattern(text: str) -> _PathPattern:
    return _PathPattern(text)


class PathMatcher:
    """`path`: any of the patterns matches the request path."""

    __slots__ = ("patterns", "templates", "needs_body")

    def __init__(self, patterns: tuple[str, ...]) -> None:
        static = [p for p in patterns if compile_template(p).static]
        if "*" in static:
            static, patterns = ["*"], ("*",)
        self.patterns = tuple(_PathPattern(compile_template(p).text_value.lower()) for p in static)
        self.templates: tuple[Template, ...] = tuple(
            compile_template(p) for p in patterns if not compile_template(p).static)
        self.needs_body = any(t.needs_body for t in self.templates)

    def match(self, request: Request) -> bool:
        cleaned: dict[bool, str] = {}
        for pattern in self.patterns:
            if self._test(pattern, request, cleaned):
                return True
        for template in self.templates:
            pattern = _dynamic_pattern(template.render(request).lower())
            if self._test(pattern, request, cleaned):
                return True
        return False

    @staticmethod
    def _test(pattern: _PathPattern, request: Request, cleaned: dict[bool, str]) -> bool:
        if pattern.escaped:
            escaped = clean_path(request.raw_path, pattern.merge_slashes)
            subject = _escaped_subject(escaped, pattern.text)
            return subject is not None and glob_match(pattern.text.replace("%*", "*"), subject)
        path = cleaned.get(pattern.merge_slashes)
        if path is None:
            path = cleaned[pattern.merge_slashes] = clean_path(request.path.lower(), pattern.merge_slashes)
        return pattern.test(path)


def build_path(config: tuple[str, ...] | None, ctx: Any) -> PathMatcher:
    return PathMatcher(config or ())


class PathRegexpMatcher:
    """`path_regexp`: the regexp is found in the cleaned, decoded path."""

    __slots__ = ("regexp",)

    def __init__(self, config: RegexpConfig) -> None:
        self.regexp = Regexp(config)

    def match(self, request: Request) -> bool:
        return self.regexp.match(clean_path(request.path), request)


def build_path_regexp(config: RegexpConfig, ctx: Any) -> PathRegexpMatcher:
    return PathRegexpMatcher(config)
