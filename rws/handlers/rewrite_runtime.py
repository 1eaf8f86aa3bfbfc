"""The running `rewrite` handler: hands the next handler a rewritten copy of the request.

The steps run in Caddy's order on a copy of the request: method, `uri` (its path and
query; a query that a placeholder puts in the path is kept only when the URI has an empty
query, as in `/x/{value}?`), strip_path_prefix and strip_path_suffix (compared on the
escaped path, case-insensitively), uri_substring, path_regexp, then the query operations.
Path rules work on the escaped path, as Go's net/url spells it (`escape_path` in
`rws/http/uri.py`), so an encoded slash stays encoded. Regexp replacements use Go's
`$1`/`${name}` templates; placeholders in a replacement expand first, as in Caddy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from rws.handlers.rewrite import (
    QueryArgumentConfig,
    QueryOpsConfig,
    RegexReplacerConfig,
    RewriteConfig,
    SubstringReplacerConfig,
)
from rws.http.message import Next, Request, Response
from rws.http.placeholders import Template, compile_template, lookup, to_string
from rws.http.regexp import compile_regexp, go_template, replace_all
from rws.http.uri import (
    clean_path,
    encode_query,
    escape_path_text,
    escaped_path,
    parse_query,
    path_unescape,
    query_escape,
    trim_path_prefix,
)

if TYPE_CHECKING:
    from rws.http.routes import BuildContext


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
                out.append(escape_path_text(value))
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
