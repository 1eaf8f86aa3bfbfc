"""The `rewrite` handler's config and directives: change the request's method, URI, path
or query internally.

Directives: `rewrite`, `uri`, `method`, and `try_files` (a rewrite guarded by a `file`
matcher). The handler that runs is in `rewrite_runtime.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rws.errors import ConfigError
from rws.http.regexp import regexp_problem
from rws.registry import ModuleSpec
from rws.rwsfile.directives import ConfigValue, Directive, Helper
from rws.rwsfile.dispenser import Dispenser

# --- config ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SubstringReplacerConfig:
    find: str = ""
    replace: str = ""
    limit: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RegexReplacerConfig:
    find: str = ""
    replace: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryArgumentConfig:
    key: str = ""
    val: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryReplacementConfig:
    key: str = ""
    search: str = ""
    search_regexp: str = ""
    replace: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryOpsConfig:
    rename: tuple[QueryArgumentConfig, ...] = ()
    set: tuple[QueryArgumentConfig, ...] = ()
    add: tuple[QueryArgumentConfig, ...] = ()
    replace: tuple[QueryReplacementConfig, ...] = ()
    delete: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        for i, op in enumerate(self.replace):
            if op.search_regexp:
                problem = regexp_problem(op.search_regexp)
                if problem:
                    raise ConfigError(f"{path}.replace[{i}].search_regexp", problem)


@dataclass(frozen=True, slots=True, kw_only=True)
class RewriteConfig:
    method: str = ""
    uri: str = ""
    strip_path_prefix: str = ""
    strip_path_suffix: str = ""
    uri_substring: tuple[SubstringReplacerConfig, ...] = ()
    path_regexp: tuple[RegexReplacerConfig, ...] = ()
    query: QueryOpsConfig | None = None

    def validate(self, path: str) -> None:
        for i, rep in enumerate(self.path_regexp):
            if not rep.find:
                raise ConfigError(f"{path}.path_regexp[{i}].find", "path_regexp find cannot be empty")
            problem = regexp_problem(rep.find)
            if problem:
                raise ConfigError(f"{path}.path_regexp[{i}].find", problem)


# --- rewrite -----------------------------------------------------------------------------


def _parse_rewrite(h: Helper) -> list[ConfigValue]:
    """`rewrite [<matcher>] <to>`: with one argument there is no matcher."""
    d = h.d
    count = d.count_remaining_args()
    if count == 0:
        raise d.error("too few arguments; must have at least a rewrite URI")
    if count > 2:
        raise d.error("too many arguments; should only be a matcher and a URI")
    if d.has_block:
        raise d.error("rewrite does not take a block")
    matcher_set = None
    if count == 2:
        matcher_set, is_matcher = h.matcher_token()
        if not is_matcher:
            raise d.error(f"expected a matcher before the rewrite URI, got {d.peek()!r}")
    d.next_arg()
    return h.new_route(matcher_set, {"handler": "rewrite", "uri": d.val()})


# --- method ------------------------------------------------------------------------------


def _parse_method(h: Helper) -> Any:
    """`method [<matcher>] <method>`"""
    d = h.d
    if not d.next_arg():
        raise d.arg_error()
    method = d.val()
    if d.next_arg():
        raise d.arg_error()
    if d.has_block:
        raise d.error("method does not take a block")
    return {"handler": "rewrite", "method": method}


# --- uri ---------------------------------------------------------------------------------

_URI_OPS = ("strip_prefix", "strip_suffix", "replace", "path_regexp", "query")


def _parse_uri(h: Helper) -> Any:
    """`uri [<matcher>] strip_prefix|strip_suffix|replace|path_regexp|query <args...>`"""
    d = h.d
    args = d.remaining_args()
    if not args:
        raise d.arg_error()
    op = args[0]
    handler: dict[str, Any] = {"handler": "rewrite"}
    if op != "query" and d.has_block:
        raise d.error(f"uri {op} does not take a block")
    if op == "strip_prefix":
        if len(args) != 2:
            raise d.arg_error()
        handler["strip_path_prefix"] = args[1]
    elif op == "strip_suffix":
        if len(args) != 2:
            raise d.arg_error()
        handler["strip_path_suffix"] = args[1]
    elif op == "replace":
        if len(args) not in (3, 4):
            raise d.arg_error()
        replacer: dict[str, Any] = {"find": args[1], "replace": args[2]}
        if len(args) == 4:
            if not re.fullmatch(r"[+-]?\d+", args[3]):
                raise d.error(f"limit must be an integer; invalid: {args[3]!r}")
            if int(args[3]):
                replacer["limit"] = int(args[3])
        handler["uri_substring"] = [{k: v for k, v in replacer.items() if v}]
    elif op == "path_regexp":
        if len(args) != 3:
            raise d.arg_error()
        problem = regexp_problem(args[1]) if args[1] else "path_regexp find cannot be empty"
        if problem:
            raise d.error(problem)
        handler["path_regexp"] = [{k: v for k, v in (("find", args[1]), ("replace", args[2])) if v}]
    elif op == "query":
        handler["query"] = _parse_query_ops(d, args[1:])
    else:
        import difflib

        close = difflib.get_close_matches(op, list(_URI_OPS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise d.error(f"unrecognized URI manipulation {op!r}{hint}")
    return handler


def _parse_query_ops(d: Dispenser, args: list[str]) -> dict[str, Any]:
    """`uri query <op>` on the line, or a block with one op per line."""
    if len(args) > 3:
        raise d.arg_error()
    ops: dict[str, list[Any]] = {}
    if args:
        _query_op(d, ops, args)
    for sub in d.block():
        if args:
            raise sub.error("cannot specify uri query rewrites in both argument and block", sub.tokens[0])
        _query_op(sub, ops, [sub.name, *sub.remaining_args()])
    return ops


def _query_op(d: Dispenser, ops: dict[str, list[Any]], args: list[str]) -> None:
    """`-key` delete, `+key value` add, `old>new` rename, `key <regexp> <replacement>`, `key value` set."""
    key = args[0]
    if key.startswith("-"):
        if len(args) != 1:
            raise d.arg_error()
        ops.setdefault("delete", []).append(key.lstrip("-"))
    elif key.startswith("+"):
        if len(args) != 2:
            raise d.arg_error()
        ops.setdefault("add", []).append(_key_val(key.lstrip("+"), args[1]))
    elif ">" in key:
        if len(args) != 1:
            raise d.arg_error()
        old, new = key.split(">")[:2]
        ops.setdefault("rename", []).append(_key_val(old, new))
    elif len(args) == 3:
        problem = regexp_problem(args[1]) if args[1] else None
        if problem:
            raise d.error(problem)
        replacement = {"key": key, "search_regexp": args[1], "replace": args[2]}
        ops.setdefault("replace", []).append({k: v for k, v in replacement.items() if v})
    else:
        if len(args) != 2:
            raise d.arg_error()
        ops.setdefault("set", []).append(_key_val(key, args[1]))


def _key_val(key: str, val: str) -> dict[str, str]:
    return {k: v for k, v in (("key", key), ("val", val)) if v}


# --- try_files ---------------------------------------------------------------------------

TRY_POLICIES = ("first_exist", "first_exist_fallback", "largest_size", "smallest_size", "most_recently_modified")


def _parse_try_files(h: Helper) -> list[ConfigValue]:
    """`try_files <files...> { policy <p> }`: no matcher; each file with a query gets its own route."""
    d = h.d
    files = d.remaining_args()
    if not files:
        raise d.arg_error()
    policy = ""
    for sub in d.block():
        if sub.name != "policy":
            raise sub.unknown_subdirective(("policy",))
        if policy:
            raise sub.error("try policy already configured", sub.tokens[0])
        policy = sub.args_exactly(1)[0]
        if policy not in TRY_POLICIES:
            raise sub.error(f"unrecognized try policy: {policy}")

    def route(tries: list[str], query: str) -> list[ConfigValue]:
        file_matcher: dict[str, Any] = {"try_files": tries}
        if policy:
            file_matcher["try_policy"] = policy
        return h.new_route({"file": file_matcher}, {"handler": "rewrite", "uri": "{http.matchers.file.relative}" + query})

    values: list[ConfigValue] = []
    pending: list[str] = []
    for item in files:
        path, mark, query = item.partition("?")
        if mark:
            if pending:
                values.extend(route(pending, ""))
                pending = []
            values.extend(route([path], "?" + query))
        else:
            pending.append(item)
    if pending:
        values.extend(route(pending, ""))
    h.group_routes(values)
    return values


REWRITE = ModuleSpec(
    id="http.handlers.rewrite",
    config=RewriteConfig,
    directives={
        "rewrite": Directive(_parse_rewrite, handler=False),
        "method": Directive(_parse_method),
        "uri": Directive(_parse_uri),
        "try_files": Directive(_parse_try_files, handler=False),
    },
    runtime="rws.handlers.rewrite_runtime:build_rewrite",
)
