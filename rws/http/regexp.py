"""Go (RE2) regular expressions, as configs write them, compiled with Python's `re`.

RE2 and `re` agree on nearly everything configs use. Where they differ we translate:
`(?<name>...)` becomes `(?P<name>...)`, the end-of-text anchor `\\z` becomes `\\Z`, `$`
outside multi-line mode means the end of the text (Python's would also match before a
final newline: `^/admin$` must not match `/admin\n`), and `\\d`, `\\w`, `\\s` and `\\b` are
ASCII-only as in RE2. Syntax only RE2 has (`\\p{Greek}`, `\\Q...\\E`, `[[:alpha:]]`) does
not compile and is reported as a problem, since rws could not run it.

Replacements use Go's `Regexp.Expand` templates (`$1`, `${name}`, `$$`): `go_template`
parses one once, `expand` fills it in for a match, and `replace_all` is Go's
`Regexp.ReplaceAllString`.
"""

from __future__ import annotations

import functools
import re

_RE2_NAMED_GROUP = re.compile(r"\(\?<(?![=!])")
_END_OF_TEXT = re.compile(r"(?<!\\)((?:\\\\)*)\\z")


@functools.lru_cache(maxsize=1024)
def compile_regexp(pattern: str) -> re.Pattern[str]:
    """Compile a Go regular expression; raises re.error."""
    translated = _RE2_NAMED_GROUP.sub("(?P<", pattern)
    translated = _END_OF_TEXT.sub(r"\1\\Z", translated)
    if not _MULTILINE.search(translated):
        translated = _dollar_as_end_of_text(translated)
    return re.compile(translated, re.ASCII)


_MULTILINE = re.compile(r"\(\?[a-zA-Z]*m")


def _dollar_as_end_of_text(pattern: str) -> str:
    """Every `$` that is an anchor (not escaped, not in a class) becomes `\\Z`."""
    out = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            if pattern[i + 1:i + 2] == "]" or pattern[i + 1:i + 3] == "^]":  # a leading ] is literal
                out.append(pattern[i:i + 2] if pattern[i + 1] == "]" else pattern[i:i + 3])
                i += 2 if pattern[i + 1] == "]" else 3
                continue
        elif ch == "$":
            out.append("\\Z")
            i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def regexp_problem(pattern: str, label: str = "invalid regular expression") -> str | None:
    """Why `pattern` cannot be used, as "<label> '<pattern>': <reason>", or None if it can."""
    try:
        compile_regexp(pattern)
    except re.error as exc:
        return f"{label} {pattern!r}: {exc}"
    except (OverflowError, RecursionError):
        return f"{label} {pattern!r}: too complex"
    return None


# --- Go regexp replacement templates (`$1`, `${name}`) --------------------------------------

TemplatePart = str | int | tuple[str]  # literal text, group number, (group name,)


@functools.lru_cache(maxsize=1024)
def go_template(text: str) -> tuple[TemplatePart, ...]:
    """Parse a Go `Regexp.Expand` template: `$n`/`${n}` group numbers, `$name`/`${name}`
    group names (the longest run of letters, digits and `_`), `$$` a dollar sign; any
    other `$` is literal."""
    parts: list[TemplatePart] = []
    literal: list[str] = []
    i = 0
    while True:
        dollar = text.find("$", i)
        if dollar < 0:
            literal.append(text[i:])
            break
        literal.append(text[i:dollar])
        i = dollar + 1
        if text.startswith("$", i):
            literal.append("$")
            i += 1
            continue
        ref = _template_ref(text, i)
        if ref is None:
            literal.append("$")
            continue
        part, i = ref
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(part)
    if "".join(literal):
        parts.append("".join(literal))
    return tuple(parts)


def _template_ref(text: str, start: int) -> tuple[TemplatePart, int] | None:
    brace = text.startswith("{", start)
    i = begin = start + 1 if brace else start
    while i < len(text) and (text[i].isalpha() or text[i].isdecimal() or text[i] == "_"):
        i += 1
    if i == begin:
        return None
    name = text[begin:i]
    if brace:
        if not text.startswith("}", i):
            return None
        i += 1
    is_number = name.isascii() and name.isdecimal() and (name == "0" or not name.startswith("0")) and len(name) <= 9
    return (int(name) if is_number else (name,)), i


def expand(parts: tuple[TemplatePart, ...], match: re.Match[str]) -> str:
    """A template's text for one match; groups that are missing or did not match are empty."""
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        index = part if isinstance(part, int) else match.re.groupindex.get(part[0], -1)
        if 0 <= index <= match.re.groups:
            out.append(match.group(index) or "")
    return "".join(out)


def replace_all(pattern: re.Pattern[str], text: str, parts: tuple[TemplatePart, ...]) -> str:
    """Go's Regexp.ReplaceAllString: like re.sub, but an empty match right after a match
    is not replaced."""
    out = []
    last = 0
    for match in pattern.finditer(text):
        start, end = match.span()
        out.append(text[last:start])
        if end > last or start == 0:
            out.append(expand(parts, match))
        last = end
    out.append(text[last:])
    return "".join(out)
