"""What HTTP/2 and HTTP/3 share: one exchange per stream, run as the App sees an HTTP/1
connection (a `Stream` has the scheme, addresses, TLS state and body flow control of one),
and the response turned into header fields and body frames.

A protocol layer (`rws.protocols.http2`, `rws.protocols.http3`) implements `Mux`: it
parses frames, makes a `Stream` per request, feeds its body, and sends what the stream
asks it to send under its own flow control.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from typing import Any, Protocol

from rws.protocols.events import RequestReceived
from rws.protocols.flow import FILE_CHUNK, BodyStream, FileBody, close_body, http_date, run_eagerly

log = logging.getLogger(__name__)

# Fields that describe an HTTP/1 connection: never sent in an HTTP/2 or HTTP/3 message.
CONNECTION_FIELDS = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})
ACK_THRESHOLD = 16 * 1024  # body bytes read before the peer's window is opened again
RESET_ALLOWANCE = 200  # resets of running streams a connection gets before they are counted against it
GOAWAY_LINGER = 1.0  # seconds an idle connection stays open after a graceful GOAWAY (a reload)


def abusive_resets(resets: int, completed: int) -> bool:
    """Whether a client resets running streams far more often than it lets them finish
    (rapid reset: each reset stream started a handler for nothing)."""
    return resets > RESET_ALLOWANCE and resets > 4 * completed


class Mux(Protocol):
    """The protocol layer under streams."""

    loop: asyncio.AbstractEventLoop
    scheme: str
    remote: tuple[str, int]
    local: tuple[str, int]
    tls: Any
    timeouts: Any  # the server's (rws.protocols.connection.Timeouts)

    def send_headers(self, stream_id: int, fields: list[tuple[bytes, bytes]], end_stream: bool) -> None: ...

    async def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None: ...

    def end_stream(self, stream_id: int) -> None: ...

    def reset(self, stream_id: int, internal_error: bool = False) -> None: ...

    def consumed(self, stream_id: int, size: int) -> None: ...

    def stream_done(self, stream: Stream, complete: bool) -> None: ...

    def close_after_streams(self) -> None: ...


class Stream:
    """One request and its response on a multiplexed connection. To the App and to the
    request body it is the connection: `scheme`, `remote`, `local`, `tls`, `loop`,
    `exchange`, `send_informational`, `send_continue`, `resume_if_needed`."""

    __slots__ = ("mux", "stream_id", "head", "body", "loop", "scheme", "remote", "local", "tls", "exchange",
                 "task", "acked", "ended", "timer")

    def __init__(self, mux: Mux, stream_id: int, head: RequestReceived) -> None:
        self.mux = mux
        self.stream_id = stream_id
        self.head = head
        self.loop = mux.loop
        self.scheme = mux.scheme
        self.remote = mux.remote
        self.local = mux.local
        self.tls = mux.tls
        self.exchange: Any = None
        self.task: asyncio.Task[None] | None = None
        self.acked = 0  # body bytes whose window was given back to the peer
        self.ended = False  # our side of the stream is closed (the response is complete)
        self.timer: asyncio.TimerHandle | None = None  # `read_body`, then `write`, when set
        self.body = BodyStream(self, head.expect_continue)  # type: ignore[arg-type]  # a Stream serves as its connection
        if not head.has_body:
            self.body.complete = True

    # --- as a connection, for the App and the body ---------------------------------------

    def send_continue(self) -> None:
        if not self.ended:
            self.mux.send_headers(self.stream_id, [(b":status", b"100")], False)

    def send_informational(self, status: int, headers: list[tuple[str, str]]) -> None:
        if not self.ended:
            self.mux.send_headers(self.stream_id, [(b":status", str(status).encode())] + _fields(headers), False)

    def resume_if_needed(self) -> None:
        """The handler read from the body: give the window back once enough was read."""
        body = self.body
        consumed = body.bytes_read - body.size - self.acked
        if consumed >= ACK_THRESHOLD or (consumed > 0 and body.size == 0):
            self.acked += consumed
            self.mux.consumed(self.stream_id, consumed)

    # --- the exchange ----------------------------------------------------------------------

    def start(self, app: Any) -> None:
        """Run the exchange eagerly: most responses are ready without waiting, and then no
        task is made."""
        read_body = self.mux.timeouts.read_body
        if read_body and not self.body.complete:
            self.timer = self.loop.call_later(read_body, self._timed_out, "the request body")
        self.task = run_eagerly(self._exchange(app), self.loop)

    def cancel(self) -> None:
        """The peer reset the stream, or the connection is gone."""
        if not self.body.complete:
            self.body.finish(ConnectionResetError("the client reset the stream"))
        self.ended = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def _timed_out(self, what: str) -> None:
        """`read_body` or `write` ran out: the stream is reset (the connection goes on),
        as Go's HTTP/2 server does."""
        self.timer = None
        if (what == "the request body" and self.body.complete) or self.ended:
            return
        log.debug("stream timed out", extra={"waiting_for": what, "stream": self.stream_id})
        self.mux.reset(self.stream_id, internal_error=True)
        self.cancel()

    async def _exchange(self, app: Any) -> None:
        head = self.head
        complete = close = False
        try:
            response = await app.handle(head, self.body, self)
            if response.abort:
                self.mux.reset(self.stream_id, internal_error=True)
                self.ended = True
                return
            # As Go: a handler's `Connection: close` ends the connection gracefully (GOAWAY,
            # after this stream is done). A close for a body left unread (HTTP/1's reason)
            # is not needed: the stream's reset stops the body.
            close = response.close and self.body.complete
            written = await self._respond(head, response)
            complete = True
            app.sent(response, head, written, self.body)
        except asyncio.CancelledError:
            return
        except (ConnectionError, TimeoutError) as exc:  # the client, or what the body came from, is gone
            if isinstance(exc, TimeoutError):
                log.warning("response body timed out", extra={"error": str(exc)})
            if not self.ended:
                self.mux.reset(self.stream_id, internal_error=True)
                self.ended = True
        except Exception:  # the stream's task boundary: log once, reset the stream
            log.exception("error writing response")
            if not self.ended:
                self.mux.reset(self.stream_id, internal_error=True)
                self.ended = True
        finally:
            self.task = None
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            self.mux.stream_done(self, complete)
            if close:
                self.mux.close_after_streams()

    async def _respond(self, head: RequestReceived, response: Any) -> int:
        status: int = response.status
        body = response.body
        kind = type(body)
        no_body = status in (204, 304) or head.method == "HEAD"
        length: int | None = None
        if kind is bytes or kind is bytearray or kind is memoryview:
            length = len(body)
        elif kind is FileBody:
            length = body.length
        fields = response_fields(status, response.headers, length, head.method == "HEAD")
        trailers = response.trailers
        write = self.mux.timeouts.write
        if write:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_later(write, self._timed_out, "the response to be written")
        mux, sid = self.mux, self.stream_id
        ended = False
        if no_body or length == 0:
            ended = not trailers
            mux.send_headers(sid, fields, ended)
            close_body(body)
            written = 0
        elif kind is FileBody:
            mux.send_headers(sid, fields, False)
            written = await self._send_file(body)
        elif length is not None:
            ended = not trailers
            mux.send_headers(sid, fields, False)
            await mux.send_data(sid, bytes(body), ended)
            written = length
        else:
            mux.send_headers(sid, fields, False)
            written = await self._send_stream(body)
        if not ended:
            if trailers:
                mux.send_headers(sid, _fields(list(trailers.items())), True)
            else:
                mux.end_stream(sid)
        self.ended = True
        return written

    async def _send_stream(self, body: Any) -> int:
        written = 0
        try:
            async for data in body:
                if data:
                    written += len(data)
                    await self.mux.send_data(self.stream_id, bytes(data), False)
        finally:
            close = getattr(body, "aclose", None)
            if close is not None:
                await close()
        return written

    async def _send_file(self, body: FileBody) -> int:
        written = 0
        try:
            fd = body.file.fileno()
            while written < body.length:
                data = os.pread(fd, min(body.length - written, FILE_CHUNK), body.offset + written)
                if not data:
                    break  # the file shrank: the stream ends short of its content-length
                written += len(data)
                await self.mux.send_data(self.stream_id, data, False)
        finally:
            body.file.close()
        if written < body.length:
            self.mux.reset(self.stream_id, internal_error=True)
            self.ended = True
            raise ConnectionResetError("the file shrank while it was sent")
        return written


def response_fields(status: int, headers: Any, length: int | None, head: bool) -> list[tuple[bytes, bytes]]:
    """A response head as HTTP/2 and HTTP/3 fields: `:status` first, lower-case names,
    no connection-specific fields, a computed `content-length` for a body of known size,
    and `date`."""
    fields = [(b":status", _STATUS.get(status) or str(status).encode())]
    has_length = has_date = False
    bodiless = status in (204, 304) or 100 <= status < 200
    for name, value in headers:
        lname = _LOWER.get(name)
        if lname is None:
            lname = name.lower() if _TOKEN.fullmatch(name) else ""
            if len(_LOWER) < 4096:
                _LOWER[name] = lname
        if not lname or lname in CONNECTION_FIELDS:  # (as Go: a name that is no token is not sent)
            continue
        if lname == "content-length":
            if bodiless or (length is not None and not head and value.strip() != str(length)):
                continue
            has_length = True
        elif lname == "date":
            has_date = True
        elif lname == "te" and value.strip().lower() != "trailers":
            continue
        fields.append((lname.encode("latin-1"), _value(value)))
    if not bodiless and not has_length and length is not None and (not head or length):
        fields.append((b"content-length", str(length).encode()))
    if not has_date:
        fields.append((b"date", http_date().encode()))
    return fields


def request_fields(fields: list[tuple[bytes, bytes]]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """An HTTP/2 or HTTP/3 request's fields: its pseudo-fields, and the others with names
    as Go writes them (`content-type` -> `Content-Type`), `cookie` fields joined into one."""
    pseudo: dict[str, str] = {}
    headers: list[tuple[str, str]] = []
    cookies: list[str] = []
    for raw_name, raw_value in fields:
        value = raw_value.decode("latin-1")
        if raw_name[:1] == b":":
            pseudo[raw_name.decode("latin-1")] = value
        elif raw_name == b"cookie":
            cookies.append(value)
        else:
            headers.append((canonical_name(raw_name), value))
    if cookies:
        headers.append(("Cookie", "; ".join(cookies)))
    return pseudo, headers


def request_head(sid: int, raw: list[tuple[bytes, bytes]], has_body: bool, version: str) -> RequestReceived | None:
    """An HTTP/2 or HTTP/3 request head from its fields (names and values checked by the
    protocol layer), or None if it is malformed: a missing or bad pseudo-field, extended
    CONNECT (`:protocol`, not offered), a Host that differs from `:authority`, a bad
    Content-Length (RFC 9113 8.3, RFC 9114 4.3.1: the stream is reset). The request gets a
    Host field as HTTP/1.1 requests have one, so handlers see one either way."""
    pseudo, headers = request_fields(raw)
    method = pseudo.get(":method", "")
    authority = pseudo.get(":authority")
    if ":protocol" in pseudo:
        return None
    if method == "CONNECT":
        if not authority or ":scheme" in pseudo or ":path" in pseudo:
            return None
    elif not _TOKEN.fullmatch(method) or not pseudo.get(":scheme") or not _PATH.match(pseudo.get(":path", "")):
        return None  # (a method that is no token would reach an HTTP/1 upstream's request line as it is)
    length: int | None = None
    expect = host_field = False
    for name, value in headers:
        if name == "Host":
            host_field = True
            if authority is None:
                authority = value
            elif value != authority:
                return None
        elif name == "Content-Length":
            if not value.isdecimal() or (length is not None and int(value) != length):
                return None
            length = int(value)
        elif name == "Expect":
            expect = value.lower() == "100-continue"
    target = pseudo.get(":path") or (authority or "" if method == "CONNECT" else "")
    if authority and not host_field:
        headers.insert(0, ("Host", authority))
    return RequestReceived(method, target, version, headers, True, expect and has_body, has_body, length,
                           has_body and length is None, False, authority or "", sid)


def canonical_name(raw: bytes) -> str:
    """Go's CanonicalHeaderKey of a lower-case field name."""
    name = _CANONICAL.get(raw)
    if name is None:
        text = raw.decode("latin-1")
        name = "-".join(part[:1].upper() + part[1:] for part in text.split("-")) if text.isascii() else text
        if len(_CANONICAL) < 4096:
            _CANONICAL[raw] = name
    return name


def _fields(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), _value(value)) for name, value in headers
            if name.lower() not in CONNECTION_FIELDS]


def _value(value: str) -> bytes:
    if "\r" in value or "\n" in value or "\x00" in value:
        value = value.replace("\r", " ").replace("\n", " ").replace("\x00", " ")
    return value.encode("latin-1", "replace")


_PATH = re.compile(r"/|\*\Z")  # an origin-form path, or `*` (OPTIONS)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_STATUS = {code: str(code).encode() for code in range(100, 600)}
_LOWER: dict[str, str] = {}
_CANONICAL: dict[bytes, str] = {}
