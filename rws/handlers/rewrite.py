"""The `rewrite` handler: change the request's method, URI, path or query internally.

Directives: `rewrite`, `uri`, `method`, and `try_files` (a rewrite guarded by a `file`
matcher).

At run time (`Rewrite`) the steps run in Caddy's order on a copy of the request: method,
`uri` (its path and query; a query that a placeholder puts in the path is kept only when
the URI has an empty query, as in `/x/{value}?`), strip_path_prefix and strip_path_suffix
(compared on the escaped path, case-insensitively), uri_substring, path_regexp, then the
query operations. Path rules work on the escaped path, as Go's net/url spells it
(`escape_path`), so an encoded slash stays encoded. Regexp replacements use Go's
`$1`/`${name}` templates; placeholders in a replacement expand first, as in Caddy.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote, quote_plus, unquote, unquote_plus

from rws.errors import ConfigError
from rws.http.message import Next, Request, Response
from rws.http.placeholders import Template, compile_template, lookup, to_string
from rws.http.regexp import compile_regexp, regexp_problem
from rws.registry import ModuleSpec
from rws.rwsfile.directives import ConfigValue, Directive, Helper
from rws.rwsfile.dispenser import Dispenser

if TYPE_CHECKING:
    from rws.http.routes import BuildContext

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


# --- Go's URL escaping (net/url), as the rewrite rules see paths and queries ---------------

_PATH_SAFE = "$&+,/:;=@"  # with letters, digits and `-._~`: what Go leaves unescaped in a path
_VALID_IN_RAW_PATH = frozenset("!$&'()*+,;=:@[]%-._~/" "abcdefghijklmnopqrstuvwxyz"
                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")


def escape_path(path: str) -> str:
    """The canonical escaped form of a decoded path (Go's `URL.EscapedPath` with no raw path)."""
    if path == "*":
        return "*"
    return quote(path, safe=_PATH_SAFE, errors="replace")


def _valid_escapes(text: str) -> bool:
    i = text.find("%")
    while i >= 0:
        if i + 2 >= len(text) or text[i + 1] not in _HEX or text[i + 2] not in _HEX:
            return False
        i = text.find("%", i + 3)
    return True


def path_unescape(raw: str) -> str | None:
    """The decoded form of an escaped path, or None when it has a malformed `%` escape."""
    if "%" not in raw:
        return raw
    return unquote(raw) if _valid_escapes(raw) else None


def escaped_path(raw: str, path: str) -> str:
    """`raw` when it is a valid escaping of `path`, else the canonical escaping of `path`."""
    if raw and all(c in _VALID_IN_RAW_PATH for c in raw) and path_unescape(raw) == path:
        return raw
    return escape_path(path)


def query_escape(text: str) -> str:
    """Go's url.QueryEscape: everything but letters, digits and `-._~` escaped; space is `+`.
    Bytes that were not UTF-8 when the query was parsed are escaped as they came."""
    try:
        return quote_plus(text, safe="", errors="surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no parsed byte stands for
        return quote_plus(text, safe="", errors="replace")


def _query_unescape(text: str) -> str | None:
    if "%" in text and not _valid_escapes(text):
        return None
    return unquote_plus(text, errors="surrogateescape")


def parse_query(raw: str) -> dict[str, list[str]]:
    """Go's url.ParseQuery, keeping what parses: pairs with `;` or a bad escape are dropped."""
    values: dict[str, list[str]] = {}
    for pair in raw.split("&"):
        if not pair or ";" in pair:
            continue
        key, _, value = pair.partition("=")
        k, v = _query_unescape(key), _query_unescape(value)
        if k is not None and v is not None:
            values.setdefault(k, []).append(v)
    return values


def encode_query(values: dict[str, list[str]]) -> str:
    """Go's url.Values.Encode: keys sorted, each value as `key=value`."""
    return "&".join(f"{query_escape(k)}={query_escape(v)}" for k in sorted(values) for v in values[k])


# --- paths -----------------------------------------------------------------------------------


def _go_clean(path: str) -> str:
    """Go's path.Clean: one slash between segments, `.` and `..` resolved lexically."""
    rooted = path.startswith("/")
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments and segments[-1] != "..":
                segments.pop()
            elif not rooted:
                segments.append("..")
            continue
        segments.append(segment)
    cleaned = "/".join(segments)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


_EMPTY_SEGMENT = "\uffff"  # cannot be in an escaped path


def clean_path(path: str, merge_slashes: bool) -> str:
    """Caddy's CleanPath: path.Clean keeping a trailing slash, and empty segments if asked."""
    if not merge_slashes:
        path = path.replace("//", "/" + _EMPTY_SEGMENT + "/").replace("//", "/" + _EMPTY_SEGMENT + "/")
    cleaned = _go_clean(path)
    if cleaned != "/" and path.endswith("/"):
        cleaned += "/"
    return cleaned if merge_slashes else cleaned.replace(_EMPTY_SEGMENT, "")


def _fold_equal(a: int, b: int) -> bool:
    if a == b:
        return True
    return a < 0x80 and b < 0x80 and chr(a).lower() == chr(b).lower()


def trim_path_prefix(escaped: str, prefix: str) -> str:
    """`escaped` without `prefix`, compared case-insensitively in decoded form, except that
    where `prefix` has a `%` escape the path must have the same escape."""
    path_bytes = escaped.encode("utf-8", "surrogatepass")
    prefix_bytes = prefix.encode("utf-8", "surrogatepass")
    i = j = 0
    while i < len(path_bytes) and j < len(prefix_bytes):
        byte = path_bytes[i]
        if byte == 0x25 and prefix_bytes[j] != 0x25 and len(path_bytes) >= i + 3:
            pair = path_bytes[i + 1:i + 3].decode("latin-1")
            if pair[0] not in _HEX or pair[1] not in _HEX:
                return escaped
            byte = int(pair, 16)
            i += 2
        if not _fold_equal(byte, prefix_bytes[j]):
            return escaped
        i += 1
        j += 1
    if j < len(prefix_bytes):
        return escaped
    try:
        return path_bytes[i:].decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:  # the prefix ended inside a character: not a prefix after all
        return escaped


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
    is_number = name.isascii() and name.isdigit() and (name == "0" or not name.startswith("0")) and len(name) <= 9
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


# --- the rewrite handler ---------------------------------------------------------------------


class _Target:
    """The request being rewritten: each step reads and changes it in turn, and
    placeholders in later steps see the earlier steps' changes."""

    __slots__ = ("original", "method", "raw_path", "path", "query", "_request")

    def __init__(self, request: Request) -> None:
        self.original = request
        self.method = request.method
        self.path = request.path
        self.raw_path = escaped_path(request.raw_path, request.path)
        self.query = request.query
        self._request: Request | None = request

    def set_path(self, path: str, raw: str) -> None:
        self.path = path
        self.raw_path = escaped_path(raw, path)
        self._request = None

    def change_path(self, change: Callable[[str], str]) -> None:
        """Apply `change` to the escaped path (and to the decoded one when the result
        does not decode), like Caddy's changePath."""
        raw = change(self.raw_path)
        decoded = path_unescape(raw)
        self.set_path(decoded if decoded else change(self.path), raw)

    def set_query(self, query: str) -> None:
        self.query = query
        self._request = None

    def set_method(self, method: str) -> None:
        self.method = method
        self._request = None

    def request(self) -> Request:
        """The request as rewritten so far (for placeholders)."""
        if self._request is None:
            target = (self.raw_path or "/") + (f"?{self.query}" if self.query else "")
            self._request = self.original.with_changes(
                method=self.method, target=target, raw_path=self.raw_path, path=self.path, query=self.query)
        return self._request


def _render_path(template: Template, target: _Target) -> str:
    """A path template, with `{http.request.uri.path}` and `{http.matchers.file.relative}`
    inserted in escaped form so that their `?` and `%` stay part of the path."""
    if template.static:
        return template.text_value
    request = target.request()
    out = []
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
        elif part[0] == "http.request.uri.path":
            out.append(target.raw_path)
        else:
            value, found = lookup(request, part[0])
            if part[0] == "http.matchers.file.relative" and isinstance(value, str):
                out.append(quote(value, safe=_PATH_SAFE, errors="replace"))
            elif found:
                out.append(to_string(value))
    return "".join(out)


class _QueryTemplate:
    """The query of a rewrite URI, split at `&` and `=` before placeholders expand; each
    expanded value is query-escaped, except `{http.request.uri.query}` where a key goes."""

    __slots__ = ("components",)

    def __init__(self, text: str) -> None:
        self.components = tuple((compile_template(c), is_key) for c, is_key in _query_components(text))

    def render(self, request: Request) -> str:
        rendered = []
        for template, is_key in self.components:
            if template.static:
                rendered.append((template.text_value, is_key))
                continue
            out = []
            for part in template.parts:
                if isinstance(part, str):
                    out.append(part)
                    continue
                value, found = lookup(request, part[0])
                if part[0] == "http.request.uri.query" and is_key:
                    out.append(to_string(value))
                elif found:
                    out.append(query_escape(to_string(value)))
            rendered.append(("".join(out), is_key))
        return _join_query(rendered)


def _query_components(text: str) -> list[tuple[str, bool]]:
    """Caddy's buildQueryString split: components with whether each one is in key position."""
    components = []
    is_key = True
    while text:
        eq, amp = text.find("="), text.find("&")
        amp_next = amp >= 0 and (amp < eq or eq < 0)
        end = amp if amp_next else eq if eq >= 0 else len(text)
        components.append((text[:end], is_key))
        text = text[end + 1:]
        is_key = amp_next
    return components


def _join_query(components: list[tuple[str, bool]]) -> str:
    out = ""
    for text, is_key in components:
        if not is_key:
            out += "="
        elif out and text:
            out += "&"
        out += text
    return out


class _UriRewrite:
    """The `uri` field: a path and a query, each optional, split at the first `?` or `#`
    as written, before placeholders expand. A `#fragment` is dropped: requests carry none."""

    __slots__ = ("path", "query")

    def __init__(self, uri: str) -> None:
        path_end = len(uri)
        for i, ch in enumerate(uri):
            if ch in "?#":
                path_end = i
                break
        rest = uri[path_end:]
        query: str | None = None
        if rest.startswith("?"):
            query = rest[1:].partition("#")[0]
        self.path = compile_template(uri[:path_end]) if uri[:path_end] else None
        self.query = _QueryTemplate(query) if query is not None else None

    def apply(self, target: _Target) -> None:
        new_path = _render_path(self.path, target) if self.path is not None else ""
        query_template = self.query
        new_path, mark, injected = new_path.partition("?")
        new_query = query_template.render(target.request()) if query_template is not None else ""
        if mark and query_template is not None and not query_template.components:
            # A query that came out of a placeholder in the path: its braces are data.
            escaped = injected.replace("{", "%7B").replace("}", "%7D")
            new_query = _join_query(_query_components(escaped))
        if self.path is not None:
            decoded = path_unescape(new_path)
            path = new_path if decoded is None else decoded
            target.set_path(path, "")
        if query_template is not None:
            target.set_query(new_query)


class _Substring:
    __slots__ = ("find", "replace", "limit", "merge_slashes")

    def __init__(self, config: SubstringReplacerConfig) -> None:
        self.find = compile_template(config.find)
        self.replace = compile_template(config.replace)
        self.limit = config.limit if config.limit > 0 else -1
        self.merge_slashes = "//" not in config.find

    def apply(self, target: _Target) -> None:
        request = target.request()
        find, replace = self.find.render(request), self.replace.render(request)
        target.change_path(lambda p: clean_path(p, self.merge_slashes).replace(find, replace, self.limit))
        target.set_query(target.query.replace(find, replace, self.limit))


class _PathRegexp:
    __slots__ = ("pattern", "replace")

    def __init__(self, config: RegexReplacerConfig) -> None:
        self.pattern = compile_regexp(config.find)
        self.replace = compile_template(config.replace)

    def apply(self, target: _Target) -> None:
        parts = go_template(self.replace.render(target.request()))
        target.change_path(lambda p: replace_all(self.pattern, p, parts))


class _QueryOps:
    """Query operations, in Caddy's order: rename, set, add, replace, delete; the result
    is re-encoded with sorted keys."""

    __slots__ = ("rename", "set", "add", "replace", "delete")

    def __init__(self, config: QueryOpsConfig) -> None:
        def pairs(args: tuple[QueryArgumentConfig, ...]) -> tuple[tuple[Template, Template], ...]:
            return tuple((compile_template(a.key), compile_template(a.val)) for a in args)

        self.rename = pairs(config.rename)
        self.set = pairs(config.set)
        self.add = pairs(config.add)
        self.replace = tuple(
            (compile_template(r.key), compile_template(r.search),
             compile_regexp(r.search_regexp) if r.search_regexp else None, compile_template(r.replace))
            for r in config.replace)
        self.delete = tuple(compile_template(d) for d in config.delete)

    def apply(self, target: _Target) -> None:
        request = target.request()
        query = parse_query(target.query)
        for key_t, val_t in self.rename:
            key, new = key_t.render(request), val_t.render(request)
            if key and new and key != new and key in query:
                query[new] = query.pop(key)
        for key_t, val_t in self.set:
            key = key_t.render(request)
            if key:
                query[key] = [val_t.render(request)]
        for key_t, val_t in self.add:
            key = key_t.render(request)
            if key:
                query.setdefault(key, []).append(val_t.render(request))
        for key_t, search_t, pattern, replace_t in self.replace:
            key = key_t.render(request)
            search, replace = search_t.render(request, keep_unknown=True), replace_t.render(request, keep_unknown=True)
            parts = go_template(replace) if pattern is not None else ()
            for name in (list(query) if key == "*" else [key] if key in query else []):
                query[name] = [replace_all(pattern, v, parts) if pattern is not None else v.replace(search, replace)
                               for v in query[name]]
        for delete_t in self.delete:
            query.pop(delete_t.render(request), None)
        target.set_query(encode_query(query))


class Rewrite:
    """The runtime of `rewrite`: hands the next handler a rewritten copy of the request
    (its `orig_*` fields keep the request as received)."""

    __slots__ = ("method", "uri", "strip_prefix", "strip_suffix", "steps")

    def __init__(self, config: RewriteConfig) -> None:
        self.method = compile_template(config.method) if config.method else None
        self.uri = _UriRewrite(config.uri) if config.uri else None
        self.strip_prefix = compile_template(config.strip_path_prefix) if config.strip_path_prefix else None
        self.strip_suffix = compile_template(config.strip_path_suffix) if config.strip_path_suffix else None
        steps: list[_Substring | _PathRegexp | _QueryOps] = [_Substring(s) for s in config.uri_substring if s.find]
        steps.extend(_PathRegexp(r) for r in config.path_regexp)
        if config.query is not None:
            steps.append(_QueryOps(config.query))
        self.steps = tuple(steps)

    def rewrite(self, request: Request) -> Request:
        target = _Target(request)
        if self.method is not None:
            target.set_method(self.method.render(request).upper())
        if self.uri is not None:
            self.uri.apply(target)
        if self.strip_prefix is not None:
            prefix = self.strip_prefix.render(target.request())
            prefix = prefix if prefix.startswith("/") else "/" + prefix
            merge = "//" not in prefix
            target.change_path(lambda p: trim_path_prefix(clean_path(p, merge), prefix))
        if self.strip_suffix is not None:
            suffix = self.strip_suffix.render(target.request())[::-1]
            merge = "//" not in suffix
            target.change_path(lambda p: trim_path_prefix(clean_path(p, merge)[::-1], suffix)[::-1])
        for step in self.steps:
            step.apply(target)
        return target.request()

    async def handle(self, request: Request, next: Next) -> Response:
        return await next(self.rewrite(request))


def build_rewrite(config: RewriteConfig, ctx: BuildContext) -> Rewrite:
    return Rewrite(config)


REWRITE = ModuleSpec(
    id="http.handlers.rewrite",
    config=RewriteConfig,
    directives={
        "rewrite": Directive(_parse_rewrite, handler=False),
        "method": Directive(_parse_method),
        "uri": Directive(_parse_uri),
        "try_files": Directive(_parse_try_files, handler=False),
    },
    runtime="rws.handlers.rewrite:build_rewrite",
)
