"""The standard directive order, and how the routes of one block are sorted by it."""

from __future__ import annotations

from functools import cmp_to_key
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rws.rwsfile.directives import ConfigValue

STANDARD_ORDER: tuple[str, ...] = (
    "tracing",
    "map",
    "vars",
    "fs",
    "root",
    "log_append",
    "skip_log",
    "log_skip",
    "log_name",
    "header",
    "copy_response_headers",  # only inside reverse_proxy's handle_response
    "request_body",
    "timeouts",
    "redir",
    "method",
    "rewrite",
    "uri",
    "try_files",
    "basicauth",
    "basic_auth",
    "forward_auth",
    "request_header",
    "encode",
    "push",
    "intercept",
    "templates",
    "invoke",
    "handle",
    "handle_path",
    "route",
    "abort",
    "error",
    "copy_response",  # only inside reverse_proxy's handle_response
    "respond",
    "metrics",
    "reverse_proxy",
    "php_fastcgi",
    "file_server",
    "acme_server",
)

# Routes of these directives in one block form a group: only the first match runs.
MUTUALLY_EXCLUSIVE = frozenset({"rewrite", "handle", "root"})


def normalize(directive: str) -> str:
    """`handle_path` sorts (and groups) as `handle`."""
    return "handle" if directive == "handle_path" else directive


def sort_routes(routes: list[ConfigValue], directive_order: list[str]) -> list[ConfigValue]:
    """Stable sort by directive position; same directives by path specificity, then matcher-first."""
    position = {d: i for i, d in enumerate(directive_order)}

    def before(a: ConfigValue, b: ConfigValue) -> bool:
        if a.directive != b.directive:
            return position.get(a.directive, 0) < position.get(b.directive, 0)
        a_path, b_path = _single_path(a.value), _single_path(b.value)
        if a_path and b_path:
            a_trim, b_trim = a_path.removesuffix("*"), b_path.removesuffix("*")
            if a_trim == b_trim:
                result = len(a_path) < len(b_path)
            elif len(a_trim) == len(b_trim):
                result = a_trim < b_trim
            else:
                result = len(a_trim) > len(b_trim)
        else:
            result = bool(a.value.get("match")) and not b.value.get("match")
        return not result if a.directive == "vars" else result

    def compare(a: ConfigValue, b: ConfigValue) -> int:
        if before(a, b):
            return -1
        if before(b, a):
            return 1
        return 0

    return sorted(routes, key=cmp_to_key(compare))


def _single_path(route: dict[str, Any]) -> str:
    match = route.get("match") or []
    if len(match) != 1:
        return ""
    paths = match[0].get("path")
    if isinstance(paths, list) and len(paths) == 1:
        return str(paths[0])
    return ""
