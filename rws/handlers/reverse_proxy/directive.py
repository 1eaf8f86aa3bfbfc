"""The Rwsfile directives of the proxy: `reverse_proxy`, `forward_auth`, `copy_response`,
`copy_response_headers`.

    reverse_proxy [<matcher>] [<upstreams...>] {
        to <upstreams...>            dynamic <source> ...         transport <name> { ... }
        lb_policy <name> ...         lb_retries / lb_try_duration / lb_try_interval / lb_retry_match
        health_* ...                 fail_duration / max_fails / unhealthy_*
        flush_interval / request_buffers / response_buffers / stream_* / verbose_logs
        trusted_proxies / header_up / header_down / method / rewrite
        @name { status ...; header ... }
        replace_status [@name] <code>
        handle_response [@name] { <directives...> }
    }

`ProxyBuilder` reads these into the handler's JSON the way Caddy does, including its
defaults that depend on the whole directive (an `https://` upstream turns TLS on, `h2c://`
sets the HTTP versions, `handle_response` entries without a matcher move last).
`forward_auth` is a `reverse_proxy` preset for authentication gateways.
"""

from __future__ import annotations

import difflib
from typing import Any

from rws.handlers.headers import canonical_header_key, parse_response_matcher
from rws.handlers.reverse_proxy.dial_addresses import AddressError, parse_upstream
from rws.handlers.reverse_proxy.module_directives import (
    POLICY_NAMESPACE,
    SOURCE_NAMESPACE,
    duration_value,
    int_value,
    module_json,
    one_arg,
    set_nonzero,
)
from rws.handlers.static_response import go_atoi, status_code_problem, weak_string
from rws.http.matchers.ip import PRIVATE_RANGES, range_problem
from rws.rwsfile.directives import Helper, parse_matcher_lines
from rws.rwsfile.dispenser import Dispenser
from rws.rwsfile.parse import Entry, Token

JSON = dict[str, Any]

# block_state key set while the routes of a `handle_response` block are parsed
IN_HANDLE_RESPONSE = "reverse_proxy.handle_response"

# subdirectives of Caddy 2.6 that were renamed since
_RENAMED = {
    "buffer_requests": "request_buffers",
    "buffer_responses": "response_buffers",
    "max_buffer_size": "request_buffers",
}

_NEEDLESS_HEADER_UP = {
    "x-forwarded-for": ("{http.request.remote}", "{http.request.remote.host}"),
    "x-forwarded-proto": ("{http.request.scheme}",),
    "x-forwarded-host": ("{http.request.host}", "{http.request.hostport}"),
}


# --- the directives ----------------------------------------------------------------------


def parse_reverse_proxy(h: Helper) -> JSON:
    builder = ProxyBuilder(h)
    builder.read_upstream_args(h.d)
    builder.read_block(list(h.d.block()))
    return builder.finish()


def parse_forward_auth(h: Helper) -> JSON:
    """`forward_auth [<matcher>] <upstreams...> { uri <uri>; copy_headers <fields...>; <reverse_proxy subdirectives> }`

    The auth request is a GET to `uri` carrying `X-Forwarded-Method` and `X-Forwarded-Uri`;
    a 2xx answer lets the request continue with the listed headers copied onto it (and
    removed from it when the answer lacks them); any other answer is sent to the client.
    """
    d = h.d
    uri = ""
    copies: dict[str, str] = {}
    passthrough = []
    for sub in d.block():
        if sub.name == "uri":
            value = one_arg(sub)
            if uri:
                raise sub.error(f"cannot re-declare uri: {value}")
            uri = value
        elif sub.name == "copy_headers":
            fields = sub.remaining_args()
            for line in sub.block():
                fields.extend(t.text for t in line.tokens)
            for field in fields:
                source, arrow, target = field.partition(">")
                copies[source] = target.split(">")[0] if arrow else field
            if not copies:
                raise sub.arg_error()
        else:
            passthrough.append(sub)
    if not uri:
        raise d.error("the 'uri' subdirective is required", d.tokens[0])
    builder = ProxyBuilder(h)
    builder.request_ops["set"] = {"X-Forwarded-Method": ["{http.request.method}"], "X-Forwarded-Uri": ["{http.request.uri}"]}
    builder.handler["rewrite"] = {"method": "GET", "uri": uri}
    builder.handle_response.append({"match": {"status_code": [2]}, "routes": _copy_header_routes(copies)})
    builder.read_upstream_args(d)
    builder.read_block(passthrough)
    return builder.finish()


def _copy_header_routes(copies: dict[str, str]) -> list[JSON]:
    """Routes that replace each copied request header with the auth response's value."""
    routes: list[JSON] = [{"handle": [{"handler": "vars"}]}]
    for source in sorted(copies):
        target = canonical_header_key(copies[source])
        placeholder = "{http.reverse_proxy.header." + canonical_header_key(source) + "}"
        routes.append({"handle": [{"handler": "headers", "request": {"delete": [target]}}]})
        routes.append({
            "match": [{"not": [{"vars": {placeholder: [""]}}]}],
            "handle": [{"handler": "headers", "request": {"set": {target: [placeholder]}}}],
        })
    return routes


def parse_copy_response(h: Helper) -> JSON:
    """`copy_response [<matcher>] [<status>] { status <status> }`, inside `handle_response` only."""
    d = h.d
    _require_handle_response(h)
    handler: JSON = {"handler": "copy_response"}
    args = d.remaining_args()
    if len(args) > 1:
        raise d.arg_error()
    status = args[0] if args else ""
    if status:
        number = go_atoi(status)
        if number is None or number <= 0:
            raise d.error(f"bad status code {status!r}: expected a positive number")
        if d.has_block:
            raise d.error("copy_response takes its status as an argument or in its block, not both")
    for sub in d.block():
        if sub.name != "status":
            raise sub.unknown_subdirective(("status",))
        status = one_arg(sub)
        problem = status_code_problem(status)
        if problem:
            raise sub.error(problem)
    if status:
        handler["status_code"] = weak_string(status)
    return handler


def parse_copy_response_headers(h: Helper) -> JSON:
    """`copy_response_headers [<matcher>] { include <fields...>; exclude <fields...> }`"""
    d = h.d
    _require_handle_response(h)
    if d.next_arg():
        raise d.arg_error()
    handler: JSON = {"handler": "copy_response_headers"}
    for sub in d.block():
        if sub.name not in ("include", "exclude"):
            raise sub.unknown_subdirective(("include", "exclude"))
        handler.setdefault(sub.name, []).extend(sub.remaining_args())
        if not handler[sub.name]:
            del handler[sub.name]
    if "include" in handler and "exclude" in handler:
        raise d.error("cannot define both 'exclude' and 'include' lists at the same time", d.tokens[0])
    return handler


def _require_handle_response(h: Helper) -> None:
    if not h.block_state.get(IN_HANDLE_RESPONSE):
        raise h.d.error(f"{h.d.name} is only valid inside reverse_proxy's handle_response blocks", h.d.tokens[0])


# --- reading a reverse_proxy directive -----------------------------------------------------


class ProxyBuilder:
    """Collects one `reverse_proxy` directive into the handler's JSON (see `finish`)."""

    def __init__(self, h: Helper) -> None:
        self.h = h
        self.handler: JSON = {"handler": "reverse_proxy"}
        self.scheme = ""  # the scheme all upstreams share ("" until one names it)
        self.transport: JSON | None = None
        self.transport_name = ""
        self.transport_line: Dispenser | None = None
        self.request_ops: JSON = {}
        self.response_ops: JSON | None = None
        self.response_matchers: dict[str, JSON] = {}
        self.handle_response: list[JSON] = []
        self.handle_response_blocks: list[Dispenser] = []

    # upstreams

    def read_upstream_args(self, d: Dispenser) -> None:
        while d.next_arg():
            self.add_upstream(d, d.val())

    def add_upstream(self, d: Dispenser, address: str) -> None:
        try:
            upstream = parse_upstream(address)
        except AddressError as exc:
            raise d.error(f"parsing upstream {address!r}: {exc}") from None
        scheme = upstream.scheme
        if scheme in ("ws", "wss"):
            better = "http" if scheme == "ws" else "https"
            raise d.error(f"parsing upstream {address!r}: the scheme {scheme}:// is only supported in browsers; use {better}:// instead")
        if scheme not in ("", "http", "https", "h2c"):
            raise d.error(f"parsing upstream {address!r}: unsupported URL scheme {scheme}://")
        if self.scheme and scheme != self.scheme:
            raise d.error(
                f"parsing upstream {address!r}: for now, all proxy upstreams must use the same scheme "
                f"(transport protocol); expecting '{self.scheme}://' but got '{scheme}://'"
            )
        self.scheme = scheme
        self.handler.setdefault("upstreams", []).extend({"dial": dial} for dial in upstream.dials)

    # the block

    def read_block(self, lines: list[Dispenser]) -> None:
        for sub in lines:
            if sub.name.startswith("@"):
                self._response_matcher(sub)
                continue
            read = _SUBDIRECTIVES.get(sub.name)
            if read is None:
                renamed = _RENAMED.get(sub.name)
                if renamed:
                    raise sub.error(f"unrecognized subdirective {sub.name!r} (Caddy 2.6 syntax; use {renamed!r})", sub.tokens[0])
                raise sub.unknown_subdirective(tuple(_SUBDIRECTIVES))
            read(self, sub)

    def _response_matcher(self, sub: Dispenser) -> None:
        if sub.name in self.response_matchers:
            raise sub.error(f"matcher is defined more than once: {sub.name}", sub.tokens[0])
        self.response_matchers[sub.name] = parse_response_matcher(sub)

    def _named_response_matcher(self, sub: Dispenser, name: str) -> JSON:
        if not name.startswith("@"):
            raise sub.error("must use a named response matcher, starting with '@'")
        matcher = self.response_matchers.get(name)
        if matcher is None:
            raise sub.error(f"no named response matcher defined with name '{name[1:]}'")
        return matcher

    # parts of the handler, made on first use

    def load_balancing(self) -> JSON:
        lb: JSON = self.handler.setdefault("load_balancing", {})
        return lb

    def active_checks(self) -> JSON:
        active: JSON = self.handler.setdefault("health_checks", {}).setdefault("active", {})
        return active

    def passive_checks(self) -> JSON:
        passive: JSON = self.handler.setdefault("health_checks", {}).setdefault("passive", {})
        return passive

    # the end

    def finish(self) -> JSON:
        """Apply the defaults that depend on the whole directive and return the handler."""
        for sub in self.handle_response_blocks:
            self._finish_handle_response(sub)
        with_match = [r for r in self.handle_response if "match" in r]
        without = [r for r in self.handle_response if "match" not in r]
        if self.handle_response:
            self.handler["handle_response"] = with_match + without
        headers: JSON = {}
        if self.request_ops:
            headers["request"] = self.request_ops
        if self.response_ops is not None:
            headers["response"] = self.response_ops
        if headers:
            self.handler["headers"] = headers
        self._finish_transport()
        return self.handler

    def _finish_transport(self) -> None:
        transport, name = self.transport, self.transport_name
        if self.scheme in ("https", "h2c") and transport is None:
            transport, name = {}, "http"
        if transport is None:
            return
        where = self.transport_line or self.h.d
        if name == "http":
            if self.scheme == "https" and "tls" not in transport:
                transport["tls"] = {}
            host = (self.request_ops.get("set") or {}).get("Host")
            if "tls" in transport and host and host[0] == "{http.reverse_proxy.upstream.hostport}":
                self.h.run.warn(
                    "Unnecessary header_up Host: the reverse proxy's default behavior is to pass the configured "
                    "upstream address to the upstream when proxying to HTTPS", self.h.d.tokens[0])
            if self.scheme == "http" and "tls" in transport:
                raise where.error("upstream address scheme is HTTP but transport is configured for HTTP+TLS (HTTPS)", where.tokens[0])
            if self.scheme == "h2c":
                transport["versions"] = ["h2c", "2"]
        if transport:
            self.handler["transport"] = {"protocol": name, **transport}

    def _finish_handle_response(self, sub: Dispenser) -> None:
        args = sub.remaining_args()
        if len(args) > 1:
            raise sub.error(
                "too many arguments for 'handle_response': only a single response matcher name is allowed, "
                f"but got: [{' '.join(args)}]"
            )
        entry: JSON = {}
        if args:
            entry["match"] = self._named_response_matcher(sub, args[0])
        h = self.h
        nested = Helper(sub, h.run, h.matcher_defs, h.site_keys, h.site_files, {**h.block_state, IN_HANDLE_RESPONSE: True})
        routes = nested.parse_block_as_subroute().get("routes")
        if routes:
            entry["routes"] = routes
        self.handle_response.append(entry)


# --- the subdirectives ---------------------------------------------------------------------


def _to(p: ProxyBuilder, sub: Dispenser) -> None:
    if not sub.count_remaining_args():
        raise sub.arg_error()
    p.read_upstream_args(sub)


def _dynamic(p: ProxyBuilder, sub: Dispenser) -> None:
    if "dynamic_upstreams" in p.handler:
        raise sub.error("dynamic upstreams already specified", sub.tokens[0])
    p.handler["dynamic_upstreams"] = module_json(sub, SOURCE_NAMESPACE, "source", "dynamic upstream source")


def _lb_policy(p: ProxyBuilder, sub: Dispenser) -> None:
    if "selection_policy" in p.handler.get("load_balancing", {}):
        raise sub.error("load balancing selection policy already specified", sub.tokens[0])
    policy = module_json(sub, POLICY_NAMESPACE, "policy", "load balancing policy")
    p.load_balancing()["selection_policy"] = policy


def _lb_retries(p: ProxyBuilder, sub: Dispenser) -> None:
    set_nonzero(p.load_balancing(), "retries", int_value(sub, one_arg(sub), "lb_retries number"))


def _lb_try_duration(p: ProxyBuilder, sub: Dispenser) -> None:
    set_nonzero(p.load_balancing(), "try_duration", duration_value(sub, "duration value"))


def _lb_try_interval(p: ProxyBuilder, sub: Dispenser) -> None:
    set_nonzero(p.load_balancing(), "try_interval", duration_value(sub, "interval value"))


def _lb_retry_match(p: ProxyBuilder, sub: Dispenser) -> None:
    """`lb_retry_match <matcher> <args...>`, `` lb_retry_match `<expression>` `` or a block of matchers."""
    lines: list[Dispenser] = []
    tokens = sub.tokens[1:]
    while tokens and tokens[0].quoted:
        lines.append(_expression_line(sub, tokens[0]))
        tokens = tokens[1:]
    if tokens:
        lines.append(Dispenser(Entry(tokens, None, sub.entry.file, tokens[0].line, sub.entry.imports)))
    for line in sub.block():
        if line.tokens[0].quoted:
            lines.append(_expression_line(line, line.tokens[0]))
            lines.extend(_expression_line(line, t) for t in line.tokens[1:])
        else:
            lines.append(line)
    if not lines:
        raise sub.error("lb_retry_match needs a matcher on its line or in a block", sub.tokens[0])
    p.load_balancing().setdefault("retry_match", []).append(parse_matcher_lines(lines, ""))


def _expression_line(d: Dispenser, token: Token) -> Dispenser:
    name = Token("expression", token.file, token.line, "", token.imports)
    return Dispenser(Entry((name, token), None, d.entry.file, token.line, d.entry.imports))


def _active_text(key: str) -> Any:
    def read(p: ProxyBuilder, sub: Dispenser) -> None:
        set_nonzero(p.active_checks(), key, one_arg(sub))

    return read


def _health_path(p: ProxyBuilder, sub: Dispenser) -> None:
    set_nonzero(p.active_checks(), "path", one_arg(sub))
    p.h.run.warn("the 'health_path' subdirective is deprecated, please use 'health_uri' instead!", sub.tokens[0])


def _health_upstream(p: ProxyBuilder, sub: Dispenser) -> None:
    from rws.handlers.reverse_proxy.dial_addresses import split_host_port

    value = one_arg(sub)
    try:
        _, port = split_host_port(value)
    except AddressError as exc:
        raise sub.error(f"health_upstream is malformed {value!r}: {exc}") from None
    if go_atoi(port) is None:
        raise sub.error(f"bad port number {value!r}")
    p.active_checks()["upstream"] = value


def _health_port(p: ProxyBuilder, sub: Dispenser) -> None:
    text = one_arg(sub)
    active = p.active_checks()
    if active.get("upstream"):
        raise sub.error("the 'health_port' subdirective is ignored if 'health_upstream' is used!", sub.tokens[0])
    port = int_value(sub, text, "port number")
    if not 0 <= port <= 65535:
        raise sub.error(f"bad port number {text!r}: out of range")
    set_nonzero(active, "port", port)


def _health_headers(p: ProxyBuilder, sub: Dispenser) -> None:
    if sub.next_arg():
        raise sub.arg_error()
    headers: dict[str, list[str]] = {}
    for line in sub.block():
        headers.setdefault(line.name, []).extend(line.remaining_args() or [""])
    active = p.active_checks()
    set_nonzero(active, "headers", headers)


def _health_duration(key: str, what: str) -> Any:
    def read(p: ProxyBuilder, sub: Dispenser) -> None:
        set_nonzero(p.active_checks(), key, duration_value(sub, what))

    return read


def _health_status(p: ProxyBuilder, sub: Dispenser) -> None:
    text = one_arg(sub)
    set_nonzero(p.active_checks(), "expect_status", _status_class(sub, text))


def _status_class(sub: Dispenser, text: str) -> int:
    """`404` -> 404; `5xx` -> 5 (a class)."""
    number = go_atoi(text[:1] if len(text) == 3 and text.endswith("xx") else text)
    if number is None:
        raise sub.error(f"bad status value {text!r}")
    return number


def _health_follow_redirects(p: ProxyBuilder, sub: Dispenser) -> None:
    if sub.next_arg():
        raise sub.arg_error()
    p.active_checks()["follow_redirects"] = True


def _health_count(key: str, what: str) -> Any:
    def read(p: ProxyBuilder, sub: Dispenser) -> None:
        set_nonzero(p.active_checks(), key, int_value(sub, one_arg(sub), what))

    return read


def _passive_count(key: str, what: str) -> Any:
    def read(p: ProxyBuilder, sub: Dispenser) -> None:
        set_nonzero(p.passive_checks(), key, int_value(sub, one_arg(sub), what))

    return read


def _passive_duration(key: str) -> Any:
    def read(p: ProxyBuilder, sub: Dispenser) -> None:
        set_nonzero(p.passive_checks(), key, duration_value(sub, "duration value"))

    return read


def _unhealthy_status(p: ProxyBuilder, sub: Dispenser) -> None:
    args = sub.remaining_args()
    if not args:
        raise sub.arg_error()
    passive = p.passive_checks()
    passive.setdefault("unhealthy_status", []).extend(_status_class(sub, arg) for arg in args)


def _handler_duration(key: str) -> Any:
    """`flush_interval`, `stream_timeout`, `stream_close_delay`: a duration, or a bare integer of nanoseconds."""

    def read(p: ProxyBuilder, sub: Dispenser) -> None:
        text = sub.peek() or ""
        number = go_atoi(text)
        if number is not None and sub.count_remaining_args() == 1:
            sub.next_arg()
            set_nonzero(p.handler, key, number)
            return
        set_nonzero(p.handler, key, duration_value(sub, "duration value"))

    return read


def _buffer_size(key: str) -> Any:
    """`request_buffers`, `response_buffers`, `stream_buffer_size`: a byte size or `unlimited`."""

    def read(p: ProxyBuilder, sub: Dispenser) -> None:
        from rws.config.values import parse_size

        text = one_arg(sub)
        if text == "unlimited":
            size = -1
        else:
            try:
                size = parse_size(text)
            except ValueError:
                raise sub.error(f"invalid byte size {text!r}: expected a size such as 4KB or 1MiB, or unlimited") from None
        set_nonzero(p.handler, key, size)

    return read


def _trusted_proxies(p: ProxyBuilder, sub: Dispenser) -> None:
    args = sub.remaining_args()
    if not args:
        raise sub.arg_error()
    ranges = p.handler.setdefault("trusted_proxies", [])
    for arg in args:
        if arg == "private_ranges":
            ranges.extend(PRIVATE_RANGES)
            continue
        problem = range_problem(arg)
        if problem:
            raise sub.error(problem)
        ranges.append(arg)


def _header_up(p: ProxyBuilder, sub: Dispenser) -> None:
    args = sub.remaining_args()
    if len(args) == 2:
        needless = _NEEDLESS_HEADER_UP.get(args[0].lower(), ())
        if args[1] in needless:
            p.h.run.warn(
                f"Unnecessary header_up {canonical_header_key(args[0])}: the reverse proxy's default behavior "
                "is to pass headers to the upstream", sub.tokens[0])
    _header_op(sub, p.request_ops, args)


def _header_down(p: ProxyBuilder, sub: Dispenser) -> None:
    if p.response_ops is None:
        p.response_ops = {}
    _header_op(sub, p.response_ops, sub.remaining_args())


def _header_op(sub: Dispenser, ops: JSON, args: list[str]) -> None:
    """`[+|-]<field> [<value|regexp> [<replacement>]]` into header operations (`add`, `set`, `delete`, `replace`)."""
    if not 1 <= len(args) <= 3:
        raise sub.arg_error()
    field, value = args[0], args[1] if len(args) > 1 else ""
    if field.startswith("+"):
        ops.setdefault("add", {}).setdefault(canonical_header_key(field[1:]), []).append(value)
    elif field.startswith("-"):
        ops.setdefault("delete", []).append(field[1:])
    elif field.startswith("?"):
        raise sub.error(f"{field}: the default header modifier ('?') can only be used on response headers; "
                        "for conditional manipulation of request headers, use matchers")
    elif len(args) == 3:
        replacement = {k: v for k, v in (("search_regexp", value), ("replace", args[2])) if v}
        ops.setdefault("replace", {}).setdefault(field.lstrip("+-?>"), []).append(replacement)
    else:
        ops.setdefault("set", {})[canonical_header_key(field.removeprefix(">"))] = [value]


def _rewrite_part(key: str) -> Any:
    def read(p: ProxyBuilder, sub: Dispenser) -> None:
        set_nonzero(p.handler.setdefault("rewrite", {}), key, one_arg(sub))

    return read


def _transport(p: ProxyBuilder, sub: Dispenser) -> None:
    from rws import registry

    if p.transport is not None:
        raise sub.error("transport already specified", sub.tokens[0])
    name = sub.peek()
    if name == "fastcgi":
        raise sub.error("the fastcgi transport is not supported by rws")
    namespace = "http.reverse_proxy.transport"
    if name is not None and (registry.find(f"{namespace}.{name}") is None):
        known = registry.names_in(namespace)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(known)}"
        sub.next_arg()
        raise sub.error(f"unrecognized transport {name!r}{hint}")
    transport = module_json(sub, namespace, "protocol", "transport")
    p.transport_name = transport.pop("protocol")
    p.transport = transport
    p.transport_line = sub


def _handle_response(p: ProxyBuilder, sub: Dispenser) -> None:
    p.handle_response_blocks.append(sub)  # read in finish(), once every response matcher is known


def _replace_status(p: ProxyBuilder, sub: Dispenser) -> None:
    args = sub.remaining_args()
    if len(args) not in (1, 2):
        raise sub.error("must have one or two arguments: an optional response matcher, and a status code")
    entry: JSON = {}
    if len(args) == 2:
        entry["match"] = p._named_response_matcher(sub, args[0])
    problem = status_code_problem(args[-1])
    if problem:
        raise sub.error(problem)
    set_nonzero(entry, "status_code", weak_string(args[-1]))
    if sub.has_block:
        raise sub.error("cannot define routes for 'replace_status', use 'handle_response' instead.")
    p.handle_response.append(entry)


def _verbose_logs(p: ProxyBuilder, sub: Dispenser) -> None:
    if sub.next_arg():
        raise sub.arg_error()
    if p.handler.get("verbose_logs"):
        raise sub.error("verbose_logs already specified", sub.tokens[0])
    p.handler["verbose_logs"] = True


_SUBDIRECTIVES: dict[str, Any] = {
    "to": _to,
    "dynamic": _dynamic,
    "lb_policy": _lb_policy,
    "lb_retries": _lb_retries,
    "lb_try_duration": _lb_try_duration,
    "lb_try_interval": _lb_try_interval,
    "lb_retry_match": _lb_retry_match,
    "health_uri": _active_text("uri"),
    "health_path": _health_path,
    "health_upstream": _health_upstream,
    "health_port": _health_port,
    "health_headers": _health_headers,
    "health_method": _active_text("method"),
    "health_request_body": _active_text("body"),
    "health_interval": _health_duration("interval", "interval value"),
    "health_timeout": _health_duration("timeout", "timeout value"),
    "health_status": _health_status,
    "health_body": _active_text("expect_body"),
    "health_follow_redirects": _health_follow_redirects,
    "health_passes": _health_count("passes", "passes count"),
    "health_fails": _health_count("fails", "fails count"),
    "max_fails": _passive_count("max_fails", "maximum fail count"),
    "fail_duration": _passive_duration("fail_duration"),
    "unhealthy_request_count": _passive_count("unhealthy_request_count", "maximum connection count"),
    "unhealthy_status": _unhealthy_status,
    "unhealthy_latency": _passive_duration("unhealthy_latency"),
    "flush_interval": _handler_duration("flush_interval"),
    "request_buffers": _buffer_size("request_buffers"),
    "response_buffers": _buffer_size("response_buffers"),
    "stream_buffer_size": _buffer_size("stream_buffer_size"),
    "stream_timeout": _handler_duration("stream_timeout"),
    "stream_close_delay": _handler_duration("stream_close_delay"),
    "trusted_proxies": _trusted_proxies,
    "header_up": _header_up,
    "header_down": _header_down,
    "method": _rewrite_part("method"),
    "rewrite": _rewrite_part("uri"),
    "transport": _transport,
    "handle_response": _handle_response,
    "replace_status": _replace_status,
    "verbose_logs": _verbose_logs,
}
