"""Request, Response, Headers and bodies: what handlers see and return.

A handler is an object with `async handle(request, next) -> Response`. Responders build a
`Response`; middleware calls `await next(request)` (possibly with a modified copy of the
request) and may change the response it gets back. Response headers set before `next`
runs go into `request.response_headers`, the header map that responders build their
response on, so "set before, overwritten by the responder" works as in Caddy.

Bodies stream: a request body is read with `await request.body.read(n)` or
`async for chunk in request.body`; a response body is `bytes`, an async iterator of
bytes, or a `FileBody` (which the connection may send with `sendfile`).
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator, Protocol

from rws.errors import HttpError
from rws.protocols.flow import FileBody as FileBody  # re-exported for handlers
from rws.protocols.status import status_text as status_text  # re-exported for handlers
from rws.http.uri import decode_path

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def canonical_header_key(name: str) -> str:
    """Go's textproto.CanonicalMIMEHeaderKey: `content-type` -> `Content-Type`.

    A name with a character that is not allowed in a field name (a space, a brace of a
    placeholder, anything non-ASCII) is returned unchanged.
    """
    if not name or any(c not in _TOKEN_CHARS for c in name):
        return name
    out = []
    upper = True
    for c in name:
        out.append(c.upper() if upper else c.lower())
        upper = c == "-"
    return "".join(out)


class Headers:
    """Header fields in order; names compare case-insensitively; values are str.

    The set of lower-case names is built on the first lookup and kept up to date, so
    asking for a field that is absent (the common case of conditional requests) costs
    one set lookup."""

    __slots__ = ("_items", "_names")

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = items if items is not None else []
        self._names: set[str] | None = None

    def _has(self, lname: str) -> bool:
        names = self._names
        if names is None:
            names = self._names = {k.lower() for k, _ in self._items}
        return lname in names

    def get(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        if not self._has(lname):
            return default
        for k, v in self._items:
            if k == name or k.lower() == lname:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        if not self._has(lname):
            return []
        return [v for k, v in self._items if k.lower() == lname]

    def joined(self, name: str) -> str:
        """All values of a field joined with ',' (Caddy's `{header.X}`)."""
        return ",".join(self.get_all(name))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._has(name.lower())

    def set(self, name: str, value: str) -> None:
        self.delete(name)
        self.add(name, value)

    def set_all(self, name: str, values: list[str]) -> None:
        self.delete(name)
        for v in values:
            self.add(name, v)

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))
        if self._names is not None:
            self._names.add(name.lower())

    def extend(self, items: list[tuple[str, str]]) -> None:
        self._items.extend(items)
        if self._names is not None:
            self._names.update(k.lower() for k, _ in items)

    def setdefault(self, name: str, value: str) -> None:
        if name not in self:
            self.add(name, value)

    def delete(self, name: str) -> None:
        lname = name.lower()
        if self._has(lname):
            self._items = [(k, v) for k, v in self._items if k.lower() != lname]
            self._names.discard(lname)  # type: ignore[union-attr]  # built by _has

    def names(self) -> list[str]:
        """Distinct field names, first spelling, in order."""
        seen: dict[str, str] = {}
        for k, _ in self._items:
            seen.setdefault(k.lower(), k)
        return list(seen.values())

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def clear(self) -> None:
        self._items = []
        self._names = None

    def copy(self) -> Headers:
        return Headers(list(self._items))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class RequestBody(Protocol):
    """A request body being received; the connection implements it with flow control."""

    async def read(self, n: int = -1) -> bytes:
        """Up to n bytes (all that remains for n < 0); b"" at the end."""
        ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...


class EmptyBody:
    """The body of a request that has none (and of internal requests)."""

    async def read(self, n: int = -1) -> bytes:
        return b""

    def __aiter__(self) -> AsyncIterator[bytes]:
        return iterate_reads(self)


class BufferedBody:
    """A body already in memory (a buffered or replaced request body)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    async def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else min(len(self._data), self._pos + n)
        chunk = self._data[self._pos:end]
        self._pos = end
        return chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return iterate_reads(self)


async def iterate_reads(body: RequestBody) -> AsyncIterator[bytes]:
    """A body's chunks, by reading it 64 KiB at a time (how bodies with only `read` iterate)."""
    chunk = await body.read(65536)
    while chunk:
        yield chunk
        chunk = await body.read(65536)


EMPTY_BODY = EmptyBody()


Body = bytes | AsyncIterator[bytes] | FileBody


class Response:
    """A response: status, headers, and a body that may stream."""

    __slots__ = ("status", "headers", "body", "close", "abort", "trailers")

    def __init__(self, status: int = 200, headers: Headers | None = None, body: Body = b"", *,
                 close: bool = False, abort: bool = False) -> None:
        self.status = status
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self.close = close  # send Connection: close and close after this response
        self.abort = abort  # drop the connection without writing anything
        self.trailers: Headers | None = None


class Request:
    """One request as handlers see it. Copy with `with_changes` to hand a modified request
    down the chain; the copies share vars, placeholders and the response header map."""

    __slots__ = (
        "method", "target", "raw_path", "path", "query", "version", "headers", "host", "port",
        "scheme", "remote_ip", "remote_port", "local_ip", "local_port", "body", "vars",
        "values", "response_headers", "orig_method", "orig_target", "orig_raw_path", "orig_query",
        "error", "start_time", "server_name", "tls", "content_length", "chunked", "authority", "informational",
    )

    def __init__(self, method: str, target: str, headers: Headers, *, version: str = "HTTP/1.1",
                 scheme: str = "http", remote: tuple[str, int] = ("", 0), local: tuple[str, int] = ("", 0),
                 body: RequestBody = EMPTY_BODY, server_name: str = "", host: str | None = None,
                 response_headers: Headers | None = None) -> None:
        """`host`: the Host header when the caller already has it (else looked up)."""
        self.method = method
        self.target = target  # the request-target as sent, e.g. "/a%20b?x=1"
        raw_path, _, query = target.partition("?")
        authority = ""
        if raw_path[:1] != "/" and raw_path.startswith(("http://", "https://")):  # absolute-form names the host
            authority, _, rest = raw_path.split("://", 1)[1].partition("/")
            raw_path = "/" + rest
        self.raw_path = raw_path  # escaped path
        self.path = decode_path(raw_path)  # decoded path
        self.query = query  # raw query, without '?'
        self.version = version
        self.headers = headers
        # host[:port] the request is for
        self.authority = authority or (host if host is not None else headers.get("Host")) or ""
        self.host, self.port = split_host(self.authority)
        self.scheme = scheme
        self.remote_ip, self.remote_port = remote
        self.local_ip, self.local_port = local
        self.body = body
        self.vars: dict[str, Any] = {}  # http.vars: set by vars/map/root handlers
        self.values: dict[str, Any] = {}  # other request-scoped placeholders (captures, errors...)
        self.response_headers = response_headers if response_headers is not None else Headers()
        self.orig_method = method
        self.orig_target = target
        self.orig_raw_path = raw_path
        self.orig_query = query
        self.error: HttpError | None = None
        self.start_time = time.time()
        self.server_name = server_name
        self.tls: Any = None
        self.content_length: int | None = None
        self.chunked = False
        # sends a 1xx response (status, headers) before the final one; set by the server
        self.informational: Callable[[int, list[tuple[str, str]]], None] | None = None

    def with_changes(self, **changes: Any) -> Request:
        """A shallow copy with some fields replaced (vars, values, response headers shared)."""
        copy = Request.__new__(Request)
        for name in Request.__slots__:
            setattr(copy, name, changes.get(name, getattr(self, name)))
        return copy

    @property
    def uri(self) -> str:
        """The request URI (escaped path and query) after rewrites."""
        path = self.raw_path or "/"
        return f"{path}?{self.query}" if self.query else path

    @property
    def hostport(self) -> str:
        return self.authority


def split_host(hostport: str) -> tuple[str, str]:
    """`Host` header -> (host without port and brackets, port or "")."""
    if ":" not in hostport and hostport[:1] != "[":
        return hostport, ""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end > 0:
            rest = hostport[end + 1:]
            return hostport[1:end], rest[1:] if rest.startswith(":") else ""
    host, sep, port = hostport.rpartition(":")
    if sep and port.isdecimal() and ":" not in host:
        return host, port
    return hostport, ""


# --- content negotiation -------------------------------------------------------------------

_Q_TOLERANCE = 0.00001
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def accepted_encodings(accept_encoding: str, prefer: tuple[str, ...], websocket: bool = False) -> list[str]:
    """The encodings an `Accept-Encoding` value accepts, most wanted first (Caddy's
    AcceptedEncodings): by descending q-value, and among equal q-values by the server's
    `prefer` order (earlier is better). `q=0` excludes an encoding, and a WebSocket
    handshake accepts nothing but `identity`."""
    if not accept_encoding:
        return []
    prefs: list[tuple[str, float, int]] = []
    for accepted in accept_encoding.split(","):
        name, found, params = accepted.partition(";")
        name = name.strip().lower()
        q = _q_factor(params) if found else 1.0
        if q < _Q_TOLERANCE:
            continue
        if websocket and name != "identity":
            continue
        order = prefer.index(name) if name in prefer else -1
        if order > -1:
            order = len(prefer) - order
        prefs.append((name, q, order))
    prefs.sort(key=functools.cmp_to_key(_compare))
    return [name for name, _, _ in prefs]


def _q_factor(params: str) -> float:
    """The q-value of the first parameter when it is a valid `q=` in [0, 1], else 1."""
    first = params.partition(";")[0].strip()
    if len(first) >= 2 and first[:2].lower() == "q=" and _DECIMAL.fullmatch(first[2:]):
        q = float(first[2:])
        if 0 <= q <= 1:
            return q
    return 1.0


def _compare(a: tuple[str, float, int], b: tuple[str, float, int]) -> int:
    """Descending q-value (values within the tolerance count as equal), then preference."""
    if abs(a[1] - b[1]) < _Q_TOLERANCE:
        return (b[2] > a[2]) - (b[2] < a[2])
    return (b[1] > a[1]) - (b[1] < a[1])


Next = Callable[[Request], Awaitable[Response]]


class Handler(Protocol):
    async def handle(self, request: Request, next: Next) -> Response: ...
