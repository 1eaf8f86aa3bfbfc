"""Automatic HTTPS, as far as rws has it: which servers get TLS and which names need a
certificate (Caddy's rules, the reference's §8.1), and those certificates for the names
the local CA serves (`localhost`, `*.localhost`, `.local`, `.internal`, IP addresses, and
names an automation policy gives the internal issuer).

A managed certificate lives in storage at `certificates/local/<name>/<name>.{crt,key,json}`
and is issued again in the last third of its lifetime. Certificates are issued where
certificate management runs: the process itself, or the supervisor when there are worker
processes (each config is built there first); workers only load what storage holds.
Names that need a public CA are logged: the ACME issuer is not built yet.

HTTP→HTTPS redirects (§8.3): for every listener address of a server with TLS, the same
host on the HTTP port answers `308` to `https://{host}[:port]{uri}`, the port written only
when the HTTPS listener's is none of the HTTP/HTTPS ports (nor 80, 443; so `https_port
8443` redirects to `https://host/`, as Caddy 2.6.2 does), with `Connection: close`. The redirect routes go into a server that already listens there
(after its last route with a host matcher; a catch-all to the HTTPS port at its end), or
into a new server, `remaining_auto_https_redirects`.
"""

from __future__ import annotations

import datetime
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from rws.errors import ConfigError
from rws.net.listeners import parse_listen
from rws.tls.authority import LocalAuthority
from rws.tls.certificates import Certificate, load_pair
from rws.tls.names import is_internal, match_wildcard, qualifies_for_cert, qualifies_for_public_cert
from rws.tls.storage import FileStorage, safe_key

log = logging.getLogger(__name__)

RENEWAL_RATIO = 1 / 3  # issued again when this much of the lifetime is left
DEFAULT_HTTP_PORT, DEFAULT_HTTPS_PORT = 80, 443

_issue_here = True


def certificates_elsewhere() -> None:
    """In a worker: the supervisor issues; this process only loads from storage."""
    global _issue_here
    _issue_here = False


@dataclass
class Plan:
    policies: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # server -> its connection policies
    internal: list[str] = field(default_factory=list)  # names the local CA serves
    redirects: dict[str, list[str]] = field(default_factory=dict)  # server -> the names its redirects match


def plan(http_app: Any, http_tree: dict[str, Any], tls_app: Any, loaded: list[Certificate]) -> Plan:
    """What automatic HTTPS does to the http app's servers (see the module docstring)."""
    from rws.tls.config import ConnectionPolicyConfig

    result = Plan()
    http_port = http_app.http_port or DEFAULT_HTTP_PORT
    https_port = http_app.https_port or DEFAULT_HTTPS_PORT
    forced_internal = _internal_subjects(tls_app)
    for name, server in (http_app.servers or {}).items():
        auto = server.automatic_https
        if auto is not None and auto.disable:
            continue
        ports = {address.port for text in server.listen or () for address in parse_listen(text)}
        if ports and ports <= {http_port}:
            continue
        names = [n for n in _host_names(http_tree.get("servers", {}).get(name, {})) if not auto or n not in auto.skip]
        policies = server.tls_connection_policies
        if not names and not policies:
            if ports and ports <= {https_port}:
                result.policies[name] = (ConnectionPolicyConfig(),)
            continue
        result.policies[name] = policies or (ConnectionPolicyConfig(),)
        if not (auto is not None and auto.disable_redirects):
            result.redirects[name] = names
        if auto is not None and auto.disable_certificates:
            continue
        for subject in names:
            if (not qualifies_for_cert(subject) or (auto is not None and subject in auto.skip_certificates)
                    or subject in result.internal):
                continue
            if not (auto is not None and auto.ignore_loaded_certificates) and _covered(subject, loaded):
                continue
            if subject in forced_internal or is_internal(subject) or not qualifies_for_public_cert(subject):
                result.internal.append(subject)
            else:
                log.warning("no certificate: issuing from a public ACME CA is not available yet",
                            extra={"server_name": subject, "server": name})
    return result


REDIRECT_SERVER = "remaining_auto_https_redirects"


def with_redirects(http_tree: dict[str, Any], http_app: Any, result: Plan) -> dict[str, Any] | None:
    """The http app's JSON with the redirects added (a copy); None when there are none."""
    if not result.redirects:
        return None
    http_port = http_app.http_port or DEFAULT_HTTP_PORT
    https_port = http_app.https_port or DEFAULT_HTTPS_PORT
    servers = json.loads(json.dumps(http_tree.get("servers") or {}))
    routes_by_address: dict[str, list[dict[str, Any]]] = {}
    for name, names in result.redirects.items():
        for text in servers[name].get("listen") or ():
            for address in parse_listen(text):
                port = "" if address.port in (http_port, https_port, 80, 443) else f":{address.port}"
                http_address = f"{address.host}:{http_port}" if ":" not in address.host else f"[{address.host}]:{http_port}"
                routes_by_address.setdefault(http_address, []).append(_redirect(sorted(names, key=_redirect_order), port))
    catch_all = _redirect([], "")  # to the HTTPS port, which the rule above never writes
    remaining: list[str] = []
    for http_address, routes in routes_by_address.items():
        target = _server_on(servers, http_address)
        if target is None:
            remaining.append(http_address)
            continue
        existing = target.setdefault("routes", [])
        last_host = max((i for i, r in enumerate(existing) if any("host" in m for m in r.get("match") or ())),
                        default=-1)
        existing[last_host + 1:last_host + 1] = routes
        existing.append(catch_all)
    if remaining:
        routes = [route for address in remaining for route in routes_by_address[address]]
        servers[REDIRECT_SERVER] = {"listen": remaining, "routes": [*routes, catch_all]}
    return {**http_tree, "servers": servers}


def _redirect(names: list[str], port: str) -> dict[str, Any]:
    match: dict[str, Any] = {"protocol": "http"}
    if names:
        match["host"] = names
    return {"match": [match], "handle": [{
        "handler": "static_response", "status_code": 308, "close": True,
        "headers": {"Location": [f"https://{{http.request.host}}{port}{{http.request.uri}}"]}}]}


def _redirect_order(name: str) -> tuple[bool, int]:
    """Exact hosts before wildcards, longer hosts first."""
    return ("*" in name, -len(name))


def _server_on(servers: dict[str, Any], http_address: str) -> dict[str, Any] | None:
    wanted = parse_listen(http_address)[0]
    for server in servers.values():
        for text in server.get("listen") or ():
            if any((a.host, a.port) == (wanted.host, wanted.port) for a in parse_listen(text)):
                return server  # type: ignore[no-any-return]
    return None


def managed_certificates(names: list[str], storage: FileStorage, authority: LocalAuthority) -> list[Certificate]:
    """The local CA's certificate for each name: from storage, issued (again) when missing
    or due, where certificates are issued."""
    found: list[Certificate] = []
    for name in names:
        cert = _stored(storage, name)
        if _issue_here and (cert is None or renewal_due(cert)):
            with storage.lock(f"issue_cert_{safe_key(name)}"):
                cert = _stored(storage, name)  # another process may have done it meanwhile
                if cert is None or renewal_due(cert):
                    cert = _issue(storage, authority, name)
        if cert is None:
            log.warning("no certificate in storage yet", extra={"server_name": name})
        else:
            found.append(cert)
    return found


def renewal_due(cert: Certificate, now: datetime.datetime | None = None) -> bool:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now >= cert.not_after - (cert.not_after - cert.not_before) * RENEWAL_RATIO


def _issue(storage: FileStorage, authority: LocalAuthority, name: str) -> Certificate:
    chain, key = authority.issue([name])
    base = _base(name)
    storage.store(base + ".key", key, private=True)
    storage.store(base + ".crt", chain)
    storage.store(base + ".json", json.dumps({"sans": [name], "issuer_data": None}).encode())
    log.info("certificate obtained", extra={"identifier": name, "issuer": "local"})
    return load_pair(chain, key, (), name, base + ".crt")


def _stored(storage: FileStorage, name: str) -> Certificate | None:
    base = _base(name)
    chain, key = storage.load(base + ".crt"), storage.load(base + ".key")
    if not chain or not key:
        return None
    try:
        return load_pair(chain, key, (), name, base + ".crt")
    except ConfigError:  # unreadable: issued again
        return None


def _base(name: str) -> str:
    safe = safe_key(name)
    return f"certificates/local/{safe}/{safe}"


def _host_names(server: dict[str, Any]) -> list[str]:
    """The names of the host matchers of a server's top-level routes (not in subroutes)."""
    names: list[str] = []
    for route in server.get("routes") or ():
        for matcher_set in route.get("match") or ():
            for host in matcher_set.get("host") or ():
                if isinstance(host, str) and host.lower() not in names:
                    names.append(host.lower())
    return names


def _covered(name: str, loaded: list[Certificate]) -> bool:
    return any(match_wildcard(name, pattern) for cert in loaded for pattern in cert.names)


def _internal_subjects(tls_app: Any) -> set[str]:
    """Subjects of automation policies whose issuers include the internal one."""
    subjects: set[str] = set()
    automation = tls_app.automation if tls_app is not None else None
    for policy in (automation.policies if automation is not None else None) or ():
        issuers = [getattr(i, "id", "") for i in (policy.issuers or ())]
        if any(i.endswith("internal") for i in issuers):
            subjects.update(s.lower() for s in policy.subjects or ())
    return subjects
