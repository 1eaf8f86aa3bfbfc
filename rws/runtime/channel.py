"""The control channel between the supervisor and one worker: JSON messages over a
SOCK_SEQPACKET socket pair, with file descriptors (listening sockets) attached.

A message is one or more frames, so that a big config tree fits: each frame is at most
`FRAME` bytes of the JSON text behind a one-byte mark (`+` more follow, `.` the last), and
may carry up to `MAX_FDS` descriptors (SCM_RIGHTS); the receiver collects a message's
descriptors from all of its frames. Sending waits while the socket is full, so a worker
that stops reading holds up only the messages sent to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from typing import Any, Sequence

FRAME = 60 * 1024
MAX_FDS = 250  # under the kernel's SCM_MAX_FD (253)
_MORE, _LAST = b"+", b"."


class ChannelClosed(Exception):
    """The other end is gone."""


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """Two connected ends; the second is the one a child process inherits."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


class Channel:
    """One end of the control channel, on the running event loop."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.messages: asyncio.Queue[tuple[dict[str, Any], list[int]] | None] = asyncio.Queue()
        self.closed = False
        self.fd = sock.fileno()
        self._parts: list[bytes] = []
        self._fds: list[int] = []
        self._sending = asyncio.Lock()  # one message at a time: frames of two never interleave
        self._writable: asyncio.Future[None] | None = None
        self.loop.add_reader(self.fd, self._readable)

    async def receive(self) -> tuple[dict[str, Any], list[int]]:
        """The next message and the descriptors that came with it; ChannelClosed at the end."""
        item = await self.messages.get()
        if item is None:
            self.messages.put_nowait(None)  # every later call ends the same way
            raise ChannelClosed()
        return item

    async def send(self, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
        data = json.dumps(message, separators=(",", ":")).encode()
        frames = [data[i:i + FRAME] for i in range(0, len(data), FRAME)] or [b""]
        fd_chunks = [list(fds[i:i + MAX_FDS]) for i in range(0, len(fds), MAX_FDS)]
        frames += [b""] * (len(fd_chunks) - len(frames))  # more descriptors than text: empty frames carry them
        async with self._sending:
            for index, frame in enumerate(frames):
                mark = _LAST if index == len(frames) - 1 else _MORE
                try:
                    await self._send_frame(mark + frame, fd_chunks[index] if index < len(fd_chunks) else [])
                except asyncio.CancelledError:
                    if index:  # part of a message went out: the rest would be read as garbage
                        self.close()
                    raise

    async def _send_frame(self, frame: bytes, fds: list[int]) -> None:
        while True:
            if self.closed:
                raise ChannelClosed()
            try:
                socket.send_fds(self.sock, [frame], fds)
                return
            except BlockingIOError:
                self._writable = self.loop.create_future()
                self.loop.add_writer(self.fd, self._wake)
                try:
                    await self._writable
                finally:
                    self._writable = None
                    if not self.closed:
                        self.loop.remove_writer(self.fd)
            except OSError:
                self._close()
                raise ChannelClosed() from None

    def _wake(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def _readable(self) -> None:
        while not self.closed:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.sock, FRAME + 1, MAX_FDS)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fds = b"", []
            if not data:
                for fd in fds:
                    os.close(fd)
                self._close()
                return
            self._parts.append(data[1:])
            self._fds.extend(fds)
            if data[:1] == _LAST:
                text, self._parts = b"".join(self._parts), []
                got, self._fds = self._fds, []
                try:
                    message = json.loads(text)
                except ValueError:
                    message = None
                if not isinstance(message, dict):  # the other end is broken: stop talking to it
                    for fd in got:
                        os.close(fd)
                    self._close()
                    return
                self.messages.put_nowait((message, got))

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.fd)
        if self._writable is not None:
            self.loop.remove_writer(self.fd)
            self._wake()  # the sender finds the channel closed
        for fd in self._fds:
            os.close(fd)
        self._fds = []
        self.messages.put_nowait(None)

    def close(self) -> None:
        self._close()
        self.sock.close()
