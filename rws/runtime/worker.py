"""A worker process (`rws worker --control-fd N`, started by the supervisor): serves HTTP
on the listening sockets the supervisor hands over, with the config it sends.

It does what the supervisor asks on the control channel, one request at a time, each
answered with the request's `id`:

- `prepare` {gen, tree, keys} + the listening sockets: build the generation and take its
  listeners, without serving it yet; `commit` {gen}: serve it, the previous one drains;
  `abort` {gen}: drop it. A config change reaches every worker this way, all or none.
- `stop` {grace}: answered at once; then stop accepting, drain within the grace period
  and exit.
- It tells the supervisor, unasked, when a generation it served has finished draining
  (`retired` {gen}): until every worker has, the supervisor keeps that generation's
  listening sockets open, so that an address given up and taken back meets the same socket.
- `metrics`, `upstreams`: this worker's views, for the admin API to merge.
- `verdicts` {hosts}: active health verdicts (the supervisor runs the checks).

Certificates are the supervisor's to obtain and renew; a worker loads them from storage.

The worker exits when the channel closes (the supervisor is gone); on Linux the kernel
also sends it SIGTERM when the supervisor dies. SIGINT and SIGHUP are the supervisor's
(a terminal sends them to the whole process group): the worker ignores them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from typing import Any

from rws.errors import RwsError
from rws.net.listeners import ListenerPool
from rws.runtime.channel import Channel, ChannelClosed
from rws.runtime.generation import Generation
from rws.runtime.runtime import Runtime

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def main(control_fd: int, parent: int) -> int:
    _die_with_parent(parent)
    from rws.observability.logs import tag_process_records
    from rws.runtime.process import choose_loop, tune_collector

    tag_process_records(worker=int(os.environ.get("RWS_WORKER", "0")))
    tune_collector()
    choose_loop()
    return asyncio.run(Worker(socket.socket(fileno=control_fd)).run())


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # without it, the channel's end still ends the worker
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the supervisor died before the line above
        sys.exit(1)


class Worker:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.runtime = Runtime(autosave=False)
        self.runtime.pool = ListenerPool(inherited={})
        self.prepared: dict[int, Generation] = {}
        self.ids: dict[Generation, int] = {}  # the supervisor's id of each generation here
        self.channel: Channel | None = None
        self.notices: set[asyncio.Task[None]] = set()
        self.runtime.on_retired = self._retired

    async def run(self) -> int:
        from rws.handlers.reverse_proxy.upstreams import checks_elsewhere
        from rws.tls.automatic import certificates_elsewhere

        checks_elsewhere()
        certificates_elsewhere()
        loop = asyncio.get_running_loop()
        channel = self.channel = Channel(self.control)
        for sig in (signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, lambda: None)
        loop.add_signal_handler(signal.SIGTERM, self.runtime.request_stop)
        stopper = loop.create_task(self.runtime.stopped.wait())
        while True:
            receiving = loop.create_task(channel.receive())
            await asyncio.wait({receiving, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if stopper.done():  # SIGTERM
                receiving.cancel()
                break
            try:
                message, fds = receiving.result()
            except ChannelClosed:
                log.info("the supervisor is gone; stopping")
                await self.runtime.stop()
                break
            reply = await self.handle(message, fds)
            if reply is not None:
                await self._send({"id": message.get("id"), **reply})
            if message.get("op") == "stop":  # answered at once; now stop taking connections and drain
                self.runtime.pool.stop_accepting()
                await self.runtime.stop(message.get("grace"))
                break
        channel.close()
        return 0

    def _retired(self, generation: Generation) -> None:
        """Tell the supervisor, which keeps the generation's listening sockets open until
        every worker is done with it."""
        gen = self.ids.pop(generation, None)
        if gen is not None and self.channel is not None:
            task = asyncio.get_running_loop().create_task(self._send({"op": "retired", "gen": gen}))
            self.notices.add(task)
            task.add_done_callback(self.notices.discard)

    async def _send(self, message: dict[str, Any]) -> None:
        """To the supervisor; nothing to do when it is gone (the loop above ends then)."""
        assert self.channel is not None
        with contextlib.suppress(ChannelClosed):
            await self.channel.send(message)

    async def handle(self, message: dict[str, Any], fds: list[int]) -> dict[str, Any] | None:
        op = message.get("op")
        try:
            if op == "prepare":
                return await self.prepare(message, fds)
            for fd in fds:  # only a prepare brings sockets
                os.close(fd)
            if op == "commit":
                await self.runtime.commit(self.prepared.pop(message["gen"]))
                return {"ok": True}
            if op == "abort":
                gen = self.prepared.pop(message["gen"], None)
                if gen is not None:
                    self.ids.pop(gen, None)
                    await gen.retire(self.runtime.pool, 0)
                return {"ok": True}
            if op == "stop":
                return {"ok": True}
            if op == "metrics":
                from rws.observability.metrics import REGISTRY

                return {"ok": True, "metrics": REGISTRY.snapshot()}
            if op == "upstreams":
                return {"ok": True, "upstreams": await self.runtime.upstreams()}
            if op == "verdicts":
                from rws.handlers.reverse_proxy.upstreams import receive_verdict

                for address, healthy in message["hosts"].items():
                    receive_verdict(address, bool(healthy))
                return None
            return {"ok": False, "error": f"unknown request {op!r}"}
        except RwsError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a bug: say so, and keep serving
            log.exception("worker request failed", extra={"op": op})
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    async def prepare(self, message: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        pool = self.runtime.pool
        pool.inherit({key: socket.socket(fileno=fd) for key, fd in zip(message["keys"], fds, strict=True)})
        try:
            self.runtime.config_files = tuple(message.get("config_files") or ())
            generation = self.prepared[message["gen"]] = await self.runtime.prepare(message["tree"])
            self.ids[generation] = message["gen"]
        finally:
            pool.drop_inherited()
        return {"ok": True}
