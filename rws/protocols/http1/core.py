"""The HTTP/1.1 core: bytes in, request heads and bodies out to a receiver; responses
out as bytes. No I/O, no clocks.

The parser backend (httptools on the hot path, h11 as the pure-Python fallback) only
turns bytes into request heads, body chunks and message ends; this core owns the rest
once, for both: the limits (request line, header size), the framing checks that stop
request smuggling, and the serialisation of responses.
"""

from __future__ import annotations

import re
from typing import Protocol

from rws.protocols.status import status_text
from rws.protocols.events import RequestReceived

DEFAULT_MAX_HEADER_BYTES = 1024 * 1024
MAX_TARGET_BYTES = 64 * 1024


class UnknownMethod(Exception):
    """A backend's report that it can't parse the method of the request starting here."""


class UpgradeRequested(Exception):
    """A backend's report that the request just parsed switches protocols: what follows
    it (`leftover`, and everything after) belongs to the new protocol."""

    def __init__(self, leftover: bytes) -> None:
        super().__init__("protocol upgrade")
        self.leftover = leftover


class ParseFailure(Exception):
    """A backend's report of malformed input, with the status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Backend(Protocol):
    """A parser driving the core through llhttp's callbacks (`on_message_begin`,
    `on_url`, `on_header`, `on_headers_complete`, `on_body`, `on_message_complete`)
    and answering for the head it just parsed."""

    def feed(self, data: bytes) -> None: ...

    def eof(self) -> None: ...

    def get_method(self) -> bytes: ...

    def get_http_version(self) -> str: ...

    def should_keep_alive(self) -> bool: ...

    def should_upgrade(self) -> bool: ...


class Receiver(Protocol):
    """Hears what a connection's input completed, in order."""

    def request_received(self, head: RequestReceived) -> None: ...

    def body_received(self, data: bytes) -> None: ...

    def request_ended(self) -> None: ...

    def protocol_error(self, status: int, message: str) -> None: ...

    def upgrade_requested(self, leftover: bytes) -> None: ...


class Http1Core:
    """One connection's HTTP/1 input: `receive_data(bytes)` tells the receiver what the
    bytes completed. The backend calls the `on_*` methods as it parses."""

    __slots__ = ("max_header_bytes", "receiver", "in_head", "head_bytes", "failed", "backend", "target", "fields",
                 "special", "size")

    def __init__(self, backend_factory: type, receiver: Receiver,
                 max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> None:
        self.max_header_bytes = max_header_bytes or DEFAULT_MAX_HEADER_BYTES
        self.receiver = receiver
        self.in_head = True  # between requests or inside a request head
        self.head_bytes = 0
        self.failed = False
        self.target = b""
        self.fields: list[tuple[str, str]] = []
        self.special: list[tuple[str, str]] = []  # the framing fields among them
        self.size = 0  # bytes of the head so far (target and fields)
        self.backend: Backend = backend_factory(self)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer (b"" at end of input)."""
        if self.failed:
            return
        try:
            if not data:
                self.backend.eof()
            else:
                if self.in_head:
                    self.head_bytes += len(data)
                    if self.head_bytes > self.max_header_bytes + MAX_TARGET_BYTES + 4096:
                        raise ParseFailure(431, "request header fields too large")
                try:
                    self.backend.feed(data)
                except UnknownMethod:
                    self._other_backend(data)
        except ParseFailure as exc:
            self.failed = True
            self.receiver.protocol_error(exc.status, exc.message)
        except UpgradeRequested as exc:
            self.failed = True  # no more HTTP/1 on this connection
            self.receiver.upgrade_requested(exc.leftover)

    def _other_backend(self, data: bytes) -> None:
        """Go on with the pure-Python backend, which takes any token as a method, when the
        request it can't parse starts `data` (otherwise: 400)."""
        method = data.split(b" ", 1)[0]
        if self.head_bytes != len(data) or not method or not _TOKEN_BYTES.fullmatch(method):
            raise ParseFailure(400, "invalid method")
        from rws.protocols.http1.parse_h11 import H11Parser

        self.backend = H11Parser(self)
        self.backend.feed(data)

    # --- the backend's callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        self.target = b""
        self.fields = []
        self.special = []
        self.size = 0

    def on_url(self, url: bytes) -> None:
        self.target = self.target + url if self.target else url
        if len(self.target) > MAX_TARGET_BYTES:
            raise ParseFailure(414, "request URI too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        # Both parsers refuse CR, LF and NUL in names and values; the framing fields get
        # a closer look, once, for both.
        size = len(name)
        self.size += size + len(value) + 4
        if not self.in_head:  # a trailer field of a chunked body: counted, not kept
            if self.size > self.max_header_bytes:
                raise ParseFailure(431, "request trailer fields too large")
            return
        field = (_NAMES.get(name) or name.decode("latin-1"), value.decode("latin-1"))
        self.fields.append(field)
        if size in _FRAMING_LENGTHS and field[0].lower() in _FRAMING_FIELDS:
            self.special.append(field)

    def on_headers_complete(self) -> None:
        backend = self.backend
        version = _VERSIONS.get(backend.get_http_version()) or "HTTP/" + backend.get_http_version()
        if version != "HTTP/1.1" and version != "HTTP/1.0":
            if version[5:6].isdecimal() and version[5] != "0" and version[5] != "1":
                raise ParseFailure(505, f"unsupported HTTP version {version!r}")
            raise ParseFailure(400, f"unsupported HTTP version {version!r}")
        target = self.target
        if len(target) > MAX_TARGET_BYTES:
            raise ParseFailure(414, "request URI too long")
        if self.size + len(target) > self.max_header_bytes:
            raise ParseFailure(431, "request header fields too large")
        content_length, chunked, host, expect = _framing(self.special, version)
        if b"\x00" in target:
            raise ParseFailure(400, "invalid request target")
        raw_method = backend.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("ascii")
        self.in_head = False
        self.head_bytes = 0
        self.size = 0  # from here on: the trailer fields
        self.receiver.request_received(RequestReceived(
            method, target.decode("latin-1"), version, self.fields, backend.should_keep_alive(), expect,
            chunked or bool(content_length), content_length, chunked, backend.should_upgrade(), host))

    def on_body(self, data: bytes) -> None:
        self.receiver.body_received(data)

    def on_message_complete(self) -> None:
        self.in_head = True
        self.receiver.request_ended()


_VERSIONS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
_NAMES = {n.encode(): n for n in (  # common field names, decoded once
    "Host", "User-Agent", "Accept", "Accept-Encoding", "Accept-Language", "Connection", "Content-Type",
    "Content-Length", "Cookie", "Referer", "Cache-Control", "Upgrade-Insecure-Requests", "If-None-Match",
    "If-Modified-Since", "Authorization", "Origin", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host",
    "X-Real-IP", "Pragma", "Range", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Priority",
    "host", "user-agent", "accept", "accept-encoding", "content-type", "content-length", "connection")}
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}
_FRAMING_FIELDS = frozenset({"content-length", "transfer-encoding", "host", "expect"})
_FRAMING_LENGTHS = frozenset(len(name) for name in _FRAMING_FIELDS)


def _framing(fields: list[tuple[str, str]], version: str) -> tuple[int | None, bool, str, bool]:
    """Content-Length, chunked-ness, Host and `Expect: 100-continue` of a request,
    refusing anything ambiguous."""
    if len(fields) == 1 and fields[0][0].lower() == "host":  # most requests
        return None, False, fields[0][1], False
    lengths: list[str] = []
    encodings: list[str] = []
    hosts = 0
    host = ""
    expect = False
    for name, value in fields:
        lname = name.lower()
        if lname == "host":
            hosts += 1
            host = value
        elif lname == "content-length":
            lengths.extend(v.strip() for v in value.split(","))
        elif lname == "transfer-encoding":
            encodings.extend(v.strip().lower() for v in value.split(",") if v.strip())
        elif lname == "expect":
            expect = expect or (version == "HTTP/1.1" and value.strip().lower() == "100-continue")
    if hosts > 1:
        raise ParseFailure(400, "too many Host headers")
    if hosts == 0 and version == "HTTP/1.1":
        raise ParseFailure(400, "missing required Host header")
    if encodings:
        if lengths:
            raise ParseFailure(400, "both Transfer-Encoding and Content-Length")
        if version == "HTTP/1.0":
            raise ParseFailure(400, "Transfer-Encoding in an HTTP/1.0 request")
        if encodings != ["chunked"]:
            raise ParseFailure(501, f"unsupported transfer encoding: {','.join(encodings)!r}")
        return None, True, host, expect
    if lengths:
        if len(set(lengths)) != 1 or not lengths[0].isdecimal() or len(lengths[0]) > 18:
            raise ParseFailure(400, "invalid Content-Length")
        return int(lengths[0]), False, host, expect
    return None, False, host, expect


# --- responses ---------------------------------------------------------------------------

_STATUS_LINES: dict[int, str] = {}


def status_line_text(status: int) -> str:
    """`HTTP/1.1 <status> <reason>\r\n` (cached per status code)."""
    line = _STATUS_LINES.get(status)
    if line is None:
        phrase = status_text(status) or "status code %d" % status
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {phrase}\r\n"
    return line


def response_head(status: int, headers: list[tuple[str, str]]) -> bytes:
    """The status line and header block of an HTTP/1.1 response."""
    parts = [status_line_text(status)]
    parts.extend(header_line(name, value) for name, value in headers)
    parts.append("\r\n")
    return "".join(parts).encode("latin-1", "replace")


def header_line(name: str, value: str) -> str:
    """`Name: value\r\n`; "" for a name that is not a field name (e.g. "X-Colon:"), which
    is dropped, as Go does. CR, LF and NUL in a value become spaces."""
    if name not in _VALID_NAMES:
        if not _TOKEN.fullmatch(name):
            return ""
        if len(_VALID_NAMES) < 4096:
            _VALID_NAMES.add(name)
    if "\r" in value or "\n" in value or "\x00" in value:
        value = value.replace("\r", " ").replace("\n", " ").replace("\x00", " ")
    return f"{name}: {value}\r\n"


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN_BYTES = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALID_NAMES: set[str] = set()  # names seen valid (bounded by the names configs and handlers use)


def _field_value(value: str) -> bytes:
    if "\r" in value or "\n" in value or "\x00" in value:
        value = value.replace("\r", " ").replace("\n", " ").replace("\x00", " ")
    return value.encode("latin-1", "replace")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def last_chunk(trailers: list[tuple[str, str]] | None = None) -> bytes:
    if not trailers:
        return LAST_CHUNK
    lines = b"".join(b"%s: %s\r\n" % (k.encode("latin-1"), _field_value(v)) for k, v in trailers)
    return b"0\r\n" + lines + b"\r\n"


def error_response(status: int, close: bool = True) -> bytes:
    """A complete plain response for protocol errors (no handler ran)."""
    body = status_line_text(status)[9:].strip().encode("latin-1")
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    if close:
        headers.append(("Connection", "close"))
    return response_head(status, headers) + body
