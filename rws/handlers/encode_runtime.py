"""The running `encode` handler: compresses responses with gzip, zstd or brotli.

It behaves like Caddy's `encode` middleware:

- The encoding is negotiated from `Accept-Encoding` (q-values first, then the configured
  `prefer` order); WebSocket handshakes and requests with `Cache-Control: no-transform`
  are never encoded. When an encoding is chosen, the `-<encoding>` suffix it adds to strong
  ETags is taken off `If-None-Match`/`If-Match` before the request goes on, so handlers
  further down compare against their own ETags.
- A response is encoded when it is longer than `minimum_length` (the body's length, or its
  `Content-Length`), has no `Content-Encoding`, no `Cache-Control: no-transform`, is not a
  206, and passes the response matcher (by default a list of compressible content types;
  a missing `Content-Type` is sniffed from the body first, as Caddy does). Encoding removes
  `Content-Length` and `Accept-Ranges`, sets `Content-Encoding`, adds `Vary:
  Accept-Encoding` and turns a strong ETag `"x"` into `"x-gzip"`. A 304 gets the `Vary`
  field too.
- Bodies stream: a body of unknown length is read only until it is known to be longer than
  `minimum_length`; then every chunk is compressed as it comes and flushed (unless the
  response declared its length), so a slow stream (server-sent events, a proxied chunked
  response) reaches the client promptly. Small bodies (in memory, or files up to 64 KiB)
  are compressed at once and, like Go's server, sent with a Content-Length when the
  result fits 2 KiB and chunked otherwise; larger files are read in chunks. HEAD
  responses get the headers of the encoded response and no body.

The encoders themselves (gzip, zstd, brotli) are in `encoders.py`.
"""

from __future__ import annotations

import os
from typing import Any, AsyncIterator

from rws.handlers.encode import EncodeConfig
from rws.handlers.encoders import CompressStream, Encoding
from rws.handlers.headers import ResponseMatcher, ResponseMatcherConfig
from rws.http.message import FileBody, Headers, Next, Request, Response, accepted_encodings
from rws.http.routes import BuildContext
from rws.http.sniff import SNIFF_LEN, detect_content_type

DEFAULT_MIN_LENGTH = 512
DEFAULT_PREFER = ("zstd", "br", "gzip")
FILE_CHUNK = 64 * 1024
SMALL_FILE = 64 * 1024  # file bodies up to this size are compressed at once
GO_BUFFER = 2048  # Go's server gives a body that fits this write buffer a Content-Length

# Caddy's default `match`: compressible content types (a trailing `*` matches any suffix)
DEFAULT_CONTENT_TYPES = (
    "application/atom+xml*", "application/eot*", "application/font*", "application/geo+json*",
    "application/graphql+json*", "application/graphql-response+json*", "application/javascript*",
    "application/json*", "application/ld+json*", "application/manifest+json*", "application/opentype*",
    "application/otf*", "application/rss+xml*", "application/truetype*", "application/ttf*",
    "application/vnd.api+json*", "application/vnd.ms-fontobject*", "application/wasm*", "application/x-httpd-cgi*",
    "application/x-javascript*", "application/x-opentype*", "application/x-otf*", "application/x-perl*",
    "application/x-protobuf*", "application/x-ttf*", "application/xhtml+xml*", "application/xml*", "font/ttf*",
    "font/otf*", "image/svg+xml*", "image/vnd.microsoft.icon*", "image/x-icon*", "multipart/bag*",
    "multipart/mixed*", "text/*",
)


# --- negotiation ---------------------------------------------------------------------------


def _strip_etag_suffix(request: Request, encoding: str) -> Request:
    """The request with `-<encoding>` taken off strong ETags in If-None-Match/If-Match."""
    suffix = f'-{encoding}"'
    headers: Headers | None = None
    for field in ("If-None-Match", "If-Match"):
        values = request.headers.get_all(field)
        if not values or not any(suffix in v for v in values):
            continue
        stripped = [_strip_list(v, suffix) for v in values]
        if stripped != values:
            headers = headers or request.headers.copy()
            headers.set_all(field, stripped)
    return request if headers is None else request.with_changes(headers=headers)


def _strip_list(value: str, suffix: str) -> str:
    tags = [t.strip() for t in value.split(",")]
    out = [t[:-len(suffix)] + '"' if t.endswith(suffix) and not t.startswith("W/") else t for t in tags]
    return value if out == tags else ", ".join(out)


def default_matcher() -> ResponseMatcher:
    """Caddy's default `match`: the compressible content types."""
    return ResponseMatcher(ResponseMatcherConfig(headers={"Content-Type": DEFAULT_CONTENT_TYPES}))


# --- the handler ---------------------------------------------------------------------------


class Encode:
    """The `encode` handler (see the module docstring)."""

    def __init__(self, encodings: dict[str, Encoding], prefer: tuple[str, ...], min_length: int,
                 matcher: ResponseMatcher) -> None:
        self.encodings = encodings
        self.prefer = prefer
        self.min_length = min_length
        self.matcher = matcher
        self._chosen: dict[tuple[str, bool], str | None] = {}  # Accept-Encoding -> encoding, per WebSocket-ness

    async def handle(self, request: Request, next: Next) -> Response:
        name = self._negotiate(request)
        if name is None:
            return await next(request)
        response = await next(_strip_etag_suffix(request, name))
        return await self._encode(request, response, self.encodings[name])

    def _negotiate(self, request: Request) -> str | None:
        accept = request.headers.joined("Accept-Encoding")
        if not accept or "no-transform" in request.headers.joined("Cache-Control"):
            return None
        key = (accept, "Sec-WebSocket-Key" in request.headers)
        if key not in self._chosen:
            if len(self._chosen) > 256:
                self._chosen.clear()
            offered = (n for n in accepted_encodings(accept, self.prefer, key[1]) if n in self.encodings)
            self._chosen[key] = next(offered, None)
        return self._chosen[key]

    async def _encode(self, request: Request, response: Response, encoding: Encoding) -> Response:
        status, headers, body = response.status, response.headers, response.body
        if status == 304:
            _add_vary(headers)
        if status < 200 or status == 206 or (request.method == "CONNECT" and status < 300):
            return response
        if _is_sse(headers.get("Content-Type") or ""):
            if self._start(status, headers, encoding):
                response.body = _encode_stream(_as_iterator(body), b"", encoding.stream(), flush_each=True)
            return response
        content_length = _atoi(headers.get("Content-Length"))
        if isinstance(body, (bytes, bytearray, memoryview)):
            started = self._encode_bytes(response, bytes(body), content_length, encoding)
        elif isinstance(body, FileBody):
            started = self._encode_file_body(response, body, content_length, encoding)
        elif request.method == "HEAD":  # decided by Content-Length alone: nothing will be read
            started = self._longer(content_length) and self._start(status, headers, encoding)
        else:
            started = await self._encode_iterator(response, aiter(body), content_length, encoding)
        if started and request.method == "HEAD":
            await _discard(response)
            # what Go's server counts for the length of a HEAD answer: the encoder's
            # closing bytes (an empty gzip stream is 20); the server sends no body
            stream = encoding.stream()
            response.body = stream.compress(b"") + stream.finish()
        return response

    def _longer(self, length: int | None) -> bool:
        return length is not None and length > self.min_length

    def _encode_bytes(self, response: Response, data: bytes, content_length: int | None, encoding: Encoding) -> bool:
        if not data:  # nothing written: only a declared length can start encoding
            return self._longer(content_length) and self._start(response.status, response.headers, encoding)
        if not (len(data) > self.min_length or self._longer(content_length)):
            return False
        if not self._sniff_and_start(response.status, response.headers, data, encoding):
            return False
        stream = encoding.stream()
        response.body = _go_framed(stream.compress(data) + stream.finish())
        return True

    def _encode_file_body(self, response: Response, body: FileBody, content_length: int | None,
                          encoding: Encoding) -> bool:
        headers = response.headers
        if not body.length:
            return self._longer(content_length) and self._start(response.status, headers, encoding)
        if not (body.length > self.min_length or self._longer(content_length)):
            return False
        head = _read_head(body) if headers.get("Content-Type") is None else b""
        if not self._sniff_and_start(response.status, headers, head, encoding):
            return False
        if body.length <= SMALL_FILE:  # compressed at once, framed as Go's server frames it
            try:
                data = os.pread(body.file.fileno(), body.length, body.offset)
            finally:
                body.file.close()
            stream = encoding.stream()
            response.body = _go_framed(stream.compress(data) + stream.finish())
        else:
            response.body = _encode_file(body, encoding.stream())
        return True

    async def _encode_iterator(self, response: Response, body: AsyncIterator[bytes], content_length: int | None,
                               encoding: Encoding) -> bool:
        """Read until the body is known to be long enough (or ends), then decide. Chunks
        are flushed one by one unless the body declared its length."""
        longer = self._longer(content_length)
        chunks: list[bytes] = []
        size = 0
        ended = False
        while size <= self.min_length and not (longer and size):
            try:
                chunk = await anext(body)
            except StopAsyncIteration:
                ended = True
                break
            if chunk:
                chunks.append(chunk)
                size += len(chunk)
        start = b"".join(chunks)
        status, headers = response.status, response.headers
        if not start:
            response.body = b""
            return longer and self._start(status, headers, encoding)
        if (size > self.min_length or longer) and self._sniff_and_start(status, headers, start, encoding):
            response.body = _encode_stream(None if ended else body, start, encoding.stream(),
                                           flush_each=content_length is None)
            return True
        response.body = start if ended else _prepend(start, body)
        return False

    def _sniff_and_start(self, status: int, headers: Headers, data: bytes, encoding: Encoding) -> bool:
        if headers.get("Content-Type") is None:
            headers.set("Content-Type", detect_content_type(data))
        return self._start(status, headers, encoding)

    def _start(self, status: int, headers: Headers, encoding: Encoding) -> bool:
        """Set the headers of an encoded response, if this response may be encoded."""
        if headers.get("Content-Encoding") or "no-transform" in headers.joined("Cache-Control"):
            return False
        if not self.matcher.match(status, headers):
            return False
        headers.delete("Content-Length")
        headers.set("Content-Encoding", encoding.name)
        _add_vary(headers)
        headers.delete("Accept-Ranges")
        etag = headers.get("ETag")
        if etag and not etag.startswith("W/"):
            headers.set("ETag", f'{etag.removesuffix(chr(34))}-{encoding.name}"')
        return True


def _add_vary(headers: Headers) -> None:
    for value in headers.get_all("Vary"):
        if any(v.strip().lower() == "accept-encoding" for v in value.split(",")):
            return
    headers.add("Vary", "Accept-Encoding")


def _is_sse(content_type: str) -> bool:
    media = "text/event-stream"
    if len(content_type) < len(media) or content_type[:len(media)].lower() != media:
        return False
    rest = content_type[len(media):].lstrip(" \t")
    return not rest or rest[0] == ";"


def _atoi(text: str | None) -> int | None:
    """Go's strconv.Atoi: an optional sign and decimal digits, nothing else."""
    if not text:
        return None
    digits = text[1:] if text[0] in "+-" else text
    return int(text) if digits.isascii() and digits.isdecimal() else None


def _go_framed(data: bytes) -> Any:
    """A compressed body framed as Go's server would frame it: up to its 2 KiB write
    buffer the whole body is known when the handler returns, so it gets a Content-Length
    (bytes here); beyond that it went out chunked (a one-chunk stream here)."""
    if len(data) <= GO_BUFFER:
        return data
    return _as_iterator(data)


def _read_head(body: FileBody) -> bytes:
    body.file.seek(body.offset)
    return bytes(body.file.read(min(SNIFF_LEN, body.length)))


async def _encode_file(body: FileBody, stream: CompressStream) -> AsyncIterator[bytes]:
    """A file region, compressed chunk by chunk; the file is closed at the end."""
    async for chunk in _as_iterator(body):
        out = stream.compress(chunk)
        if out:
            yield out
    yield stream.finish()


async def _encode_stream(body: AsyncIterator[bytes] | None, start: bytes, stream: CompressStream, *,
                         flush_each: bool) -> AsyncIterator[bytes]:
    """`start` and then the rest of `body`, compressed; each chunk flushed if `flush_each`."""
    try:
        if start:
            out = stream.compress(start) + (stream.flush() if flush_each else b"")
            if out:
                yield out
        if body is not None:
            async for chunk in body:
                if not chunk:
                    continue
                out = stream.compress(chunk) + (stream.flush() if flush_each else b"")
                if out:
                    yield out
        yield stream.finish()
    finally:
        await _close_iterator(body)


async def _prepend(start: bytes, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        if start:
            yield start
        async for chunk in body:
            yield chunk
    finally:
        await _close_iterator(body)


async def _as_iterator(body: Any) -> AsyncIterator[bytes]:
    """Any response body as chunks (for server-sent events, which are usually iterators)."""
    if isinstance(body, FileBody):
        try:
            body.file.seek(body.offset)
            remaining = body.length
            while remaining > 0:
                chunk = body.file.read(min(FILE_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            body.file.close()
    elif isinstance(body, (bytes, bytearray, memoryview)):
        if body:
            yield bytes(body)
    else:
        async for chunk in body:
            yield chunk


async def _close_iterator(body: Any) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        await aclose()


async def _discard(response: Response) -> None:
    """Drop the body of a HEAD response, releasing what it holds."""
    body = response.body
    response.body = b""
    if isinstance(body, FileBody):
        body.file.close()
    elif not isinstance(body, (bytes, bytearray, memoryview)):
        await _close_iterator(body)


def build_encode(config: EncodeConfig, ctx: BuildContext) -> Encode:
    encodings: dict[str, Encoding] = {}
    for module in (config.encodings or {}).values():
        encoder = ctx.build(module)
        encodings[encoder.name] = encoder
    prefer = config.prefer or tuple(n for n in DEFAULT_PREFER if n in encodings)
    return Encode(encodings, tuple(prefer), config.minimum_length or DEFAULT_MIN_LENGTH,
                  ResponseMatcher(config.match) if config.match is not None else default_matcher())
