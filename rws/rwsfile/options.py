"""Global options that configure the process and the HTTP app (the rest belong to their
modules: TLS options to rws.tls, `log` to rws.observability); and `servers { ... }`.

A parser takes the option's dispenser and its previous value, and returns the value kept
in the adapt run's options under the option's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from rws.registry import ModuleSpec
from rws.rwsfile.directives import ConfigValue, Directive, Helper
from rws.rwsfile.dispenser import Dispenser


@dataclass(frozen=True, slots=True)
class Bind:
    """The value of `bind` and `default_bind`: listener hosts and their protocols."""

    addresses: tuple[str, ...]
    protocols: tuple[str, ...] = ()


def _true(d: Dispenser, _existing: Any) -> Any:
    return True


def _port(d: Dispenser, _existing: Any) -> Any:
    (value,) = d.args_exactly(1)
    if not value.lstrip("+-").isdecimal():
        raise d.error(f"converting port '{value}' to integer value: invalid syntax")
    return int(value)


def _duration(d: Dispenser, _existing: Any) -> Any:
    value = d.duration_arg()
    if d.next_arg():
        raise d.arg_error()
    return value


def _single_string(d: Dispenser, _existing: Any) -> Any:
    (value,) = d.args_exactly(1)
    return value


def parse_bind(d: Dispenser, default_empty: bool) -> Bind:
    addresses = d.remaining_args()
    if not addresses and default_empty:
        addresses = [""]
    protocols: tuple[str, ...] = ()
    for sub in d.block():
        if sub.name != "protocols":
            raise sub.error(f"unknown subdirective: {sub.name}", sub.tokens[0])
        protocols = tuple(sub.remaining_args())
        if not protocols:
            raise sub.error("protocols requires one or more arguments")
    return Bind(tuple(addresses), protocols)


def _default_bind(d: Dispenser, existing: Any) -> Any:
    return [*(existing or []), ConfigValue("bind", parse_bind(d, default_empty=True))]


def _order(d: Dispenser, existing: Any) -> Any:
    """`order <dir> first|last|before <d>|after <d>`: a new directive order for the whole file."""
    from rws.rwsfile.directives import directive_table
    from rws.rwsfile.order import STANDARD_ORDER

    current = list(existing or STANDARD_ORDER)
    if not d.next_arg():
        raise d.arg_error()
    name = d.val()
    if name not in directive_table():
        raise d.error(f"{name} is not a registered directive")
    if not d.next_arg():
        raise d.arg_error()
    position = d.val()
    new = [x for x in current if x != name]
    if position in ("first", "last"):
        if d.next_arg():
            raise d.arg_error()
        return [name, *new] if position == "first" else [*new, name]
    if position not in ("before", "after"):
        raise d.error(f"unknown positional '{position}'")
    (other,) = d.args_exactly(1)
    if other not in new:
        raise d.error(f"directive '{other}' not found")
    index = new.index(other) + (1 if position == "after" else 0)
    new.insert(index, name)
    return new


def _storage(d: Dispenser, _existing: Any) -> Any:
    if not d.next_arg():
        raise d.arg_error()
    module = d.val()
    if module != "file_system":
        raise d.error(f"unknown storage module {module!r}: rws has 'file_system'")
    out: dict[str, Any] = {"module": "file_system"}
    if d.next_arg():
        out["root"] = d.val()
        if d.next_arg():
            raise d.arg_error()
    for sub in d.block():
        if sub.name != "root":
            raise sub.unknown_subdirective(["root"])
        if "root" in out:
            raise sub.error("root already set")
        (out["root"],) = sub.args_exactly(1)
    return out


def _admin(d: Dispenser, _existing: Any) -> Any:
    admin: dict[str, Any] = {}
    if d.next_arg():
        if d.val() == "off":
            admin["disabled"] = True
            if d.next_arg() or d.has_block:
                raise d.error("no more option is allowed after turning off admin config")
        else:
            admin["listen"] = d.val()
            if d.next_arg():
                raise d.arg_error()
    for sub in d.block():
        if sub.name == "enforce_origin":
            admin["enforce_origin"] = True
        elif sub.name == "origins":
            origins = sub.remaining_args()
            if origins:
                admin["origins"] = origins
        else:
            raise sub.error(f"unrecognized parameter '{sub.name}'", sub.tokens[0])
    if not admin.get("listen") and not admin.get("disabled"):
        admin["listen"] = "localhost:2019"
    return admin


def _workers(d: Dispenser, _existing: Any) -> Any:
    """`workers <n>|auto`: how many worker processes serve (rws's own option)."""
    (value,) = d.args_exactly(1)
    if value == "auto":
        return value
    if not value.isdecimal() or int(value) < 1:
        raise d.error(f"workers must be a positive number or 'auto', got '{value}'")
    return int(value)


def _persist_config(d: Dispenser, _existing: Any) -> Any:
    (value,) = d.args_exactly(1)
    if value != "off":
        raise d.error("persist_config must be 'off'")
    return value


def _metrics(d: Dispenser, _existing: Any) -> Any:
    metrics: dict[str, Any] = {}
    if d.next_arg():
        raise d.arg_error()
    for sub in d.block():
        if sub.name == "per_host":
            metrics["per_host"] = True
        elif sub.name == "observe_catchall_hosts":
            metrics["observe_catchall_hosts"] = True
        else:
            raise sub.error(f"unrecognized metrics option '{sub.name}'", sub.tokens[0])
    return metrics


# --- servers { ... } -------------------------------------------------------------------


@dataclass(slots=True)
class ServerOptions:
    listener_address: str = ""
    name: str = ""
    fields: dict[str, Any] = field(default_factory=dict)  # server JSON fields this block sets
    log_fields: dict[str, Any] = field(default_factory=dict)  # fields of the server's "logs"


_TIMEOUTS = {"read_body": "read_timeout", "read_header": "read_header_timeout", "write": "write_timeout",
             "idle": "idle_timeout"}
_IDLE_TIMEOUTS = {"read_body_idle": ("read_idle_timeout", "read_min_rate"),
                  "write_idle": ("write_idle_timeout", "write_min_rate")}


def _servers(d: Dispenser, existing: Any) -> Any:
    opts = ServerOptions()
    if d.next_arg():
        opts.listener_address = d.val()
        if d.next_arg():
            raise d.arg_error()
    for sub in d.block():
        handler = _SERVER_OPTIONS.get(sub.name)
        if handler is None:
            raise sub.error(f"unrecognized servers option '{sub.name}'" + _suggest(sub.name, list(_SERVER_OPTIONS)),
                            sub.tokens[0])
        handler(sub, opts)
    return [*(existing or []), opts]


def _suggest(word: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _srv_name(d: Dispenser, opts: ServerOptions) -> None:
    if not opts.listener_address:
        raise d.error("cannot set a name for a server without a listener address")
    (opts.name,) = d.args_exactly(1)


def _srv_listener_wrappers(d: Dispenser, opts: ServerOptions) -> None:
    from rws import registry

    wrappers = []
    for sub in d.block():
        spec = registry.find(f"caddy.listeners.{sub.name}")
        if spec is None or spec.rwsfile is None:
            raise sub.error(f"unknown listener wrapper {sub.name!r}" + _suggest(sub.name, registry.names_in("caddy.listeners")),
                            sub.tokens[0])
        wrappers.append(spec.rwsfile(sub))
    opts.fields["listener_wrappers"] = wrappers


def _srv_timeouts(d: Dispenser, opts: ServerOptions) -> None:
    for sub in d.block():
        if sub.name in _TIMEOUTS:
            opts.fields[_TIMEOUTS[sub.name]] = sub.duration_arg()
            if sub.next_arg():
                raise sub.arg_error()
        elif sub.name in _IDLE_TIMEOUTS:
            timeout_key, rate_key = _IDLE_TIMEOUTS[sub.name]
            if sub.count_remaining_args() not in (1, 2):
                raise sub.arg_error()
            opts.fields[timeout_key] = sub.duration_arg()
            if sub.next_arg():
                if not sub.val().isdecimal():
                    raise sub.error(f"parsing {sub.name} min_rate bytes/second: invalid number {sub.val()!r}")
                opts.fields[rate_key] = int(sub.val())
        elif sub.name == "write_max_chunk":
            opts.fields["max_write_chunk"] = sub.size_arg()
        else:
            raise sub.error(f"unrecognized timeouts option '{sub.name}'" + _suggest(sub.name, [*_TIMEOUTS, *_IDLE_TIMEOUTS]),
                            sub.tokens[0])


def _srv_duration(key: str) -> Callable[[Dispenser, ServerOptions], None]:
    def parse(d: Dispenser, opts: ServerOptions) -> None:
        opts.fields[key] = d.duration_arg()
        if d.next_arg():
            raise d.arg_error()

    return parse


def _srv_flag(key: str, value: Any = True, logs: bool = False) -> Callable[[Dispenser, ServerOptions], None]:
    def parse(d: Dispenser, opts: ServerOptions) -> None:
        if d.next_arg():
            raise d.arg_error()
        (opts.log_fields if logs else opts.fields)[key] = value

    return parse


def _srv_keepalive_count(d: Dispenser, opts: ServerOptions) -> None:
    opts.fields["keepalive_count"] = d.int_arg()


def _srv_max_header_size(d: Dispenser, opts: ServerOptions) -> None:
    opts.fields["max_header_bytes"] = d.size_arg()
    if d.next_arg():
        raise d.arg_error()


def _srv_list(key: str) -> Callable[[Dispenser, ServerOptions], None]:
    def parse(d: Dispenser, opts: ServerOptions) -> None:
        args = d.remaining_args()
        if not args:
            raise d.arg_error()
        opts.fields[key] = args

    return parse


def _srv_protocols(d: Dispenser, opts: ServerOptions) -> None:
    protocols: list[str] = []
    for proto in d.remaining_args():
        if proto not in ("h1", "h2", "h2c", "h3"):
            raise d.error(f"unknown protocol '{proto}': expected h1, h2, h2c, or h3")
        if proto in protocols:
            raise d.error(f"protocol {proto} specified more than once")
        protocols.append(proto)
    if d.has_block:
        raise d.arg_error()
    opts.fields["protocols"] = protocols


def _srv_strict_sni_host(d: Dispenser, opts: ServerOptions) -> None:
    value = True
    if d.next_arg():
        if d.val() not in ("on", "insecure_off"):
            raise d.error(f"strict_sni_host only supports 'on' or 'insecure_off', got '{d.val()}'")
        value = d.val() == "on"
    opts.fields["strict_sni_host"] = value


def _srv_trusted_proxies(d: Dispenser, opts: ServerOptions) -> None:
    from rws import registry

    if not d.next_arg():
        raise d.error("trusted_proxies expects an IP range source module name as its first argument")
    spec = registry.find(f"http.ip_sources.{d.val()}")
    if spec is None or spec.rwsfile is None:
        raise d.error(f"unknown IP range source {d.val()!r}" + _suggest(d.val(), registry.names_in("http.ip_sources")))
    opts.fields["trusted_proxies"] = spec.rwsfile(d)


def _srv_client_ip_headers(d: Dispenser, opts: ServerOptions) -> None:
    headers: list[str] = opts.fields.setdefault("client_ip_headers", [])
    for header in d.remaining_args():
        if header in headers:
            raise d.error(f"client IP header {header} specified more than once")
        headers.append(header)
    if d.has_block:
        raise d.arg_error()


def _srv_metrics(d: Dispenser, opts: ServerOptions) -> None:
    metrics: dict[str, Any] = {}
    for sub in d.block():
        if sub.name != "per_host":
            raise sub.error(f"unrecognized metrics option '{sub.name}'", sub.tokens[0])
        metrics["per_host"] = True
    opts.fields["metrics"] = metrics


def _srv_0rtt(d: Dispenser, opts: ServerOptions) -> None:
    (value,) = d.args_exactly(1)
    if value != "off":
        raise d.error(f"unsupported 0rtt argument '{value}' (only 'off' is supported)")
    opts.fields["allow_0rtt"] = False


_SERVER_OPTIONS: dict[str, Callable[[Dispenser, ServerOptions], None]] = {
    "name": _srv_name,
    "listener_wrappers": _srv_listener_wrappers,
    "timeouts": _srv_timeouts,
    "keepalive_interval": _srv_duration("keepalive_interval"),
    "keepalive_idle": _srv_duration("keepalive_idle"),
    "keepalive_count": _srv_keepalive_count,
    "max_header_size": _srv_max_header_size,
    "enable_full_duplex": _srv_flag("enable_full_duplex"),
    "expected_underscore_headers": _srv_list("expected_underscore_headers"),
    "expected_dot_headers": _srv_list("expected_dot_headers"),
    "log_credentials": _srv_flag("should_log_credentials", logs=True),
    "protocols": _srv_protocols,
    "strict_sni_host": _srv_strict_sni_host,
    "trusted_proxies": _srv_trusted_proxies,
    "trusted_proxies_strict": _srv_flag("trusted_proxies_strict", 1),
    "trusted_proxies_unix": _srv_flag("trusted_proxies_unix"),
    "client_ip_headers": _srv_client_ip_headers,
    "metrics": _srv_metrics,
    "trace": _srv_flag("trace", logs=True),
    "0rtt": _srv_0rtt,
}

# Server fields that `servers` options replace outright on every server they apply to.
SERVER_OPTION_FIELDS = (
    "listener_wrappers", "packet_conn_wrappers", "read_timeout", "read_header_timeout", "read_idle_timeout",
    "read_min_rate", "write_timeout", "write_idle_timeout", "write_min_rate", "max_write_chunk", "idle_timeout",
    "keepalive_interval", "keepalive_idle", "keepalive_count", "max_header_bytes", "enable_full_duplex",
    "expected_underscore_headers", "expected_dot_headers", "protocols", "strict_sni_host", "trusted_proxies",
    "client_ip_headers", "trusted_proxies_strict", "trusted_proxies_unix", "metrics", "allow_0rtt",
)


CORE_OPTIONS: dict[str, Callable[[Dispenser, Any], Any]] = {
    "debug": _true,
    "http_port": _port,
    "https_port": _port,
    "default_bind": _default_bind,
    "grace_period": _duration,
    "shutdown_delay": _duration,
    "order": _order,
    "storage": _storage,
    "admin": _admin,
    "persist_config": _persist_config,
    "workers": _workers,
    "metrics": _metrics,
    "servers": _servers,
}


def _bind_directive(h: Helper) -> list[ConfigValue]:
    """`bind <hosts...> [{ protocols ... }]`: the listener hosts of the site's addresses."""
    return [ConfigValue("bind", parse_bind(h.d, default_empty=False))]


CORE_SYNTAX = ModuleSpec(
    id="rwsfile.core",
    config=Any,
    directives={"bind": Directive(_bind_directive, handler=False)},
    options=CORE_OPTIONS,
)
