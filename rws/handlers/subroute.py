"""The `subroute` handler (a nested route list) and `invoke` (run a named route).

Directives: `handle`, `handle_path`, `route`, `handle_errors` and `invoke`.

At run time a `Subroute` runs its routes; when they end without answering, the chain
goes on with the handler after the subroute. An HttpError raised inside (including by
that continuation, as in Caddy) runs the subroute's own error routes if it has any,
which likewise end by going on with the next handler; without error routes the error
goes up to the enclosing routes. `Invoke` runs a route of the server's `named_routes`
the same way; each named route is built once per config generation, on first use by an
`invoke` handler, so named routes may invoke each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rws.errors import HttpError
from rws.http.config import RouteConfig
from rws.http.message import Next, Request, Response
from rws.registry import ModuleSpec
from rws.rwsfile.directives import ConfigValue, Directive, Helper, build_subroute

if TYPE_CHECKING:
    from rws.http.routes import BuildContext, RouteList


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorsConfig:
    routes: tuple[RouteConfig, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SubrouteConfig:
    routes: tuple[RouteConfig, ...] = ()
    errors: ErrorsConfig | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InvokeConfig:
    name: str


def _parse_handle(h: Helper) -> Any:
    if h.d.next_arg():
        raise h.d.arg_error()
    return h.parse_block_as_subroute()


def _parse_route(h: Helper) -> Any:
    if h.d.next_arg():
        raise h.d.arg_error()
    values = h.parse_block_as_config()
    for v in values:
        if v.cls != "route":
            raise h.d.error(
                f"{v.directive} directive returned something other than an HTTP route "
                "(only handler directives can be used in routes)"
            )
    return build_subroute(values, h.run, sort=False)


def _parse_handle_path(h: Helper) -> list[ConfigValue]:
    d = h.d
    if not d.next_arg():
        raise d.arg_error()
    path = d.val()
    if not path.startswith("/"):
        raise d.error(f"path matcher must begin with '/', got {path}")
    if d.next_arg():
        raise d.arg_error()
    strip = path[:-2] if path.endswith("/*") else path[:-1] if path.endswith("*") else path
    subroute = h.parse_block_as_subroute()
    strip_route = {"handle": [{"handler": "rewrite", "strip_path_prefix": strip}]}
    subroute["routes"] = [strip_route, *subroute.get("routes", [])]
    return h.new_route({"path": [path]}, subroute)


def _parse_handle_errors(h: Helper) -> list[ConfigValue]:
    d = h.d
    expression = ""
    codes: list[str] = []
    for value in d.remaining_args():
        if len(value) != 3:
            raise d.error(f"bad status value '{value}'")
        if value.endswith("xx"):
            if not value[0].isdecimal():
                raise d.error(f"bad status value '{value}'")
            if expression:
                expression += " || "
            expression += f"{{http.error.status_code}} >= {value[0]}00 && {{http.error.status_code}} <= {value[0]}99"
            continue
        if not value.isdecimal():
            raise d.error(f"bad status value '{value}'")
        codes.append(value)
    if codes:
        if expression:
            expression += " || "
        expression += "{http.error.status_code} in [" + ", ".join(codes) + "]"
    route: dict[str, Any] = {"handle": [h.parse_block_as_subroute()]}
    if expression:
        route["match"] = [{"expression": expression}]
    return [ConfigValue("error_route", {"handler": "subroute", "routes": [route]})]


NAMED_ROUTES_KEY = "named_routes.invoked"


def _parse_invoke(h: Helper) -> Any:
    d = h.d
    if not d.next_arg():
        raise d.arg_error()
    name = d.val()
    if d.next_arg() or d.has_block:
        raise d.arg_error()
    h.run.state.setdefault(NAMED_ROUTES_KEY, {})[name] = None
    return {"handler": "invoke", "name": name}


# --- runtime -----------------------------------------------------------------------------


class Subroute:
    """The runtime of `subroute`."""

    __slots__ = ("routes", "errors")

    def __init__(self, routes: RouteList, errors: RouteList | None) -> None:
        self.routes = routes
        self.errors = errors

    async def handle(self, request: Request, next: Next) -> Response:
        try:
            return await self.routes._run(0, request, next, None)
        except HttpError as exc:
            if self.errors is None:
                raise
            from rws.http.routes import set_error_values

            failed = request.with_changes()
            set_error_values(failed, exc)
            return await self.errors.serve(failed, next)


def build_subroute_handler(config: SubrouteConfig, ctx: BuildContext) -> Subroute:
    errors = ctx.build_routes(config.errors.routes) if config.errors is not None else None
    return Subroute(ctx.build_routes(config.routes), errors)


class NamedRoute:
    """One named route of a config generation; `routes` is None while it is being built
    and stays None if the server has no route of that name."""

    __slots__ = ("name", "routes")

    def __init__(self, name: str) -> None:
        self.name = name
        self.routes: RouteList | None = None


NAMED_ROUTES_BUILT = "rws.handlers.subroute:named_routes"  # key of BuildContext.shared


class Invoke:
    """The runtime of `invoke`."""

    __slots__ = ("route",)

    def __init__(self, route: NamedRoute) -> None:
        self.route = route

    async def handle(self, request: Request, next: Next) -> Response:
        routes = self.route.routes
        if routes is None:
            raise HttpError(500, f"invoke: route {self.route.name!r} not found")
        return await routes.serve(request, next)


def build_invoke(config: InvokeConfig, ctx: BuildContext) -> Invoke:
    built: dict[str, NamedRoute] = ctx.shared.setdefault(NAMED_ROUTES_BUILT, {})
    route = built.get(config.name)
    if route is None:
        route = built[config.name] = NamedRoute(config.name)  # before building: it may invoke itself
        route_config = ctx.named_routes.get(config.name)
        if route_config is not None:
            route.routes = ctx.build_routes((route_config,))
    return Invoke(route)


SUBROUTE = ModuleSpec(
    id="http.handlers.subroute",
    config=SubrouteConfig,
    directives={
        "handle": Directive(_parse_handle),
        "route": Directive(_parse_route),
        "handle_path": Directive(_parse_handle_path, handler=False),
        "handle_errors": Directive(_parse_handle_errors, handler=False),
    },
    runtime="rws.handlers.subroute:build_subroute_handler",
)

INVOKE = ModuleSpec(
    id="http.handlers.invoke",
    config=InvokeConfig,
    directives={"invoke": Directive(_parse_invoke)},
    runtime="rws.handlers.subroute:build_invoke",
)

