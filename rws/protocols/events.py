"""A request head as a protocol core reports it: one vocabulary for every HTTP version
(`stream_id` is 0 for HTTP/1)."""

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
    host: str = ""  # the Host header ("" when absent)
    stream_id: int = 0
