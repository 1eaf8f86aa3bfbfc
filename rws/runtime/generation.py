"""One config generation: everything built from one JSON tree, started on shared listeners,
retired when the next one takes over."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from rws.config.model import validate_tree
from rws.errors import RwsError
from rws.http.routes import BuildContext
from rws.http.server import DEFAULT_PROTOCOLS, HttpServer
from rws.net.listeners import Listener, ListenerPool, parse_listen
from rws.net.tls import TlsMaterial
from rws.observability.logs import build_logs
from rws.tls.authority import authority_for
from rws.tls.automatic import Wanted, managed_certificates, plan, stored_acme_certificates, with_redirects
from rws.tls.certificates import Certificate, load_certificates
from rws.tls.challenges import Challenges
from rws.tls.storage import storage_for

log = logging.getLogger(__name__)


class Generation:
    """Built (`Generation(tree)`, which validates and provisions), then `start`ed on the
    pool's listeners, `activate`d (new connections come here), and finally `retire`d."""

    def __init__(self, tree: dict[str, Any], config_files: tuple[str, ...] = ()) -> None:
        self.tree = tree
        self.config = validate_tree(tree)
        self.ctx = BuildContext(config_files=config_files)
        self.servers: dict[str, HttpServer] = {}
        self.bindings: list[tuple[Listener, HttpServer]] = []
        self.factories: dict[Listener, Callable[[], asyncio.Protocol]] = {}  # a TCP listener's (its protocols)
        self.grace_period: float | None = None
        self.shutdown_delay = 0.0
        apps = self.config.apps or {}
        http, tls, pki = apps.get("http"), apps.get("tls"), apps.get("pki")
        self.managed: list[Certificate] = []  # the local CA's certificates automatic HTTPS obtained
        self.acme: list[Wanted] = []  # the names an ACME CA serves, with what storage holds
        self.challenges: Challenges | None = None  # ACME challenges this config's servers answer
        try:
            self.logs = build_logs(self.config.logging, self.ctx)
            storage = storage_for(self.config.storage)
            certificates = load_certificates(tls.config.certificates, storage) if tls is not None else []
            if http is not None:
                app = http.config
                automatic = plan(app, tree["apps"]["http"], tls.config if tls is not None else None, certificates)
                redirected = with_redirects(tree["apps"]["http"], app, automatic)
                if redirected is not None:  # the servers as they run; `self.tree` stays the config as given
                    app = validate_tree({**tree, "apps": {**tree["apps"], "http": redirected}}).apps["http"].config
                local_ca = authority_for(storage, pki.config if pki is not None else None)
                assert local_ca is not None  # `local` always is
                if automatic.internal:
                    self.managed = managed_certificates(automatic.internal, storage, local_ca)
                if automatic.acme:
                    self.acme = stored_acme_certificates(automatic.acme, storage)
                    certificates += [item.current for item in self.acme if item.current is not None]
                on_demand = None
                if automatic.acme or _has_on_demand(tls):
                    self.challenges = Challenges(storage)
                if tls is not None and self.challenges is not None and _has_on_demand(tls):
                    from rws.tls.on_demand import OnDemand

                    local_ca.ensure()  # its root exists from now on, for `rws trust`
                    on_demand = OnDemand(tls.config, self.challenges, local_ca)
                material = TlsMaterial(certificates + self.managed, self.challenges, on_demand,
                                       tls.config.session_tickets if tls is not None else None)
                self.grace_period = app.grace_period or None
                self.shutdown_delay = app.shutdown_delay or 0.0
                for name, server_config in (app.servers or {}).items():
                    self.servers[name] = HttpServer(name, server_config, self.ctx, metrics=app.metrics is not None,
                                                    tls=material, tls_policies=automatic.policies.get(name))
        except BaseException:
            self._run_closers()
            raise

    async def start(self, pool: ListenerPool) -> None:
        """Acquire every listener; on failure release what was acquired and raise. A server
        that speaks HTTP/3 also gets a UDP listener on the port of each TCP one; one that
        can't be bound is logged and leaves that address to TCP (where Caddy would fail the
        config: rws serves the site, and advertises HTTP/3 only where it listens)."""
        try:
            for server in self.servers.values():
                ports: list[int] = []
                for index, text in enumerate(server.config.listen or ()):
                    h3 = _speaks_h3(server, index)
                    protocols = server.config.listen_protocols[index] if server.config.listen_protocols else None
                    for address in parse_listen(text):
                        listener = await pool.acquire(address, owner=server.name)
                        self.bindings.append((listener, server))
                        self.factories[listener] = server.listener_factory(protocols)
                        if h3 and address.network != "unix":
                            ports += await self._bind_quic(pool, listener, server)
                server.alt_svc = ",".join(f'h3=":{port}"; ma=2592000' for port in dict.fromkeys(ports))
        except RwsError:
            for listener, _ in self.bindings:
                pool.release(listener)
            self.bindings.clear()
            self._run_closers()
            raise

    async def _bind_quic(self, pool: ListenerPool, tcp: Listener, server: HttpServer) -> list[int]:
        """The UDP listener beside `tcp`: its port, or none when it could not be had."""
        address = tcp.address.datagram(tcp.bound[1])
        try:
            listener = await pool.acquire(address)
        except RwsError as exc:
            if pool.inherited is None:  # (a worker: the supervisor said so already)
                log.warning("HTTP/3 off on this address: its UDP port could not be bound",
                            extra={"address": address.key, "error": str(exc)})
            return []
        self.bindings.append((listener, server))
        return [address.port]

    async def activate(self) -> None:
        self.logs.install()
        for listener, server in self.bindings:
            await listener.serve(server.quic if listener.address.is_datagram else self.factories[listener])
        for starter in self.ctx.starters:
            try:
                starter()
            except Exception:  # a module's background work failing to start must not stop the others
                log.exception("starting a module's background work failed")

    def bound(self, server_name: str) -> list[tuple[str, int]]:
        """The addresses a server's listeners are bound to (ports as the OS chose them)."""
        return [listener.bound for listener, server in self.bindings
                if server.name == server_name and not listener.address.is_datagram]

    async def retire(self, pool: ListenerPool, grace_period: float | None, *, close_idle: bool = True) -> None:
        """Finish in-flight requests (bounded by `grace_period`), then close everything.
        After a reload (`close_idle=False`) idle keep-alive connections stay open until their
        next request, answered with `Connection: close`, or until their idle timeout."""
        for listener, server in self.bindings:
            if listener.factory is self.factories.get(listener) or (server.quic is not None and listener.factory is server.quic):
                listener.factory = None
        for server in self.servers.values():
            server.drain(close_idle)
        waits = [server.wait_idle(grace_period) for server in self.servers.values()]
        results = await asyncio.gather(*waits) if waits else []
        if not all(results):
            log.warning("grace period over; closing connections still open", extra={"grace_period": grace_period})
            for server in self.servers.values():
                server.abort_all()
        for listener, _ in self.bindings:
            pool.release(listener)
        self.bindings.clear()
        self._run_closers()

    def close(self) -> None:
        """Release what building this (never started) generation opened."""
        self._run_closers()

    def _run_closers(self) -> None:
        for closer in reversed(self.ctx.closers):
            try:
                result = closer()
                if asyncio.iscoroutine(result):
                    asyncio.ensure_future(result)
            except Exception:  # a module's close failing must not stop the others
                log.exception("closing a module failed")
        self.ctx.closers.clear()


def _speaks_h3(server: HttpServer, index: int) -> bool:
    """As Caddy: the listener's protocols (`listen_protocols`), else the server's, include
    h3, and the server has TLS. Connection policies that all authenticate clients leave
    nothing for QUIC (rws.net.tls.ServerTls.quic_certificate)."""
    config = server.config
    per_listener = config.listen_protocols[index] if config.listen_protocols else None
    if "h3" not in (per_listener or config.protocols or DEFAULT_PROTOCOLS) or server.tls is None:
        return False
    return any(policy.config.client_authentication is None for policy in server.tls.policies)


def _has_on_demand(tls: Any) -> bool:
    automation = tls.config.automation if tls is not None else None
    return automation is not None and any(policy.on_demand for policy in automation.policies)
