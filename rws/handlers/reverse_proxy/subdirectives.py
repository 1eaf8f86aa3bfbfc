"""The subdirectives of `reverse_proxy` (and so of `forward_auth`): one reader per name.

Each reader takes the `ProxyBuilder` collecting the directive and the subdirective's
line, checks its arguments and sets the matching part of the handler's JSON, creating
the enclosing objects (`load_balancing`, `health_checks.active`, ...) on first use as
Caddy's Caddyfile reader does. `SUBDIRECTIVES` maps each name to its reader.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rws.config.values import parse_size
from rws.handlers.reverse_proxy.dial_addresses import AddressError, split_host_port
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
from rws.http.message import canonical_header_key
from rws.rwsfile.directives import parse_matcher_lines
from rws.rwsfile.dispenser import Dispenser
from rws.rwsfile.parse import Entry, Token

if TYPE_CHECKING:
    from rws.handlers.reverse_proxy.directive import ProxyBuilder

JSON = dict[str, Any]

# header_up values that repeat what the proxy sends anyway (Caddy warns about them)
_NEEDLESS_HEADER_UP = {
    "x-forwarded-for": ("{http.request.remote}", "{http.request.remote.host}"),
    "x-forwarded-proto": ("{http.request.scheme}",),
    "x-forwarded-host": ("{http.request.host}", "{http.request.hostport}"),
}


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
        entry["match"] = p.named_response_matcher(sub, args[0])
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


SUBDIRECTIVES: dict[str, Callable[[ProxyBuilder, Dispenser], None]] = {
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
