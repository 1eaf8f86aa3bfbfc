"""The Rwsfile forms of the small TLS modules: issuers (`acme`, `internal`, `zerossl`),
certificate getters, on-demand permission, CA pools and handshake matchers.

Each parser takes a dispenser whose current token is the module's name (`issuer acme
{ ... }` is read with the cursor on `acme`); it reads the rest of that line and the
line's block, and returns the module's JSON object with its inline key, e.g.
`{"module": "acme", "email": "..."}`. Zero values are left out, as Caddy's JSON does.
"""

from __future__ import annotations

import difflib
from typing import Any

from rws.errors import RwsfileError
from rws.rwsfile.dispenser import Dispenser

JSON = Any


def put(obj: dict[str, JSON], key: str, value: JSON) -> None:
    """Set `key`, or remove it when `value` is a zero value (Go's `omitempty`). Empty
    objects are kept: in Caddy's structs they are pointers, which omitempty keeps."""
    if value is None or value is False or value == "" or value == [] or (type(value) in (int, float) and value == 0):
        obj.pop(key, None)
    else:
        obj[key] = value


def suggest(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def module_from_rwsfile(d: Dispenser, namespace: str, what: str) -> JSON:
    """Parse the module named by the current token in `namespace` through its Rwsfile form."""
    from rws import registry

    name = d.val()
    spec = registry.find(f"{namespace}.{name}")
    if spec is None or spec.rwsfile is None:
        known = [n for n in registry.names_in(namespace) if _has_rwsfile(f"{namespace}.{n}")]
        hint = suggest(name, known) or (f" (expected one of {', '.join(known)})" if known else "")
        raise d.error(f"unknown {what} {name!r}{hint}")
    return spec.rwsfile(d)


def _has_rwsfile(module_id: str) -> bool:
    from rws import registry

    spec = registry.find(module_id)
    return spec is not None and spec.rwsfile is not None


def dns_unsupported(d: Dispenser) -> RwsfileError:
    provider = f" {d.peek()!r}" if d.peek() is not None else ""
    return d.error(f"DNS providers are not supported by rws, so the DNS challenge{provider} cannot be configured")


def one_duration(d: Dispenser, allow_minus_one: bool = False) -> int:
    """The line's single argument as integer nanoseconds (`-1` allowed where Caddy allows it)."""
    if d.count_remaining_args() != 1:
        raise d.arg_error()
    if allow_minus_one and d.peek() == "-1":
        d.next_arg()
        return -1
    return d.duration_arg()


def _no_args(d: Dispenser) -> None:
    if d.next_arg():
        raise d.arg_error()


def _port(d: Dispenser) -> int:
    if d.count_remaining_args() != 1:
        raise d.arg_error()
    d.next_arg()
    if not d.val().lstrip("+-").isdecimal():
        raise d.error(f"invalid port {d.val()!r}")
    return int(d.val())


# --- preferred chains (also the global option) ---------------------------------------


def parse_preferred_chains(d: Dispenser) -> dict[str, JSON]:
    """`preferred_chains [smallest] { root_common_name <names...>; any_common_name <names...> }`."""
    pref: dict[str, JSON] = {}
    if d.next_arg():
        if d.val() != "smallest":
            raise d.error(f"invalid argument {d.val()!r}: expected 'smallest'")
        pref["smallest"] = True
        if d.next_arg():
            raise d.arg_error()
        if d.block_entries():
            raise d.error("no more options are accepted when using the 'smallest' option")
    for sub in d.block():
        if sub.name not in ("root_common_name", "any_common_name"):
            raise sub.unknown_subdirective(["root_common_name", "any_common_name"])
        names = sub.remaining_args()
        if not names:
            raise sub.arg_error()
        pref.setdefault(sub.name, []).extend(names)
        other = "any_common_name" if sub.name == "root_common_name" else "root_common_name"
        if other in pref:
            raise sub.error(f"can't set {sub.name} when {other} is already set", sub.tokens[0])
    if not pref:
        raise d.error("no options for preferred_chains received")
    return pref


# --- issuers -------------------------------------------------------------------------

_ACME_OPTIONS = (
    "lifetime", "dir", "test_dir", "email", "profile", "timeout", "disable_http_challenge",
    "disable_tlsalpn_challenge", "distributed", "alt_http_port", "alt_tlsalpn_port", "eab", "trusted_roots",
    "dns", "propagation_delay", "propagation_timeout", "resolvers", "dns_ttl", "dns_challenge_override_domain",
    "preferred_chains",
)


def challenges(iss: dict[str, JSON]) -> dict[str, JSON]:
    """The issuer's `challenges` object, created (empty) if it has none yet."""
    out: dict[str, JSON] = iss.setdefault("challenges", {})
    return out


def challenge(iss: dict[str, JSON], kind: str) -> dict[str, JSON]:
    """One challenge's config ("http", "tls-alpn", "dns"), created if missing."""
    out: dict[str, JSON] = challenges(iss).setdefault(kind, {})
    return out


def parse_acme_issuer(d: Dispenser) -> dict[str, JSON]:
    """`acme [<directory_url>] { dir; test_dir; email; profile; timeout; lifetime; eab; ... }`."""
    iss: dict[str, JSON] = {"module": "acme"}
    if d.next_arg():
        put(iss, "ca", d.val())
        if d.next_arg():
            raise d.arg_error()
    for sub in d.block():
        _acme_option(sub, iss)
    return iss


def _acme_option(d: Dispenser, iss: dict[str, JSON]) -> None:
    name = d.name
    if name == "lifetime":
        lifetime = one_duration(d)
        if lifetime < 0:
            raise d.error(f"lifetime must be >= 0: {d.val()}")
        put(iss, "certificate_lifetime", lifetime)
    elif name == "dir":
        if iss.get("ca"):
            raise d.error(f"directory is already specified: {iss['ca']}")
        put(iss, "ca", d.args_exactly(1)[0])
    elif name in ("test_dir", "email", "profile"):
        put(iss, {"test_dir": "test_ca"}.get(name, name), d.args_exactly(1)[0])
    elif name == "timeout":
        put(iss, "acme_timeout", one_duration(d))
    elif name in ("disable_http_challenge", "disable_tlsalpn_challenge"):
        _no_args(d)
        challenge(iss, "http" if name == "disable_http_challenge" else "tls-alpn")["disabled"] = True
    elif name == "distributed":
        if not d.next_arg():
            raise d.arg_error()
        if d.val() != "false":
            raise d.error(f"only accepted value is 'false', got {d.val()!r}")
        challenges(iss)["distributed"] = False
    elif name in ("alt_http_port", "alt_tlsalpn_port"):
        put(challenge(iss, "http" if name == "alt_http_port" else "tls-alpn"), "alternate_port", _port(d))
    elif name == "eab":
        key_id, mac_key = d.args_exactly(2)
        iss["external_account"] = {"key_id": key_id, "mac_key": mac_key}
    elif name == "trusted_roots":
        put(iss, "trusted_roots_pem_files", d.remaining_args())
    elif name == "dns":
        if d.peek() is not None:
            raise dns_unsupported(d)
        challenge(iss, "dns")
    elif name in ("propagation_delay", "propagation_timeout", "dns_ttl"):
        value = one_duration(d, allow_minus_one=name == "propagation_timeout")
        put(challenge(iss, "dns"), {"dns_ttl": "ttl"}.get(name, name), value)
    elif name == "resolvers":
        resolvers = d.remaining_args()
        if not resolvers:
            raise d.arg_error()
        challenge(iss, "dns")["resolvers"] = resolvers
    elif name == "dns_challenge_override_domain":
        put(challenge(iss, "dns"), "override_domain", d.args_exactly(1)[0])
    elif name == "preferred_chains":
        iss["preferred_chains"] = parse_preferred_chains(d)
    else:
        raise d.unknown_subdirective(_ACME_OPTIONS)


def parse_internal_issuer(d: Dispenser) -> dict[str, JSON]:
    """`internal { ca <id>; lifetime <duration>; sign_with_root }`."""
    iss: dict[str, JSON] = {"module": "internal"}
    _no_args(d)
    for sub in d.block():
        if sub.name == "ca":
            put(iss, "ca", sub.args_exactly(1)[0])
        elif sub.name == "lifetime":
            put(iss, "lifetime", one_duration(sub))
        elif sub.name == "sign_with_root":
            _no_args(sub)
            iss["sign_with_root"] = True
        else:
            raise sub.unknown_subdirective(["ca", "lifetime", "sign_with_root"])
    return iss


def parse_zerossl_issuer(d: Dispenser) -> dict[str, JSON]:
    """`zerossl <api_key> { validity_days; alt_http_port; propagation_*; resolvers; dns_ttl }`."""
    iss: dict[str, JSON] = {"module": "zerossl"}
    if d.count_remaining_args() != 1:
        raise d.arg_error()
    d.next_arg()
    put(iss, "api_key", d.val())
    known = ["validity_days", "alt_http_port", "dns", "propagation_delay", "propagation_timeout", "resolvers", "dns_ttl"]
    for sub in d.block():
        name = sub.name
        if name == "validity_days":
            if iss.get("validity_days"):
                raise sub.error(f"validity days is already specified: {iss['validity_days']}")
            put(iss, "validity_days", sub.int_arg())
            _no_args(sub)
        elif name == "alt_http_port":
            put(iss, "alternate_http_port", _port(sub))
        elif name == "dns":
            raise dns_unsupported(sub)
        elif name in ("propagation_delay", "propagation_timeout", "dns_ttl"):
            value = one_duration(sub, allow_minus_one=name == "propagation_timeout")
            put(iss.setdefault("cname_validation", {}), {"dns_ttl": "ttl"}.get(name, name), value)
        elif name == "resolvers":
            resolvers = sub.remaining_args()
            if not resolvers:
                raise sub.arg_error()
            iss.setdefault("cname_validation", {})["resolvers"] = resolvers
        else:
            raise sub.unknown_subdirective(known)
    return iss


# --- certificate getters and on-demand permission ------------------------------------


def parse_get_certificate_http(d: Dispenser) -> dict[str, JSON]:
    """`http <url>`: get certificates from an HTTP endpoint at handshake time."""
    (url,) = d.args_exactly(1)
    if d.block_entries():
        raise d.error("block not allowed here")
    return {"via": "http", "url": url}


def parse_permission_http(d: Dispenser) -> dict[str, JSON]:
    """`http <endpoint>`: ask this endpoint whether a name may get a certificate on demand."""
    (endpoint,) = d.args_exactly(1)
    d.no_block()
    return {"module": "http", "endpoint": endpoint}


# --- CA pools ------------------------------------------------------------------------


def parse_ca_pool_file(d: Dispenser) -> dict[str, JSON]:
    """`file [<pem_files...>] { pem_file <pem_files...> }`."""
    files = d.remaining_args()
    for sub in d.block():
        if sub.name != "pem_file":
            raise sub.unknown_subdirective(["pem_file"])
        files.extend(sub.remaining_args())
    if not files:
        raise d.error("no certificates specified")
    return {"provider": "file", "pem_files": files}


def parse_ca_pool_inline(d: Dispenser) -> dict[str, JSON]:
    """`inline { trust_der <base64_der_certs...> }`."""
    _no_args(d)
    certs: list[str] = []
    for sub in d.block():
        if sub.name != "trust_der":
            raise sub.unknown_subdirective(["trust_der"])
        certs.extend(sub.remaining_args())
    if not certs:
        raise d.error("no certificates specified")
    return {"provider": "inline", "trusted_ca_certs": certs}


# --- handshake matchers (values of a connection policy's `match` object) -------------


def _matcher_args(d: Dispenser) -> list[str]:
    name = d.val()
    args = d.remaining_args()
    if not args:
        raise d.arg_error()
    if d.block_entries():
        raise d.error(f"malformed TLS handshake matcher {name!r}: blocks are not supported")
    return args


def parse_match_sni(d: Dispenser) -> list[str]:
    """`sni <names...>`."""
    return _matcher_args(d)


_PRIVATE_RANGES = ["192.168.0.0/16", "172.16.0.0/12", "10.0.0.0/8", "127.0.0.1/8", "fd00::/8", "::1"]


def parse_match_remote_ip(d: Dispenser) -> dict[str, JSON]:
    """`remote_ip <ranges...>`; a `!` prefix excludes a range; `private_ranges` is a shortcut."""
    out: dict[str, JSON] = {}
    for value in _matcher_args(d):
        negate = len(value) > 1 and value.startswith("!")
        if negate:
            value = value[1:]
        ranges = list(_PRIVATE_RANGES) if value == "private_ranges" else [value]
        out.setdefault("not_ranges" if negate else "ranges", []).extend(ranges)
    return out


def parse_match_local_ip(d: Dispenser) -> dict[str, JSON]:
    """`local_ip <ranges...>`; `private_ranges` is a shortcut."""
    ranges: list[str] = []
    for value in _matcher_args(d):
        ranges.extend(_PRIVATE_RANGES if value == "private_ranges" else [value])
    return {"ranges": ranges}
