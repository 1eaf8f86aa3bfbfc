"""The `subroute` handler (a nested route list) and `invoke` (run a named route).

Directives: `handle`, `handle_path`, `route`, `handle_errors` and `invoke`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rws.http.config import RouteConfig
from rws.registry import ModuleSpec
from rws.rwsfile.directives import ConfigValue, Directive, Helper, build_subroute


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
            if not value[0].isdigit():
                raise d.error(f"bad status value '{value}'")
            if expression:
                expression += " || "
            expression += f"{{http.error.status_code}} >= {value[0]}00 && {{http.error.status_code}} <= {value[0]}99"
            continue
        if not value.isdigit():
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


SUBROUTE = ModuleSpec(
    id="http.handlers.subroute",
    config=SubrouteConfig,
    directives={
        "handle": Directive(_parse_handle),
        "route": Directive(_parse_route),
        "handle_path": Directive(_parse_handle_path, handler=False),
        "handle_errors": Directive(_parse_handle_errors, handler=False),
    },
)

INVOKE = ModuleSpec(id="http.handlers.invoke", config=InvokeConfig, directives={"invoke": Directive(_parse_invoke)})

