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
import contextlib
import itertools
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rws.errors import RwsError
from rws.runtime.channel import Channel, ChannelClosed, channel_pair
from rws.runtime.generation import Generation

if TYPE_CHECKING:
    from rws.runtime.runtime import Runtime

log = logging.getLogger(__name__)

REPLY_TIMEOUT = 60.0  # building a generation can take a while (big configs, slow disks)
ACK_TIMEOUT = 10.0  # a worker answers a stop request at once, before it drains
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

    def __init__(self, slot: int, proc: asyncio.subprocess.Process, channel: Channel,
                 on_notice: Callable[[WorkerProcess, dict[str, Any]], None]) -> None:
        self.slot = slot
        self.proc = proc
        self.channel = channel
        self.on_notice = on_notice  # messages the worker sends unasked
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.gone = asyncio.Event()
        self.retiring = False  # asked to stop: its exit is expected
        self.exited = asyncio.Event()

    async def read_replies(self) -> None:
        try:
            while True:
                message, fds = await self.channel.receive()
                for fd in fds:
                    os.close(fd)
                future = self.pending.pop(message["id"], None) if "id" in message else None
                if future is not None and not future.done():
                    future.set_result(message)
                elif "id" not in message:
                    self.on_notice(self, message)
        except ChannelClosed:
            return  # the worker is gone: no more replies (the block below ends what waits)
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
        with contextlib.suppress(ChannelClosed, TimeoutError):
            async with asyncio.timeout(VIEW_TIMEOUT):
                await self.channel.send({"op": op, **fields})

    async def wait_exit(self, timeout: float | None) -> None:
        """Until the process has exited; killed when `timeout` runs out first."""
        try:
            async with asyncio.timeout(timeout):
                await self.exited.wait()
        except TimeoutError:
            self.kill()
            await self.exited.wait()

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                self.proc.kill()


class Workers:
    """The worker processes of a supervisor (see the module docstring)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.count = 0
        self.live: dict[int, WorkerProcess] = {}  # by slot: the workers that serve
        self.everyone: set[WorkerProcess] = set()  # also those stopping, until they exit
        self.gen_ids = itertools.count(1)
        self.generations: dict[int, Generation] = {}  # id -> the supervisor's generation
        self.holders: dict[Generation, set[WorkerProcess]] = {}  # who still serves or drains it
        self.released = asyncio.Condition()
        self.stopping = False
        self.exits: dict[int, list[float]] = {}
        self.metrics: dict[WorkerProcess, list[dict[str, Any]]] = {}  # each worker's latest metrics
        self.departed: list[dict[str, Any]] = []  # the counters of workers that exited, added up
        self.tasks: set[asyncio.Task[Any]] = set()
        from rws.handlers.reverse_proxy.upstreams import publish_verdicts

        publish_verdicts(self._publish_verdict)

    # --- config changes ----------------------------------------------------------------

    async def prepare(self, new: Generation) -> int:
        """Every worker builds `new` (workers missing up to its count are started); an id
        to `commit` or `abort`. Raises RwsError, after aborting, if any worker fails."""
        gen = self._new_id(new)
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
        """The worker's error, or None."""
        listeners = {listener.key: listener for listener, _ in new.bindings}
        handed = {key: sock for key, li in listeners.items() if (sock := li.handed(worker.slot)) is not None}
        try:
            reply = await worker.request("prepare", gen=gen, tree=new.tree, config_files=list(new.ctx.config_files),
                                         keys=list(handed), fds=[sock.fileno() for sock in handed.values()])
        except ChannelClosed:
            return "exited while building the config"
        except TimeoutError:
            worker.kill()
            return "did not answer in time (stopped; it will be replaced)"
        return None if reply.get("ok") else str(reply.get("error") or "failed")

    async def commit(self, gen: int, count: int) -> None:
        """Every worker serves the prepared generation `gen` from now on."""
        targets = list(self.live.values())
        await self._all("commit", targets, gen=gen)
        self.holders.setdefault(self.generations[gen], set()).update(w for w in targets if not w.gone.is_set())
        self.count = count
        self.runtime.pool.keep_copies(count)  # the UDP sockets of workers there will be no more of
        for slot in [s for s in self.live if s >= count]:  # fewer workers than before
            self._spawn_task(self._retire(self.live[slot], grace=None))
        for slot in range(count):  # one died while this config was prepared
            if slot not in self.live:
                self._spawn_task(self._replace(slot))

    async def abort(self, gen: int) -> None:
        await self._all("abort", list(self.live.values()), gen=gen)
        self.generations.pop(gen, None)

    async def drained(self, generation: Generation) -> None:
        """Until no worker serves or drains `generation` any more (its listening sockets
        must stay open until then: a worker may still hold them)."""
        async with self.released:
            await self.released.wait_for(lambda: not self.holders.get(generation))
        self.holders.pop(generation, None)
        for gen in [g for g, known in self.generations.items() if known is generation]:
            del self.generations[gen]

    async def _release(self, worker: WorkerProcess, generation: Generation | None = None) -> None:
        """`worker` no longer holds `generation` (None: any, it exited)."""
        for held, holders in self.holders.items():
            if generation is None or held is generation:
                holders.discard(worker)
        async with self.released:
            self.released.notify_all()

    def _notice(self, worker: WorkerProcess, message: dict[str, Any]) -> None:
        if message.get("op") == "retired" and message.get("gen") in self.generations:
            self._spawn_task(self._release(worker, self.generations[message["gen"]]))

    def _new_id(self, generation: Generation) -> int:
        gen = next(self.gen_ids)
        self.generations[gen] = generation
        return gen

    async def _all(self, op: str, targets: list[WorkerProcess], **fields: Any) -> None:
        """Ask every target and wait for all (a worker that is gone has nothing to do)."""
        await asyncio.gather(*(self._ask_one(w, op, REPLY_TIMEOUT, **fields) for w in targets))

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
        worker = WorkerProcess(slot, proc, Channel(ours), self._notice)
        self.live[slot] = worker
        self.everyone.add(worker)
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
        self.everyone.discard(worker)
        if self.live.get(worker.slot) is worker:
            del self.live[worker.slot]
        self._keep_counters(worker)
        await self._release(worker)
        worker.exited.set()
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
            worker = None
            try:
                worker = await self._spawn(slot)
                gen = self._new_id(current)
                error = await self._prepare_one(worker, current, gen)
                if error:
                    raise RwsError(error)
                await worker.request("commit", gen=gen)
                self.holders.setdefault(current, set()).add(worker)
            except (RwsError, ChannelClosed, TimeoutError) as exc:
                log.error("starting a replacement worker failed", extra={"worker": slot, "error": str(exc)})
                if worker is not None and not worker.gone.is_set():
                    await self._retire(worker, grace=0)  # retiring: its exit starts no other replacement
                    self._spawn_task(self._replace(slot))
                # otherwise it died, and its exit brings the next attempt

    async def _retire(self, worker: WorkerProcess, grace: float | None, delay: float = 0.0) -> None:
        """Stop one worker (after its shutdown `delay`, draining within `grace`) and wait
        until it has exited. A worker that does not take the request is killed."""
        worker.retiring = True
        if self.live.get(worker.slot) is worker:
            del self.live[worker.slot]
        try:
            await worker.request("stop", timeout=ACK_TIMEOUT, grace=grace)
        except (ChannelClosed, TimeoutError):
            worker.kill()
        await worker.wait_exit(None if grace is None else delay + grace + STOP_SLACK)

    async def stop(self, grace: float | None, delay: float) -> None:
        """Drain every worker (after the config's shutdown `delay`) within `grace` and wait
        until all have exited, those already stopping too."""
        self.stopping = True
        live = list(self.live.values())
        stopping = [w for w in self.everyone if w not in live]
        limit = None if grace is None else delay + grace + STOP_SLACK
        await asyncio.gather(*(self._retire(w, grace, delay) for w in live),
                             *(w.wait_exit(limit) for w in stopping))
        for task in list(self.tasks):
            task.cancel()

    def kill(self) -> None:
        self.stopping = True
        for worker in self.everyone:
            worker.kill()

    # --- shared views ------------------------------------------------------------------

    async def ask(self, op: str) -> list[dict[str, Any]]:
        """Every live worker's answer to `op` (those that fail to answer are left out)."""
        workers = list(self.live.values())
        answers = await asyncio.gather(*(self._ask_one(w, op, VIEW_TIMEOUT) for w in workers))
        return [a for a in answers if a is not None]

    async def metric_snapshots(self) -> list[list[dict[str, Any]]]:
        """Every worker's metrics: fresh where it answers, else its latest; plus the
        counters of workers that exited, so that merged counters never go down."""
        workers = list(self.live.values())
        answers = await asyncio.gather(*(self._ask_one(w, "metrics", VIEW_TIMEOUT) for w in workers))
        for worker, answer in zip(workers, answers, strict=True):
            if answer is not None and worker in self.everyone:
                self.metrics[worker] = answer["metrics"]
        return [self.departed, *(self.metrics[w] for w in workers if w in self.metrics)]

    def _keep_counters(self, worker: WorkerProcess) -> None:
        from rws.observability.metrics import counters, merge, snapshot

        last = self.metrics.pop(worker, None)
        if last is not None:
            self.departed = snapshot(merge([self.departed, counters(last)]))

    async def _ask_one(self, worker: WorkerProcess, op: str, timeout: float, **fields: Any) -> dict[str, Any] | None:
        """The worker's answer, or None when it failed, is gone or did not answer in time."""
        try:
            reply = await worker.request(op, timeout=timeout, **fields)
        except (ChannelClosed, TimeoutError):
            return None
        return reply if reply.get("ok") else None

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
        except ValueError:  # a signal number Python has no name for
            return str(code)
    return str(code)
