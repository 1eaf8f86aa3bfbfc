"""What a directive parser works with: the Helper, config values, matcher sets, subroutes.

Handler directives (`Directive(parse, handler=True)`) receive a Helper whose dispenser
is past the matcher token and return one handler object (a JSON dict with a "handler"
key); the adapter wraps it in a route with the matcher. Other directives return a list
of `ConfigValue`s whose `cls` says what they configure ("route", "bind",
"tls.connection_policy", "custom_log", "error_route", ...).

Everything here produces JSON-shaped Python values (dicts, lists, strings, numbers),
exactly what `rws adapt` prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from rws.errors import RwsfileError
from rws.rwsfile import order
from rws.rwsfile.dispenser import Dispenser
from rws.rwsfile.parse import Entry, Token

JSON = Any
MatcherSet = dict[str, JSON]


@dataclass(frozen=True, slots=True)
class Directive:
    parse: Callable[["Helper"], Any]
    handler: bool = True  # parse returns one handler dict; else a list of ConfigValue


@dataclass(slots=True)
class ConfigValue:
    cls: str
    value: Any
    directive: str = ""


@dataclass(frozen=True, slots=True)
class Warning:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.file else self.message


@dataclass(slots=True)
class AdaptState:
    """State shared by one whole adapt run."""

    options: dict[str, Any]
    warnings: list[Warning] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # counters and such, keyed by their owner
    groups: int = 0
    directive_order: list[str] = field(default_factory=lambda: list(order.STANDARD_ORDER))

    def next_group(self) -> str:
        name = f"group{self.groups}"
        self.groups += 1
        return name

    def warn(self, message: str, token: Token | None = None) -> None:
        self.warnings.append(Warning(token.file if token else "", token.line if token else 0, message))


@dataclass(slots=True)
class Helper:
    """Everything a directive parser may use; `d` is the directive's dispenser."""

    d: Dispenser
    run: AdaptState
    matcher_defs: dict[str, MatcherSet]
    site_keys: tuple[Token, ...] = ()
    site_files: tuple[str, ...] = ()  # every file the site block's tokens came from
    block_state: dict[str, Any] = field(default_factory=dict)

    @property
    def options(self) -> dict[str, Any]:
        return self.run.options

    def option(self, name: str) -> Any:
        return self.run.options.get(name)

    def warn(self, message: str) -> None:
        self.run.warn(message, self.d.token())

    def with_dispenser(self, d: Dispenser) -> Helper:
        return Helper(d, self.run, self.matcher_defs, self.site_keys, self.site_files, self.block_state)

    # --- matchers ----------------------------------------------------------------------

    def matcher_token(self) -> tuple[MatcherSet | None, bool]:
        """Look at the next argument: if it is a matcher token, consume it and return its set."""
        tok = self.d.tokens[self.d.pos + 1] if self.d.pos + 1 < len(self.d.tokens) else None
        if tok is None:
            return None, False
        matcher_set, is_matcher = matcher_set_from_token(tok, self.matcher_defs)
        if is_matcher:
            self.d.pos += 1
        return matcher_set, is_matcher

    def new_route(self, matcher_set: MatcherSet | None, handler: JSON) -> list[ConfigValue]:
        route: dict[str, JSON] = {}
        if matcher_set is not None:
            route["match"] = [matcher_set]
        route["handle"] = [handler]
        return [ConfigValue("route", route)]

    def group_routes(self, values: list[ConfigValue]) -> None:
        """Put the routes among `values` into one new group, if there are two or more."""
        routes = [v for v in values if v.cls == "route"]
        if len(routes) < 2:
            return
        name = self.run.next_group()
        for v in routes:
            v.value["group"] = name

    # --- nested blocks -----------------------------------------------------------------

    def parse_block_as_config(self, entries: tuple[Entry, ...] | None = None) -> list[ConfigValue]:
        """Parse the directive's block (or `entries`) as a site block's directives."""
        entries = self.d.block_entries() if entries is None else entries
        return parse_directives(entries, self.run, dict(self.matcher_defs), self.site_keys, self.site_files, dict(self.block_state))

    def parse_block_as_subroute(self, entries: tuple[Entry, ...] | None = None) -> JSON:
        """The directive's block as a `subroute` handler, sorted in the directive order."""
        return build_subroute(self.parse_block_as_config(entries), self.run, sort=True)


# --- matchers ----------------------------------------------------------------------------


def matcher_set_from_token(tok: Token, defs: dict[str, MatcherSet]) -> tuple[MatcherSet | None, bool]:
    """`*` (no matcher), `/path` (a path matcher) or `@name` (a named matcher)."""
    text = tok.text
    if text == "*":
        return None, True
    if text.startswith("/"):
        return {"path": [text]}, True
    if text.startswith("@"):
        if text not in defs:
            raise tok.error(f"unrecognized matcher name: {text}")
        return defs[text], True
    return None, False


@dataclass(frozen=True, slots=True)
class MatcherContext:
    """What a matcher's Rwsfile parser may need beyond its own lines."""

    name: str  # the named matcher's name without '@' (the default name of regexp captures)
    parse_set: Callable[[list[Dispenser]], MatcherSet]  # for `not`: lines -> one matcher set


def parse_matcher_definition(d: Dispenser, defs: dict[str, MatcherSet]) -> None:
    """`@name type args...`, `@name { type args... }` or `@name "<expression>"`."""
    name = d.name
    if name in defs:
        raise d.error(f"matcher is defined more than once: {name}")
    ctx_name = name[1:]
    if d.count_remaining_args() >= 1 and d.tokens[1].quoted:
        expr = Entry((d.tokens[1].__class__("expression", d.tokens[1].file, d.tokens[1].line), d.tokens[1]),
                     None, d.entry.file, d.entry.line)
        defs[name] = parse_matcher_lines([Dispenser(expr)], ctx_name)
        return
    lines: list[Dispenser] = []
    if len(d.tokens) > 1:
        lines.append(Dispenser(Entry(d.tokens[1:], d.entry.block, d.entry.file, d.entry.line, d.entry.imports)))
    elif d.has_block:
        lines.extend(d.block())
    else:
        raise d.arg_error()
    defs[name] = parse_matcher_lines(lines, ctx_name)


def parse_matcher_lines(lines: list[Dispenser], name: str) -> MatcherSet:
    """Lines each naming a matcher type -> one matcher set; lines of one type merge."""
    from rws import registry

    by_type: dict[str, list[Dispenser]] = {}
    for line in lines:
        by_type.setdefault(line.name, []).append(line)
    out: MatcherSet = {}
    ctx = MatcherContext(name, lambda inner: parse_matcher_lines(inner, name))
    for type_name, group in by_type.items():
        spec = registry.find(f"http.matchers.{type_name}")
        if spec is None or spec.rwsfile is None:
            known = registry.names_in("http.matchers")
            message = f"unrecognized matcher type {type_name!r}" + _did_you_mean(type_name, known)
            raise group[0].error(message, group[0].tokens[0])
        out[type_name] = spec.rwsfile(group, ctx)
    return out


def _did_you_mean(word: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- directives of a block ---------------------------------------------------------------


def directive_table() -> dict[str, Directive]:
    """Every Rwsfile directive, from the modules' declarations."""
    global _TABLE
    if _TABLE is None:
        from rws import registry

        table: dict[str, Directive] = {}
        for spec in registry.syntax_specs():
            for name, directive in spec.directives.items():
                table[name] = directive
        _TABLE = table
    return _TABLE


_TABLE: dict[str, Directive] | None = None


def parse_directives(
    entries: tuple[Entry, ...],
    run: AdaptState,
    matcher_defs: dict[str, MatcherSet],
    site_keys: tuple[Token, ...],
    site_files: tuple[str, ...],
    block_state: dict[str, Any],
    has_braces: bool = True,
) -> list[ConfigValue]:
    """Matcher definitions first, then each directive's parser; results tagged with their directive."""
    directives = []
    for entry in entries:
        d = Dispenser(entry)
        if d.name.startswith("@") and not d.token().quoted:
            parse_matcher_definition(d, matcher_defs)
        else:
            directives.append(d)
    table = directive_table()
    results: list[ConfigValue] = []
    for d in directives:
        directive = table.get(d.name)
        if directive is None:
            message = f"unrecognized directive: {d.name}" + _did_you_mean(d.name, list(table))
            if not has_braces:
                message += "; did you mean to define a second site? If so, use curly braces around each site"
            raise d.error(message, d.tokens[0])
        h = Helper(d, run, matcher_defs, site_keys, site_files, block_state)
        values = run_directive(directive, h)
        dir_name = order.normalize(d.name)
        for v in values:
            v.directive = dir_name
            results.append(v)
    return results


def run_directive(directive: Directive, h: Helper) -> list[ConfigValue]:
    if not directive.handler:
        return list(directive.parse(h))
    matcher_set, _ = h.matcher_token()
    handler = directive.parse(h)
    return h.new_route(matcher_set, handler)


# --- subroutes -------------------------------------------------------------------------


def build_subroute(values: list[ConfigValue], run: AdaptState, sort: bool) -> JSON:
    """Routes of one block -> a subroute handler: sorted, grouped and consolidated."""
    routes = [v for v in values if v.cls == "route"]
    if sort:
        for v in routes:
            if v.directive not in run.directive_order:
                raise RwsfileError(
                    "", 0,
                    f"directive '{v.directive}' is not an ordered HTTP handler, so it cannot be used here - "
                    "try placing within a route block or using the order global option",
                )
        routes = order.sort_routes(routes, run.directive_order)
    groups: dict[str, str] = {}
    for directive in sorted(order.MUTUALLY_EXCLUSIVE):
        count = sum(1 for v in routes if v.directive == directive)
        if count > 1 or directive == "rewrite":
            groups[directive] = run.next_group()
    out = []
    for v in routes:
        route = dict(v.value)
        if v.directive in order.MUTUALLY_EXCLUSIVE:
            group = groups.get(v.directive, "")
            if group:
                route["group"] = group
            else:
                route.pop("group", None)
        out.append(route)
    return {"handler": "subroute", "routes": consolidate_routes(out)} if out else {"handler": "subroute"}


def consolidate_routes(routes: list[JSON]) -> list[JSON]:
    """Merge neighbours with the same match, group and terminal into one route."""
    out: list[JSON] = []
    for route in routes:
        if out and _same_guard(out[-1], route):
            prev = dict(out[-1])
            prev["handle"] = [*prev.get("handle", []), *route.get("handle", [])]
            out[-1] = prev
        else:
            out.append(route)
    return out


def _same_guard(a: JSON, b: JSON) -> bool:
    return (
        a.get("match") == b.get("match")
        and bool(a.get("terminal")) == bool(b.get("terminal"))
        and a.get("group", "") == b.get("group", "")
    )


# --- placeholder shorthands --------------------------------------------------------------

SIMPLE_SHORTHANDS = {
    "{host}": "{http.request.host}",
    "{hostport}": "{http.request.hostport}",
    "{port}": "{http.request.port}",
    "{orig_method}": "{http.request.orig_method}",
    "{orig_uri}": "{http.request.orig_uri}",
    "{orig_path}": "{http.request.orig_uri.path}",
    "{orig_dir}": "{http.request.orig_uri.path.dir}",
    "{orig_file}": "{http.request.orig_uri.path.file}",
    "{orig_query}": "{http.request.orig_uri.query}",
    "{orig_?query}": "{http.request.orig_uri.prefixed_query}",
    "{method}": "{http.request.method}",
    "{uri}": "{http.request.uri}",
    "{%uri}": "{http.request.uri_escaped}",
    "{path}": "{http.request.uri.path}",
    "{%path}": "{http.request.uri.path_escaped}",
    "{dir}": "{http.request.uri.path.dir}",
    "{file}": "{http.request.uri.path.file}",
    "{query}": "{http.request.uri.query}",
    "{%query}": "{http.request.uri.query_escaped}",
    "{?query}": "{http.request.uri.prefixed_query}",
    "{remote}": "{http.request.remote}",
    "{remote_host}": "{http.request.remote.host}",
    "{remote_port}": "{http.request.remote.port}",
    "{scheme}": "{http.request.scheme}",
    "{uuid}": "{http.request.uuid}",
    "{tls_cipher}": "{http.request.tls.cipher_suite}",
    "{tls_version}": "{http.request.tls.version}",
    "{tls_client_fingerprint}": "{http.request.tls.client.fingerprint}",
    "{tls_client_issuer}": "{http.request.tls.client.issuer}",
    "{tls_client_serial}": "{http.request.tls.client.serial}",
    "{tls_client_subject}": "{http.request.tls.client.subject}",
    "{tls_client_certificate_pem}": "{http.request.tls.client.certificate_pem}",
    "{tls_client_certificate_der_base64}": "{http.request.tls.client.certificate_der_base64}",
    "{upstream_hostport}": "{http.reverse_proxy.upstream.hostport}",
    "{client_ip}": "{http.vars.client_ip}",
}
_SIMPLE = re.compile("|".join(re.escape(k) for k in SIMPLE_SHORTHANDS))
_PREFIXED = [
    (re.compile(r"\{header\.([\w-]*)\}", re.ASCII), r"{http.request.header.\1}"),
    (re.compile(r"\{cookie\.([\w-]*)\}", re.ASCII), r"{http.request.cookie.\1}"),
    (re.compile(r"\{labels\.([\w-]*)\}", re.ASCII), r"{http.request.host.labels.\1}"),
    (re.compile(r"\{path\.([\w-]*)\}", re.ASCII), r"{http.request.uri.path.\1}"),
    (re.compile(r"\{file\.([\w-]*)\}", re.ASCII), r"{http.request.uri.path.file.\1}"),
    (re.compile(r"\{query\.([\w-]*)\}", re.ASCII), r"{http.request.uri.query.\1}"),
    (re.compile(r"\{re\.([\w\-.]*)\}", re.ASCII), r"{http.regexp.\1}"),
    (re.compile(r"\{vars\.([\w-]*)\}", re.ASCII), r"{http.vars.\1}"),
    (re.compile(r"\{rp\.([\w\-.]*)\}", re.ASCII), r"{http.reverse_proxy.\1}"),
    (re.compile(r"\{resp\.([\w\-.]*)\}", re.ASCII), r"{http.intercept.\1}"),
    (re.compile(r"\{err\.([\w\-.]*)\}", re.ASCII), r"{http.error.\1}"),
    (re.compile(r"\{file_match\.([\w-]*)\}", re.ASCII), r"{http.matchers.file.\1}"),
]


def expand_shorthands(text: str) -> str:
    """Rewrite `{host}`, `{header.X}`, ... to their full placeholder names."""
    if "{" not in text:
        return text
    text = _SIMPLE.sub(lambda m: SIMPLE_SHORTHANDS[m.group(0)], text)
    for pattern, repl in _PREFIXED:
        text = pattern.sub(repl, text)
    return text


def expand_shorthands_in(entries: tuple[Entry, ...]) -> tuple[Entry, ...]:
    out = []
    for e in entries:
        tokens = tuple(t if "{" not in t.text else t.__class__(expand_shorthands(t.text), t.file, t.line, t.quote, t.imports)
                       for t in e.tokens)
        block = expand_shorthands_in(e.block) if e.block is not None else None
        out.append(Entry(tokens, block, e.file, e.line, e.imports))
    return tuple(out)
