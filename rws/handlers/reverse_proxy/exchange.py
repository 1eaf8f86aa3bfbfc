"""What one request to an upstream gives back, whichever HTTP version carried it: the
response (status, header fields, a body that streams, trailers) and the three ways an
exchange fails, which the handler maps to statuses and retries.

- `DialError`: no connection (or no stream) was had, so nothing was sent: another
  upstream may be tried at no risk (502 when none is left).
- `UpstreamError`: the exchange failed once the request was on its way (502).
- `UpstreamTimeout`: the upstream took too long (504).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    from rws.handlers.reverse_proxy.upstream_h1 import UpstreamConnection


class DialError(ConnectionError):
    """No connection to the upstream: nothing was sent, so another upstream may be tried."""


class UpstreamTimeout(TimeoutError):
    """The upstream did not answer in time (504)."""


class UpstreamError(ConnectionError):
    """The exchange failed after the request was written (502); `answered` tells whether
    any byte of a response had arrived."""

    def __init__(self, message: str, answered: bool = True) -> None:
        super().__init__(message)
        self.answered = answered


class ResponseBody(Protocol):
    """A response body as it arrives from the upstream: an async iterator of bytes that
    raises UpstreamError (or UpstreamTimeout) if the body ends early. When it ends, fails
    or is closed (`aclose`), what carried it is handed back and `on_release` runs, once."""

    on_release: Callable[[], None] | None

    def __aiter__(self) -> ResponseBody: ...

    async def __anext__(self) -> bytes: ...

    async def aclose(self) -> None: ...

    def unread(self, data: bytes) -> None:
        """Put bytes read from the body back in front of the rest."""


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[str, str]]
    body: ResponseBody | None  # None when the whole body is in `data`
    length: int | None  # Content-Length, when the upstream gave one
    keep_alive: bool
    # The upstream's trailer fields: the list is filled in when they arrive, after the body.
    trailers: list[tuple[str, str]] = field(default_factory=list)
    upgraded: UpstreamConnection | None = None  # after a 101: the raw HTTP/1.1 connection
    data: bytes = b""  # the whole body, when it came with the head
