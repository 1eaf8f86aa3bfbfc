"""The `file` matcher: matches when a file (or directory) exists.

```
file [<files...>] {
    root <path>
    try_files <files...>
    try_policy first_exist|first_exist_fallback|smallest_size|largest_size|most_recently_modified
    split_path <delims...>
}
```
JSON: `{"root", "try_files", "try_policy", "split_path", "fs"}`; an empty object tries the
request path under `{http.vars.root}`.

At run time, as in Caddy: the root is `{http.vars.root}` (unknown or empty: the working
directory); each candidate is expanded (placeholder values glob-escaped, so a request
cannot inject globs), cleaned, split after a `split_path` delimiter, joined under the root
so that no `..` leaves it, then glob-expanded. A candidate ending in `/` must be a
directory, any other a regular file (symbolic links are followed, as Caddy and the file
server do). `=404` as a candidate stops with that HTTP error. A match sets
`{http.matchers.file.relative|absolute|type|remainder}`. Only the local filesystem exists:
a matcher naming another `fs` never matches.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from rws.errors import ConfigError, HttpError
from rws.http.matchers.pattern import glob_escape, glob_match, glob_regex, has_meta
from rws.http.message import Request
from rws.http.placeholders import compile_template
from rws.http.uri import go_clean
from rws.registry import ModuleSpec
from rws.rwsfile.directives import MatcherContext
from rws.rwsfile.dispenser import Dispenser

TRY_POLICIES = ("first_exist", "first_exist_fallback", "smallest_size", "largest_size", "most_recently_modified")


@dataclass(frozen=True, slots=True, kw_only=True)
class FileMatchConfig:
    fs: str = ""
    root: str = ""
    try_files: tuple[str, ...] = ()
    try_policy: str = ""
    split_path: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        if self.try_policy and self.try_policy not in TRY_POLICIES:
            raise ConfigError(f"{path}.try_policy", f"unknown try policy {self.try_policy!r}: expected one of {', '.join(TRY_POLICIES)}")


_SUBDIRECTIVES = ("root", "try_files", "try_policy", "split_path")


def _parse_file(lines: list[Dispenser], ctx: MatcherContext) -> Any:
    out: dict[str, Any] = {}
    try_files: list[str] = []
    for d in lines:
        try_files.extend(d.remaining_args())
        for sub in d.block():
            if sub.name == "root":
                if not sub.next_arg():
                    raise sub.arg_error()
                out["root"] = sub.val()
            elif sub.name == "try_files":
                try_files.extend(sub.remaining_args())
                if not try_files:
                    raise sub.arg_error()
            elif sub.name == "try_policy":
                if not sub.next_arg():
                    raise sub.arg_error()
                if sub.val() not in TRY_POLICIES:
                    raise sub.error(f"unknown try policy {sub.val()!r}: expected one of {', '.join(TRY_POLICIES)}")
                out["try_policy"] = sub.val()
            elif sub.name == "split_path":
                out["split_path"] = sub.remaining_args()
                if not out["split_path"]:
                    raise sub.arg_error()
            else:
                raise sub.unknown_subdirective(_SUBDIRECTIVES)
    if try_files:
        out["try_files"] = try_files
    return {k: out[k] for k in ("root", "try_files", "try_policy", "split_path") if k in out}


FILE = ModuleSpec(id="http.matchers.file", config=FileMatchConfig, rwsfile=_parse_file,
                  runtime="rws.http.matchers.file:build_file")

log = logging.getLogger(__name__)


# --- filesystem helpers (Go's filepath rules) ------------------------------------------------


def _join(*parts: str) -> str:
    """Go's filepath.Join: the non-empty parts joined with "/", cleaned."""
    text = "/".join(p for p in parts if p)
    return go_clean(text) if text else ""


def sanitized_join(root: str, request_path: str) -> str:
    """Caddy's SanitizedPathJoin: `request_path` under `root`, never above it; a trailing
    slash stays."""
    root = root or "."
    relative = go_clean("/" + request_path)[1:]
    if relative and (relative == ".." or relative.startswith("../")):
        return root  # cannot happen after cleaning a rooted path; kept as Caddy's guard
    joined = _join(root, relative)
    if request_path.endswith("/") and len(request_path) > 1:
        joined += "/"
    return joined


def _stat(path: str, follow: bool = True) -> os.stat_result | None:
    try:
        return os.stat(path) if follow else os.lstat(path)
    except (OSError, ValueError):  # missing, not a directory, NUL byte, name too long...
        return None


def _glob_in(directory: str, pattern: str) -> list[str]:
    info = _stat(directory)
    if info is None or not stat.S_ISDIR(info.st_mode):
        return []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    return [_join(directory, name) for name in names if glob_match(pattern, name)]


def go_glob(pattern: str) -> list[str]:
    """Go's filepath.Glob: the existing paths matching `pattern` (a path without glob syntax
    is returned if it exists, even as a dangling link); [] for a malformed pattern."""
    if glob_regex(pattern) is None:
        return []
    if not has_meta(pattern):
        return [pattern] if _stat(pattern, follow=False) is not None else []
    cut = pattern.rfind("/") + 1
    directory, name = pattern[:cut], pattern[cut:]
    directory = "." if not directory else directory if directory == "/" else directory[:-1]
    if not has_meta(directory):
        return _glob_in(directory, name)
    if directory == pattern:
        return []
    return [found for d in go_glob(directory) for found in _glob_in(d, name)]


def _is_kind_wanted(path: str, info: os.stat_result) -> bool:
    """Caddy's strictFileExists convention: `dir/` must be a directory, `file` must not be."""
    return stat.S_ISDIR(info.st_mode) == path.endswith("/")


# --- runtime -------------------------------------------------------------------------------

_ERROR_CODE = re.compile(r"=([+-]?[0-9]+)")


def error_code(candidate: str) -> int | None:
    """The status of an `=NNN` candidate (100-999), or None."""
    found = _ERROR_CODE.fullmatch(candidate)
    if found is None:
        return None
    code = int(found.group(1))
    return code if 100 <= code <= 999 else None


@dataclass(frozen=True, slots=True)
class _Candidate:
    full: str
    relative: str
    remainder: str


class FileMatcher:
    """`file`: picks a file among the candidates by the try policy."""

    __slots__ = ("root", "fs", "try_files", "policy", "split_path", "needs_body")

    def __init__(self, config: FileMatchConfig) -> None:
        self.root = compile_template(config.root or "{http.vars.root}")
        self.fs = compile_template(config.fs or "{http.vars.fs}")
        files = config.try_files or ("{http.request.uri.path}",)
        self.try_files = tuple((f, compile_template(f), error_code(f)) for f in files)
        self.policy = config.try_policy or "first_exist"
        self.split_path = tuple(config.split_path)
        self.needs_body = any(t.needs_body for _, t, _ in self.try_files) or self.root.needs_body

    def match(self, request: Request) -> bool:
        fs_name = self.fs.render(request)
        if fs_name not in ("", "default"):
            log.error("use of unregistered filesystem", extra={"fs": fs_name})
            return False
        root = go_clean(self.root.render(request, empty="."))
        if self.policy in ("first_exist", "first_exist_fallback"):
            return self._first_exist(request, root)
        return self._best(request, root)

    def _candidates(self, request: Request, root: str, index: int) -> Iterator[_Candidate]:
        text, template, _ = self.try_files[index]
        expanded = template.render(request, transform=glob_escape)
        before, remainder = self._split(go_clean(expanded))
        if text.endswith("/"):
            before += "/"
        for found in go_glob(sanitized_join(root, before)):
            yield _Candidate(found, found.removeprefix(root), remainder)

    def _first_exist(self, request: Request, root: str) -> bool:
        fallback = len(self.try_files) - 1 if self.policy == "first_exist_fallback" else -1
        for index, (_, _, code) in enumerate(self.try_files):
            if code is not None:
                raise HttpError(code, self.try_files[index][0][1:])
            for candidate in self._candidates(request, root, index):
                if index == fallback:
                    _set_values(request, candidate, False)
                    return True
                info = _stat(candidate.full)
                if info is not None and _is_kind_wanted(candidate.full, info):
                    _set_values(request, candidate, stat.S_ISDIR(info.st_mode))
                    return True
        return False

    def _best(self, request: Request, root: str) -> bool:
        """largest_size, smallest_size, most_recently_modified: among existing candidates."""
        is_better = _IS_BETTER[self.policy]
        chosen: tuple[_Candidate, os.stat_result] | None = None
        for index in range(len(self.try_files)):
            for candidate in self._candidates(request, root, index):
                info = _stat(candidate.full)
                if info is not None and is_better(info, chosen[1] if chosen else None):
                    chosen = (candidate, info)
        if chosen is None:
            return False
        _set_values(request, chosen[0], stat.S_ISDIR(chosen[1].st_mode))
        return True

    def _split(self, path: str) -> tuple[str, str]:
        """Cut `path` just after the first split delimiter that ends a path segment."""
        for delimiter in self.split_path:
            index = _index_fold(path, delimiter)
            if index < 0:
                continue
            end = index + len(delimiter)
            if end != len(path) and not path.startswith("/", end):
                continue
            return path[:end], path[end:]
        return path, ""


# try policy -> whether a candidate's stat beats the best so far (Caddy's comparisons)
_IS_BETTER: dict[str, Callable[[os.stat_result, os.stat_result | None], bool]] = {
    "largest_size": lambda new, best: new.st_size > (best.st_size if best else 0),
    "smallest_size": lambda new, best: best is None or best.st_size == 0 or new.st_size < best.st_size,
    "most_recently_modified": lambda new, best: best is None or new.st_mtime_ns > best.st_mtime_ns,
}


def _index_fold(haystack: str, needle: str) -> int:
    """Caddy's case-insensitive search (which never finds the needle at the very end)."""
    needle = needle.lower()
    for i in range(len(haystack) - len(needle)):
        if haystack[i:i + len(needle)].lower() == needle:
            return i
    return -1


def _set_values(request: Request, candidate: _Candidate, is_dir: bool) -> None:
    values = request.values
    values["http.matchers.file.relative"] = candidate.relative
    values["http.matchers.file.absolute"] = candidate.full
    values["http.matchers.file.remainder"] = candidate.remainder
    values["http.matchers.file.type"] = "directory" if is_dir else "file"


def build_file(config: FileMatchConfig, ctx: Any) -> FileMatcher:
    config.validate("file")
    return FileMatcher(config)
