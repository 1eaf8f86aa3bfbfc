"""Flow control on a connection: request bodies arrive into a buffer that pauses reading
above a high watermark and resumes as the handler reads; and the one timer that times
out the connections of a loop."""

from __future__ import annotations

import asyncio
import collections
import email.utils
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, Protocol

if TYPE_CHECKING:
    from rws.protocols.connection import HttpConnection

FILE_CHUNK = 256 * 1024


@dataclass(slots=True)
class FileBody:
    """A response body that is a region of an open file; the connection may sendfile it."""

    file: Any  # a binary file object with fileno(); closed by the connection when sent
    offset: int
    length: int


class BodyStream:
    """One request's body as it arrives; `read`/iteration wait for data with flow control."""

    __slots__ = ("conn", "chunks", "size", "complete", "waiter", "bytes_read", "expect_continue", "error")

    def __init__(self, conn: HttpConnection, expect_continue: bool) -> None:
        self.conn = conn
        self.chunks: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.complete = False
        self.waiter: asyncio.Future[None] | None = None
        self.bytes_read = 0
        self.expect_continue = expect_continue
        self.error: Exception | None = None

    def feed(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        self.bytes_read += len(data)
        self._wake()

    def finish(self, error: Exception | None = None) -> None:
        self.complete = True
        self.error = error
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def read(self, n: int = -1) -> bytes:
        if n < 0:
            parts: list[bytes] = []
            while True:
                part = await self.read(1 << 20)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        while not self.chunks and not self.complete:
            if self.waiter is not None:
                raise RuntimeError("the request body is already being read")
            if self.expect_continue:
                self.expect_continue = False
                self.conn.send_continue()
            self.waiter = self.conn.loop.create_future()
            self.conn.resume_if_needed()
            try:
                await self.waiter
            finally:
                self.waiter = None
        if not self.chunks:
            if self.error is not None:
                raise self.error
            return b""
        data = self.chunks.popleft()
        if len(data) > n > 0:
            self.chunks.appendleft(data[n:])
            data = data[:n]
        self.size -= len(data)
        self.conn.resume_if_needed()
        return data

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            data = await self.read(FILE_CHUNK)
            if not data:
                return
            yield data

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()


class Timed(Protocol):
    """A connection the loop's timer watches."""

    deadline: float

    def _timed_out(self) -> None: ...


class Deadlines:
    """One timer for all the connections of a loop: each connection keeps its own
    `deadline`; once a second the ones past theirs are timed out. (A timer per request
    would cost more than the requests of a simple site.)"""

    TICK = 1.0
    _by_loop: dict[asyncio.AbstractEventLoop, Deadlines] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.connections: set[Timed] = set()
        self.handle: asyncio.TimerHandle | None = None

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop) -> Deadlines:
        found = cls._by_loop.get(loop)
        if found is None:
            found = cls._by_loop[loop] = cls(loop)
        return found

    def watch(self, conn: Timed) -> None:
        self.connections.add(conn)
        if self.handle is None:
            self.handle = self.loop.call_later(self.TICK, self._tick)

    def forget(self, conn: Timed) -> None:
        self.connections.discard(conn)

    def _tick(self) -> None:
        now = self.loop.time()
        for conn in [c for c in self.connections if c.deadline and c.deadline <= now]:
            conn._timed_out()
        if self.connections:
            self.handle = self.loop.call_later(self.TICK, self._tick)
        else:
            self.handle = None
            if self.loop.is_closed() or not self.loop.is_running():
                self._by_loop.pop(self.loop, None)


def addresses(transport: Any) -> tuple[tuple[str, int], tuple[str, int]]:
    """A connection's (remote, local) addresses; ("", 0) for what a socket doesn't have
    (a Unix socket's peer)."""
    peer = transport.get_extra_info("peername")
    sock = transport.get_extra_info("sockname")
    remote = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else ("", 0)
    local = (str(sock[0]), int(sock[1])) if isinstance(sock, tuple) else ("", 0)
    return remote, local


def run_eagerly(coro: Any, loop: asyncio.AbstractEventLoop) -> asyncio.Task[None] | None:
    """Run an exchange's coroutine now, up to its first wait: most responses are ready
    without waiting for anything, and then no task is made at all. If it has to wait, a
    task takes over (and is returned)."""
    try:
        awaited = coro.send(None)
    except StopIteration:
        return None
    return loop.create_task(_continue(coro, awaited))


async def _continue(coro: Any, awaited: Any) -> None:
    """Drive a coroutine that was started outside a task and is waiting on `awaited`."""
    while True:
        try:
            if awaited is None:
                await asyncio.sleep(0)
            else:
                awaited._asyncio_future_blocking = False
                try:
                    await awaited
                except asyncio.CancelledError:
                    raise
                except BaseException:  # the coroutine reads the outcome from the future itself
                    pass
        except asyncio.CancelledError as exc:
            try:
                awaited = coro.throw(exc)
            except (StopIteration, asyncio.CancelledError):
                return
            continue
        try:
            awaited = coro.send(None)
        except StopIteration:
            return


def close_body(body: Any) -> None:
    """Release a response body that will not be sent."""
    if type(body) is FileBody:
        body.file.close()
    elif hasattr(body, "aclose"):
        asyncio.ensure_future(body.aclose())


_DATE: list[Any] = [0, ""]


def http_date() -> str:
    """The `Date` value, made anew once a second."""
    now = int(time.time())
    if _DATE[0] != now:
        _DATE[0] = now
        _DATE[1] = email.utils.formatdate(now, usegmt=True)
    return str(_DATE[1])
