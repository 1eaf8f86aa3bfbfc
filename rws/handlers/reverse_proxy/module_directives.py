"""The Rwsfile forms of the proxy's guest modules: selection policies and upstream sources.

`lb_policy cookie lb s3cret { fallback first }` and `dynamic a example.com 8080 { ... }`
name a module and then give its options. `module_json` finds the module in the registry
and calls its parser with a dispenser that starts at the module's name; each parser
returns the module's JSON without its inline key, which `module_json` adds.
"""

from __future__ import annotations

import difflib
from typing import Any

from rws.handlers.static_response import go_atoi
from rws.rwsfile.dispenser import Dispenser
from rws.rwsfile.parse import Entry

JSON = dict[str, Any]


# --- shared helpers ------------------------------------------------------------------------


def module_json(d: Dispenser, namespace: str, inline_key: str, what: str) -> JSON:
    """The module named by `d`'s next argument, parsed from the rest of the line and the block."""
    from rws import registry

    if not d.next_arg():
        raise d.arg_error()
    name = d.val()
    spec = registry.find(f"{namespace}.{name}")
    if spec is None or spec.rwsfile is None:
        known = registry.names_in(namespace)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(known)}"
        raise d.error(f"unrecognized {what} {name!r}{hint}")
    entry = d.entry
    sub = Dispenser(Entry(d.tokens[d.pos:], entry.block, entry.file, entry.line, entry.imports))
    d.pos = len(d.tokens) - 1
    return {inline_key: name, **spec.rwsfile(sub)}


def one_arg(d: Dispenser) -> str:
    """The single argument after the current token."""
    if d.count_remaining_args() != 1:
        raise d.arg_error()
    d.next_arg()
    return d.val()


def int_value(d: Dispenser, text: str, what: str) -> int:
    number = go_atoi(text)
    if number is None:
        raise d.error(f"bad {what} {text!r}: expected an integer")
    return number


def duration_value(d: Dispenser, what: str) -> int:
    """The single argument as integer nanoseconds (`5s`, `1m30s`, `250ms`, `1d`)."""
    from rws.config.values import duration_ns

    text = one_arg(d)
    try:
        return duration_ns(text)
    except ValueError:
        raise d.error(f"bad {what} {text!r}: expected a duration such as 10s or 1m30s") from None


def set_nonzero(obj: JSON, key: str, value: Any) -> None:
    """Set `key`, or drop it when `value` is a zero value (Go's omitempty)."""
    if value:
        obj[key] = value
    else:
        obj.pop(key, None)


def no_block(d: Dispenser, what: str) -> None:
    if d.has_block:
        first = next(iter(d.block()))
        raise first.error(f"{what} takes no options block; unexpected {first.name!r}", first.tokens[0])


def unknown_option(sub: Dispenser, known: tuple[str, ...], what: str) -> Exception:
    close = difflib.get_close_matches(sub.name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return sub.error(f"unrecognized {what} option {sub.name!r}{hint}", sub.tokens[0])


def resolver_addresses(sub: Dispenser) -> JSON:
    addresses = sub.remaining_args()
    if not addresses:
        raise sub.error("must specify at least one resolver address")
    return {"addresses": addresses}


# --- selection policies --------------------------------------------------------------------

POLICY_NAMESPACE = "http.reverse_proxy.selection_policies"


def parse_no_options(d: Dispenser) -> JSON:
    """`random`, `least_conn`, `round_robin`, `first`, `ip_hash`, `client_ip_hash`, `uri_hash`."""
    if d.next_arg():
        raise d.arg_error()
    no_block(d, f"policy {d.name!r}")
    return {}


def parse_random_choose(d: Dispenser) -> JSON:
    """`random_choose <n>`: pick n upstreams at random, then the least loaded of them."""
    text = one_arg(d)
    choose = int_value(d, text, "choice value")
    if choose != 0 and choose < 2:
        raise d.error(f"bad choice value {text!r}: choose must be at least 2")
    no_block(d, "policy 'random_choose'")
    out: JSON = {}
    set_nonzero(out, "choose", choose)
    return out


def parse_weighted_round_robin(d: Dispenser) -> JSON:
    """`weighted_round_robin <weights...>`: one weight per upstream, in order."""
    args = d.remaining_args()
    if not args:
        raise d.arg_error()
    weights = []
    for text in args:
        weight = int_value(d, text, "weight value")
        if weight < 0:
            raise d.error(f"invalid weight value {text!r}: weight should be non-negative")
        weights.append(weight)
    if sum(weights) <= 0:
        raise d.error("weighted_round_robin requires at least one upstream with a positive weight")
    no_block(d, "policy 'weighted_round_robin'")
    return {"weights": weights}


def _hash_policy(d: Dispenser, key: str) -> JSON:
    out: JSON = {}
    set_nonzero(out, key, one_arg(d))
    for sub in d.block():
        if sub.name == "fallback":
            _fallback(sub, out)
        else:
            raise unknown_option(sub, ("fallback",), f"{d.name} policy")
    return out


def _fallback(sub: Dispenser, out: JSON) -> None:
    if "fallback" in out:
        raise sub.error("fallback selection policy already specified", sub.tokens[0])
    out["fallback"] = module_json(sub, POLICY_NAMESPACE, "policy", "fallback load balancing policy")


def parse_query_hash(d: Dispenser) -> JSON:
    """`query <key> { fallback <policy> }`: hash the query value of key."""
    return _hash_policy(d, "key")


def parse_header_hash(d: Dispenser) -> JSON:
    """`header <field> { fallback <policy> }`: hash the header value of field."""
    return _hash_policy(d, "field")


def _positional(d: Dispenser, *keys: str) -> JSON:
    """Up to len(keys) optional arguments, each stored under its key (when not empty)."""
    args = d.remaining_args()
    if len(args) > len(keys):
        raise d.arg_error()
    out: JSON = {}
    for key, value in zip(keys, args):
        set_nonzero(out, key, value)
    return out


def parse_cookie_hash(d: Dispenser) -> JSON:
    """`cookie [<name> [<secret>]] { fallback <policy>; max_age <duration> }`: sticky sessions."""
    out = _positional(d, "name", "secret")
    for sub in d.block():
        if sub.name == "fallback":
            _fallback(sub, out)
        elif sub.name == "max_age":
            if "max_age" in out:
                raise sub.error("cookie max_age already specified", sub.tokens[0])
            max_age = duration_value(sub, "max_age duration")
            if max_age <= 0:
                raise sub.error(f"invalid duration {sub.val()!r}: max_age should be non-zero and positive")
            out["max_age"] = max_age
        else:
            raise unknown_option(sub, ("fallback", "max_age"), "cookie policy")
    return out


# --- dynamic upstream sources --------------------------------------------------------------

SOURCE_NAMESPACE = "http.reverse_proxy.upstreams"


def _lookup_option(sub: Dispenser, out: JSON) -> bool:
    """The options `a` and `srv` share; False if `sub` is none of them."""
    name = sub.name
    if name == "refresh":
        set_nonzero(out, "refresh", duration_value(sub, "refresh interval"))
    elif name == "resolvers":
        out["resolver"] = resolver_addresses(sub)
    elif name == "dial_timeout":
        set_nonzero(out, "dial_timeout", duration_value(sub, "timeout value"))
    elif name == "dial_fallback_delay":
        set_nonzero(out, "dial_fallback_delay", duration_value(sub, "delay value"))
    else:
        return False
    return True


def _once(sub: Dispenser, out: JSON, key: str, message: str) -> None:
    value = one_arg(sub)
    if out.get(key):
        raise sub.error(message)
    set_nonzero(out, key, value)


def parse_a_upstreams(d: Dispenser) -> JSON:
    """`a [<name> [<port>]] { name; port; refresh; resolvers; dial_timeout; dial_fallback_delay; versions }`"""
    out = _positional(d, "name", "port")
    known = ("name", "port", "refresh", "resolvers", "dial_timeout", "dial_fallback_delay", "versions")
    for sub in d.block():
        if sub.name == "name":
            _once(sub, out, "name", "a name has already been specified")
        elif sub.name == "port":
            _once(sub, out, "port", "a port has already been specified")
        elif sub.name == "versions":
            versions = sub.remaining_args()
            if not versions:
                raise sub.error("must specify at least one version")
            chosen = out.setdefault("versions", {})
            for version in versions:
                if version not in ("ipv4", "ipv6"):
                    raise sub.error(f"unsupported version: {version!r}; expected ipv4 or ipv6")
                chosen[version] = True
        elif not _lookup_option(sub, out):
            raise unknown_option(sub, known, "a")
    return out


def parse_srv_upstreams(d: Dispenser) -> JSON:
    """`srv [<name>] { service; proto; name; refresh; resolvers; dial_timeout; dial_fallback_delay; grace_period }`"""
    out = _positional(d, "name")
    known = ("service", "proto", "name", "refresh", "resolvers", "dial_timeout", "dial_fallback_delay", "grace_period")
    for sub in d.block():
        if sub.name in ("service", "proto", "name"):
            _once(sub, out, sub.name, f"srv {sub.name} has already been specified")
        elif sub.name == "grace_period":
            set_nonzero(out, "grace_period", duration_value(sub, "grace period value"))
        elif not _lookup_option(sub, out):
            raise unknown_option(sub, known, "srv")
    return out


def parse_file_upstreams(d: Dispenser) -> JSON:
    """`file [<path>] { path; refresh }`: rws's own source, one upstream address per line of a file."""
    out = _positional(d, "path")
    for sub in d.block():
        if sub.name == "path":
            _once(sub, out, "path", "a file path has already been specified")
        elif sub.name == "refresh":
            set_nonzero(out, "refresh", duration_value(sub, "refresh interval"))
        else:
            raise unknown_option(sub, ("path", "refresh"), "file")
    if not out.get("path"):
        raise d.error("a file path is required: dynamic file <path>", d.tokens[0])
    return out


def parse_multi_upstreams(d: Dispenser) -> JSON:
    """`multi { <source> [<args...>] [{...}] ... }`: several sources, results concatenated."""
    if d.next_arg():
        raise d.arg_error()
    sources = []
    for sub in d.block():
        sources.append(_source_line(sub))
    out: JSON = {}
    if sources:
        out["sources"] = sources
    return out


def _source_line(sub: Dispenser) -> JSON:
    """A line of `multi`'s block, whose first token names the source module."""
    from rws import registry

    name = sub.name
    spec = registry.find(f"{SOURCE_NAMESPACE}.{name}")
    if spec is None or spec.rwsfile is None:
        known = registry.names_in(SOURCE_NAMESPACE)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(known)}"
        raise sub.error(f"unrecognized upstream source {name!r}{hint}", sub.tokens[0])
    return {"source": name, **spec.rwsfile(sub)}
