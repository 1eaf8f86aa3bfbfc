"""`error` at run time: raises HttpError with the status and message for error routes."""

from __future__ import annotations

from .conftest import Seen, build, raises_http, request


def error(**config: object) -> object:
    return build({"handler": "error", **config})


def test_the_default_status_is_500_and_next_is_not_called() -> None:
    seen = Seen()
    exc = raises_http(error(error="broken"), request(), seen)
    assert (exc.status, exc.message, seen.request) == (500, "broken", None)


def test_status_as_a_number_a_string_or_a_placeholder() -> None:
    assert raises_http(error(status_code=404), request()).status == 404
    assert raises_http(error(status_code="410"), request()).status == 410
    handler = error(status_code="{http.request.header.X-Status}")
    assert raises_http(handler, request(X_Status="451")).status == 451


def test_a_placeholder_status_that_is_not_a_number_is_a_500_about_it() -> None:
    exc = raises_http(error(status_code="{http.request.header.X-Status}"), request(X_Status="nope"))
    assert exc.status == 500 and "nope" in exc.message


def test_the_message_expands_known_placeholders_and_keeps_unknown_ones() -> None:
    exc = raises_http(error(error="no {http.request.uri.path} for {who.knows}", status_code=403), request("/secret"))
    assert (exc.status, exc.message) == (403, "no /secret for {who.knows}")


def test_error_routes_see_status_and_message_over_a_socket(serve) -> None:
    import httpx

    site = (":80\nerror /gone \"{path} has gone\" 410\nerror /plain 403\n"
            "handle_errors {\n\trespond \"{err.status_code} {err.status_text}: {err.message}\"\n}\n")
    with serve(site) as server:
        gone = httpx.get(server.url("/gone"))
        plain = httpx.get(server.url("/plain"))
    assert (gone.status_code, gone.text) == (410, "410 Gone: /gone has gone")
    assert (plain.status_code, plain.text) == (403, "403 Forbidden: ")  # an error without a message has none


def test_error_without_error_routes_answers_with_the_status_like_caddy(same_as_caddy_run) -> None:
    same_as_caddy_run("\terror /teapot 418\n\terror /default \"oops\"\n", [("/teapot", {}), ("/default", {})])


def test_error_routes_like_caddy(same_as_caddy_run) -> None:
    # Caddy 2.6.2 does not expand placeholders in the message yet, so the message has none.
    site = "\terror /x \"plain message\" 429\n\thandle_errors {\n\t\trespond \"{err.status_code}|{err.message}\"\n\t}\n"
    same_as_caddy_run(site, [("/x", {})])
