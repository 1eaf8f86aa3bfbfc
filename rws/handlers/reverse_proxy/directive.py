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

import copy
from typing import Any

from rws.handlers.headers import parse_response_matcher
from rws.handlers.reverse_proxy.dial_addresses import AddressError, parse_upstream
from rws.handlers.reverse_proxy.module_directives import one_arg
from rws.handlers.reverse_proxy.subdirectives import SUBDIRECTIVES
from rws.handlers.static_response import go_atoi, status_code_problem, weak_string
from rws.http.message import canonical_header_key
from rws.rwsfile.directives import Helper
from rws.rwsfile.dispenser import Dispenser

JSON = dict[str, Any]

# block_state key set while the routes of a `handle_response` block are parsed
IN_HANDLE_RESPONSE = "reverse_proxy.handle_response"

# subdirectives of Caddy 2.6 that were renamed since
_RENAMED = {
    "buffer_requests": "request_buffers",
    "buffer_responses": "response_buffers",
    "max_buffer_size": "request_buffers",
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
            read = SUBDIRECTIVES.get(sub.name)
            if read is None:
                renamed = _RENAMED.get(sub.name)
                if renamed:
                    raise sub.error(f"unrecognized subdirective {sub.name!r} (Caddy 2.6 syntax; use {renamed!r})", sub.tokens[0])
                raise sub.unknown_subdirective(tuple(SUBDIRECTIVES))
            read(self, sub)

    def _response_matcher(self, sub: Dispenser) -> None:
        if sub.name in self.response_matchers:
            raise sub.error(f"matcher is defined more than once: {sub.name}", sub.tokens[0])
        self.response_matchers[sub.name] = parse_response_matcher(sub)

    def named_response_matcher(self, sub: Dispenser, name: str) -> JSON:
        if not name.startswith("@"):
            raise sub.error("must use a named response matcher, starting with '@'")
        matcher = self.response_matchers.get(name)
        if matcher is None:
            raise sub.error(f"no named response matcher defined with name '{name[1:]}'")
        return copy.deepcopy(matcher)

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
            entry["match"] = self.named_response_matcher(sub, args[0])
        h = self.h
        nested = Helper(sub, h.run, h.matcher_defs, h.site_keys, h.site_files, {**h.block_state, IN_HANDLE_RESPONSE: True})
        routes = nested.parse_block_as_subroute().get("routes")
        if routes:
            entry["routes"] = routes
        self.handle_response.append(entry)
