"""The `tls` site directive.

    tls [internal|force_automate|<email>|<cert_file> <key_file>] {
        protocols <min> [<max>]; ciphers <suites...>; curves <curves...>; alpn <protos...>
        client_auth { mode ...; trust_pool <module> ...; trusted_leaf_cert[_file] ...; ... }
        load <folders...>; ca <url>; ca_root <pem>; eab <key_id> <mac_key>; key_type <type>
        issuer <module> ...; get_certificate <module> ...; on_demand; reuse_private_keys
        force_automate; insecure_secrets_log <file>; renewal_window_ratio <ratio>
        resolvers ...; propagation_delay ...; propagation_timeout ...; dns_ttl ...
        dns_challenge_override_domain ...   (these need a DNS provider, which rws lacks)
    }

It returns config values the adapter collects per site: "tls.connection_policy" (always
one, a policy dict), "tls.cert_loader" (a `CertLoader`), "tls.cert_issuer" (issuer dicts),
"tls.key_type", "tls.on_demand", "tls.cert_manager", "tls.reuse_private_keys",
"tls.renewal_window_ratio" and "tls.force_automate".
"""

from __future__ import annotations

import base64
import copy
import ssl
from dataclasses import dataclass
from typing import Any

from rws.rwsfile.directives import ConfigValue, Helper
from rws.rwsfile.dispenser import Dispenser
from rws.tls import forms
from rws.tls.forms import put

JSON = Any

ZEROSSL_ACME_CA = "https://acme.zerossl.com/v2/DV90"

_SUBDIRECTIVES = (
    "protocols", "ciphers", "curves", "client_auth", "alpn", "load", "ca", "key_type", "eab", "issuer",
    "get_certificate", "dns", "resolvers", "propagation_delay", "propagation_timeout", "dns_ttl",
    "dns_challenge_override_domain", "ca_root", "on_demand", "reuse_private_keys", "force_automate",
    "insecure_secrets_log", "renewal_window_ratio",
)


@dataclass(frozen=True, slots=True)
class CertLoader:
    """The value of a "tls.cert_loader": a certificate loader module and its list of entries."""

    module: str  # "load_files" or "load_folders"
    items: tuple[JSON, ...]


@dataclass(slots=True)
class _TLSState:
    policy: dict[str, JSON]
    acme: dict[str, JSON] | None = None  # the implicit ACME issuer the shortcuts configure
    internal: bool = False
    explicit: list[dict[str, JSON]] | None = None  # `issuer` subdirectives
    managers: list[dict[str, JSON]] | None = None
    key_type: str = ""
    on_demand: bool = False
    reuse_private_keys: bool = False
    force_automate: bool = False
    renewal_window_ratio: float = 0.0

    def acme_issuer(self) -> dict[str, JSON]:
        if self.acme is None:
            self.acme = {"module": "acme"}
        return self.acme


def parse_tls(h: Helper) -> list[ConfigValue]:
    d = h.d
    state = _TLSState(policy={})
    files: list[JSON] = []
    folders: list[str] = []
    tags: list[str] = []
    first_line = d.remaining_args()
    if len(first_line) == 1:
        word = first_line[0]
        if word == "internal":
            state.internal = True
        elif word == "force_automate":
            state.force_automate = True
        elif "@" in word:
            state.acme = {"module": "acme", "email": word}
        else:
            raise d.error("single argument must either be 'internal', 'force_automate', or an email address")
    elif len(first_line) == 2:
        cert_file, key_file = first_line
        known: dict[str, str] = h.run.state.setdefault("tls_cert_tags", {})
        tag = known.get(cert_file)
        if tag is None:
            # each file is loaded once, with one tag, or handshakes would look for a tag that lost
            tag = f"cert{len(known)}"
            known[cert_file] = tag
            files.append({"certificate": cert_file, "key": key_file, "tags": [tag]})
        tags.append(tag)
    elif len(first_line) > 2:
        raise d.arg_error()

    dns_options: list[Dispenser] = []
    for sub in d.block():
        _subdirective(sub, h, state, folders, dns_options)
    if dns_options:
        # they configure the DNS challenge, which needs a DNS provider, and rws has none
        names = ", ".join(o.name for o in dns_options)
        raise dns_options[0].error(f"setting DNS challenge options [{names}] requires a DNS provider "
                                   "(set with the 'dns' subdirective or 'acme_dns' global option)",
                                   dns_options[0].tokens[0])
    if not first_line and not d.block_entries():
        raise d.arg_error()
    return _config_values(h, state, files, folders, tags)


def _config_values(h: Helper, state: _TLSState, files: list[JSON], folders: list[str],
                   tags: list[str]) -> list[ConfigValue]:
    d = h.d
    values: list[ConfigValue] = []
    if files:
        values.append(ConfigValue("tls.cert_loader", CertLoader("load_files", tuple(files))))
    if folders:
        values.append(ConfigValue("tls.cert_loader", CertLoader("load_folders", tuple(folders))))
    if state.explicit and (state.acme is not None or state.internal):
        raise d.error("cannot mix issuer subdirective (explicit issuers) with other issuer-specific "
                      "subdirectives (implicit issuers)", d.tokens[0])
    if state.acme is not None and state.internal:
        raise d.error("cannot create both ACME and internal certificate issuers", d.tokens[0])
    if state.explicit:
        values.extend(ConfigValue("tls.cert_issuer", iss) for iss in state.explicit)
    elif state.acme is not None:
        values.extend(ConfigValue("tls.cert_issuer", iss) for iss in implicit_acme_issuers(h, state.acme))
    elif state.internal:
        values.append(ConfigValue("tls.cert_issuer", {"module": "internal"}))
    if state.key_type:
        values.append(ConfigValue("tls.key_type", state.key_type))
    if state.on_demand:
        values.append(ConfigValue("tls.on_demand", True))
    values.extend(ConfigValue("tls.cert_manager", m) for m in state.managers or ())
    if state.reuse_private_keys:
        values.append(ConfigValue("tls.reuse_private_keys", True))
    if state.renewal_window_ratio > 0:
        values.append(ConfigValue("tls.renewal_window_ratio", state.renewal_window_ratio))
    if state.force_automate:
        values.append(ConfigValue("tls.force_automate", True))
    if tags:
        state.policy["certificate_selection"] = {"any_tag": tags}
    # always one policy: using `tls` at all turns TLS on, even for a site like ":5000"
    values.append(ConfigValue("tls.connection_policy", state.policy))
    return values


def _subdirective(sub: Dispenser, h: Helper, state: _TLSState, folders: list[str],
                  dns_options: list[Dispenser]) -> None:
    from rws.tls.config import CIPHER_SUITES, CURVES, KEY_TYPES, PROTOCOLS

    name, policy = sub.name, state.policy
    if name == "protocols":
        args = sub.remaining_args()
        if not args or len(args) > 2:
            raise sub.error("protocols requires one or two arguments")
        for arg in args:
            if arg not in PROTOCOLS:
                raise sub.error(f"wrong protocol name or protocol not supported: {arg!r} "
                                f"(expected one of {', '.join(PROTOCOLS)})")
        policy["protocol_min"] = args[0]
        if len(args) > 1:
            policy["protocol_max"] = args[1]
    elif name == "ciphers":
        for arg in sub.remaining_args():
            if arg not in CIPHER_SUITES:
                raise sub.error(f"wrong cipher suite name or cipher suite not supported: {arg!r}"
                                + forms.suggest(arg, list(CIPHER_SUITES)))
            policy.setdefault("cipher_suites", []).append(arg)
    elif name == "curves":
        for arg in sub.remaining_args():
            if arg not in CURVES:
                raise sub.error(f"wrong curve name or curve not supported: {arg!r} (expected one of {', '.join(CURVES)})")
            policy.setdefault("curves", []).append(arg)
    elif name == "client_auth":
        policy["client_authentication"] = parse_client_auth(sub)
    elif name == "alpn":
        args = sub.remaining_args()
        if not args:
            raise sub.arg_error()
        policy["alpn"] = args
    elif name == "load":
        folders.extend(sub.remaining_args())
    elif name == "ca":
        put(state.acme_issuer(), "ca", sub.args_exactly(1)[0])
    elif name == "key_type":
        (key_type,) = sub.args_exactly(1)
        if "{" not in key_type and key_type not in KEY_TYPES:
            raise sub.error(f"unrecognized key type {key_type!r} (expected one of {', '.join(KEY_TYPES)})")
        state.key_type = key_type
    elif name == "eab":
        key_id, mac_key = sub.args_exactly(2)
        state.acme_issuer()["external_account"] = {"key_id": key_id, "mac_key": mac_key}
    elif name == "issuer":
        if not sub.next_arg():
            raise sub.arg_error()
        issuer = forms.module_from_rwsfile(sub, "tls.issuance", "issuer module")
        state.explicit = [*(state.explicit or []), issuer]
    elif name == "get_certificate":
        if not sub.next_arg():
            raise sub.arg_error()
        manager = forms.module_from_rwsfile(sub, "tls.get_certificate", "certificate manager")
        state.managers = [*(state.managers or []), manager]
    elif name == "dns":
        raise forms.dns_unsupported(sub)
    elif name in ("resolvers", "propagation_delay", "propagation_timeout", "dns_ttl", "dns_challenge_override_domain"):
        _dns_option(sub, state.acme_issuer())
        dns_options.append(sub)
    elif name == "ca_root":
        (root,) = sub.args_exactly(1)
        state.acme_issuer().setdefault("trusted_roots_pem_files", []).append(root)
    elif name in ("on_demand", "reuse_private_keys", "force_automate"):
        if sub.next_arg():
            raise sub.arg_error()
        setattr(state, name, True)
    elif name == "insecure_secrets_log":
        put(policy, "insecure_secrets_log", sub.args_exactly(1)[0])
    elif name == "renewal_window_ratio":
        state.renewal_window_ratio = parse_ratio(sub)
    else:
        raise sub.unknown_subdirective(_SUBDIRECTIVES)


def parse_ratio(d: Dispenser) -> float:
    """A renewal window ratio strictly between 0 and 1."""
    (text,) = d.args_exactly(1)
    try:
        ratio = float(text)
    except ValueError:
        raise d.error(f"parsing renewal_window_ratio: invalid number {text!r}") from None
    if not 0 < ratio < 1:
        raise d.error(f"renewal_window_ratio must be between 0 and 1 (exclusive), got {text}")
    return ratio


def _dns_option(d: Dispenser, acme: dict[str, JSON]) -> None:
    dns = forms.challenge(acme, "dns")
    if d.name == "resolvers":
        args = d.remaining_args()
        if not args:
            raise d.arg_error()
        dns["resolvers"] = args
    elif d.name == "dns_challenge_override_domain":
        put(dns, "override_domain", d.args_exactly(1)[0])
    else:
        value = forms.one_duration(d, allow_minus_one=d.name == "propagation_timeout")
        put(dns, {"dns_ttl": "ttl"}.get(d.name, d.name), value)


# --- client authentication -----------------------------------------------------------

_CLIENT_AUTH = ("mode", "trusted_ca_cert", "trusted_leaf_cert", "trusted_ca_cert_file", "trusted_leaf_cert_file",
                "trust_pool", "verifier")


def parse_client_auth(d: Dispenser) -> dict[str, JSON]:
    """`client_auth { mode; trust_pool <module> ...; trusted_leaf_cert[_file]; ... }`."""
    from rws.tls.config import CLIENT_AUTH_MODES

    auth: dict[str, JSON] = {}
    ca_certs: list[str] = []
    d.remaining_args()  # Caddy ignores arguments on the client_auth line itself
    for sub in d.block():
        name = sub.name
        if name == "mode":
            (mode,) = sub.args_exactly(1)
            if mode not in CLIENT_AUTH_MODES:
                raise sub.error(f"client auth mode not recognized: {mode!r} (expected one of {', '.join(CLIENT_AUTH_MODES)})")
            auth["mode"] = mode
        elif name in ("trusted_ca_cert", "trusted_ca_cert_file"):
            if "ca" in auth:
                raise sub.error("cannot specify both 'trust_pool' and 'trusted_ca_cert' or 'trusted_ca_cert_file'")
            if not sub.next_arg():
                raise sub.arg_error()
            ca_certs.extend([sub.val()] if name == "trusted_ca_cert" else _pem_file_as_der(sub))
        elif name in ("trusted_leaf_cert", "trusted_leaf_cert_file"):
            if not sub.next_arg():
                raise sub.arg_error()
            leaves = [sub.val()] if name == "trusted_leaf_cert" else _pem_file_as_der(sub)
            auth.setdefault("trusted_leaf_certs", []).extend(leaves)
        elif name == "trust_pool":
            if ca_certs:
                raise sub.error("cannot specify both 'trust_pool' and 'trusted_ca_cert' or 'trusted_ca_cert_file'")
            if not sub.next_arg():
                raise sub.arg_error()
            auth["ca"] = forms.module_from_rwsfile(sub, "tls.ca_pool.source", "trust pool module")
        elif name == "verifier":
            if not sub.next_arg():
                raise sub.arg_error()
            auth.setdefault("verifiers", []).append(
                forms.module_from_rwsfile(sub, "tls.client_auth.verifier", "client certificate verifier"))
        else:
            raise sub.unknown_subdirective(_CLIENT_AUTH)
    if ca_certs:
        auth["ca"] = {"provider": "inline", "trusted_ca_certs": ca_certs}
    return auth


def _pem_file_as_der(d: Dispenser) -> list[str]:
    """Every CERTIFICATE block of the PEM file named by the current token, as base64 DER."""
    filename = d.val()
    try:
        with open(filename, encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError as exc:
        raise d.error(f"reading {filename!r}: {exc.strerror or exc}") from exc
    ders = []
    begin = "-----BEGIN "
    pos = text.find(begin)
    while pos >= 0:
        kind_end = text.find("-----", pos + len(begin))
        kind = text[pos + len(begin):kind_end]
        if kind != "CERTIFICATE":
            raise d.error(f"no CERTIFICATE pem block found in {filename}")
        end = text.find("-----END CERTIFICATE-----", kind_end)
        if end < 0:
            break
        block = text[pos:end + len("-----END CERTIFICATE-----")]
        try:
            der = ssl.PEM_cert_to_DER_cert(block)
        except ValueError:
            raise d.error(f"bad CERTIFICATE pem block in {filename}") from None
        ders.append(base64.b64encode(der).decode("ascii"))
        pos = text.find(begin, end)
    if not ders:
        raise d.error(f"no CERTIFICATE pem block found in {filename}")
    return ders


# --- implicit ACME issuers -----------------------------------------------------------


def default_issuers(email: str) -> list[dict[str, JSON]]:
    """The issuers used when none are configured: Let's Encrypt, and ZeroSSL when there is an email."""
    out: list[dict[str, JSON]] = [{"module": "acme"}]
    if email.strip():
        out.append({"module": "acme", "ca": ZEROSSL_ACME_CA, "email": email})
    return out


def implicit_acme_issuers(h: Helper, overrides: dict[str, JSON]) -> list[dict[str, JSON]]:
    """The issuers for the ACME shortcuts (`ca`, `eab`, an email, ...): the global ACME
    `cert_issuer`s, or else the default issuers, each with the shortcuts applied on top."""
    global_issuers = h.option("cert_issuer") or []
    merged = [merge_acme_issuers(iss, overrides) for iss in global_issuers if iss.get("module") == "acme"]
    if merged:
        return merged
    bases = default_issuers(overrides.get("email", ""))
    if overrides.get("ca"):
        bases = [{"module": "acme"}]  # an explicit CA means only that CA
    return [merge_acme_issuers(base, overrides) for base in bases]


def merge_acme_issuers(base: dict[str, JSON], overrides: dict[str, JSON]) -> dict[str, JSON]:
    merged = copy.deepcopy(base)
    for key in ("ca", "test_ca", "email", "profile", "account_key", "acme_timeout", "certificate_lifetime"):
        if overrides.get(key):
            merged[key] = overrides[key]
    for key in ("external_account", "preferred_chains", "network_proxy"):
        if overrides.get(key) is not None:
            merged[key] = copy.deepcopy(overrides[key])
    roots = merged.get("trusted_roots_pem_files", [])
    for root in overrides.get("trusted_roots_pem_files", []):
        if root not in roots:
            roots.append(root)
    put(merged, "trusted_roots_pem_files", roots)
    if "challenges" in overrides:
        merged["challenges"] = _merge_challenges(merged.get("challenges"), overrides["challenges"])
    return merged


def _merge_challenges(base: dict[str, JSON] | None, overrides: dict[str, JSON]) -> dict[str, JSON]:
    if base is None:
        return copy.deepcopy(overrides)
    merged = copy.deepcopy(base)
    for kind in ("http", "tls-alpn", "dns"):
        if kind not in overrides:
            continue
        if kind not in merged:
            merged[kind] = copy.deepcopy(overrides[kind])
            continue
        for key, value in overrides[kind].items():
            if key == "disabled" and not value:
                continue
            merged[kind][key] = copy.deepcopy(value)
    if overrides.get("bind_host"):
        merged["bind_host"] = overrides["bind_host"]
    if "distributed" in overrides:
        merged["distributed"] = overrides["distributed"]
    return merged
