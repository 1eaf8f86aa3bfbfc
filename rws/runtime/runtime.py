"""The running server: the current config tree and generation, and `apply` to change them.

Every change builds a whole new generation from a whole new tree: validate and provision,
bind (reusing the listeners of unchanged addresses), activate, then retire the previous
generation in the background (in-flight requests finish within `grace_period`). A change
that fails at any step before activation leaves the running generation and the stored
tree as they were.

With worker processes (`Runtime(workers=True)`, the supervisor), this process builds each
generation too, but only binds its listeners; `Workers` has every worker prepare it before
anything switches, and the switch happens in all of them (rws.runtime.supervisor).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from rws.config.paths import autosave_path
from rws.net.listeners import ListenerPool
from rws.runtime.generation import Generation
from rws.runtime.supervisor import Workers, wanted_workers
from rws.tls.automatic import Obtainer, renewal_due

log = logging.getLogger(__name__)

RENEW_INTERVAL = 600.0  # Caddy's renew_interval: how often managed certificates are checked


class Runtime:
    def __init__(self, *, config_files: tuple[str, ...] = (), reload_source: Callable[[], dict[str, Any]] | None = None,
                 autosave: bool = True, workers: bool = False) -> None:
        self.pool = ListenerPool(serve=not workers)
        self.tree: dict[str, Any] = {}
        self.generation: Generation | None = None
        self.lock = asyncio.Lock()
        self.config_files = config_files
        self.reload_source = reload_source  # re-reads the config file the process started with (SIGHUP)
        self.autosave = autosave
        self.retiring: set[asyncio.Task[None]] = set()
        self.retired: set[Generation] = set()  # generations still draining after a reload
        self.stopped = asyncio.Event()
        self.admin: Any = None  # the admin endpoint, managed by rws.admin.api
        self.stop_task: asyncio.Task[None] | None = None
        self.workers: Workers | None = Workers(self) if workers else None
        self.on_retired: Callable[[Generation], None] | None = None  # a generation finished draining
        self._maintenance: asyncio.Task[None] | None = None
        self.obtainer: Obtainer | None = None  # where certificates are managed (see maintain_certificates)

    async def apply(self, tree: dict[str, Any], *, force: bool = False) -> bool:
        """Make `tree` the running config; False if it equals the current one (nothing to do)."""
        async with self.lock:
            return await self.apply_unlocked(tree, force=force)

    def lock_for_edit(self) -> asyncio.Lock:
        """Held across read-modify-apply, so concurrent admin writes serialise."""
        return self.lock

    async def apply_unlocked(self, tree: dict[str, Any], *, force: bool = False) -> bool:
        if not force and self.generation is not None and _canonical(tree) == _canonical(self.tree):
            return False
        new = await self.prepare(tree)
        staged = None
        try:
            if self.workers is not None:
                staged = await self.workers.prepare(new)
            if self.admin is not None:
                await self.admin.configure(tree)
        except BaseException:
            if staged is not None:
                await self.workers.abort(staged)  # type: ignore[union-attr]
            await new.retire(self.pool, 0)
            raise
        if self.workers is not None and staged is not None:
            await self.workers.commit(staged, wanted_workers(tree))
        elif wanted_workers(tree) > 1:
            log.warning("the number of workers changes when rws starts again; serving from this process",
                        extra={"workers": tree.get("workers")})
        await self.commit(new)
        return True

    async def prepare(self, tree: dict[str, Any]) -> Generation:
        """Build a generation and acquire its listeners, without serving yet."""
        new = await asyncio.get_running_loop().run_in_executor(None, Generation, tree, self.config_files)
        await new.start(self.pool)
        return new

    async def commit(self, new: Generation) -> None:
        """Serve `new` from now on; the previous generation drains in the background."""
        old, self.generation, self.tree = self.generation, new, new.tree
        await new.activate()
        log.info("config applied", extra={"servers": sorted(new.servers)})
        if self.obtainer is not None:
            self.obtainer.want(new.acme, new.challenges)
        if old is not None:
            self._retire(old)
        self._autosave(new.tree)

    def maintain_certificates(self) -> None:
        """Where certificates are managed (not in workers): the ACME certificates the config
        wants are obtained in the background (`Obtainer`), and every `renew_interval`
        (`RENEW_INTERVAL` by default) due certificates are renewed. A local one is issued by
        applying the config again; an ACME one is obtained in the background first. Either
        way the new certificate comes in by applying the config again, which swaps it in
        without dropping a connection."""
        self.obtainer = Obtainer(self._obtained)
        if self.generation is not None:
            self.obtainer.want(self.generation.acme, self.generation.challenges)
        self._maintenance = asyncio.get_running_loop().create_task(self._renew_loop())

    async def _renew_loop(self) -> None:
        while True:
            gen = self.generation
            await asyncio.sleep(_renew_interval(gen.config if gen is not None else None))
            gen = self.generation
            if gen is None:
                continue
            if self.obtainer is not None:
                self.obtainer.want(gen.acme, gen.challenges)
            if any(renewal_due(cert) for cert in gen.managed):
                log.info("renewing certificates")
                await self._obtained()

    async def _obtained(self) -> None:
        """Apply the config again, taking the certificates storage now holds."""
        try:
            async with self.lock:
                if self.generation is None:  # stopping, or stopped
                    return
                await self.apply_unlocked(self.tree, force=True)
        except Exception as exc:  # the running config goes on; the next round tries again
            log.error("taking the new certificates failed", extra={"error": str(exc)})

    def request_stop(self) -> None:
        """Stop from inside a request (the admin API's /stop): after this task returns."""
        self.stop_task = asyncio.get_running_loop().create_task(self.stop())

    async def upstreams(self) -> list[dict[str, Any]]:
        """What `GET /reverse_proxy/upstreams` reports: every upstream host in use (of all workers)."""
        from rws.handlers.reverse_proxy.upstreams import merge_states, upstream_states

        if self.workers is None:
            return upstream_states()
        views = [answer["upstreams"] for answer in await self.workers.ask("upstreams")]
        return merge_states([upstream_states(), *views])

    async def metrics_text(self) -> str:
        """The Prometheus text of `GET /metrics` (of all workers)."""
        from rws.observability.metrics import REGISTRY, merge, render

        if self.workers is None:
            return REGISTRY.expose()
        return render(merge([REGISTRY.snapshot(), *await self.workers.metric_snapshots()]))

    def _retire(self, old: Generation) -> None:
        task = asyncio.get_running_loop().create_task(self._drain(old))
        self.retiring.add(task)
        self.retired.add(old)
        task.add_done_callback(self.retiring.discard)
        task.add_done_callback(lambda _: self.retired.discard(old))

    async def _drain(self, old: Generation) -> None:
        if self.workers is not None:  # the listeners stay open while a worker drains on them
            await self.workers.drained(old)
        await old.retire(self.pool, old.grace_period, close_idle=False)
        if self.on_retired is not None:
            self.on_retired(old)

    def _autosave(self, tree: dict[str, Any]) -> None:
        persist = ((tree.get("admin") or {}).get("config") or {}).get("persist", True)
        if not self.autosave or persist is False:
            return
        path = autosave_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, encoding="utf-8") as fh:
                json.dump(tree, fh)
                tmp = fh.name
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("could not autosave the config", extra={"path": str(path), "error": str(exc)})

    async def reload_from_source(self) -> None:
        """SIGHUP: adapt the config file again and apply it."""
        if self.reload_source is None:
            log.warning("reload requested, but the process was not started from a config file")
            return
        try:
            tree = await asyncio.get_running_loop().run_in_executor(None, self.reload_source)
            await self.apply(tree)
        except Exception as exc:  # a bad file on disk must not stop the running server
            log.error("reload failed; the running config is unchanged", extra={"error": str(exc)})

    async def stop(self, grace_period: float | None = None) -> None:
        """Stop serving: wait `shutdown_delay`, drain within the grace period, close listeners."""
        if self._maintenance is not None:
            self._maintenance.cancel()
        if self.obtainer is not None:
            self.obtainer.stop()
        async with self.lock:
            gen, self.generation = self.generation, None
            if grace_period is None and gen is not None:
                grace_period = gen.grace_period
            if self.workers is not None:  # they wait out shutdown_delay and drain
                await self.workers.stop(grace_period, gen.shutdown_delay if gen is not None else 0.0)
            if gen is not None:
                if gen.shutdown_delay and self.workers is None:
                    await asyncio.sleep(gen.shutdown_delay)
                await gen.retire(self.pool, grace_period)
            for old in list(self.retired):  # stopping: idle connections of old generations go now
                for server in old.servers.values():
                    server.drain(close_idle=True)
            if self.retiring:
                await asyncio.gather(*self.retiring, return_exceptions=True)
            if self.admin is not None:
                self.admin.close()
            self.pool.close_all()
        self.stopped.set()

    def force_stop(self) -> None:
        """A second signal: drop every connection now."""
        if self.workers is not None:
            self.workers.kill()
        for gen in [self.generation]:
            if gen is not None:
                for server in gen.servers.values():
                    server.abort_all()
        self.pool.close_all()
        self.stopped.set()


def _renew_interval(config: Any) -> float:
    """The tls app's `automation.renew_interval` in seconds, else `RENEW_INTERVAL`."""
    tls = (config.apps or {}).get("tls") if config is not None else None
    automation = tls.config.automation if tls is not None else None
    return float(automation.renew_interval) if automation is not None and automation.renew_interval else RENEW_INTERVAL


def _canonical(tree: Any) -> str:
    return json.dumps(tree, sort_keys=True, separators=(",", ":"))


def load_autosave() -> dict[str, Any] | None:
    path = autosave_path()
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
