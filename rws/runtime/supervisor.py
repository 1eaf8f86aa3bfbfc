"""Worker processes (`workers N|auto`): the supervisor's side.

The supervisor is the `rws run` process. It keeps the config, the admin API and the
listening sockets (its pool binds without serving), builds every generation once itself
(so a bad config fails there, with the same message as with one process, and so active
health checks run once, here), and has `Workers` do the serving:

- **A config change is all or none.** `prepare` sends the tree and the generation's
  listening sockets (SCM_RIGHTS) to every worker, which builds it without serving; only
  when all are ready does `commit` switch them over, else `abort` drops it everywhere and
  the admin write fails. The admin API answers after the commit. A connection is served
  by the generation that accepted it, as in one process.
- **Lifecycle.** Workers are spawned up to the configured count (new ones at a config
  change get that config directly); a worker that exits unasked is replaced with the
  current config, at once the first times and then with a growing pause (restart
  storms). `stop` drains every worker within the grace period; `kill` ends them now.
- **Views.** `/metrics` and `/reverse_proxy/upstreams` ask every worker and merge.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

from rws.errors import RwsError
from rws.runtime.channel import Channel, ChannelClosed, channel_pair
from rws.runtime.generation import Generation

if TYPE_CHECKING:
    from rws.runtime.runtime import Runtime

log = logging.getLogger(__name__)

REPLY_TIMEOUT = 120.0  # building a generation can take a while (big configs, slow disks)
VIEW_TIMEOUT = 5.0
STOP_SLACK = 30.0  # a stopping worker's time to exit beyond its shutdown delay and grace period
EXIT_TIMEOUT = 10.0  # after its channel closes, how long a worker may take to exit
RESTART_WINDOW = 30.0  # exits within this window count towards a restart storm
RESTART_FREE = 3  # this many restarts in the window happen at once, later ones wait
MAX_RESTART_PAUSE = 30.0


def wanted_workers(tree: dict[str, Any]) -> int:
    """The worker count a tree asks for: `workers` (a number, or "auto" for the CPUs this
    process may run on); 1, one process with no supervisor, when absent or not valid
    (validation then says what is wrong)."""
    value = tree.get("workers")
    if value == "auto":
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            return os.cpu_count() or 1
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return 1


class WorkerProcess:
    """One worker as the supervisor sees it: its process and its control channel."""

    def __init__(self, slot: int, proc: asyncio.subprocess.Process, channel: Channel) -> None:
        self.slot = slot
        self.proc = proc
        self.channel = channel
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.gone = asyncio.Event()
        self.retiring = False  # asked to stop: its exit is expected

    async def read_replies(self) -> None:
        try:
            while True:
                message, fds = await self.channel.receive()
                for fd in fds:
                    os.close(fd)
                future = self.pending.pop(message.get("id"), None)  # type: ignore[arg-type]
                if future is not None and not future.done():
                    future.set_result(message)
        except ChannelClosed:
            pass
        finally:
            self.gone.set()
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(ChannelClosed())
            self.pending.clear()

    async def request(self, op: str, timeout: float | None = REPLY_TIMEOUT, fds: list[int] | None = None,
                      **fields: Any) -> dict[str, Any]:
        """Ask and wait for the answer (`timeout` None: as long as it takes); ChannelClosed if
        the worker is gone, TimeoutError."""
        ident = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        try:
            async with asyncio.timeout(timeout):  # a worker that stops reading can't hold the sender either
                await self.channel.send({"id": ident, "op": op, **fields}, fds or [])
                return await future
        finally:
            self.pending.pop(ident, None)

    async def tell(self, op: str, **fields: Any) -> None:
        """Send without waiting for an answer (given up after a while: a worker that
        stops reading does not pile up messages here)."""
        try:
            async with asyncio.timeout(VIEW_TIMEOUT):
                await self.channel.send({"op": op, **fields})
        except (ChannelClosed, TimeoutError):
            pass

    def kill(self) -> None:
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass


class Workers:
    """The worker processes of a supervisor (see the module docstring)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.count = 0
        self.live: dict[int, WorkerProcess] = {}
        self.gen_ids = itertools.count(1)
        self.stopping = False
        self.exits: dict[int, list[float]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        from rws.handlers.reverse_proxy.upstreams import publish_verdicts

        publish_verdicts(self._publish_verdict)

    # --- config changes ----------------------------------------------------------------

    async def prepare(self, new: Generation) -> int:
        """Every worker builds `new` (workers missing up to its count are started); an id
        to `commit` or `abort`. Raises RwsError, after aborting, if any worker fails."""
        gen = next(self.gen_ids)
        fresh: list[WorkerProcess] = []
        try:
            for slot in range(wanted_workers(new.tree)):
                if slot not in self.live:
                    fresh.append(await self._spawn(slot))
            targets = list(self.live.values())
            results = await asyncio.gather(*(self._prepare_one(w, new, gen) for w in targets))
            errors = [f"worker {w.slot}: {error}" for w, error in zip(targets, results, strict=True) if error]
            if errors:
                raise RwsError(errors[0])
        except BaseException:
            await self.abort(gen)
            for worker in fresh:
                await self._retire(worker, grace=0)
            raise
        return gen

    async def _prepare_one(self, worker: WorkerProcess, new: Generation, gen: int) -> str | None:
        """The worker's error, or None (also when it died meanwhile: it is replaced)."""
        listeners = {listener.key: listener for listener, _ in new.bindings}
        try:
            reply = await worker.request("prepare", gen=gen, tree=new.tree, config_files=list(new.ctx.config_files),
                                         keys=list(listeners), fds=[li.sock.fileno() for li in listeners.values()])
        except ChannelClosed:
            return None
        except TimeoutError:
            worker.kill()
            return "did not answer in time (stopped; it will be replaced)"
        return None if reply.get("ok") else str(reply.get("error") or "failed")

    async def commit(self, gen: int, count: int) -> None:
        await self._all("commit", gen=gen)
        self.count = count
        for slot in [s for s in self.live if s >= count]:  # fewer workers than before
            self._spawn_task(self._retire(self.live[slot], grace=None))
        for slot in range(count):  # one died while this config was prepared
            if slot not in self.live:
                self._spawn_task(self._replace(slot))

    async def abort(self, gen: int) -> None:
        await self._all("abort", gen=gen)

    async def _all(self, op: str, **fields: Any) -> None:
        async def one(worker: WorkerProcess) -> None:
            try:
                await worker.request(op, **fields)
            except (ChannelClosed, TimeoutError):
                pass

        await asyncio.gather(*(one(w) for w in list(self.live.values())))

    # --- processes ---------------------------------------------------------------------

    async def _spawn(self, slot: int) -> WorkerProcess:
        from rws.handlers.reverse_proxy.upstreams import verdicts
        from rws.runtime.process import rws_command

        ours, theirs = channel_pair()
        command, env = rws_command()
        try:
            proc = await asyncio.create_subprocess_exec(
                *command, "worker", "--control-fd", str(theirs.fileno()), "--parent", str(os.getpid()),
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env={**env, "RWS_WORKER": str(slot)})
        except OSError as exc:
            ours.close()
            raise RwsError(f"starting worker {slot}: {exc.strerror or exc}") from None
        finally:
            theirs.close()
        worker = WorkerProcess(slot, proc, Channel(ours))
        self.live[slot] = worker
        self._spawn_task(worker.read_replies())
        self._spawn_task(self._watch(worker))
        await worker.tell("verdicts", hosts=verdicts())
        log.info("worker started", extra={"worker": slot, "pid": proc.pid})
        return worker

    async def _watch(self, worker: WorkerProcess) -> None:
        await worker.gone.wait()
        try:
            async with asyncio.timeout(EXIT_TIMEOUT):
                code = await worker.proc.wait()
        except TimeoutError:
            worker.kill()
            code = await worker.proc.wait()
        worker.channel.close()
        if self.live.get(worker.slot) is worker:
            del self.live[worker.slot]
        if self.stopping or worker.retiring or worker.slot >= self.count:
            log.info("worker exited", extra={"worker": worker.slot, "pid": worker.proc.pid, "code": code})
            return
        log.error("worker exited unexpectedly; replacing it",
                  extra={"worker": worker.slot, "pid": worker.proc.pid, "code": _exit_text(code)})
        self._spawn_task(self._replace(worker.slot))

    async def _replace(self, slot: int) -> None:
        now = time.monotonic()
        recent = [t for t in self.exits.get(slot, []) if now - t < RESTART_WINDOW] + [now]
        self.exits[slot] = recent
        if len(recent) > RESTART_FREE:
            pause = min(MAX_RESTART_PAUSE, 2.0 ** (len(recent) - RESTART_FREE - 1))
            log.warning("worker keeps exiting; waiting before the next start", extra={"worker": slot, "pause": pause})
            await asyncio.sleep(pause)
        async with self.runtime.lock:
            current = self.runtime.generation
            if self.stopping or slot in self.live or slot >= self.count or current is None:
                return
            try:
                worker = await self._spawn(slot)
                gen = next(self.gen_ids)
                error = await self._prepare_one(worker, current, gen)
                if error:
                    raise RwsError(error)
                await worker.request("commit", gen=gen)
            except (RwsError, ChannelClosed, TimeoutError) as exc:
                log.error("starting a replacement worker failed", extra={"worker": slot, "error": str(exc)})
                if slot in self.live:
                    await self._retire(self.live[slot], grace=0)
                self._spawn_task(self._replace(slot))

    async def _retire(self, worker: WorkerProcess, grace: float | None, delay: float = 0.0) -> None:
        """Stop one worker (after its shutdown `delay`, draining within `grace`) and wait
        until it is gone."""
        worker.retiring = True
        if self.live.get(worker.slot) is worker:
            del self.live[worker.slot]
        try:
            await worker.request("stop", timeout=None if grace is None else delay + grace + STOP_SLACK,
                                 grace=grace)
        except (ChannelClosed, TimeoutError):
            worker.kill()
        await worker.gone.wait()
        try:
            async with asyncio.timeout(EXIT_TIMEOUT):
                await worker.proc.wait()
        except TimeoutError:
            worker.kill()
            await worker.proc.wait()

    async def stop(self, grace: float | None, delay: float) -> None:
        """Drain every worker (after the config's shutdown `delay`) within `grace` and wait."""
        self.stopping = True
        await asyncio.gather(*(self._retire(w, grace, delay) for w in list(self.live.values())))
        for task in list(self.tasks):
            task.cancel()

    def kill(self) -> None:
        self.stopping = True
        for worker in self.live.values():
            worker.kill()

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.live.values()]

    # --- shared views ------------------------------------------------------------------

    async def ask(self, op: str) -> list[dict[str, Any]]:
        """Every live worker's answer to `op` (those that fail to answer are left out)."""
        async def one(worker: WorkerProcess) -> dict[str, Any] | None:
            try:
                reply = await worker.request(op, timeout=VIEW_TIMEOUT)
            except (ChannelClosed, TimeoutError):
                return None
            return reply if reply.get("ok") else None

        answers = await asyncio.gather(*(one(w) for w in list(self.live.values())))
        return [a for a in answers if a is not None]

    def _publish_verdict(self, address: str, healthy: bool) -> None:
        for worker in list(self.live.values()):
            self._spawn_task(worker.tell("verdicts", hosts={address: healthy}))

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            pass
    return str(code)
