"""Go (RE2) regular expressions, as configs write them, compiled with Python's `re`.

RE2 and `re` agree on nearly everything configs use. Where they differ we translate:
`(?<name>...)` becomes `(?P<name>...)`, the end-of-text anchor `\\z` becomes `\\Z`, `$`
outside multi-line mode means the end of the text (Python's would also match before a
final newline: `^/admin$` must not match `/admin\n`), and `\\d`, `\\w`, `\\s` and `\\b` are
ASCII-only as in RE2. Syntax only RE2 has (`\\p{Greek}`, `\\Q...\\E`, `[[:alpha:]]`) does
not compile and is reported as a problem, since rws could not run it.
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
