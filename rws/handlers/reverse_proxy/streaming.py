"""After an upstream's `101 Switching Protocols` (WebSocket and any other upgrade): the
client's connection and the upstream's carry bytes both ways until either side ends.

Each direction has flow control: when one side's outgoing buffer is full, reading from
the other side pauses until it drains. When either side closes (or is lost), both are
closed, buffered bytes flushed first. A tunnel lasts at most `stream_timeout`; when its
config is replaced it is closed after `stream_close_delay` (at once by default), as Caddy
closes hijacked connections when a config is unloaded.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from rws.handlers.reverse_proxy.upstream_h1 import UpstreamConnection
from rws.http.message import Headers, Response


class TunnelResponse(Response):
    """A `101` response whose exchange continues as a tunnel."""

    __slots__ = ("tunnel",)

    def __init__(self, headers: Headers, tunnel: Tunnel) -> None:
        super().__init__(101, headers, b"")
        self.tunnel = tunnel


class Tunnel:
    def __init__(self, upstream: UpstreamConnection, on_close: Callable[[], None], *, timeout: float = 0.0,
                 close_delay: float = 0.0) -> None:
        self.upstream = upstream
        self.on_close = on_close
        self.timeout = timeout
        self.close_delay = close_delay
        self.client: Any = None
        self.done: asyncio.Future[None] | None = None

    async def run(self, client: Any, leftover: bytes) -> None:
        """Called by the client's connection once the 101 is written."""
        self.client = client
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        upstream = self.upstream
        timer = loop.call_later(self.timeout, self._finish) if self.timeout > 0 else None
        try:
            if upstream.transport is None:
                return
            upstream.tunnel = self
            if upstream.upgrade_data:
                client.transport.write(upstream.upgrade_data)
                upstream.upgrade_data = b""
            if leftover:
                upstream.transport.write(leftover)
            await self.done
        finally:
            if timer is not None:
                timer.cancel()
            upstream.tunnel = None
            upstream.close()
            self.on_close()

    def drain(self) -> None:
        """The config that made this tunnel was replaced: close it after the delay."""
        if self.close_delay > 0:
            asyncio.get_running_loop().call_later(self.close_delay, self._finish)
        else:
            self._finish()

    def _finish(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    # --- client side (called by the client's HttpConnection) ---------------------------------

    def client_data(self, data: bytes) -> None:
        transport = self.upstream.transport
        if transport is None:
            self._finish()
            return
        transport.write(data)

    def client_eof(self) -> None:
        self._finish()

    def client_lost(self) -> None:
        self._finish()

    def client_pause_writing(self) -> None:
        if self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def client_resume_writing(self) -> None:
        if self.upstream.transport is not None:
            self.upstream.transport.resume_reading()

    # --- upstream side (called by the UpstreamConnection) ------------------------------------

    def upstream_data(self, data: bytes) -> None:
        client = self.client
        if client is None or client.transport is None:
            self._finish()
            return
        client.transport.write(data)

    def upstream_closed(self) -> None:
        self._finish()

    def upstream_pause_writing(self) -> None:
        if self.client is not None and self.client.transport is not None:
            self.client.transport.pause_reading()

    def upstream_resume_writing(self) -> None:
        if self.client is not None and self.client.transport is not None:
            self.client.transport.resume_reading()


def tunnel_response(headers: Headers, upstream: UpstreamConnection, on_close: Callable[[], None], *,
                    timeout: float = 0.0, close_delay: float = 0.0) -> Response:
    return TunnelResponse(headers, Tunnel(upstream, on_close, timeout=timeout, close_delay=close_delay))
