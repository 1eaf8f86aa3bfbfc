"""File-system paths as Caddy's file server computes them, with Go's path semantics.

- `sanitized_path_join(root, request_path)`: the file a request path names under a root.
  The request path is cleaned as an absolute path first (so `..`, `%2e%2e` once decoded,
  and repeated slashes can never climb above the root) and then appended to the root.
- `file_hidden(filename, hide)`: Caddy's `hide` rule. An entry without a `/` is a glob
  compared with every component of the absolute filename (`.git` hides every `.git`
  folder at any depth); an entry with a `/` hides that path and everything below it, or
  whatever it matches as a glob.
- `clean_path`: Go's `path.Clean` (`path.Base` and `path.Ext` are in rws.http.uri).
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
from typing import Sequence


def clean_path(path: str) -> str:
    """Go's filepath.Clean for POSIX paths."""
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def sanitized_path_join(root: str, request_path: str) -> str:
    """The path of `request_path` under `root`; it never leaves `root`.

    The request path is cleaned as if absolute, so no `..` survives, then joined to the
    root; a trailing slash of the request path is kept (except for the root itself)."""
    if not root:
        root = "."
    relative = clean_path("/" + request_path)[1:]
    joined = clean_path(f"{root}/{relative}" if relative else root)
    if request_path.endswith("/") and len(request_path) > 1:
        joined += "/"
    return joined


def fast_abs(path: str, cwd: str | None) -> str:
    """Caddy's FastAbs: the absolute, cleaned form of `path` against the working directory
    (`cwd` when given, else the current one); unchanged when that cannot be known."""
    if path.startswith("/"):
        return clean_path(path)
    if cwd is None:
        try:
            cwd = os.getcwd()
        except OSError:  # no working directory: compare the path as written, as Caddy does
            return path
    return clean_path(f"{cwd}/{path}")


# --- globs and hiding -------------------------------------------------------------------


def go_glob_match(pattern: str, name: str) -> bool:
    """Go's filepath.Match on a POSIX system; a malformed pattern matches nothing."""
    if not _GLOB_SPECIAL.intersection(pattern):
        return pattern == name
    regex = _glob_regex(pattern)
    return regex is not None and regex.fullmatch(name) is not None


_GLOB_SPECIAL = frozenset("*?[\\")


@functools.lru_cache(maxsize=1024)
def _glob_regex(pattern: str) -> re.Pattern[str] | None:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i >= n:
                return None
            out.append(re.escape(pattern[i]))
            i += 1
        elif c == "[":
            negated = i < n and pattern[i] == "^"
            if negated:
                i += 1
            ranges: list[str] = []
            while True:
                if i < n and pattern[i] == "]" and ranges:
                    i += 1
                    break
                lo, i = _class_char(pattern, i)
                if lo is None:
                    return None
                hi: str | None = lo
                if i < n and pattern[i] == "-":
                    hi, i = _class_char(pattern, i + 1)
                if hi is None:
                    return None
                ranges.append(re.escape(lo) + ("-" + re.escape(hi) if hi != lo else ""))
            out.append("[" + ("^" if negated else "") + "".join(ranges) + "]")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out), re.DOTALL)


def _class_char(pattern: str, i: int) -> tuple[str | None, int]:
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        return None, i
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            return None, i
    if i + 1 >= n:  # a class must be closed
        return None, i
    return pattern[i], i + 1


def file_hidden(filename: str, hide: Sequence[str], cwd: str | None = None) -> bool:
    """Whether `filename` is covered by one of the `hide` entries (entries with a `/` must
    already be absolute), comparing the absolute form of `filename`."""
    if not hide:
        return False
    filename = fast_abs(filename, cwd)
    components: list[str] | None = None
    for entry in hide:
        if "/" not in entry:
            if components is None:
                components = filename.split("/")
            if any(go_glob_match(entry, c) for c in components):
                return True
        elif filename.startswith(entry) and filename[len(entry):].startswith("/"):
            return True
        if go_glob_match(entry, filename):
            return True
    return False


def hide_config_files(hide: list[str], files: Sequence[str]) -> list[str]:
    """`hide` plus each config file not already hidden, written with a path separator."""
    out = list(hide)
    for file in files:
        if not file:
            continue
        file = clean_path(file)
        if not file_hidden(file, out):
            if "/" not in file:
                file = "./" + file
            out.append(file)
    return out
