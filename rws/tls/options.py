"""The TLS and PKI global options.

Each parser takes the option's dispenser (cursor on the option's name) and the option's
previous value, and returns the value the adapter keeps under the option's name:

    email, acme_ca, acme_ca_root,
    default_sni, fallback_sni, key_type   str
    local_certs, skip_install_trust       True
    cert_issuer                           list of issuer dicts (the option repeats)
    acme_eab                              {"key_id", "mac_key"}
    cert_lifetime, ocsp_interval,
    renew_interval                        int nanoseconds
    storage_clean_interval                int nanoseconds, or False for `off`
    storage_check                         "off"
    preferred_chains                      the issuers' `preferred_chains` object
    on_demand_tls                         the automation's `on_demand` object
    ocsp_stapling                         {"disable_stapling": True}
    renewal_window_ratio                  float
    auto_https                            list of str
    tls_resolvers                         list of str
    pki                                   {ca_id: CA object}

`acme_dns`, `dns` and `ech` need DNS provider modules, which rws does not have; they
are refused with a message saying so.
"""

from __future__ import annotations

from typing import Any, Callable

from rws.rwsfile.dispenser import Dispenser
from rws.rwsfile.parse import Token
from rws.tls import forms
from rws.tls.directive import parse_ratio
from rws.tls.forms import put

JSON = Any


def _single_string(d: Dispenser, _existing: Any) -> Any:
    return d.args_exactly(1)[0]


def _true(d: Dispenser, _existing: Any) -> Any:
    return True  # Caddy ignores anything after these flags


def _duration(d: Dispenser, _existing: Any) -> Any:
    return forms.one_duration(d)


def _key_type(d: Dispenser, _existing: Any) -> Any:
    from rws.tls.config import KEY_TYPES

    (key_type,) = d.args_exactly(1)
    if "{" not in key_type and key_type not in KEY_TYPES:
        raise d.error(f"unrecognized key type {key_type!r} (expected one of {', '.join(KEY_TYPES)})")
    return key_type


def _acme_eab(d: Dispenser, _existing: Any) -> Any:
    if d.next_arg():
        raise d.arg_error()
    eab = {"key_id": "", "mac_key": ""}
    for sub in d.block():
        if sub.name not in eab:
            raise sub.unknown_subdirective(list(eab))
        if not sub.next_arg():
            raise sub.arg_error()
        eab[sub.name] = sub.val()
    return eab


def _dns_unsupported(d: Dispenser, _existing: Any) -> Any:
    raise d.error(f"{d.name}: DNS providers are not supported by rws", d.tokens[0])


def _ech_unsupported(d: Dispenser, _existing: Any) -> Any:
    raise d.error("ech: encrypted ClientHello is not supported by rws", d.tokens[0])


class IssuerList(list):  # type: ignore[type-arg]
    """The `cert_issuer` option's value: its issuers, and where the option was first given."""

    def __init__(self, items: list[Any], where: Token) -> None:
        super().__init__(items)
        self.where = where


def _cert_issuer(d: Dispenser, existing: Any) -> Any:
    if not d.next_arg():
        raise d.arg_error()
    issuer = forms.module_from_rwsfile(d, "tls.issuance", "issuer module")
    where = existing.where if isinstance(existing, IssuerList) else d.tokens[0]
    return IssuerList([*(existing or []), issuer], where)


def _preferred_chains(d: Dispenser, _existing: Any) -> Any:
    return forms.parse_preferred_chains(d)


def _on_demand_tls(d: Dispenser, _existing: Any) -> Any:
    if d.next_arg():
        raise d.arg_error()
    on_demand: dict[str, JSON] | None = None
    for sub in d.block():
        if sub.name in ("ask", "permission"):
            if on_demand is not None and "permission" in on_demand:
                raise sub.error("on-demand TLS permission module (or 'ask') already specified", sub.tokens[0])
            if sub.name == "ask":
                permission = {"module": "http", "endpoint": sub.args_exactly(1)[0]}
            else:
                if not sub.next_arg():
                    raise sub.arg_error()
                permission = forms.module_from_rwsfile(sub, "tls.permission", "permission module")
            on_demand = {"permission": permission}
        elif sub.name in ("interval", "burst"):
            raise sub.error(f"the on_demand_tls {sub.name!r} option is no longer supported, remove it from your config",
                            sub.tokens[0])
        else:
            raise sub.unknown_subdirective(["ask", "permission"])
    if on_demand is None:
        raise d.error("expected at least one config parameter for on_demand_tls")
    return on_demand


def _ocsp_stapling(d: Dispenser, _existing: Any) -> Any:
    (value,) = d.args_exactly(1)
    if value != "off":
        raise d.error(f"invalid argument {value!r}: ocsp_stapling only accepts 'off'")
    return {"disable_stapling": True}


def _renewal_window_ratio(d: Dispenser, _existing: Any) -> Any:
    return parse_ratio(d)


def _storage_check(d: Dispenser, _existing: Any) -> Any:
    (value,) = d.args_exactly(1)
    if value != "off":
        raise d.error(f"storage_check must be 'off', got {value!r}")
    return value


def _storage_clean_interval(d: Dispenser, _existing: Any) -> Any:
    if d.count_remaining_args() == 1 and d.peek() == "off":
        d.next_arg()
        return False
    return forms.one_duration(d)


_AUTO_HTTPS = ("off", "disable_redirects", "disable_certs", "ignore_loaded_certs")


def _auto_https(d: Dispenser, _existing: Any) -> Any:
    values = d.remaining_args()
    if not values:
        raise d.arg_error()
    for value in values:
        if value not in _AUTO_HTTPS:
            raise d.error(f"auto_https must be one of 'off', 'disable_redirects', 'disable_certs', "
                          f"or 'ignore_loaded_certs', got {value!r}")
    return values


def _tls_resolvers(d: Dispenser, _existing: Any) -> Any:
    resolvers = d.remaining_args()
    if not resolvers:
        raise d.arg_error()
    return resolvers


TLS_OPTIONS: dict[str, Callable[[Dispenser, Any], Any]] = {
    "email": _single_string,
    "acme_ca": _single_string,
    "acme_ca_root": _single_string,
    "acme_eab": _acme_eab,
    "acme_dns": _dns_unsupported,
    "dns": _dns_unsupported,
    "ech": _ech_unsupported,
    "cert_issuer": _cert_issuer,
    "local_certs": _true,
    "skip_install_trust": _true,
    "key_type": _key_type,
    "cert_lifetime": _duration,
    "preferred_chains": _preferred_chains,
    "on_demand_tls": _on_demand_tls,
    "ocsp_stapling": _ocsp_stapling,
    "ocsp_interval": _duration,
    "renew_interval": _duration,
    "renewal_window_ratio": _renewal_window_ratio,
    "storage_check": _storage_check,
    "storage_clean_interval": _storage_clean_interval,
    "default_sni": _single_string,
    "fallback_sni": _single_string,
    "auto_https": _auto_https,
    "tls_resolvers": _tls_resolvers,
}


# --- pki -----------------------------------------------------------------------------

_CA_OPTIONS = ("name", "root_cn", "intermediate_cn", "intermediate_lifetime", "maintenance_interval",
               "renewal_window_ratio", "root", "intermediate")
_CA_FIELDS = {"name": "name", "root_cn": "root_common_name", "intermediate_cn": "intermediate_common_name"}


def parse_pki(d: Dispenser, _existing: Any) -> Any:
    """`pki { ca [<id>] { name; root_cn; intermediate_cn; intermediate_lifetime;
    maintenance_interval; renewal_window_ratio; root { cert; key; format }; intermediate { ... } } }`"""
    if d.next_arg():
        raise d.arg_error()
    authorities: dict[str, dict[str, JSON]] = {}
    for sub in d.block():
        if sub.name != "ca":
            raise sub.unknown_subdirective(["ca"])
        ca_id = "local"
        if sub.next_arg():
            ca_id = sub.val() or "local"
            if sub.next_arg():
                raise sub.arg_error()
        authorities[ca_id] = _parse_ca(sub)
    return authorities


def _parse_ca(d: Dispenser) -> dict[str, JSON]:
    ca: dict[str, JSON] = {}
    for sub in d.block():
        name = sub.name
        if name in _CA_FIELDS:
            put(ca, _CA_FIELDS[name], sub.args_exactly(1)[0])
        elif name in ("intermediate_lifetime", "maintenance_interval"):
            put(ca, name, forms.one_duration(sub))
        elif name == "renewal_window_ratio":
            (text,) = sub.args_exactly(1)
            try:
                ratio = float(text)
            except ValueError:
                ratio = -1.0
            if not 0 < ratio <= 1:
                raise sub.error(f"renewal_window_ratio must be a number in (0, 1], got {text}")
            ca["renewal_window_ratio"] = ratio
        elif name in ("root", "intermediate"):
            if sub.next_arg():
                raise sub.arg_error()
            pair: dict[str, JSON] = ca.setdefault(name, {})
            for line in sub.block():
                if line.name not in ("cert", "key", "format"):
                    raise line.unknown_subdirective(["cert", "key", "format"])
                key = {"cert": "certificate", "key": "private_key"}.get(line.name, line.name)
                put(pair, key, line.args_exactly(1)[0])
        else:
            raise sub.unknown_subdirective(_CA_OPTIONS)
    return ca
