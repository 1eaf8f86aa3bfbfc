"""`static_response` at run time: status, headers, body, Content-Type, close, abort, 103."""

from __future__ import annotations

import socket

import httpx
import pytest

from rws.errors import HttpError

from .conftest import Seen, build, raises_http, request, run


def respond(**config: object) -> object:
    return build({"handler": "static_response", **config})


def test_no_status_means_200_with_an_empty_body_and_no_content_type() -> None:
    response = run(respond(), request())
    assert (response.status, response.body, response.headers.get("Content-Type")) == (200, b"", None)


def test_a_number_status_and_a_body() -> None:
    response = run(respond(status_code=404, body="nope"), request())
    assert (response.status, response.body) == (404, b"nope")


def test_a_status_given_as_a_string_or_a_placeholder() -> None:
    assert run(respond(status_code="201"), request()).status == 201
    handler = respond(status_code="{http.request.header.X-Code}")
    assert run(handler, request(X_Code="418")).status == 418


def test_a_placeholder_status_that_is_not_a_number_is_a_500() -> None:
    handler = respond(status_code="{http.request.header.X-Code}")
    assert raises_http(handler, request(X_Code="teapot")).status == 500
    assert raises_http(handler, request(X_Code="42")).status == 500


def test_in_error_routes_the_default_status_is_the_errors() -> None:
    req = request()
    req.error = HttpError(503, "down")
    assert run(respond(body="sorry"), req).status == 503
    assert run(respond(status_code=200), req).status == 200


def test_the_body_expands_known_placeholders_and_keeps_unknown_ones() -> None:
    response = run(respond(body="at {http.request.uri.path} {not.a.placeholder}"), request("/x/y"))
    assert response.body == b"at /x/y {not.a.placeholder}"


def test_header_values_and_names_expand_placeholders_and_names_are_canonical() -> None:
    handler = respond(headers={"x-path": ["{http.request.uri.path}", "{unknown}!"],
                               "{http.request.header.X-Name}": ["v"]})
    response = run(handler, request("/p", X_Name="x-from-header"))
    assert response.headers.items() == [("X-Path", "/p"), ("X-Path", "!"), ("X-From-Header", "v")]


def test_configured_headers_replace_earlier_values_of_the_same_field() -> None:
    req = request()
    req.response_headers.add("x-a", "old")
    req.response_headers.add("X-Keep", "kept")
    response = run(respond(headers={"X-A": ["new"]}), req)
    assert response.headers.items() == [("X-Keep", "kept"), ("X-A", "new")]


@pytest.mark.parametrize(("body", "content_type"), [
    ('{"a": 1}', "application/json"),
    ('  [1, 2]\n', "application/json"),
    ("{}", "text/plain; charset=utf-8"),  # too short to be taken for JSON
    ("{not json}", "text/plain; charset=utf-8"),
    ("[NaN]", "text/plain; charset=utf-8"),
    ('"a string"', "text/plain; charset=utf-8"),
    ("hello", "text/plain; charset=utf-8"),
])
def test_a_body_without_content_type_gets_one(body: str, content_type: str) -> None:
    assert run(respond(body=body), request()).headers.get("Content-Type") == content_type


def test_a_configured_content_type_is_kept() -> None:
    response = run(respond(body="{\"a\":1}", headers={"Content-Type": ["text/html"]}), request())
    assert response.headers.get_all("Content-Type") == ["text/html"]


def test_the_response_is_built_on_the_shared_response_headers() -> None:
    req = request()
    req.response_headers.set("X-Earlier", "1")
    response = run(respond(body="x"), req)
    assert response.headers is req.response_headers and response.headers.get("X-Earlier") == "1"


def test_close_asks_the_connection_to_close_after_the_response() -> None:
    response = run(respond(body="bye", close=True), request())
    assert (response.close, response.abort, response.body) == (True, False, b"bye")


def test_abort_drops_the_connection_without_calling_next() -> None:
    seen = Seen()
    response = run(respond(abort=True, body="ignored"), request(), seen)
    assert response.abort and seen.request is None


def test_early_hints_keep_their_headers_and_go_on_with_the_next_handler() -> None:
    seen = Seen(body=b"final")
    handler = respond(status_code=103, headers={"Link": ["</style.css>; rel=preload"]}, body="not sent")
    response = run(handler, request(), seen)
    assert seen.request is not None
    assert (response.status, response.body) == (200, b"final")
    assert response.headers.get("Link") == "</style.css>; rel=preload"


# --- over a socket -----------------------------------------------------------------------


def test_respond_over_a_socket(serve) -> None:
    site = ':80\nrespond /json `{"ok": true}` 201\nrespond "path={path} {nope}"\n'
    with serve(site) as server:
        json_response = httpx.get(server.url("/json"))
        text_response = httpx.get(server.url("/here"))
    assert (json_response.status_code, json_response.headers["content-type"]) == (201, "application/json")
    assert json_response.json() == {"ok": True}
    assert text_response.text == "path=/here {nope}"
    assert text_response.headers["content-type"] == "text/plain; charset=utf-8"


def test_respond_close_closes_the_connection(serve) -> None:
    with serve(":80\nrespond bye {\n\tclose\n}\n") as server:
        port = server.port()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"connection: close" in head.lower()
    assert body == b"bye"


def test_abort_drops_the_connection(serve) -> None:
    with serve(":80\nabort\n") as server:
        with socket.create_connection(("127.0.0.1", server.port()), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                data = sock.recv(4096)
            except ConnectionResetError:
                data = b""
    assert data == b""


def test_respond_like_caddy(same_as_caddy_run) -> None:
    site = """
	respond /json `{"a": [1, 2]}`
	respond /short "{}"
	respond /status "created" 201
	respond /placeholders "at {http.request.uri.path} {unknown.thing} {http.request.header.X-A}"
	respond /headers 204 {
		body ignored-for-204
	}
	handle_errors {
		respond "error {err.status_code}"
	}
	error /fail 409
	"""
    same_as_caddy_run(site, [
        ("/json", {}), ("/short", {}), ("/status", {}),
        ("/placeholders", {"headers": {"X-A": "value"}}), ("/fail", {}), ("/headers", {}),
    ])


def test_a_body_nested_too_deeply_for_python_is_plain_text() -> None:
    handler = respond(body="{http.request.header.X-Body}")
    response = run(handler, request(X_Body="[" * 5000 + "]" * 5000))
    assert response.headers.get("Content-Type") == "text/plain; charset=utf-8"
