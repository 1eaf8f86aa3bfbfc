"""The running server: the current config tree and generation, and `apply` to change them.

Every change builds a whole new generation from a whole new tree: validate and provision,
bind (reusing the listeners of unchanged addresses), activate, then retire the previous
generation in the background (in-flight requests finish within `grace_period`). A change
that fails at any step before activation leaves the running generation and the stored
tree as they were.
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

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, *, config_files: tuple[str, ...] = (), reload_source: Callable[[], dict[str, Any]] | None = None,
                 autosave: bool = True) -> None:
        self.pool = ListenerPool()
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
        new = await asyncio.get_running_loop().run_in_executor(None, Generation, tree, self.config_files)
        await new.start(self.pool)
        try:
            if self.admin is not None:
                await self.admin.configure(tree)
        except BaseException:
            await new.retire(self.pool, 0)
            raise
        old, self.generation, self.tree = self.generation, new, tree
        new.activate()
        log.info("config applied", extra={"servers": sorted(new.servers)})
        if old is not None:
            self._retire(old)
        self._autosave(tree)
        return True

    def request_stop(self) -> None:
        """Stop from inside a request (the admin API's /stop): after this task returns."""
        self.stop_task = asyncio.get_running_loop().create_task(self.stop())

    def upstreams(self) -> list[dict[str, Any]]:
        """What `GET /reverse_proxy/upstreams` reports: every upstream host in use."""
        from rws.handlers.reverse_proxy.upstreams import upstream_states

        return upstream_states()

    def metrics_text(self) -> str:
        """The Prometheus text of `GET /metrics`."""
        from rws.observability.metrics import REGISTRY

        return REGISTRY.expose()

    def _retire(self, old: Generation) -> None:
        task = asyncio.get_running_loop().create_task(old.retire(self.pool, old.grace_period, close_idle=False))
        self.retiring.add(task)
        self.retired.add(old)
        task.add_done_callback(self.retiring.discard)
        task.add_done_callback(lambda _: self.retired.discard(old))

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
        async with self.lock:
            gen, self.generation = self.generation, None
            if gen is not None:
                if gen.shutdown_delay:
                    await asyncio.sleep(gen.shutdown_delay)
                await gen.retire(self.pool, grace_period if grace_period is not None else gen.grace_period)
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
        for gen in [self.generation]:
            if gen is not None:
                for server in gen.servers.values():
                    server.abort_all()
        self.pool.close_all()
        self.stopped.set()


def _canonical(tree: Any) -> str:
    return json.dumps(tree, sort_keys=True, separators=(",", ":"))


def load_autosave() -> dict[str, Any] | None:
    path = autosave_path()
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
