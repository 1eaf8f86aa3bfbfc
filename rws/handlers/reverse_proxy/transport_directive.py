"""The Rwsfile form of the `http` transport: `transport http { <options...> }`.

Each option sets one field of the transport's JSON (`HttpTransportConfig`); options that
configure TLS create the `tls` object, which by its presence turns TLS on, and keep-alive
options create `keep_alive`. Values are checked here so mistakes point at their line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rws.config.values import parse_size
from rws.handlers.reverse_proxy.module_directives import (
    duration_value,
    int_value,
    one_arg,
    resolver_addresses,
    set_nonzero,
    unknown_option,
)
from rws.handlers.reverse_proxy.transport_config import (
    PROXY_PROTOCOL_VERSIONS,
    RENEGOTIATION_LEVELS,
    http_versions_problem,
    local_address_problem,
)
from rws.rwsfile.dispenser import Dispenser

JSON = dict[str, Any]


def parse_http_transport(d: Dispenser) -> JSON:
    """`http { ... }` -> the transport's JSON without its `protocol` key; {} when nothing is set."""
    if d.next_arg():
        raise d.arg_error()
    out: JSON = {}
    for sub in d.block():
        option = _OPTIONS.get(sub.name)
        if option is None:
            raise unknown_option(sub, tuple(_OPTIONS), "http transport")
        option(sub, out)
    return out


# --- plain fields --------------------------------------------------------------------------


def _size(what: str, key: str) -> Callable[[Dispenser, JSON], None]:
    def option(sub: Dispenser, out: JSON) -> None:
        text = one_arg(sub)
        try:
            set_nonzero(out, key, parse_size(text))
        except ValueError:
            raise sub.error(f"invalid {what} size {text!r}: expected a byte size such as 4KiB or 10MB") from None

    return option


def _duration(what: str, key: str) -> Callable[[Dispenser, JSON], None]:
    def option(sub: Dispenser, out: JSON) -> None:
        set_nonzero(out, key, duration_value(sub, what))

    return option


def _proxy_protocol(sub: Dispenser, out: JSON) -> None:
    version = one_arg(sub)
    if version not in PROXY_PROTOCOL_VERSIONS:
        raise sub.error(f"invalid proxy protocol version {version!r}: expected v1 or v2")
    out["proxy_protocol"] = version


def _forward_proxy_url(sub: Dispenser, out: JSON) -> None:
    url = one_arg(sub)
    out["network_proxy"] = {"from": "url", "url": url}


def _network_proxy(sub: Dispenser, out: JSON) -> None:
    if not sub.next_arg():
        raise sub.arg_error()
    source = sub.val()
    if source == "url":
        out["network_proxy"] = {"from": "url", "url": one_arg(sub)}
    elif source == "none":
        if sub.next_arg():
            raise sub.arg_error()
        out["network_proxy"] = {"from": "none"}
    else:
        raise sub.error(f"unrecognized network proxy source {source!r}: expected url or none")
    if sub.has_block:
        raise sub.error(f"network_proxy {source} takes no block")


def _resolvers(sub: Dispenser, out: JSON) -> None:
    out["resolver"] = resolver_addresses(sub)


def _versions(sub: Dispenser, out: JSON) -> None:
    versions = sub.remaining_args()
    if not versions:
        raise sub.arg_error()
    problem = http_versions_problem(versions)
    if problem:
        raise sub.error(problem)
    out["versions"] = versions


def _compression(sub: Dispenser, out: JSON) -> None:
    value = one_arg(sub)
    if value == "off":
        out["compression"] = False
    elif value != "on":
        raise sub.error(f"bad compression value {value!r}: expected off")


def _max_conns_per_host(sub: Dispenser, out: JSON) -> None:
    set_nonzero(out, "max_conns_per_host", int_value(sub, one_arg(sub), "integer value"))


def _local_address(sub: Dispenser, out: JSON) -> None:
    address = one_arg(sub)
    problem = local_address_problem(address)
    if problem:
        raise sub.error(f"bad local_address {address!r}: {problem}")
    set_nonzero(out, "local_address", address)


# --- tls -----------------------------------------------------------------------------------


def _tls(out: JSON) -> JSON:
    tls: JSON = out.setdefault("tls", {})
    return tls


def _tls_on(sub: Dispenser, out: JSON) -> None:
    if sub.next_arg():
        raise sub.arg_error()
    _tls(out)


def _tls_client_auth(sub: Dispenser, out: JSON) -> None:
    args = sub.remaining_args()
    tls = _tls(out)
    if len(args) == 1:
        set_nonzero(tls, "client_certificate_automate", args[0])
    elif len(args) == 2:
        set_nonzero(tls, "client_certificate_file", args[0])
        set_nonzero(tls, "client_certificate_key_file", args[1])
    else:
        raise sub.arg_error()


def _tls_insecure_skip_verify(sub: Dispenser, out: JSON) -> None:
    if sub.next_arg():
        raise sub.arg_error()
    _tls(out)["insecure_skip_verify"] = True


def _tls_curves(sub: Dispenser, out: JSON) -> None:
    curves = sub.remaining_args()
    if not curves:
        raise sub.arg_error()
    _tls(out)["curves"] = curves


def _tls_timeout(sub: Dispenser, out: JSON) -> None:
    timeout = duration_value(sub, "timeout value")
    set_nonzero(_tls(out), "handshake_timeout", timeout)


def _tls_trusted_ca_certs(sub: Dispenser, out: JSON) -> None:
    files = sub.remaining_args()
    if not files:
        raise sub.arg_error()
    tls = _tls(out)
    if "ca" in tls:
        raise sub.error("cannot specify both 'tls_trust_pool' and 'tls_trusted_ca_certs'")
    tls["root_ca_pem_files"] = files


def _tls_server_name(sub: Dispenser, out: JSON) -> None:
    set_nonzero(_tls(out), "server_name", one_arg(sub))


def _tls_renegotiation(sub: Dispenser, out: JSON) -> None:
    level = one_arg(sub)
    if level not in RENEGOTIATION_LEVELS:
        raise sub.error(f"bad tls_renegotiation value {level!r}: expected one of {', '.join(RENEGOTIATION_LEVELS)}")
    _tls(out)["renegotiation"] = level


def _tls_except_ports(sub: Dispenser, out: JSON) -> None:
    ports = sub.remaining_args()
    if not ports:
        raise sub.arg_error()
    _tls(out)["except_ports"] = ports


def _tls_trust_pool(sub: Dispenser, out: JSON) -> None:
    """`tls_trust_pool file [<pem_files...>] { pem_file <files...> }` or `inline { trust_der <base64...> }`."""
    if not sub.next_arg():
        raise sub.arg_error()
    source = sub.val()
    if source == "file":
        files = sub.remaining_args()
        for line in sub.block():
            if line.name != "pem_file":
                raise unknown_option(line, ("pem_file",), "file trust pool")
            files.extend(line.remaining_args())
        pool: JSON = {"provider": "file", "pem_files": files}
    elif source == "inline":
        if sub.next_arg():
            raise sub.arg_error()
        files = []
        for line in sub.block():
            if line.name != "trust_der":
                raise unknown_option(line, ("trust_der",), "inline trust pool")
            files.extend(line.remaining_args())
        pool = {"provider": "inline", "trusted_ca_certs": files}
    else:
        raise sub.error(f"unsupported trust pool source {source!r}: rws supports file and inline")
    if not files:
        raise sub.error("no certificates specified")
    tls = _tls(out)
    if tls.get("root_ca_pem_files"):
        raise sub.error("cannot specify both 'tls_trust_pool' and 'tls_trusted_ca_certs'")
    if "ca" in tls:
        raise sub.error("cannot specify 'tls_trust_pool' twice")
    tls["ca"] = pool


# --- keep-alive ----------------------------------------------------------------------------


def _keepalive(sub: Dispenser, out: JSON) -> None:
    if sub.count_remaining_args() == 1 and sub.peek() == "off":
        sub.next_arg()
        out.setdefault("keep_alive", {})["enabled"] = False
        return
    timeout = duration_value(sub, "duration value")
    set_nonzero(out.setdefault("keep_alive", {}), "idle_timeout", timeout)


def _keepalive_interval(sub: Dispenser, out: JSON) -> None:
    interval = duration_value(sub, "interval value")
    set_nonzero(out.setdefault("keep_alive", {}), "probe_interval", interval)


def _keepalive_count(key: str) -> Callable[[Dispenser, JSON], None]:
    def option(sub: Dispenser, out: JSON) -> None:
        number = int_value(sub, one_arg(sub), "integer value")
        set_nonzero(out.setdefault("keep_alive", {}), key, number)

    return option


_OPTIONS: dict[str, Callable[[Dispenser, JSON], None]] = {
    "read_buffer": _size("read buffer", "read_buffer_size"),
    "write_buffer": _size("write buffer", "write_buffer_size"),
    "read_timeout": _duration("read timeout duration", "read_timeout"),
    "write_timeout": _duration("write timeout duration", "write_timeout"),
    "max_response_header": _size("max response header", "max_response_header_size"),
    "proxy_protocol": _proxy_protocol,
    "forward_proxy_url": _forward_proxy_url,
    "network_proxy": _network_proxy,
    "dial_timeout": _duration("timeout value", "dial_timeout"),
    "dial_fallback_delay": _duration("fallback delay value", "dial_fallback_delay"),
    "response_header_timeout": _duration("timeout value", "response_header_timeout"),
    "expect_continue_timeout": _duration("timeout value", "expect_continue_timeout"),
    "resolvers": _resolvers,
    "tls": _tls_on,
    "tls_client_auth": _tls_client_auth,
    "tls_insecure_skip_verify": _tls_insecure_skip_verify,
    "tls_curves": _tls_curves,
    "tls_timeout": _tls_timeout,
    "tls_trusted_ca_certs": _tls_trusted_ca_certs,
    "tls_trust_pool": _tls_trust_pool,
    "tls_server_name": _tls_server_name,
    "tls_renegotiation": _tls_renegotiation,
    "tls_except_ports": _tls_except_ports,
    "keepalive": _keepalive,
    "keepalive_interval": _keepalive_interval,
    "keepalive_idle_conns": _keepalive_count("max_idle_conns"),
    "keepalive_idle_conns_per_host": _keepalive_count("max_idle_conns_per_host"),
    "versions": _versions,
    "compression": _compression,
    "max_conns_per_host": _max_conns_per_host,
    "local_address": _local_address,
}
