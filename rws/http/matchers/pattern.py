"""Go's path.Match, which Caddy's path and file matchers are written in terms of.

(Path cleaning, Go's `path.Clean` and Caddy's `CleanPath`, is in `rws/http/uri.py`.)

- `glob_match` is Go's `path.Match`: `*` is any run of characters other than `/`, `?` one
  such character, `[a-z]` / `[^a-z]` a class, `\\x` a literal `x`. A malformed pattern
  never matches. Patterns compile once to a regular expression that follows Go's
  algorithm step for step (the text after each `*` is matched at its leftmost place and
  never retried), so matching time is linear in the path whatever the pattern.
"""

from __future__ import annotations

import functools
import re


class BadPattern(ValueError):
    """A glob pattern Go's path.Match rejects."""


def _chunks(pattern: str) -> list[tuple[bool, str]]:
    """Go's scanChunk, repeated: (preceded by a star, chunk up to the next unbracketed star)."""
    chunks = []
    while pattern:
        star = pattern.startswith("*")
        pattern = pattern.lstrip("*")
        in_range, i = False, 0
        while i < len(pattern):
            c = pattern[i]
            if c == "\\" and i + 1 < len(pattern):
                i += 1
            elif c == "[":
                in_range = True
            elif c == "]":
                in_range = False
            elif c == "*" and not in_range:
                break
            i += 1
        chunks.append((star, pattern[:i]))
        pattern = pattern[i:]
        if not pattern and star and not chunks[-1][1]:
            break
    return chunks


def _class_char(chunk: str, i: int) -> tuple[str, int]:
    """Go's getEsc: one (possibly escaped) character of a class, and the next index."""
    if i >= len(chunk) or chunk[i] in "-]":
        raise BadPattern(chunk)
    if chunk[i] == "\\":
        i += 1
        if i >= len(chunk):
            raise BadPattern(chunk)
    if i + 1 >= len(chunk):
        raise BadPattern(chunk)  # the class is not closed
    return chunk[i], i + 1


def _class(chunk: str, i: int) -> tuple[str, int]:
    """A `[...]` class starting after its `[`, as a regex, and the index after its `]`."""
    negated = i < len(chunk) and chunk[i] == "^"
    if negated:
        i += 1
    ranges: list[str] = []
    count = 0
    while True:
        if i < len(chunk) and chunk[i] == "]" and count:
            i += 1
            break
        lo, i = _class_char(chunk, i)
        hi = lo
        if chunk[i] == "-":
            hi, i = _class_char(chunk, i + 1)
        if lo <= hi:  # Go accepts an inverted range, which matches nothing
            ranges.append(re.escape(lo) + ("-" + re.escape(hi) if hi != lo else ""))
        count += 1
    if not ranges:
        return (r"[\s\S]" if negated else "(?!)"), i
    return "[" + ("^" if negated else "") + "".join(ranges) + "]", i


def _chunk_regex(chunk: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(chunk):
        c = chunk[i]
        if c == "[":
            text, i = _class(chunk, i + 1)
            out.append(text)
            continue
        if c == "?":
            out.append("[^/]")
        elif c == "\\":
            i += 1
            if i >= len(chunk):
                raise BadPattern(chunk)
            out.append(re.escape(chunk[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=2048)
def glob_regex(pattern: str) -> re.Pattern[str] | None:
    """The compiled form of a Go path.Match pattern; None if the pattern is malformed."""
    try:
        chunks = _chunks(pattern)
        out: list[str] = []
        for index, (star, chunk) in enumerate(chunks):
            body = _chunk_regex(chunk)
            last = index == len(chunks) - 1
            if star and not chunk:
                out.append("[^/]*")
            elif not star:
                out.append(body)
            elif last:
                out.append("[^/]*?" + body)
            else:
                out.append("(?>[^/]*?" + body + ")")
        return re.compile("".join(out) + r"\Z")
    except BadPattern:
        return None


def glob_match(pattern: str, name: str) -> bool:
    """Go's path.Match(pattern, name), with a malformed pattern matching nothing."""
    compiled = glob_regex(pattern)
    return compiled is not None and compiled.match(name) is not None


def has_meta(pattern: str) -> bool:
    """Whether a pattern holds glob syntax (Go's filepath hasMeta on Unix)."""
    return any(c in pattern for c in "*?[\\")


def glob_escape(text: str) -> str:
    """`text` with glob syntax escaped, so that it matches only itself."""
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("[", "\\[").replace("?", "\\?")
