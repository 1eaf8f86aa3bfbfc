"""One exchange on an HTTP/2 upstream connection (upstream_h2.py): the state of its stream
and, once the response head has come, the body of that response as it arrives. The
stream's window is given back to the upstream as the client's side takes the body."""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Any, Callable

from h2.errors import ErrorCodes

from rws.handlers.reverse_proxy.exchange import UpstreamError, UpstreamResponse, UpstreamTimeout
from rws.protocols.multiplexed import canonical_name

if TYPE_CHECKING:
    from rws.handlers.reverse_proxy.upstream_h2 import H2UpstreamConnection


class StreamRefused(UpstreamError):
    """The upstream did not process the stream (REFUSED_STREAM, or above the last stream
    id of its GOAWAY): it may be sent again, on another stream, as if never sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, answered=False)


class H2Stream:
    """One exchange on an HTTP/2 upstream connection; once its head has come, the body of
    its response too (an `exchange.ResponseBody`)."""

    __slots__ = ("conn", "stream_id", "head", "informational", "status", "headers", "trailers", "chunks", "buffered",
                 "acked_ahead", "done", "error", "waiter", "window_waiter", "sender", "sent_all", "body_read",
                 "received_any", "read_timeout", "released", "on_release")

    def __init__(self, conn: H2UpstreamConnection, stream_id: int, informational: Any) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.head: asyncio.Future[None] = conn.loop.create_future()  # resolved when the response head came
        self.informational = informational  # callback for 103 Early Hints
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.trailers: list[tuple[str, str]] = []  # filled in when they come (the response shares the list)
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0  # bytes received whose window was not given back yet
        self.acked_ahead = 0  # bytes at the front of `chunks` whose window was given back
        self.done = False  # the upstream ended its side of the stream
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None  # the body's reader, waiting for data
        self.window_waiter: asyncio.Future[None] | None = None  # the body's sender, waiting for a window
        self.sender: asyncio.Future[None] | None = None  # the task sending a request body
        self.sent_all = False  # the request went out with END_STREAM
        self.body_read = False  # bytes of a streamed request body were taken from the client
        self.received_any = False
        self.read_timeout = 0.0
        self.released = False
        self.on_release: Callable[[], None] | None = None

    # --- events from the connection ---------------------------------------------------------

    def head_received(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.received_any = True
        for name, value in raw:
            if name == b":status":
                self.status = int(value)
                break
        self.headers = response_fields(raw)
        if not self.head.done():
            self.head.set_result(None)

    def trailers_received(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.trailers.extend(response_fields(raw))  # the list the response shares

    def informational_received(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.received_any = True
        if self.informational is not None and (b":status", b"103") in raw:
            self.informational(103, response_fields(raw))

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        self._wake()

    def ended(self) -> None:
        self.done = True
        if not self.head.done():  # h2 checks a response has a head: this is a stream without one
            self.fail(UpstreamError("the upstream ended the stream without a response"))
        self._wake()

    def reset_by_upstream(self, code: ErrorCodes | int) -> None:
        if code == ErrorCodes.REFUSED_STREAM and not self.received_any:
            self.fail(StreamRefused(f"the upstream refused stream {self.stream_id}"))
        elif code == ErrorCodes.NO_ERROR and self.done:
            self.sent_all = True  # the response is complete: the upstream wants no more of the request
            if self.sender is not None and not self.sender.done():
                self.sender.cancel()
        else:
            name = code.name if isinstance(code, ErrorCodes) else str(code)
            self.fail(UpstreamError(f"the upstream reset the stream ({name})", answered=self.received_any))
        self.wake_sender()

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        if not self.head.done():
            self.head.set_exception(error)
            self.head.exception()  # retrieved: the caller may be gone
        self._wake()

    def wake_sender(self) -> None:
        waiter = self.window_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # --- the response ------------------------------------------------------------------------

    def response(self, read_timeout: float) -> UpstreamResponse:
        """The response once its head came; its body streams from this stream, unless all
        of it is here already (and no trailer fields came with it)."""
        headers = self.headers
        length = None
        for name, value in headers:
            if name == "Content-Length" and value.isdecimal():
                length = int(value)
        if self.done and self.error is None and not self.trailers:
            data = b"".join(self.chunks) if self.chunks else b""
            self.chunks.clear()
            self.release()  # gives the window of all of it back (`buffered`)
            return UpstreamResponse(self.status, headers, None, length, True, data=data)
        self.read_timeout = read_timeout
        return UpstreamResponse(self.status, headers, self, length, True, trailers=self.trailers)

    def __aiter__(self) -> H2Stream:
        return self

    async def __anext__(self) -> bytes:
        try:
            while not self.chunks and not self.done and self.error is None:
                self.waiter = self.conn.loop.create_future()
                if self.read_timeout:
                    try:
                        await asyncio.wait_for(self.waiter, self.read_timeout)
                    except asyncio.TimeoutError:
                        raise UpstreamTimeout("timed out reading the upstream response body") from None
                else:
                    await self.waiter
        except BaseException:
            self.release()
            raise
        if self.chunks:
            data = self.chunks.popleft()
            fresh = len(data)
            if self.acked_ahead:  # put back by `unread`: its window was given back already
                ahead = min(fresh, self.acked_ahead)
                self.acked_ahead -= ahead
                fresh -= ahead
            if fresh:
                self.buffered -= fresh
                self.conn.consumed(self.stream_id, fresh)
            return data
        self.release()
        if self.error is not None:
            raise self.error
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.release()

    def unread(self, data: bytes) -> None:
        """Put bytes read from the body back in front of the rest (their window was given
        back already: what `response_buffers` holds is bounded by its own setting)."""
        if data:
            self.chunks.appendleft(data)
            self.acked_ahead += len(data)

    def release(self) -> None:
        """The exchange is over for the handler: stop the request body if it still goes,
        reset the stream if it isn't finished, hand the stream's place back."""
        if self.released:
            return
        self.released = True
        if self.sender is not None and not self.sender.done():
            self.sender.cancel()
        self.conn.stream_done(self)
        if self.on_release is not None:
            self.on_release()


def response_fields(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Header fields from h2 (pseudo-fields left out) as the handler keeps them: names as
    Go writes them (`content-type` -> `Content-Type`), values decoded as Latin-1."""
    return [(canonical_name(name), value.decode("latin-1")) for name, value in raw if name[:1] != b":"]


