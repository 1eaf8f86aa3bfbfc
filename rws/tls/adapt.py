"""Adapter steps that build `apps.tls` and `apps.pki` from the adapted site blocks.

`build_tls_app` follows Caddy's Caddyfile adapter step for step, because its output is
the contract: one automation policy per HTTPS site block (subjects = the block's hosts),
a catch-all policy from the global options, internal names split off to the internal
issuer, the global ACME defaults filled into every ACME issuer, then the same merging
and de-duplication of policies. Where Caddy shares one issuer object between policies
(the global `cert_issuer`s, a site's issuers), the dicts here are shared the same way,
so an edit through one policy shows in the others exactly as it does in Caddy.

`consolidate_conn_policies` is the merge of a server's TLS connection policies (the
server builder calls it), and `build_pki_app` collects the local CAs.
"""

from __future__ import annotations

import copy
from typing import Any

from rws.errors import RwsfileError
from rws.rwsfile.directives import AdaptState
from rws.rwsfile.parse import Token
from rws.rwsfile.sites import Pairing, SiteBlock
from rws.tls.automation import (
    Automation,
    AutomationPolicy,
    consolidate_automation_policies,
    go_stable_sort,
    has_all_public_names,
    qualifies_for_public_cert_in,
)
from rws.tls.directive import CertLoader, default_issuers
from rws.tls.forms import put
from rws.tls.names import is_tailscale, qualifies_for_cert, qualifies_for_public_cert

JSON = Any
Issuer = dict[str, JSON]

# --- apps.tls ------------------------------------------------------------------------


def build_tls_app(pairings: list[Pairing], options: dict[str, Any], run: AdaptState) -> dict[str, JSON] | None:
    """The `tls` app for these servers and global options; None when it would be empty."""
    options = _private_copy(options)
    http_port = str(options["http_port"]) if isinstance(options.get("http_port"), int) else "80"
    auto_https = options.get("auto_https") or []
    shared = _hosts_sharing_block_with_hostless_key(pairings, http_port) if "off" not in auto_https else []
    tls: dict[str, JSON] = {}
    automation: Automation | None = None
    loaders: list[CertLoader] = []
    forced: set[str] = set()
    where: dict[str, Token] = {}  # subject -> a site key naming it, for error messages

    catch_all = _base_policy(options, always=False)
    if catch_all is not None:
        automation = Automation([catch_all])

    for pairing in pairings:
        listeners = [a.address for a in pairing.addresses]
        if not _listeners_use_any_port_other_than(listeners, http_port):
            continue  # an HTTP-only server needs no certificates
        for block in pairing.blocks:  # sorted most specific first when the server was built
            if block.is_all_http():
                continue
            ap, ap2 = _site_policy(block, options, catch_all, forced, http_port)
            if not block.hosts_from_keys(False) and catch_all is None:
                catch_all = ap  # a hostless site's policy is the catch-all
            for subject in ap.subjects + (ap2.subjects if ap2 else []):
                where[subject] = block.keys[0]
            if automation is None:
                automation = Automation()
            automation.policies.append(ap)
            if ap2 is not None:
                automation.policies.append(ap2)
            loaders.extend(block.values("tls.cert_loader"))

    certificates = _certificates(loaders)
    if "on_demand_tls" in options:
        automation = automation or Automation()
        automation.on_demand = options["on_demand_tls"]
    if options.get("tls_resolvers"):
        tls["resolvers"] = list(options["tls_resolvers"])
    if options.get("storage_check") == "off":
        tls["disable_storage_check"] = True
    clean = options.get("storage_clean_interval")
    if clean is False:
        tls["disable_storage_clean"] = True
    for key in ("storage_clean_interval", "renew_interval", "ocsp_interval"):
        value = options.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            automation = automation or Automation()
            setattr(automation, key, value)
    if "ocsp_stapling" in options:
        put(tls, "disable_ocsp_stapling", bool(options["ocsp_stapling"].get("disable_stapling")))

    automate, internal = _automate_names(shared, forced, auto_https)
    if automate:
        certificates["automate"] = automate
    if internal.subjects:
        automation = automation or Automation()
        automation.policies.append(internal)

    if automation is not None:
        _apply_global_acme_defaults(automation.policies, options)
        automation.policies = consolidate_automation_policies(automation.policies) or []
        _check_subjects_unique(automation.policies, where)
        body = automation.to_json()
        if body:
            tls["automation"] = body
    if certificates:
        tls["certificates"] = certificates
    return tls or None


def _private_copy(options: dict[str, Any]) -> dict[str, Any]:
    """The options with their issuer templates copied: building fills them in, and the
    caller's options must stay as parsed."""
    out = dict(options)
    for key in ("acme_eab", "preferred_chains"):
        if out.get(key) is not None:
            out[key] = copy.deepcopy(out[key])
    if out.get("cert_issuer") is not None:
        issuers = out["cert_issuer"]
        copied = copy.copy(issuers)  # keeps the list's type and its `where`
        copied[:] = [copy.deepcopy(i) for i in issuers]
        out["cert_issuer"] = copied
    return out


def _hosts_sharing_block_with_hostless_key(pairings: list[Pairing], http_port: str) -> list[str]:
    """HTTPS hosts in a block that also has a hostless key: no route names them, so
    automatic HTTPS would miss them."""
    hosts: dict[str, None] = {}
    for pairing in pairings:
        for block in pairing.blocks:
            hostless = next((a for a in block.addresses if not a.host), None)
            if hostless is None:
                continue
            for addr in block.addresses:
                if addr.original != hostless.original and addr.host and addr.scheme != "http" and addr.port != http_port:
                    hosts[addr.host] = None
    return sorted(hosts)


def _site_policy(block: SiteBlock, options: dict[str, Any], catch_all: AutomationPolicy | None, forced: set[str],
                 http_port: str) -> tuple[AutomationPolicy, AutomationPolicy | None]:
    """The automation policy of one site block, and the policy its internal names split into."""
    ap = _base_policy(options, always=True)
    assert ap is not None
    hosts = block.hosts_from_keys(False)
    if not hosts and catch_all is not None:
        ap = catch_all  # a hostless site edits the catch-all policy itself, as Caddy does
    if block.pile.get("tls.on_demand"):
        ap.on_demand = True
    if block.pile.get("tls.force_automate"):
        forced.update(hosts)
    if block.pile.get("tls.reuse_private_keys"):
        ap.reuse_private_keys = True
    if block.pile.get("tls.key_type"):
        ap.key_type = block.values("tls.key_type")[0]
    if block.pile.get("tls.renewal_window_ratio"):
        ap.renewal_window_ratio = block.values("tls.renewal_window_ratio")[0]
    elif "renewal_window_ratio" in options:
        ap.renewal_window_ratio = options["renewal_window_ratio"]
    if block.pile.get("tls.cert_issuer"):
        issuers = block.values("tls.cert_issuer")
        if ap is catch_all and ap.issuers != issuers:
            raise _block_error(block, "automation policy from site block is also default/catch-all policy because of "
                               f"key without hostname, and the two are in conflict: {ap.issuers} != {issuers}")
        ap.issuers = issuers
    for manager in block.values("tls.cert_manager"):
        ap.managers = [*(ap.managers or []), copy.deepcopy(manager)]
    for bind in block.values("bind"):
        _set_bind_host(ap.issuers, bind)
    ap.subjects = sorted(block.hosts_from_keys_not_http(http_port))

    if ap.issuers:
        return ap, None
    internal: list[str] = []
    external: list[str] = []
    for subject in ap.subjects:
        if is_tailscale(subject):
            continue
        if not qualifies_for_cert(subject):
            raise _block_error(block, f"subject does not qualify for certificate: {subject!r}")
        (external if qualifies_for_public_cert_in(ap, subject) else internal).append(subject)
    if not (external and internal):
        return ap, None
    ap.subjects = external
    ap2 = copy.copy(ap)
    ap2.subjects = internal
    ap2.issuers_raw = [{"module": "internal"}]
    return ap, ap2


def _set_bind_host(issuers: list[Issuer], bind: Any) -> None:
    """A site's `bind` host becomes its ACME issuers' challenge bind host, unless one is set."""
    addresses = list(getattr(bind, "addresses", ()) or ())
    for issuer in issuers:
        if issuer.get("module") != "acme":
            continue
        challenges = issuer.setdefault("challenges", {})
        if not challenges.get("bind_host"):
            put(challenges, "bind_host", addresses[0] if addresses else "")


def _block_error(block: SiteBlock, message: str) -> RwsfileError:
    key = block.keys[0] if block.keys else None
    return RwsfileError(key.file if key else "", key.line if key else 0, message, key.imports if key else ())


def _base_policy(options: dict[str, Any], always: bool) -> AutomationPolicy | None:
    """A policy holding the global automation options; None (unless `always`) if none are set."""
    has_automation = any(k in options for k in ("cert_issuer", "local_certs", "key_type", "ocsp_stapling",
                                                "renewal_window_ratio"))
    has_acme = _has_global_acme_defaults(options, with_email=False)
    if not has_automation and not has_acme:
        return AutomationPolicy() if always else None
    ap = AutomationPolicy()
    if "key_type" in options:
        ap.key_type = options["key_type"]
    if "cert_issuer" in options and "local_certs" in options:
        where = getattr(options["cert_issuer"], "where", None)
        raise RwsfileError(where.file if where else "", where.line if where else 0,
                           "global options are ambiguous: local_certs is confusing when combined with cert_issuer, "
                           "because local_certs is also a specific kind of issuer", where.imports if where else ())
    if "cert_issuer" in options:
        ap.issuers = options["cert_issuer"]  # shared, as in Caddy
    elif "local_certs" in options:
        ap.issuers = [{"module": "internal"}]
    if has_acme:
        for issuer in ap.issuers:
            fill_in_global_acme_defaults(issuer, options)
    if "ocsp_stapling" in options:
        ap.disable_ocsp_stapling = bool(options["ocsp_stapling"].get("disable_stapling"))
        ap.ocsp_overrides = options["ocsp_stapling"].get("responder_overrides")
    if "renewal_window_ratio" in options:
        ap.renewal_window_ratio = options["renewal_window_ratio"]
    return ap


def _has_global_acme_defaults(options: dict[str, Any], with_email: bool) -> bool:
    keys = ["acme_ca", "acme_ca_root", "acme_eab", "preferred_chains"] + (["email"] if with_email else [])
    return any(options.get(k) is not None for k in keys) or "acme_dns" in options


def _certificates(loaders: list[CertLoader]) -> dict[str, JSON]:
    """Loaders of one kind combined into one list each (the app takes one of each kind)."""
    out: dict[str, JSON] = {}
    for loader in loaders:
        out.setdefault(loader.module, []).extend(copy.deepcopy(list(loader.items)))
    return out


def _automate_names(shared: list[str], forced: set[str], auto_https: list[str]) -> tuple[list[str], AutomationPolicy]:
    """Names to manage although no route names them, and the internal-issuer policy for
    the internal ones among the hosts of hostless blocks."""
    names: list[str] = []
    internal = AutomationPolicy(issuers_raw=[{"module": "internal"}])
    if "off" not in auto_https and "disable_certs" not in auto_https:
        for host in shared:
            names.append(host)
            if not qualifies_for_public_cert(host):
                internal.subjects.append(host)
    names.extend(name for name in forced if name not in names)
    return sorted(names), internal


def _apply_global_acme_defaults(policies: list[AutomationPolicy], options: dict[str, Any]) -> None:
    if _has_global_acme_defaults(options, with_email=True):
        # public-only policies without issuers get the default issuers, so that the global
        # ACME settings can apply to them (internal names use the internal issuer anyway)
        for ap in policies:
            if not ap.issuers and has_all_public_names(ap):
                ap.issuers = default_issuers(options.get("email") or "")
                if options.get("acme_ca") is not None:
                    ap.issuers = [{"module": "acme"}]
    for ap in policies:
        for issuer in ap.issuers:
            fill_in_global_acme_defaults(issuer, options)
        if ap.issuers and ap.issuers_raw is None:
            ap.issuers_raw = [copy.deepcopy(issuer) for issuer in ap.issuers]


def fill_in_global_acme_defaults(issuer: Issuer, options: dict[str, Any]) -> None:
    """Apply the global ACME options to an ACME issuer, where it does not set them itself."""
    if issuer.get("module") != "acme":
        return
    if options.get("email") is not None and not issuer.get("email"):
        put(issuer, "email", options["email"])
    if options.get("acme_ca") is not None and not issuer.get("ca"):
        put(issuer, "ca", options["acme_ca"])
    root = options.get("acme_ca_root")
    if root is not None and root not in issuer.get("trusted_roots_pem_files", []):
        issuer.setdefault("trusted_roots_pem_files", []).append(root)
    if options.get("acme_eab") is not None and issuer.get("external_account") is None:
        issuer["external_account"] = options["acme_eab"]
    if options.get("preferred_chains") is not None and issuer.get("preferred_chains") is None:
        issuer["preferred_chains"] = options["preferred_chains"]
    challenges = issuer.get("challenges")
    no_dns = challenges is None or challenges.get("dns") is None
    for option, kind in (("http_port", "http"), ("https_port", "tls-alpn")):
        port = options.get(option)
        if port is None or not no_dns:
            continue
        if challenges is None or not challenges.get(kind, {}).get("alternate_port"):
            challenges = issuer.setdefault("challenges", {})
            put(challenges.setdefault(kind, {}), "alternate_port", port)
    if challenges is None or (challenges.get("dns") is None and not challenges.get("bind_host")):
        binds = options.get("default_bind") or []
        addresses = list(getattr(binds[0].value, "addresses", ()) or ()) if binds else []
        if addresses:
            challenges = issuer.setdefault("challenges", {})
            put(challenges, "bind_host", addresses[0])
    if options.get("cert_lifetime") is not None and not issuer.get("certificate_lifetime"):
        put(issuer, "certificate_lifetime", options["cert_lifetime"])
    dns = (challenges or {}).get("dns")
    if options.get("tls_resolvers") and dns is not None:
        if ("acme_dns" in options or dns.get("provider") is not None) and not dns.get("resolvers"):
            dns["resolvers"] = list(options["tls_resolvers"])


def _check_subjects_unique(policies: list[AutomationPolicy], where: dict[str, Token]) -> None:
    seen: set[str] = set()
    for ap in policies:
        for subject in ap.subjects:
            if subject in seen:
                key = where.get(subject)
                raise RwsfileError(key.file if key else "", key.line if key else 0,
                                   "hostname appears in more than one automation policy, making certificate "
                                   f"management ambiguous: {subject}", key.imports if key else ())
            seen.add(subject)


def _listeners_use_any_port_other_than(addresses: list[str], port: str) -> bool:
    """Whether any listener address uses a port other than `port`."""
    if not port.isdecimal():
        return False
    other = int(port)
    for address in addresses:
        ports = _port_range(address)
        if ports is None:
            continue
        if other > ports[1] or other < ports[0]:
            return True
    return False


def _port_range(address: str) -> tuple[int, int] | None:
    """The port range of a listener address such as "tcp/[::1]:8000-8010" (0-0 for a Unix
    socket or a missing port); None if it does not parse."""
    from rws.rwsfile.addresses import AddressError, split_host_port

    network, slash, rest = address.partition("/")
    if not slash:
        network, rest = "", address
    if network.strip().lower().startswith(("unix", "fd")):
        return 0, 0
    try:
        _host, port = split_host_port(rest)
    except AddressError:
        return 0, 0
    first, _, last = port.partition("-")
    if not port:
        return 0, 0
    if not first.isdecimal() or (last and not last.isdecimal()):
        return None
    return int(first), int(last or first)


# --- connection policies -------------------------------------------------------------


def policy_settings_empty(policy: dict[str, JSON]) -> bool:
    """Whether a connection policy sets nothing but (maybe) its match."""
    return all(key == "match" for key in policy)


def consolidate_conn_policies(policies: list[dict[str, JSON]]) -> list[dict[str, JSON]]:
    """Caddy's consolidateConnPolicies: catch-all policies go last, duplicates go away,
    neighbours that differ only in their SNI lists are joined, and policies with the same
    match are merged field by field; a real conflict raises ValueError. The policy dicts
    are edited in place, as Caddy edits its policies."""
    cps = list(policies)
    go_stable_sort(cps, lambda a, b: b.get("match") is None and a.get("match") is not None)
    i = 0
    while i < len(cps):
        j = 0
        while j < len(cps):
            if j == i:
                j += 1
                continue
            if cps[i] == cps[j]:
                del cps[j]
                i -= 1
                break
            if _join_sni_neighbours(cps, i, j):
                i -= 1
                break
            if cps[i].get("match") == cps[j].get("match"):
                _merge_conn_policy(cps[i], cps[j])
                del cps[j]
                i -= 1
                break
            j += 1
        i += 1
    return cps


def _join_sni_neighbours(cps: list[dict[str, JSON]], i: int, j: int) -> bool:
    a, b = cps[i], cps[j]
    if i != j - 1 or len(a.get("match") or {}) != 1 or len(b.get("match") or {}) != 1:
        return False
    if "sni" not in a["match"] or "sni" not in b["match"]:
        return False
    if {k: v for k, v in a.items() if k != "match"} != {k: v for k, v in b.items() if k != "match"}:
        return False
    a["match"]["sni"] = list(a["match"]["sni"]) + list(b["match"]["sni"])
    del cps[j]
    return True


def _go_list(value: Any) -> str:
    return "[" + " ".join(map(str, value)) + "]"


def _merge_conn_policy(a: dict[str, JSON], b: dict[str, JSON]) -> None:
    """Fold policy b into a, which has the same match; ValueError if they conflict."""
    for key, label in (("alpn", "ALPN"), ("cipher_suites", "cipher suites"), ("curves", "curves")):
        if a.get(key) and b.get(key) and a[key] != b[key]:
            raise ValueError(f"two policies with same match criteria have conflicting {label}: "
                             f"{_go_list(a[key])} vs. {_go_list(b[key])}")
    if a.get("client_authentication") is None and b.get("client_authentication") is not None:
        raise ValueError("two policies with same match criteria have conflicting client auth configuration: "
                         f"{a.get('client_authentication')} vs. {b['client_authentication']}")
    for key, label in (("default_sni", "default SNI"), ("fallback_sni", "fallback SNI"),
                       ("protocol_min", "min protocol"), ("protocol_max", "max protocol")):
        if a.get(key) and b.get(key) and a[key] != b[key]:
            raise ValueError(f"two policies with same match criteria have conflicting {label}: {a[key]} vs. {b[key]}")
    sel_a, sel_b = a.get("certificate_selection"), b.get("certificate_selection")
    if sel_a is not None and sel_b is not None:
        for key in ("serial_number", "subject_organization", "public_key_algorithm", "all_tags"):
            if sel_a.get(key) != sel_b.get(key):
                raise ValueError(f"two policies with same match criteria have conflicting cert selections: "
                                 f"{sel_a} vs. {sel_b}")
    for key in ("alpn", "cipher_suites", "client_authentication", "curves", "default_sni", "fallback_sni",
                "protocol_min", "protocol_max"):
        if not a.get(key) and b.get(key):
            a[key] = b[key]
    if sel_a is None and sel_b is not None:
        a["certificate_selection"] = sel_b
    elif sel_a is not None and sel_b is not None:
        tags = list(sel_a.get("any_tag") or [])
        tags.extend(t for t in sel_b.get("any_tag") or [] if t not in tags)
        put(sel_a, "any_tag", tags)


# --- apps.pki ------------------------------------------------------------------------


def build_pki_app(pairings: list[Pairing], options: dict[str, Any], run: AdaptState) -> dict[str, JSON] | None:
    """The `pki` app: the `pki` option's CAs and those sites define ("pki.ca" values, dicts
    with an "id"), with `skip_install_trust` applied; None when there are no CAs."""
    skip_install_trust = "skip_install_trust" in options
    auto_https_off = "off" in (options.get("auto_https") or [])
    authorities: dict[str, dict[str, JSON]] = copy.deepcopy(options.get("pki") or {})
    if skip_install_trust:
        for ca in authorities.values():
            ca["install_trust"] = False
    for pairing in pairings:
        for block in pairing.blocks:
            for value in block.values("pki.ca"):
                ca = copy.deepcopy(value)
                ca_id = ca.pop("id", "") or "local"
                if skip_install_trust:
                    ca["install_trust"] = False
                authorities.setdefault(ca_id, ca)
    if not authorities and skip_install_trust and not auto_https_off:
        authorities["local"] = {"install_trust": False}
    return {"certificate_authorities": authorities} if authorities else None
