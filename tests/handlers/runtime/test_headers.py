"""`headers` at run time: request and response operations, deferral, `require`, Host."""

from __future__ import annotations

import httpx

from rws.errors import HttpError
from rws.http.message import Request, Response

from .conftest import Seen, build, request, run


def headers(**config: object) -> object:
    return build({"handler": "headers", **config})


def response_with(*fields: tuple[str, str], status: int = 200) -> Seen:
    """A `next` that answers with these response fields added to the shared map."""

    class Answer(Seen):
        async def __call__(self, req: Request) -> Response:
            for name, value in fields:
                req.response_headers.add(name, value)
            self.request = req
            return Response(status, req.response_headers, b"")

    return Answer()


# --- operations --------------------------------------------------------------------------


def test_set_add_and_delete_on_the_response_before_next() -> None:
    req = request()
    req.response_headers.add("X-Old", "1")
    req.response_headers.add("X-Gone", "1")
    handler = headers(response={"set": {"x-set": ["a", "b"]}, "add": {"X-Add": ["1", "2"]}, "delete": ["x-gone"]})
    seen = Seen()
    run(handler, req, seen)
    assert seen.request is not None
    assert req.response_headers.items() == [("X-Old", "1"), ("X-Add", "1"), ("X-Add", "2"), ("X-Set", "a,b")]


def test_add_does_not_replace_and_set_does() -> None:
    req = request()
    req.response_headers.add("Vary", "Accept")
    req.response_headers.add("Cache-Control", "public")
    run(headers(response={"add": {"Vary": ["Origin"]}, "set": {"Cache-Control": ["no-store"]}}), req)
    assert req.response_headers.get_all("Vary") == ["Accept", "Origin"]
    assert req.response_headers.get_all("Cache-Control") == ["no-store"]


def test_delete_star_runs_first_so_added_fields_survive() -> None:
    req = request()
    req.response_headers.add("X-A", "1")
    run(headers(response={"delete": ["*"], "add": {"X-New": ["n"]}}), req)
    assert req.response_headers.items() == [("X-New", "n")]


def test_set_runs_before_delete_so_delete_wins() -> None:
    req = request()
    run(headers(response={"set": {"X-A": ["1"]}, "delete": ["X-A"]}), req)
    assert "X-A" not in req.response_headers


def test_wildcard_deletes_match_names_case_insensitively() -> None:
    req = request()
    for name in ("X-Powered-By", "X-Debug-Info", "Server-Timing", "Content-Type", "Via"):
        req.response_headers.add(name, "v")
    run(headers(response={"delete": ["x-*", "*timing", "*ONTEN*"]}), req)
    assert req.response_headers.names() == ["Via"]


def test_replace_substring_and_regexp_with_go_templates() -> None:
    req = request()
    req.response_headers.add("Location", "http://internal:8080/a")
    req.response_headers.add("Via", "1.1 proxy")
    handler = headers(response={"replace": {
        "location": [{"search": "http://internal:8080", "replace": "https://{http.request.host}"}],
        "Via": [{"search_regexp": r"^(\S+) (\S+)$", "replace": "$2 (${1})"}],
    }})
    run(handler, req)
    assert req.response_headers.get("Location") == "https://example.com/a"
    assert req.response_headers.get("Via") == "proxy (1.1)"


def test_replace_star_touches_every_field() -> None:
    req = request()
    req.response_headers.add("A", "secret-1")
    req.response_headers.add("B", "secret-2")
    run(headers(response={"replace": {"*": [{"search": "secret", "replace": "xxx"}]}}), req)
    assert req.response_headers.items() == [("A", "xxx-1"), ("B", "xxx-2")]


def test_a_regexp_with_placeholders_is_compiled_per_request_and_a_bad_one_is_skipped() -> None:
    handler = headers(response={"replace": {"X-A": [{"search_regexp": "{http.request.header.X-Find}", "replace": "_"}]}})
    req = request(X_Find="b+")
    req.response_headers.add("X-A", "abbbc")
    run(handler, req)
    assert req.response_headers.get("X-A") == "a_c"
    req = request(X_Find="(")
    req.response_headers.add("X-A", "abbbc")
    run(handler, req)
    assert req.response_headers.get("X-A") == "abbbc"


def test_names_and_values_keep_unknown_placeholders() -> None:
    req = request("/p")
    run(headers(response={"set": {"X-Path": ["{http.request.uri.path} {no.such}"]}}), req)
    assert req.response_headers.get("X-Path") == "/p {no.such}"


# --- deferred and required ---------------------------------------------------------------


def test_deferred_operations_apply_to_the_response_next_returns() -> None:
    handler = headers(response={"set": {"Server": ["rws"]}, "delete": ["X-Internal"], "deferred": True})
    response = run(handler, request(), response_with(("Server", "upstream"), ("X-Internal", "1")))
    assert response.headers.items() == [("Server", "rws")]


def test_require_applies_operations_only_to_matching_responses() -> None:
    handler = headers(response={"set": {"Cache-Control": ["no-store"]},
                                "require": {"status_code": [4], "headers": {"X-Cache": ["*miss*"]}}})
    hit = run(handler, request(), response_with(("X-Cache", "a-MISS-b"), status=404))
    assert "Cache-Control" not in hit.headers  # values compare case-sensitively
    miss = run(handler, request(), response_with(("X-Cache", "a-miss-b"), status=404))
    assert miss.headers.get("Cache-Control") == "no-store"
    ok = run(handler, request(), response_with(("X-Cache", "miss"), status=200))
    assert "Cache-Control" not in ok.headers


def test_require_null_means_absent_and_empty_means_present() -> None:
    default = headers(response={"set": {"Content-Type": ["text/html"]}, "require": {"headers": {"Content-Type": None}}})
    assert run(default, request(), response_with()).headers.get("Content-Type") == "text/html"
    kept = run(default, request(), response_with(("Content-Type", "image/png")))
    assert kept.headers.get_all("Content-Type") == ["image/png"]
    present = headers(response={"set": {"X-Had-Etag": ["yes"]}, "require": {"headers": {"Etag": []}}})
    assert "X-Had-Etag" not in run(present, request(), response_with()).headers
    assert run(present, request(), response_with(("ETag", '"1"'))).headers.get("X-Had-Etag") == "yes"


def test_deferred_operations_do_not_touch_error_responses() -> None:
    async def fail(req: Request) -> Response:
        raise HttpError(502)

    req = request()
    handler = headers(response={"set": {"X-A": ["1"]}, "deferred": True})
    try:
        run(handler, req, fail)
    except HttpError as exc:
        assert exc.status == 502
    assert "X-A" not in req.response_headers


# --- request headers ---------------------------------------------------------------------


def test_request_operations_change_a_copy_passed_to_next() -> None:
    original = request(X_Remove="1", Accept="text/html")
    handler = headers(request={"set": {"X-Real-Path": ["{http.request.uri.path}"]}, "delete": ["X-Remove"],
                               "replace": {"Accept": [{"search": "html", "replace": "plain"}]}})
    seen = Seen()
    run(handler, original, seen)
    assert seen.request is not None and seen.request is not original
    assert seen.request.headers.items() == [("Host", "example.com"), ("Accept", "text/plain"), ("X-Real-Path", "/")]
    assert original.headers.get("X-Remove") == "1"


def test_setting_host_changes_the_requests_host_and_port() -> None:
    seen = Seen()
    run(headers(request={"set": {"Host": ["backend.internal:8443"]}}), request(), seen)
    assert seen.request is not None
    assert (seen.request.host, seen.request.port, seen.request.hostport) == ("backend.internal", "8443", "backend.internal:8443")


def test_adding_a_host_makes_the_added_one_the_host() -> None:
    seen = Seen()
    run(headers(request={"add": {"Host": ["other.example"]}}), request(), seen)
    assert seen.request is not None
    assert seen.request.host == "other.example" and seen.request.headers.get_all("Host") == ["other.example"]


def test_deleting_host_leaves_the_request_without_one() -> None:
    seen = Seen()
    run(headers(request={"delete": ["Host"]}), request(), seen)
    assert seen.request is not None and seen.request.host == "" and "Host" not in seen.request.headers


def test_response_placeholders_see_the_changed_request() -> None:
    seen = Seen()
    handler = headers(request={"set": {"X-User": ["bob"]}}, response={"set": {"X-Echo": ["{http.request.header.X-User}"]}})
    req = request()
    run(handler, req, seen)
    assert req.response_headers.get("X-Echo") == "bob"


# --- over a socket -----------------------------------------------------------------------


def test_header_directives_over_a_socket(serve) -> None:
    site = (":80\nrequest_header X-Seen yes\nheader X-Frame-Options DENY\nheader -Server\n"
            "header ?Cache-Control no-cache\nrespond \"{header.X-Seen}\"\n")
    with serve(site) as server:
        response = httpx.get(server.url("/"))
    assert response.text == "yes"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-cache"
    assert "server" not in response.headers


def test_header_operations_like_caddy(same_as_caddy_run) -> None:
    site = """
	request_header X-Req "from-rule"
	request_header -X-Drop
	header X-Set "a"
	header +X-Add "b1"
	header +X-Add "b2"
	header -Server
	header {
		X-Deferred "late"
		defer
	}
	header ?Content-Type "text/x-default"
	header X-Rep "hello world"
	header X-Rep "(\\w+) (\\w+)" "$2 $1"
	respond "{header.X-Req}|{header.X-Drop}|{header.X-Keep}"
	"""
    same_as_caddy_run(site, [("/", {"headers": {"X-Drop": "d", "X-Keep": "k"}})],
                      headers=("X-Set", "X-Add", "Server", "X-Deferred", "Content-Type", "X-Rep"))
