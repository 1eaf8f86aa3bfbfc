"""The `file_server` handler's config and directive, and its precompressed-sidecar modules.

Directive: `file_server [<matcher>] [browse] { fs; root; hide; index; browse; precompressed;
status; disable_canonical_uris; pass_thru; etag_file_extensions }`. The adapter also hides
the Rwsfile itself (and every file the site's tokens came from).
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from typing import Annotated, Any

from rws import registry
from rws.config.decode import ModuleMap, WeakString
from rws.errors import ConfigError
from rws.handlers.encode import GzipConfig, ZstdConfig
from rws.handlers.static_response import check_status_arg, go_atoi, status_code_problem, weak_string
from rws.registry import ModuleSpec
from rws.rwsfile.directives import Directive, Helper
from rws.rwsfile.dispenser import Dispenser

SORT_BY = ("name", "namedirfirst", "size", "time")
SORT_ORDER = ("asc", "desc")
DEFAULT_PRECOMPRESSED = ("br", "zstd", "gzip")


# --- config ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BrowseConfig:
    template_file: str = ""
    reveal_symlinks: bool = False
    sort: tuple[str, ...] = ()
    file_limit: int = 0

    def validate(self, path: str) -> None:
        problem = sort_options_problem(self.sort)
        if problem:
            raise ConfigError(f"{path}.sort", problem)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileServerConfig:
    fs: str = ""
    root: str = ""
    hide: tuple[str, ...] = ()
    index_names: tuple[str, ...] | None = None
    browse: BrowseConfig | None = None
    canonical_uris: bool | None = None
    status_code: WeakString = ""
    pass_thru: bool = False
    precompressed: Annotated[Any, ModuleMap("http.precompressed")] = None
    precompressed_order: tuple[str, ...] = ()
    etag_file_extensions: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        if self.status_code:
            problem = status_code_problem(self.status_code)
            if problem:
                raise ConfigError(f"{path}.status_code", problem)
        for i, name in enumerate(self.precompressed_order):
            if name not in (self.precompressed or {}):
                raise ConfigError(f"{path}.precompressed_order[{i}]", f"precompressed format {name!r} is not configured in precompressed")


@dataclass(frozen=True, slots=True, kw_only=True)
class PrecompressedBrConfig:
    pass


def sort_options_problem(options: tuple[str, ...] | list[str]) -> str | None:
    """Caddy's rule for `browse.sort`: at most [<by>, <order>]."""
    if len(options) > 2:
        return f"only max 2 sort options are allowed, but got {len(options)}"
    if options and options[0] not in SORT_BY:
        return f"the first option must be one of the following: {', '.join(SORT_BY)}, but got {options[0]!r}"
    if len(options) == 2 and options[1] not in SORT_ORDER:
        return f"the second option must be one of the following: {', '.join(SORT_ORDER)}, but got {options[1]!r}"
    return None


# --- hiding files ------------------------------------------------------------------------


def go_glob_match(pattern: str, name: str) -> bool:
    """Go's filepath.Match on a POSIX system; a malformed pattern matches nothing."""
    regex = _GLOBS.get(pattern)
    if regex is None:
        regex = _GLOBS[pattern] = _glob_regex(pattern)
    return regex is not False and regex.fullmatch(name) is not None


_GLOBS: dict[str, Any] = {}


def _glob_regex(pattern: str) -> Any:
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
                return False
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
                    return False
                hi: str | None = lo
                if i < n and pattern[i] == "-":
                    hi, i = _class_char(pattern, i + 1)
                if hi is None:
                    return False
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


def clean_path(path: str) -> str:
    """Go's filepath.Clean for POSIX paths."""
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def file_hidden(filename: str, hide: list[str] | tuple[str, ...]) -> bool:
    """Whether `filename` is covered by one of the `hide` entries, compared as absolute paths."""
    if not hide:
        return False
    if not filename.startswith("/"):
        try:
            filename = clean_path(os.path.join(os.getcwd(), filename))
        except OSError:  # no working directory: compare the path as written, as Caddy does
            pass
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


def hide_config_files(hide: list[str], files: tuple[str, ...] | list[str]) -> list[str]:
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


# --- the directive -----------------------------------------------------------------------


def _parse_file_server(h: Helper) -> Any:
    d = h.d
    handler: dict[str, Any] = {"handler": "file_server"}
    args = d.remaining_args()
    if len(args) > 1 or (args and args[0] != "browse"):
        raise d.arg_error()
    if args:
        handler["browse"] = {}
    hide: list[str] = []
    for sub in d.block():
        name = sub.name
        if name == "fs":
            value = _one_arg(sub)
            if "fs" in handler:
                raise sub.error("file system already specified")
            handler["fs"] = value
        elif name == "hide":
            more = sub.remaining_args()
            if not more:
                raise sub.arg_error()
            hide.extend(more)
        elif name == "index":
            names = sub.remaining_args()
            if not names:
                raise sub.arg_error()
            handler["index_names"] = names
        elif name == "root":
            handler["root"] = _one_arg(sub)
        elif name == "browse":
            if "browse" in handler:
                raise sub.error("browsing is already configured", sub.tokens[0])
            handler["browse"] = _parse_browse(sub)
        elif name == "precompressed":
            formats, order = _parse_precompressed(sub)
            handler["precompressed"] = {**handler.get("precompressed", {}), **formats}  # accumulates, as in Caddy
            handler["precompressed_order"] = order
        elif name == "status":
            status = _one_arg(sub)
            check_status_arg(sub, status)
            handler["status_code"] = weak_string(status)
        elif name == "disable_canonical_uris":
            sub.args_exactly(0)
            handler["canonical_uris"] = False
        elif name == "pass_thru":
            sub.args_exactly(0)
            handler["pass_thru"] = True
        elif name == "etag_file_extensions":
            exts = sub.remaining_args()
            if not exts:
                raise sub.arg_error()
            handler["etag_file_extensions"] = exts
        else:
            raise sub.unknown_subdirective(_SUBDIRECTIVES)
    hide = hide_config_files(hide, h.site_files)
    if hide:
        handler["hide"] = hide
    return handler


_SUBDIRECTIVES = ("fs", "root", "hide", "index", "browse", "precompressed", "status",
                  "disable_canonical_uris", "pass_thru", "etag_file_extensions")


def _one_arg(d: Dispenser) -> str:
    return d.args_exactly(1)[0]


def _parse_browse(d: Dispenser) -> dict[str, Any]:
    """`browse [<template_file>] { reveal_symlinks; sort <by> [<order>]; file_limit <n> }`"""
    browse: dict[str, Any] = {}
    args = d.remaining_args()
    if len(args) > 1:
        raise d.arg_error()
    if args:
        browse["template_file"] = args[0]
    for sub in d.block():
        if sub.name == "reveal_symlinks":
            sub.args_exactly(0)
            if browse.get("reveal_symlinks"):
                raise sub.error("revealing symlinks is already enabled", sub.tokens[0])
            browse["reveal_symlinks"] = True
        elif sub.name == "sort":
            options = browse.setdefault("sort", [])
            while sub.next_arg():
                if sub.val() not in SORT_BY + SORT_ORDER:
                    raise sub.error(f"unknown sort option {sub.val()!r}")
                options.append(sub.val())
            problem = sort_options_problem(options)
            if problem:
                raise sub.error(problem)
            if not options:
                del browse["sort"]
        elif sub.name == "file_limit":
            if sub.count_remaining_args() != 1:
                raise sub.error("file_limit should have an integer value", sub.tokens[0])
            sub.next_arg()
            limit = go_atoi(sub.val())
            if limit is None:
                raise sub.error(f"file_limit should have an integer value, got {sub.val()!r}")
            if browse.get("file_limit"):
                raise sub.error("file_limit is already enabled", sub.tokens[0])
            if limit:
                browse["file_limit"] = limit
        else:
            raise sub.unknown_subdirective(("reveal_symlinks", "sort", "file_limit"))
    return browse


def _parse_precompressed(d: Dispenser) -> tuple[dict[str, Any], list[str]]:
    """`precompressed [<formats...>]`, by default br, zstd and gzip in that order."""
    order = d.remaining_args() or list(DEFAULT_PRECOMPRESSED)
    formats: dict[str, Any] = {}
    known = registry.names_in("http.precompressed")
    for name in order:
        if registry.find(f"http.precompressed.{name}") is None:
            import difflib

            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise d.error(f"unrecognized precompressed format {name!r}{hint}")
        formats[name] = {}
    return formats, order


FILE_SERVER = ModuleSpec(
    id="http.handlers.file_server",
    config=FileServerConfig,
    directives={"file_server": Directive(_parse_file_server)},
)

PRECOMPRESSED_GZIP = ModuleSpec(id="http.precompressed.gzip", config=GzipConfig)
PRECOMPRESSED_ZSTD = ModuleSpec(id="http.precompressed.zstd", config=ZstdConfig)
PRECOMPRESSED_BR = ModuleSpec(id="http.precompressed.br", config=PrecompressedBrConfig)
