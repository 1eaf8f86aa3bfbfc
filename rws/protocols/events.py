"""What a protocol core reports: one vocabulary for every HTTP version.

Events say what arrived, in the past tense; `stream_id` is 0 for HTTP/1.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)  # not frozen: one is made per request, and frozen ones build slowly
class RequestReceived:
    method: str
    target: str
    version: str  # "HTTP/1.1"
    headers: list[tuple[str, str]]
    keep_alive: bool  # what the client asked for
    expect_continue: bool
    has_body: bool
    content_length: int | None
    chunked: bool
    upgrade: bool = False
    stream_id: int = 0


@dataclass(frozen=True, slots=True)
class BodyReceived:
    data: bytes
    stream_id: int = 0


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The request (head and body) has been received completely."""

    stream_id: int = 0


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The peer sent something unacceptable; answer `status` (if any) and close."""

    status: int
    message: str
    stream_id: int = 0


@dataclass(frozen=True, slots=True)
class ConnectionTerminated:
    """The peer closed its side."""

    stream_id: int = 0


Event = RequestReceived | BodyReceived | StreamEnded | ProtocolError | ConnectionTerminated
