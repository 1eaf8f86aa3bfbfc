"""The `request_body` handler: limit (or replace) the request body.

Directive: `request_body [<matcher>] { max_size <size>; set <body> }`.

At run time (`RequestBodyHandler`) `set` replaces the body with its text (placeholders
expanded, unknown ones empty) and fixes Content-Length; `max_size` wraps the body so
that a handler reading more than that many bytes gets `HttpError(413)`, as Caddy's
MaxBytesReader does. Nothing is read here: a handler that never reads the body never
sees the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator

from rws.errors import ConfigError, HttpError
from rws.http.message import BufferedBody, Next, Request, RequestBody, Response, iterate_reads
from rws.http.placeholders import compile_template
from rws.registry import ModuleSpec
from rws.rwsfile.directives import Directive, Helper

if TYPE_CHECKING:
    from rws.http.routes import BuildContext


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestBodyConfig:
    max_size: int = 0  # bytes; 0 = no limit
    set: str = ""

    def validate(self, path: str) -> None:
        if self.max_size < 0:
            raise ConfigError(f"{path}.max_size", f"max_size must not be negative, got {self.max_size}")


def _parse_request_body(h: Helper) -> Any:
    d = h.d
    if d.next_arg():
        raise d.arg_error()
    handler: dict[str, Any] = {"handler": "request_body"}
    for sub in d.block():
        if sub.name == "max_size":
            sub.args_exactly(1)
            sub.pos = 0
            size = sub.size_arg()
            if size:
                handler["max_size"] = size
            else:
                handler.pop("max_size", None)
        elif sub.name == "set":
            text = sub.args_exactly(1)[0]
            if text:
                handler["set"] = text
            else:
                handler.pop("set", None)
        else:
            raise sub.unknown_subdirective(("max_size", "set"))
    return handler


# --- runtime -----------------------------------------------------------------------------

TOO_LARGE = "http: request body too large"


class LimitedBody:
    """A request body that yields at most `limit` bytes in total, as Go's MaxBytesReader:
    a read of n bytes that goes past the limit returns the bytes up to it, and every read
    after that raises HttpError(413) (a read of everything raises at once). `exceeded`
    then has the connection closed after the response (the rest is never read)."""

    __slots__ = ("_body", "_remaining", "exceeded")

    def __init__(self, body: RequestBody, limit: int) -> None:
        self._body = body
        self._remaining = limit
        self.exceeded = False

    async def read(self, n: int = -1) -> bytes:
        if self.exceeded:
            raise HttpError(413, TOO_LARGE)
        if n == 0:
            return b""
        if n > 0:
            return self._take(await self._body.read(min(n, self._remaining + 1)))
        chunks: list[bytes] = []
        while True:
            chunk = self._take(await self._body.read(self._remaining + 1))
            if self.exceeded:  # a read of everything can't be answered in part
                raise HttpError(413, TOO_LARGE)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def _take(self, chunk: bytes) -> bytes:
        if len(chunk) > self._remaining:
            self.exceeded = True
            chunk = chunk[:self._remaining]
            self._remaining = 0
            if not chunk:
                raise HttpError(413, TOO_LARGE)
            return chunk
        self._remaining -= len(chunk)
        return chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return iterate_reads(self)


class RequestBodyHandler:
    """The runtime of `request_body`: passes a copy of the request with the body replaced
    or limited."""

    __slots__ = ("max_size", "set")

    def __init__(self, config: RequestBodyConfig) -> None:
        self.max_size = config.max_size
        self.set = compile_template(config.set) if config.set else None

    async def handle(self, request: Request, next: Next) -> Response:
        changes: dict[str, Any] = {}
        body: RequestBody = request.body
        if self.set is not None:
            data = self.set.render(request).encode("utf-8")
            body = BufferedBody(data)
            headers = request.headers.copy()
            headers.delete("Transfer-Encoding")
            headers.set("Content-Length", str(len(data)))
            changes.update(headers=headers, content_length=len(data), chunked=False)
        limited = None
        if self.max_size > 0:
            body = limited = LimitedBody(body, self.max_size)
        if body is request.body:
            return await next(request)
        response = await next(request.with_changes(body=body, **changes))
        if limited is not None and limited.exceeded:
            response.close = True  # the rest of the body was never read: as Go, close after answering
        return response


def build_request_body(config: RequestBodyConfig, ctx: BuildContext) -> RequestBodyHandler:
    return RequestBodyHandler(config)


REQUEST_BODY = ModuleSpec(
    id="http.handlers.request_body",
    config=RequestBodyConfig,
    directives={"request_body": Directive(_parse_request_body)},
    runtime="rws.handlers.request_body:build_request_body",
)
