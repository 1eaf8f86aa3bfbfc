"""`handle_response`: what the proxy does with an upstream response that matches, instead
of copying it to the client; and the two handlers that may run inside those routes,
`copy_response` and `copy_response_headers`.

A matching entry either replaces the response's status (then the response is copied
as usual) or runs its routes with the upstream response held:
`{http.reverse_proxy.status_code}` and `{http.reverse_proxy.header.*}` describe it,
`copy_response` sends it after all (optionally with another status), and
`copy_response_headers` copies its fields onto the client's response. A response
nobody copied is closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from rws.errors import HttpError
from rws.handlers.headers import ResponseMatcher
from rws.handlers.reverse_proxy.config import CopyResponseConfig, CopyResponseHeadersConfig, ResponseHandlerConfig
from rws.handlers.reverse_proxy.forwarding import HOP_BY_HOP
from rws.handlers.reverse_proxy.exchange import UpstreamResponse
from rws.handlers.static_response import go_atoi
from rws.http.message import Headers, Next, Request, Response, canonical_header_key
from rws.http.placeholders import Template, compile_template, prefix_provider

RESPONSE_KEY = "http.reverse_proxy.response"  # request.values: the held upstream response
CONTEXT_KEY = "http.reverse_proxy.handle_response"  # request.values: the routes' HeldResponse


@dataclass(slots=True)
class HeldResponse:
    """An upstream response that `handle_response` routes may still copy."""

    response: UpstreamResponse
    finalize: Callable[[UpstreamResponse], Response]  # the proxy's usual copy to the client
    finalized: bool = False


@dataclass(slots=True)
class ResponseHandler:
    match: ResponseMatcher | None
    status: Template | None
    routes: Any  # RouteList | None

    def matches(self, response: UpstreamResponse) -> bool:
        return self.match is None or self.match.match(response.status, Headers(list(response.headers)))


def build_response_handlers(configs: tuple[ResponseHandlerConfig, ...], ctx: Any) -> tuple[ResponseHandler, ...]:
    return tuple(ResponseHandler(ResponseMatcher(c.match) if c.match is not None else None,
                                 compile_template(str(c.status_code)) if c.status_code else None,
                                 ctx.build_routes(c.routes) if c.routes else None)
                 for c in configs)


async def handle_response(handlers: tuple[ResponseHandler, ...], request: Request, next: Next,
                          response: UpstreamResponse,
                          finalize: Callable[[UpstreamResponse], Response]) -> Response | None:
    """The response of the first matching entry's routes; None when the upstream
    response is to be copied as usual (no entry matched, or one only changed its status)."""
    for handler in handlers:
        if not handler.matches(response):
            continue
        if handler.status is not None:
            code = go_atoi(handler.status.render(request))
            if code is None:
                raise HttpError(500, f"invalid status code {handler.status.render(request)!r}")
            if code:
                response.status = code
            return None
        if handler.routes is None:
            return None
        held = HeldResponse(response, finalize)
        request.values[CONTEXT_KEY] = held
        try:
            return await handler.routes.serve(request, next)  # type: ignore[no-any-return]
        finally:
            request.values.pop(CONTEXT_KEY, None)
            if not held.finalized and response.body is not None:
                close = getattr(response.body, "aclose", None)
                if close is not None:
                    await close()
    return None


@prefix_provider("http.reverse_proxy.header.")
def _response_header(request: Request, name: str) -> tuple[Any, bool]:
    """`{http.reverse_proxy.header.<Field>}`: the upstream response's field values, joined."""
    response = request.values.get(RESPONSE_KEY)
    if not isinstance(response, UpstreamResponse):
        return None, False
    lname = name.lower()
    values = [v for k, v in response.headers if k.lower() == lname]
    return (",".join(values), True) if values else (None, False)


class CopyResponse:
    """`copy_response [<status>]`: send the held upstream response (only inside
    `handle_response` routes)."""

    __slots__ = ("status",)

    def __init__(self, config: CopyResponseConfig) -> None:
        self.status = compile_template(str(config.status_code)) if config.status_code else None

    async def handle(self, request: Request, next: Next) -> Response:
        held = request.values.get(CONTEXT_KEY)
        if not isinstance(held, HeldResponse):
            raise HttpError(500, "cannot use 'copy_response' outside of reverse_proxy's handle_response routes")
        if self.status is not None:
            code = go_atoi(self.status.render(request))
            if code is None:
                raise HttpError(500, f"invalid status code {self.status.render(request)!r}")
            held.response.status = code
        held.finalized = True
        return held.finalize(held.response)


class CopyResponseHeaders:
    """`copy_response_headers { include | exclude }`: the held response's fields onto the
    client's response, then the next handler."""

    __slots__ = ("include", "exclude")

    def __init__(self, config: CopyResponseHeadersConfig) -> None:
        self.include = frozenset(canonical_header_key(n) for n in config.include)
        self.exclude = frozenset(canonical_header_key(n) for n in config.exclude)

    async def handle(self, request: Request, next: Next) -> Response:
        held = request.values.get(CONTEXT_KEY)
        if not isinstance(held, HeldResponse):
            raise HttpError(500, "cannot use 'copy_response_headers' outside of reverse_proxy's handle_response routes")
        for name, value in held.response.headers:
            key = canonical_header_key(name)
            if (self.include and key not in self.include) or key in self.exclude:
                continue
            if key.lower() in HOP_BY_HOP or key == "Content-Length":
                continue  # the framing belongs to the response that is actually written
            request.response_headers.add(name, value)
        return await next(request)


def build_copy_response(config: CopyResponseConfig, ctx: Any) -> CopyResponse:
    return CopyResponse(config)


def build_copy_response_headers(config: CopyResponseHeadersConfig, ctx: Any) -> CopyResponseHeaders:
    return CopyResponseHeaders(config)
