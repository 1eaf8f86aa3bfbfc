"""Routes compiled once per config generation, and how a request runs through them.

A route list runs in order: a route whose matcher sets don't match, or whose group
already ran for this request, is skipped; otherwise its handlers run in order, each
calling `next` to go on. After a route's last handler, `next` continues with the
following routes, unless the route is terminal. When the list ends, the list's own
`next` runs (for a server: an empty 200).

Module runtime objects are built by `BuildContext.build(...)` from decoded configs
(`rws.config.decode.ModuleValue`), through the `runtime` import path each module's
`ModuleSpec` names; the runtime package supplies the context, handlers only use it.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from rws.config.decode import ModuleValue
from rws.errors import ConfigError, HttpError, RwsError
from rws.http.message import Handler, Next, Request, Response, status_text


log = logging.getLogger(__name__)


class Matcher(Protocol):
    def match(self, request: Request) -> bool: ...


@dataclass(frozen=True, slots=True)
class MatcherSet:
    """Matchers ANDed together."""

    matchers: tuple[Matcher, ...]

    def match(self, request: Request) -> bool:
        for m in self.matchers:
            if not m.match(request):
                return False
        return True


def match_any(sets: tuple[MatcherSet, ...], request: Request) -> bool:
    """Matcher sets ORed together; no sets matches everything."""
    if not sets:
        return True
    for s in sets:
        if s.match(request):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Route:
    match: tuple[MatcherSet, ...]
    handlers: tuple[Handler, ...]
    group: str = ""
    terminal: bool = False


async def _empty_ok(request: Request) -> Response:
    """The end of the chain with nothing written: an empty 200 (logged as unhandled)."""
    request.vars["unhandled"] = True
    return Response(200, request.response_headers)


class RouteList:
    """A compiled list of routes: `await routes.serve(request, next)`."""

    __slots__ = ("routes",)

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes

    def serve(self, request: Request, last: Next = _empty_ok) -> Awaitable[Response]:
        return self._run(0, request, last, None)

    async def _run(self, index: int, request: Request, last: Next, groups: set[str] | None) -> Response:
        routes = self.routes
        count = len(routes)
        while index < count:
            route = routes[index]
            index += 1
            group = route.group
            if group and groups is not None and group in groups:
                continue
            if route.match and not match_any(route.match, request):
                continue
            if group:
                groups = {*groups, group} if groups else {group}
            handlers = route.handlers
            if not handlers:
                if route.terminal:
                    return await _empty_ok(request)
                continue
            after: Next = _empty_ok if route.terminal else _Continue(self, index, last, groups)
            if len(handlers) == 1:
                return await handlers[0].handle(request, after)
            return await _run_handlers(handlers, 0, request, after)
        return await last(request)


class _Continue:
    """The `next` of a route's last handler: the routes after it, then the list's `next`."""

    __slots__ = ("routes", "index", "last", "groups")

    def __init__(self, routes: RouteList, index: int, last: Next, groups: set[str] | None) -> None:
        self.routes = routes
        self.index = index
        self.last = last
        self.groups = groups

    def __call__(self, request: Request) -> Awaitable[Response]:
        return self.routes._run(self.index, request, self.last, self.groups)


def _run_handlers(handlers: tuple[Handler, ...], i: int, request: Request, after: Next) -> Awaitable[Response]:
    if i == len(handlers) - 1:
        return handlers[i].handle(request, after)

    def next_handler(req: Request) -> Awaitable[Response]:
        return _run_handlers(handlers, i + 1, req, after)

    return handlers[i].handle(request, next_handler)


_BODY_PLACEHOLDER = "{http.request.body"


def _reads_body(module: ModuleValue) -> bool:
    """Whether a handler's config reads `{http.request.body}`. A subroute's own handlers
    are built (and wrapped) on their own, so only its matchers count: a whole site, being
    a subroute, buffers bodies only on the routes that read them."""
    config = module.config
    if module.id == "http.handlers.subroute":
        routes = list(config.routes or ()) + list(config.errors.routes or () if config.errors else ())
        return _BODY_PLACEHOLDER in repr([route.match for route in routes])
    return _BODY_PLACEHOLDER in repr(config)


class _BufferingBody:
    """A handler whose config reads `{http.request.body}`: the body is buffered (once per
    request) before it runs, since placeholders are expanded synchronously."""

    __slots__ = ("handler",)

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def handle(self, request: Request, next: Next) -> Response:
        from rws.http.placeholders import buffer_body

        await buffer_body(request)
        return await self.handler.handle(request, next)


@dataclass(slots=True)
class BuildContext:
    """What module builders get while a config generation is provisioned."""

    config_files: tuple[str, ...] = ()
    closers: list[Callable[[], Any]] = field(default_factory=list)  # called when the generation closes
    starters: list[Callable[[], Any]] = field(default_factory=list)  # called in the event loop once it serves
    named_routes: dict[str, Any] = field(default_factory=dict)  # name -> RouteConfig of the server
    shared: dict[str, Any] = field(default_factory=dict)  # per-generation caches, keyed by their owner

    def build(self, module: ModuleValue) -> Any:
        """The runtime object of a decoded module (a handler, matcher, encoder, ...)."""
        from rws import registry

        spec = registry.find(module.id)
        if spec is None or spec.runtime is None:
            raise HttpError(500, f"module {module.id!r} cannot run in this build")
        path, _, attr = spec.runtime.partition(":")
        builder = getattr(importlib.import_module(path), attr)
        try:
            built = builder(module.config, self)
        except RwsError:
            raise
        except Exception as exc:  # a module's provisioning bug must fail the load, not the process
            log.exception("provisioning a module failed", extra={"module_id": module.id})
            raise ConfigError(module.id, f"provisioning failed: {exc}") from exc
        if module.id.startswith("http.handlers.") and _reads_body(module):
            return _BufferingBody(built)
        return built

    def build_matcher_sets(self, sets: tuple[dict[str, ModuleValue], ...] | None) -> tuple[MatcherSet, ...]:
        return tuple(MatcherSet(tuple(self.build(m) for m in s.values())) for s in sets or ())

    def build_routes(self, routes: tuple[Any, ...] | None) -> RouteList:
        """Routes from decoded RouteConfig values."""
        compiled = []
        for r in routes or ():
            compiled.append(Route(
                match=self.build_matcher_sets(r.match),
                handlers=tuple(self.build(h) for h in r.handle or ()),
                group=r.group or "",
                terminal=bool(r.terminal),
            ))
        return RouteList(tuple(compiled))

    def on_close(self, closer: Callable[[], Any]) -> None:
        self.closers.append(closer)

    def on_start(self, starter: Callable[[], Any]) -> None:
        """Run `starter` in the event loop when the generation starts serving (background
        tasks such as health checks start there, not while the config is built)."""
        self.starters.append(starter)


# --- errors --------------------------------------------------------------------------------

ERROR_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def error_id() -> str:
    """A short random id that ties an error's log record to its response."""
    import secrets

    return "".join(secrets.choice(ERROR_ID_ALPHABET) for _ in range(9))


def set_error_values(request: Request, exc: HttpError) -> None:
    """The `{http.error.*}` placeholders of a request being handled by error routes."""
    text = status_text(exc.status)
    request.error = exc
    request.values["http.error.status_code"] = exc.status
    request.values["http.error.status_text"] = text
    request.values["http.error.message"] = exc.message
    request.values["http.error.id"] = getattr(exc, "id", "") or error_id()
    request.values["http.error.trace"] = ""


async def serve_errors(errors: RouteList | None, request: Request, exc: HttpError) -> Response:
    """The response to an HttpError the routes raised: the error routes run with the
    `{http.error.*}` placeholders set, or the error's status answers."""
    set_error_values(request, exc)
    status = exc.status

    async def error_status(req: Request) -> Response:
        return Response(status, req.response_headers)

    if errors is None or not errors.routes:
        return Response(status, request.response_headers)
    try:
        return await errors.serve(request, error_status)
    except HttpError:
        return Response(status, request.response_headers)
