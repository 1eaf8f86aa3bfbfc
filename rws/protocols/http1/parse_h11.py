"""The h11 parser backend, for where no compiled httptools fits: h11's events drive the
core through the same callbacks llhttp calls."""

from __future__ import annotations

import re

import h11

from typing import Any

from rws.protocols.http1.core import ParseFailure, UpgradeRequested


_OBS_FOLD = re.compile(rb"\n[ \t]")


class H11Parser:
    __slots__ = ("core", "conn", "head", "method", "version", "keep_alive", "upgrade")

    def __init__(self, core: Any) -> None:
        self.core = core
        self.conn = self._new_connection()
        self.head = bytearray()  # the bytes of a head still being received, to spot obs-fold
        self.method = b""
        self.version = ""
        self.keep_alive = True
        self.upgrade = False

    def get_method(self) -> bytes:
        return self.method

    def get_http_version(self) -> str:
        return self.version

    def should_keep_alive(self) -> bool:
        return self.keep_alive

    def should_upgrade(self) -> bool:
        return self.upgrade

    @staticmethod
    def _new_connection() -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024 * 1024)

    def feed(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._check_head(data)
        self.conn.receive_data(data)
        self._drain()

    def _check_head(self, data: bytes) -> None:
        """h11 unfolds obsolete line folding; refuse it, as the httptools backend does."""
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        region = self.head if end < 0 else self.head[:end]
        first_line_end = region.find(b"\n")
        if first_line_end >= 0 and _OBS_FOLD.search(region, first_line_end):
            raise ParseFailure(400, "obsolete line folding in a header")
        if end >= 0:
            self.head.clear()

    def eof(self) -> None:
        self.conn.receive_data(b"")
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise ParseFailure(exc.error_status_hint or 400, f"malformed request: {exc}") from None
            if event is h11.NEED_DATA or event is h11.PAUSED:
                if event is h11.PAUSED:
                    self._next_cycle()
                    continue
                return
            if isinstance(event, h11.Request):
                self.head.clear()
                core = self.core
                core.on_message_begin()
                core.on_url(bytes(event.target))
                headers = [(bytes(k), bytes(v)) for k, v in event.headers.raw_items()]
                for name, value in headers:
                    core.on_header(name, value)
                self.method = bytes(event.method)
                self.version = event.http_version.decode("ascii")
                self.keep_alive = _keep_alive(headers, "HTTP/" + self.version)
                self.upgrade = _upgrade(headers)
                core.on_headers_complete()
            elif isinstance(event, h11.Data):
                self.core.on_body(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self.core.on_message_complete()
                if self.upgrade:
                    raise UpgradeRequested(self.conn.trailing_data[0])
                self._next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return

    def _next_cycle(self) -> None:
        """h11 waits for our response before the next request; we answer elsewhere, so
        continue with a fresh connection fed what the client already sent."""
        leftover, closed = self.conn.trailing_data
        self.conn = self._new_connection()
        if leftover:
            self.conn.receive_data(leftover)
        if closed:
            self.conn.receive_data(b"")


def _keep_alive(headers: list[tuple[bytes, bytes]], version: str) -> bool:
    tokens = {t.strip().lower() for k, v in headers if k.lower() == b"connection" for t in v.split(b",")}
    if version == "HTTP/1.0":
        return b"keep-alive" in tokens
    return b"close" not in tokens


def _upgrade(headers: list[tuple[bytes, bytes]]) -> bool:
    tokens = {t.strip().lower() for k, v in headers if k.lower() == b"connection" for t in v.split(b",")}
    return b"upgrade" in tokens and any(k.lower() == b"upgrade" for k, _ in headers)
