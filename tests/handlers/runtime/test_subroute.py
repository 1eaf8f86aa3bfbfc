"""`subroute` and `invoke` at run time."""

from __future__ import annotations

from typing import Any

import httpx

from rws.config.decode import decode
from rws.errors import HttpError
from rws.http.config import RouteConfig
from rws.http.message import Request, Response
from rws.http.routes import BuildContext

from .conftest import Seen, build, raises_http, request, run


def respond(body: str, **extra: Any) -> dict[str, Any]:
    return {"handler": "static_response", "body": body, **extra}


def vars_route(**values: Any) -> dict[str, Any]:
    return {"handle": [{"handler": "vars", **values}]}


def subroute(routes: list[dict[str, Any]], errors: list[dict[str, Any]] | None = None) -> Any:
    config: dict[str, Any] = {"handler": "subroute", "routes": routes}
    if errors is not None:
        config["errors"] = {"routes": errors}
    return build(config)


def test_routes_run_in_order_and_the_first_response_wins() -> None:
    handler = subroute([vars_route(step="one"), {"handle": [respond("{http.vars.step}")]}, {"handle": [respond("late")]}])
    assert run(handler, request()).body == b"one"


def test_matchers_choose_routes() -> None:
    handler = subroute([{"match": [{"path": ["/a"]}], "handle": [respond("a")]}, {"handle": [respond("other")]}])
    assert run(handler, request("/a")).body == b"a"
    assert run(handler, request("/b")).body == b"other"


def test_routes_that_do_not_respond_go_on_with_the_outer_next() -> None:
    seen = Seen(body=b"outer")
    req = request()
    response = run(subroute([vars_route(inner="yes")]), req, seen)
    assert response.body == b"outer" and seen.request is req and req.vars == {"inner": "yes"}


def test_a_terminal_route_stops_the_subroute_and_the_outer_chain() -> None:
    seen = Seen()
    response = run(subroute([{"handle": [{"handler": "vars", "x": 1}], "terminal": True}, {"handle": [respond("no")]}]),
                   request(), seen)
    assert (response.status, response.body, seen.request) == (200, b"", None)


def test_without_error_routes_errors_go_up() -> None:
    assert raises_http(subroute([{"handle": [{"handler": "error", "status_code": 418}]}]), request()).status == 418


def test_error_routes_handle_errors_from_inside() -> None:
    handler = subroute([{"handle": [{"handler": "error", "error": "bad thing", "status_code": 409}]}],
                       errors=[{"handle": [respond("{http.error.status_code}: {http.error.message}")]}])
    response = run(handler, request())
    assert (response.status, response.body) == (409, b"409: bad thing")


def test_error_routes_that_do_not_respond_go_on_with_the_outer_next() -> None:
    seen = Seen(body=b"outer")
    handler = subroute([{"handle": [{"handler": "error", "status_code": 500}]}], errors=[vars_route(handled=True)])
    req = request()
    response = run(handler, req, seen)
    assert response.body == b"outer" and req.vars == {"handled": True}
    assert seen.request is not None and seen.request.error is not None and seen.request.error.status == 500
    assert req.error is None  # the received request is not marked


def test_error_routes_also_handle_errors_of_the_outer_next() -> None:
    async def failing(req: Request) -> Response:
        raise HttpError(502, "upstream")

    handler = subroute([vars_route(a=1)], errors=[{"handle": [respond("caught {http.error.message}")]}])
    assert run(handler, request(), failing).body == b"caught upstream"


# --- invoke ------------------------------------------------------------------------------


def named(routes: dict[str, dict[str, Any]]) -> BuildContext:
    return BuildContext(named_routes={name: decode(RouteConfig, route, name) for name, route in routes.items()})


def test_invoke_runs_a_named_route_and_goes_on_with_next() -> None:
    ctx = named({"tag": {"handle": [{"handler": "vars", "tagged": True}]},
                 "answer": {"handle": [respond("named {http.request.uri.path}")]}})
    req = request("/p")
    run(build({"handler": "invoke", "name": "tag"}, ctx), req)
    assert req.vars == {"tagged": True}
    assert run(build({"handler": "invoke", "name": "answer"}, ctx), request("/p")).body == b"named /p"


def test_a_named_route_is_built_once_per_generation() -> None:
    ctx = named({"shared": {"handle": [respond("x")]}})
    first, second = build({"handler": "invoke", "name": "shared"}, ctx), build({"handler": "invoke", "name": "shared"}, ctx)
    assert first.route is second.route and first.route.routes is not None


def test_named_routes_may_invoke_themselves() -> None:
    ctx = named({"loop": {"match": [{"path": ["/again"]}],
                          "handle": [{"handler": "rewrite", "uri": "/done"}, {"handler": "invoke", "name": "loop"}]}})
    seen = Seen()
    run(build({"handler": "invoke", "name": "loop"}, ctx), request("/again"), seen)
    assert seen.request is not None and seen.request.path == "/done"


def test_invoking_an_unknown_route_is_a_500() -> None:
    exc = raises_http(build({"handler": "invoke", "name": "nope"}, BuildContext()), request())
    assert exc.status == 500 and "nope" in exc.message


# --- over a socket -----------------------------------------------------------------------


def test_handle_route_and_invoke_over_a_socket(serve) -> None:
    site = ("&(shared) {\n\trespond \"shared {path}\"\n}\n"
            ":80 {\n\thandle /api/* {\n\t\trespond api\n\t}\n\troute /r {\n\t\tvars x 1\n\t\trespond \"r {vars.x}\"\n\t}\n"
            "\thandle /s/* {\n\t\tinvoke shared\n\t}\n}\n")
    with serve(site) as server:
        bodies = [httpx.get(server.url(p)).text for p in ("/api/x", "/r", "/s/x")]
    assert bodies == ["api", "r 1", "shared /s/x"]


def test_subroutes_like_caddy(same_as_caddy_run) -> None:
    site = """
	route /r {
		vars step one
		respond "{vars.step}"
	}
	handle /h/* {
		handle /h/inner {
			respond "inner"
		}
		respond "outer {path}"
	}
	handle /e {
		error "nope" 403
	}
	handle_errors {
		handle /e {
			respond "forbidden {err.status_code}"
		}
		respond "other {err.status_code}"
	}
	"""
    same_as_caddy_run(site, [("/r", {}), ("/h/inner", {}), ("/h/x", {}), ("/e", {}), ("/missing", {})])
