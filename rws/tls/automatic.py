"""Automatic HTTPS, as far as rws has it: which servers get TLS and which names need a
certificate (Caddy's rules, the reference's §8.1), and those certificates for the names
the local CA serves (`localhost`, `*.localhost`, `.local`, `.internal`, IP addresses, and
names an automation policy gives the internal issuer); other names get theirs from an
ACME CA, the issuers of their automation policy (Let's Encrypt by default).

A managed certificate lives in storage at `certificates/local/<name>/<name>.{crt,key,json}`
and is issued again in the last third of its lifetime. Certificates are issued where
certificate management runs: the process itself, or the supervisor when there are worker
processes (each config is built there first); workers only load what storage holds.
Local certificates are issued while the config is built; ACME certificates are obtained in
the background (`Obtainer`): the server starts at once, serving the name without a
certificate until it has one, and takes it then (the config is applied again), as Caddy does.

HTTP→HTTPS redirects (§8.3): for every listener address of a server with TLS, the same
host on the HTTP port answers `308` to `https://{host}[:port]{uri}`, the port written only
when the HTTPS listener's is none of the HTTP/HTTPS ports (nor 80, 443; so `https_port
8443` redirects to `https://host/`, as Caddy 2.6.2 does), with `Connection: close`. The redirect routes go into a server that already listens there
(after its last route with a host matcher; a catch-all to the HTTPS port at its end), or
into a new server, `remaining_auto_https_redirects`.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from rws.errors import ConfigError, RwsError
from rws.net.listeners import parse_listen
from rws.tls.acme_issuer import AcmeIssuer
from rws.tls.authority import LocalAuthority
from rws.tls.certificates import Certificate, load_pair
from rws.tls.challenges import HTTP_01, Challenges
from rws.tls.names import is_internal, match_wildcard, qualifies_for_cert, qualifies_for_public_cert
from rws.tls.storage import FileStorage, safe_key

log = logging.getLogger(__name__)
T = TypeVar("T")

RENEWAL_RATIO = 1 / 3  # issued again when this much of the lifetime is left
LOCAL = "local"  # the local CA's folder under certificates/
LOCK_WAIT = 300.0  # seconds to wait for another process obtaining the same certificate
DEFAULT_HTTP_PORT, DEFAULT_HTTPS_PORT = 80, 443

_issue_here = True


def certificates_elsewhere() -> None:
    """In a worker: the supervisor issues; this process only loads from storage."""
    global _issue_here
    _issue_here = False


@dataclass(frozen=True)
class Wanted:
    """A name automatic HTTPS gets from an ACME CA: its issuers (tried in turn), when to
    renew, and the certificate storage holds for it, if any."""

    name: str
    issuers: tuple[AcmeIssuer, ...]
    ratio: float = RENEWAL_RATIO
    current: Certificate | None = None

    def due(self) -> bool:
        return self.current is None or renewal_due(self.current, ratio=self.ratio)


@dataclass
class Plan:
    policies: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # server -> its connection policies
    internal: list[str] = field(default_factory=list)  # names the local CA serves
    acme: list[Wanted] = field(default_factory=list)  # names for an ACME CA (`current` still unset)
    redirects: dict[str, list[str]] = field(default_factory=dict)  # server -> the names its redirects match


def plan(http_app: Any, http_tree: dict[str, Any], tls_app: Any, loaded: list[Certificate]) -> Plan:
    """What automatic HTTPS does to the http app's servers (see the module docstring)."""
    from rws.tls.config import ConnectionPolicyConfig

    result = Plan()
    http_port = http_app.http_port or DEFAULT_HTTP_PORT
    https_port = http_app.https_port or DEFAULT_HTTPS_PORT
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
                    or subject in result.internal or any(w.name == subject for w in result.acme)):
                continue
            if not (auto is not None and auto.ignore_loaded_certificates) and _covered(subject, loaded):
                continue
            policy = policy_for(subject, tls_app)
            if policy is not None and policy.on_demand:
                continue  # obtained at its first handshake (rws.tls.on_demand)
            wanted = wanted_for(subject, policy)
            if wanted is None:
                continue
            if wanted.issuers:
                result.acme.append(wanted)
            else:
                result.internal.append(subject)
    served = result.redirects or any(
        address.port == http_port for server in (http_app.servers or {}).values()
        for text in server.listen or () for address in parse_listen(text))
    if not served:  # nothing would answer HTTP-01 on the HTTP port: TLS-ALPN-01 only, when enabled
        result.acme = [replace(w, issuers=tuple(_without_http01(i) for i in w.issuers)) for w in result.acme]
    return result


def _without_http01(issuer: AcmeIssuer) -> AcmeIssuer:
    kinds = tuple(kind for kind in issuer.challenge_types if kind != HTTP_01)
    return replace(issuer, challenge_types=kinds) if kinds else issuer


def wanted_for(subject: str, policy: Any) -> Wanted | None:
    """How `subject` gets its certificate under its automation policy (None: no policy):
    from its ACME issuers, or from the local CA (no issuers). None when none of the
    policy's issuers can be used (logged)."""
    issuers = list(policy.issuers or ()) if policy is not None else []
    public = qualifies_for_public_cert(subject) and not is_internal(subject)
    if not public and not (policy is not None and policy.subjects):
        issuers = []  # a catch-all policy's issuers are for public names
    ratio = policy.renewal_window_ratio if policy is not None and policy.renewal_window_ratio else RENEWAL_RATIO
    if issuers[0].id.endswith("internal") if issuers else not public:
        return Wanted(subject, (), ratio)
    key_type = policy.key_type if policy is not None else ""
    acme = [AcmeIssuer.from_config(i.config, key_type) for i in issuers if i.id.endswith(".acme")]
    if issuers and not acme:
        log.error("no certificate: none of the name's issuers can be used (rws has the acme and "
                  "internal issuers)", extra={"server_name": subject, "issuers": [i.id for i in issuers]})
        return None
    return Wanted(subject, tuple(acme or [AcmeIssuer(key_type=key_type)]), ratio)


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
        cert = local_certificate(name, storage, authority, _issue_here)
        if cert is None:
            log.warning("no certificate in storage yet", extra={"server_name": name})
        else:
            found.append(cert)
    return found


def local_certificate(name: str, storage: FileStorage, authority: LocalAuthority, issue: bool) -> Certificate | None:
    """The local CA's certificate for `name` from storage; issued (again) when missing or
    due, if `issue`."""
    cert = _stored(storage, LOCAL, name)
    if issue and (cert is None or renewal_due(cert)):
        with storage.lock(f"issue_cert_{safe_key(name)}"):
            cert = _stored(storage, LOCAL, name)  # another process may have done it meanwhile
            if cert is None or renewal_due(cert):
                chain, key = authority.issue([name])
                cert = _store(storage, LOCAL, name, chain, key)
    return cert


def stored_acme_certificates(wanted: list[Wanted], storage: FileStorage) -> list[Wanted]:
    """`wanted` with the certificate storage holds for each name (of any of its issuers,
    the latest to expire), if any."""
    result = []
    for item in wanted:
        found = [cert for issuer in item.issuers if (cert := _stored(storage, issuer.key, item.name))]
        result.append(replace(item, current=max(found, key=lambda c: c.not_after, default=None)))
    return result


def obtain_certificate(item: Wanted, challenges: Challenges) -> Certificate:
    """Obtain `item`'s certificate from its issuers, the first that gives one, and store it
    where the challenges are (blocks; unless another process sharing the storage did it
    meanwhile)."""
    storage = challenges.storage
    with storage.lock(f"issue_cert_{safe_key(item.name)}", timeout=LOCK_WAIT):
        current = stored_acme_certificates([item], storage)[0]
        if not current.due():
            assert current.current is not None
            return current.current
        failures = []
        for issuer in item.issuers:
            try:
                chain, key = issuer.obtain(item.name, storage, challenges)
                return _store(storage, issuer.key, item.name, chain, key, issuer=issuer.ca)
            except Exception as exc:  # the CA's refusal, or an issuer's bug: the next issuer is tried
                error = str(exc) if isinstance(exc, RwsError) else f"{type(exc).__name__}: {exc}"
                if len(item.issuers) > 1:
                    log.warning("could not get a certificate from this issuer",
                                extra={"identifier": item.name, "issuer": issuer.ca, "error": error})
                failures.append(error)
    raise RwsError("; ".join(failures))


def renewal_due(cert: Certificate, now: datetime.datetime | None = None, ratio: float = RENEWAL_RATIO) -> bool:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now >= cert.not_after - (cert.not_after - cert.not_before) * ratio


def _store(storage: FileStorage, issuer_key: str, name: str, chain: bytes, key: bytes,
           issuer: str = "local") -> Certificate:
    base = _base(issuer_key, name)
    cert = load_pair(chain, key, (), name, base + ".crt")  # what the issuer gave must be usable
    storage.store(base + ".key", key, private=True)
    storage.store(base + ".crt", chain)
    storage.store(base + ".json", json.dumps({"sans": [name], "issuer_data": None}).encode())
    log.info("certificate obtained", extra={"identifier": name, "issuer": issuer,
                                            "expires": cert.not_after.isoformat()})
    return cert


def _stored(storage: FileStorage, issuer_key: str, name: str) -> Certificate | None:
    base = _base(issuer_key, name)
    chain, key = storage.load(base + ".crt"), storage.load(base + ".key")
    if not chain or not key:
        return None
    try:
        cert = load_pair(chain, key, (), name, base + ".crt")
    except ConfigError:  # unreadable: issued again
        return None
    if cert.expired() or not any(match_wildcard(name, pattern) for pattern in cert.names):
        return None  # (names that differ can share a folder: `safe_key` drops characters)
    return cert


def _base(issuer_key: str, name: str) -> str:
    safe = safe_key(name)
    return f"certificates/{issuer_key}/{safe}/{safe}"


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


def policy_for(subject: str, tls_app: Any) -> Any:
    """The automation policy of a name, as certmagic picks it: the one naming it exactly,
    else one whose wildcard covers it, else the catch-all (no subjects); None when none."""
    automation = tls_app.automation if tls_app is not None else None
    policies = list((automation.policies if automation is not None else None) or ())
    for fits in (lambda s: s.lower() == subject, lambda s: match_wildcard(subject, s.lower())):
        found = next((p for p in policies if any(fits(s) for s in p.subjects)), None)
        if found is not None:
            return found
    return next((p for p in policies if not p.subjects), None)


CERTIFICATE_THREADS = 4  # certificate work (ACME orders, on-demand checks) running at once
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a daemon thread of its own, at most `CERTIFICATE_THREADS` at once.
    Certificate work can block for minutes (a storage lock another process holds, a slow
    CA): it must not take the event loop's shared executor, which builds configs, nor keep
    the process from exiting (storage writes are atomic, and a lock file left expires)."""
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(CERTIFICATE_THREADS)
    async with slots:
        done: asyncio.Future[T] = loop.create_future()

        def settle(result: T | None, error: BaseException | None) -> None:
            if not done.done():
                if error is not None:
                    done.set_exception(error)
                else:
                    done.set_result(result)  # type: ignore[arg-type]

        def run() -> None:
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the awaiting task
                loop.call_soon_threadsafe(settle, None, exc)
            else:
                loop.call_soon_threadsafe(settle, result, None)

        threading.Thread(target=run, name="rws-certificates", daemon=True).start()
        return await done


RETRY_PAUSES = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 10800, 21600)  # seconds; then the last again


class Obtainer:
    """Where certificates are managed: obtains the ACME certificates a config wants in the
    background, one task per name, each retrying with growing pauses (`RETRY_PAUSES`) until
    it succeeds or the name leaves the config; after each success `obtained()` applies the
    config again, which takes the new certificate."""

    def __init__(self, obtained: Callable[[], Awaitable[None]]) -> None:
        self.obtained = obtained
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.stopped = False

    def want(self, wanted: list[Wanted], challenges: Challenges | None) -> None:
        """Obtain what `wanted` lacks or has due; stop obtaining names no longer wanted."""
        if self.stopped:
            return
        names = {item.name for item in wanted}
        for name in [n for n in self.tasks if n not in names]:
            self.tasks.pop(name).cancel()
        for item in wanted:
            if item.due() and item.name not in self.tasks and challenges is not None:
                task = asyncio.get_running_loop().create_task(self._obtain(item, challenges))
                self.tasks[item.name] = task

    def stop(self) -> None:
        self.stopped = True
        for task in self.tasks.values():
            task.cancel()
        self.tasks.clear()

    async def _obtain(self, item: Wanted, challenges: Challenges) -> None:
        for attempt in itertools.count():
            log.info("obtaining certificate", extra={"identifier": item.name, "attempt": attempt + 1,
                                                     "renewal": item.current is not None})
            try:
                await in_thread(obtain_certificate, item, challenges)
            except Exception as exc:  # the CA unreachable or refusing: logged, tried again later
                pause = RETRY_PAUSES[min(attempt, len(RETRY_PAUSES) - 1)]
                log.error("could not get a certificate", extra={"identifier": item.name, "error": str(exc),
                                                                "retrying_in": pause})
                await asyncio.sleep(pause)
                continue
            break
        self.tasks.pop(item.name, None)
        if not self.stopped:
            await self.obtained()
