"""Go (RE2) regular expressions, as configs write them, compiled with Python's `re`.

RE2 and `re` agree on nearly everything configs use; the two spellings Python lacks are
translated: `(?<name>...)` becomes `(?P<name>...)` and the end-of-text anchor `\\z`
becomes `\\Z`. Syntax only RE2 has (`\\p{Greek}`, `\\Q...\\E`, `[[:alpha:]]`) does not
compile and is reported as a problem, since rws could not run it.
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
    return re.compile(translated)


def regexp_problem(pattern: str, label: str = "invalid regular expression") -> str | None:
    """Why `pattern` cannot be used, as "<label> '<pattern>': <reason>", or None if it can."""
    try:
        compile_regexp(pattern)
    except re.error as exc:
        return f"{label} {pattern!r}: {exc}"
    except (OverflowError, RecursionError):
        return f"{label} {pattern!r}: too complex"
    return None
