"""The `file_server` Rwsfile directive.

`file_server [<matcher>] [browse] { fs; root; hide; index; browse; precompressed; status;
disable_canonical_uris; pass_thru; etag_file_extensions }`. The adapter also hides the
Rwsfile itself (and every file the site's tokens came from).
"""

from __future__ import annotations

import difflib
from typing import Any

from rws import registry
from rws.handlers.file_server.config import DEFAULT_PRECOMPRESSED, SORT_BY, SORT_ORDER, sort_options_problem
from rws.handlers.file_server.paths import hide_config_files
from rws.handlers.static_response import check_status_arg, go_atoi, weak_string
from rws.rwsfile.directives import Helper
from rws.rwsfile.dispenser import Dispenser


def parse_file_server(h: Helper) -> Any:
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
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise d.error(f"unrecognized precompressed format {name!r}{hint}")
        formats[name] = {}
    return formats, order
