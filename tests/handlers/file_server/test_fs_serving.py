"""Serving files: headers, types, index files, canonical URIs, hiding, methods and statuses."""

from __future__ import annotations

import asyncio
import os

import pytest
from fs_helpers import OLD, make_handler, make_request, write

from rws.errors import HttpError
from rws.http.message import FileBody

LAST_MODIFIED = "Sun, 13 Sep 2020 12:26:40 GMT"


def test_a_file_is_served_with_caddys_headers(fetch, site):
    got = fetch({"root": str(site)}, "/hello.txt")
    assert got.status == 200
    assert got.body == b"hello, world\n"
    assert got.header("Content-Type") == "text/plain; charset=utf-8"
    assert got.header("Content-Length") == "13"
    assert got.header("Accept-Ranges") == "bytes"
    assert got.header("Last-Modified") == LAST_MODIFIED
    assert got.header("ETag") == '"c5m8nwso7bwg-d"'  # mtime in ns and size, base 36
    assert got.all("Vary") == ["Accept-Encoding"]


def test_the_etag_uses_nanoseconds(fetch, site):
    path = write(site / "ns.txt", "x" * 36**3)
    os.utime(path, ns=(OLD * 10**9 + 123456789, OLD * 10**9 + 123456789))
    assert fetch({"root": str(site)}, "/ns.txt").header("ETag") == '"c5m8nwuppfrp-1000"'


@pytest.mark.parametrize("mtime", [0, 1])
def test_a_meaningless_modification_time_gives_no_validators(fetch, site, mtime):
    write(site / "epoch.txt", "x", mtime=mtime)
    got = fetch({"root": str(site)}, "/epoch.txt")
    assert got.status == 200
    assert got.header("ETag") is None and got.header("Last-Modified") is None


def test_the_body_is_handed_over_as_an_open_file_for_sendfile(site):
    handler = make_handler({"root": str(site)})
    response = asyncio.run(handler.handle(make_request("/digits.txt"), None))  # type: ignore[arg-type]
    assert isinstance(response.body, FileBody)
    with response.body.file as file:
        assert (response.body.offset, response.body.length) == (0, 10)
        assert os.path.samefile(f"/proc/self/fd/{file.fileno()}", site / "digits.txt")


@pytest.mark.parametrize("name, content_type", [
    ("page.html", "text/html; charset=utf-8"),
    ("data.json", "application/json"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("image.svg", "image/svg+xml"),
    ("hello.txt", "text/plain; charset=utf-8"),
    ("x.mjs", "text/javascript; charset=utf-8"),
    ("x.wasm", "application/wasm"),
    ("x.webp", "image/webp"),
    ("x.png", "image/png"),
    ("x.woff2", "font/woff2"),
    ("x.xml", "text/xml; charset=utf-8"),
    ("x.csv", "text/csv; charset=utf-8"),
    ("x.md", "text/markdown; charset=utf-8"),
    ("x.PDF", "application/pdf"),
    ("x.tar.gz", "application/gzip"),
])
def test_the_content_type_comes_from_the_extension(fetch, site, name, content_type):
    if not (site / name).exists():
        write(site / name, "x")
    assert fetch({"root": str(site)}, "/" + name).header("Content-Type") == content_type


@pytest.mark.parametrize("name", ["noext", "blob.unknownext", ".bashrc", "trailing."])
def test_an_unknown_type_is_not_sniffed_and_not_sent(fetch, site, name):
    write(site / name, "<html>looks like html</html>")
    got = fetch({"root": str(site)}, "/" + name)
    assert got.status == 200 and got.header("Content-Type") is None


def test_a_content_type_set_earlier_is_kept(fetch, site):
    request = make_request("/hello.txt")
    request.response_headers.set("Content-Type", "text/x-custom")
    assert fetch({"root": str(site)}, request=request).header("Content-Type") == "text/x-custom"


def test_an_etag_set_earlier_is_kept_and_used_for_conditions(fetch, site):
    request = make_request("/hello.txt", headers=[("If-None-Match", '"mine"')])
    request.response_headers.set("ETag", '"mine"')
    assert fetch({"root": str(site)}, request=request).status == 304


def test_head_has_the_headers_of_get_and_no_body(fetch, site):
    get = fetch({"root": str(site)}, "/hello.txt")
    head = fetch({"root": str(site)}, "/hello.txt", method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.headers.items() == get.headers.items()


def test_an_empty_file_is_served(fetch, site):
    got = fetch({"root": str(site)}, "/empty.txt")
    assert (got.status, got.body, got.header("Content-Length")) == (200, b"", "0")


# --- methods and statuses --------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_are_not_allowed_on_files(fetch_error, site, method, no_leaks):
    request = make_request("/hello.txt", method)
    assert fetch_error({"root": str(site)}, request=request).status == 405
    assert request.response_headers.get("Allow") == "GET, HEAD"


def test_a_missing_file_is_404_whatever_the_method(fetch_error, site):
    assert fetch_error({"root": str(site)}, "/nope.txt", method="POST").status == 404


def test_inside_error_routes_any_method_gets_the_file_with_the_errors_status(fetch, site):
    request = make_request("/page.html", "POST", error=HttpError(404, "not here"))
    got = fetch({"root": str(site)}, request=request)
    assert (got.status, got.body) == (404, b"<p>page</p>\n")


def test_status_code_overrides_the_status(fetch, site):
    got = fetch({"root": str(site), "status_code": 410}, "/page.html")
    assert (got.status, got.body) == (410, b"<p>page</p>\n")


def test_status_code_may_be_a_placeholder(fetch, site):
    request = make_request("/page.html")
    request.vars["code"] = "503"
    assert fetch({"root": str(site), "status_code": "{http.vars.code}"}, request=request).status == 503


def test_a_status_code_placeholder_that_is_not_a_number_is_a_server_error(fetch_error, site, no_leaks):
    assert fetch_error({"root": str(site), "status_code": "{http.vars.code}"}, "/page.html").status == 500


def test_the_configured_status_wins_over_the_errors_status(fetch, site):
    request = make_request("/page.html", error=HttpError(404))
    assert fetch({"root": str(site), "status_code": 418}, request=request).status == 418


def test_a_missing_file_is_404(fetch_error, site):
    error = fetch_error({"root": str(site)}, "/nope.txt")
    assert error.status == 404


def test_pass_thru_calls_the_next_handler_for_a_missing_file(fetch, site):
    got = fetch({"root": str(site), "pass_thru": True}, "/nope.txt")
    assert (got.status, got.body) == (299, b"next")


def test_pass_thru_does_not_hide_other_errors(fetch_error, site):
    assert fetch_error({"root": str(site), "pass_thru": True}, "/hello.txt", method="POST").status == 405


def test_an_unknown_file_system_is_404(fetch_error, site):
    error = fetch_error({"root": str(site), "fs": "elsewhere"}, "/hello.txt")
    assert error.status == 404 and "filesystem" in error.message


# --- root ------------------------------------------------------------------------------


def test_the_root_defaults_to_the_root_variable(fetch, site):
    request = make_request("/hello.txt")
    request.vars["root"] = str(site)
    assert fetch({}, request=request).body == b"hello, world\n"


def test_without_a_root_the_current_directory_is_served(fetch, site, monkeypatch):
    monkeypatch.chdir(site)
    assert fetch({}, "/hello.txt").body == b"hello, world\n"


def test_the_root_may_hold_placeholders(fetch, site):
    request = make_request("/guide.txt")
    request.vars["section"] = "docs"
    assert fetch({"root": str(site) + "/{http.vars.section}"}, request=request).body == b"guide\n"


# --- index files and canonical URIs ---------------------------------------------------


def test_a_folder_is_served_by_its_index_file(fetch, site):
    got = fetch({"root": str(site)}, "/docs/")
    assert got.body == b"<h1>docs</h1>\n"
    assert got.header("Content-Type") == "text/html; charset=utf-8"


def test_the_first_existing_index_name_wins(fetch, site):
    write(site / "docs" / "home.htm", "home")
    got = fetch({"root": str(site), "index_names": ["missing.html", "home.htm", "index.html"]}, "/docs/")
    assert got.body == b"home"


def test_index_txt_is_a_default_index(fetch, site):
    write(site / "plain" / "index.txt", "text index")
    assert fetch({"root": str(site)}, "/plain/").body == b"text index"


def test_no_index_names_means_folders_are_404(fetch_error, site):
    assert fetch_error({"root": str(site), "index_names": []}, "/docs/").status == 404


def test_a_folder_without_index_is_404_without_browse(fetch_error, site):
    assert fetch_error({"root": str(site)}, "/plain/").status == 404


def test_a_hidden_index_file_is_skipped(fetch, site):
    write(site / "docs" / "index.txt", "fallback")
    assert fetch({"root": str(site), "hide": ["index.html"]}, "/docs/").body == b"fallback"


def test_a_folder_without_slash_is_redirected_to_it(fetch, site):
    got = fetch({"root": str(site)}, "/docs")
    assert got.status == 308
    assert got.header("Location") == "/docs/"
    assert got.header("Content-Type") == "text/html; charset=utf-8"
    assert got.body == b'<a href="/docs/">Permanent Redirect</a>.\n\n'


def test_the_redirect_keeps_the_query(fetch, site):
    assert fetch({"root": str(site)}, "/docs?a=1&b=%20").header("Location") == "/docs/?a=1&b=%20"


def test_a_file_with_a_trailing_slash_is_redirected_without_it(fetch, site):
    got = fetch({"root": str(site)}, "/hello.txt/?x=1")
    assert (got.status, got.header("Location")) == (308, "/hello.txt?x=1")


def test_redirects_never_point_to_another_host(fetch, site):
    assert fetch({"root": str(site)}, "//docs").header("Location") == "/docs/"
    assert fetch({"root": str(site)}, "///docs").header("Location") == "/docs/"


def test_the_redirect_location_is_percent_encoded(fetch, site):
    write(site / "a b" / "index.html", "spaced")
    write(site / "caf\u00e9" / "index.html", "accent")
    write(site / "q?" / "index.html", "question")
    assert fetch({"root": str(site)}, "/a%20b").header("Location") == "/a%20b/"
    assert fetch({"root": str(site)}, "/caf%C3%A9").header("Location") == "/caf%C3%A9/"
    assert fetch({"root": str(site)}, "/q%3F").header("Location") == "/q%3F/"


def test_a_head_redirect_has_no_body(fetch, site):
    got = fetch({"root": str(site)}, "/docs", method="HEAD")
    assert (got.status, got.body) == (308, b"")


def test_a_post_redirect_has_no_body_and_no_type(fetch, site):
    got = fetch({"root": str(site)}, "/docs", method="POST")
    assert (got.status, got.body, got.header("Content-Type")) == (308, b"", None)


def test_canonical_uris_can_be_disabled(fetch, site):
    config = {"root": str(site), "canonical_uris": False}
    assert fetch(config, "/docs").body == b"<h1>docs</h1>\n"
    assert fetch(config, "/hello.txt/").body == b"hello, world\n"


def test_no_redirect_when_a_rewrite_changed_the_last_element(fetch, site):
    request = make_request("/documentation", path="/docs", raw_path="/docs")
    assert fetch({"root": str(site)}, request=request).body == b"<h1>docs</h1>\n"


def test_the_redirect_uses_the_original_path_when_the_last_element_is_unchanged(fetch, site):
    request = make_request("/site/docs", path="/docs", raw_path="/docs")
    assert fetch({"root": str(site)}, request=request).header("Location") == "/site/docs/"


# --- hiding ------------------------------------------------------------------------------


@pytest.mark.parametrize("hide, target", [
    ([".git"], "/.git/config"),
    (["*.key"], "/secret.key"),
    (["secret.*"], "/secret.key"),
    (["docs"], "/docs/guide.txt"),
    (["docs"], "/docs/"),
])
def test_names_without_a_slash_hide_any_matching_path_component(fetch_error, site, hide, target):
    assert fetch_error({"root": str(site), "hide": hide, "canonical_uris": False}, target).status == 404


def test_an_absolute_path_hides_that_file(fetch_error, site):
    assert fetch_error({"root": str(site), "hide": [str(site / "secret.key")]}, "/secret.key").status == 404


def test_an_absolute_folder_hides_everything_below_it(fetch_error, fetch, site):
    config = {"root": str(site), "hide": [str(site / "docs")]}
    assert fetch_error(config, "/docs/guide.txt").status == 404
    assert fetch(config, "/hello.txt").status == 200


def test_an_absolute_glob_hides_what_it_matches(fetch_error, fetch, site):
    config = {"root": str(site), "hide": [str(site) + "/*.txt"]}
    assert fetch_error(config, "/hello.txt").status == 404
    assert fetch(config, "/docs/guide.txt").status == 200


def test_relative_paths_with_a_slash_are_relative_to_the_working_directory(fetch_error, fetch, site, monkeypatch):
    monkeypatch.chdir(site)
    config = {"root": ".", "hide": ["./secret.key"]}
    assert fetch_error(config, "/secret.key").status == 404
    write(site / "docs" / "secret.key", "other")
    assert fetch(config, "/docs/secret.key").status == 200


def test_hide_entries_may_hold_placeholders(fetch_error, site):
    request = make_request("/secret.key")
    request.vars["hidden"] = "*.key"
    assert fetch_error({"root": str(site), "hide": ["{http.vars.hidden}"]}, request=request).status == 404


def test_hiding_is_a_pass_thru_404(fetch, site):
    got = fetch({"root": str(site), "hide": ["*.key"], "pass_thru": True}, "/secret.key")
    assert got.status == 299


def test_hide_is_case_sensitive_like_caddy(fetch, site):
    assert fetch({"root": str(site), "hide": ["*.KEY"]}, "/secret.key").status == 200


# --- ETags from sidecar files ----------------------------------------------------------


def test_an_etag_file_supplies_the_etag(fetch, site):
    write(site / "hello.txt.etag", '"from-file"\n')
    config = {"root": str(site), "etag_file_extensions": [".sha", ".etag"]}
    assert fetch(config, "/hello.txt").header("ETag") == '"from-file"'


def test_without_an_etag_file_the_etag_is_computed(fetch, site):
    config = {"root": str(site), "etag_file_extensions": [".etag"]}
    assert fetch(config, "/hello.txt").header("ETag") == '"c5m8nwso7bwg-d"'


def test_an_unreadable_etag_file_is_a_server_error(fetch_error, site, no_leaks):
    (site / "hello.txt.etag").mkdir()
    assert fetch_error({"root": str(site), "etag_file_extensions": [".etag"]}, "/hello.txt").status == 500


# --- out of file descriptors ----------------------------------------------------------------


def test_running_out_of_descriptors_asks_the_client_to_retry(site):
    """Caddy answers 503 with a Retry-After of 2 to 4 seconds when a file can't be opened
    for a reason other than its absence or its permissions."""
    import resource

    handler = make_handler({"root": str(site)})
    request = make_request("/hello.txt")

    async def starved() -> int:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        lowest_free = os.dup(0)
        os.close(lowest_free)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
        try:
            await handler.handle(request, None)  # type: ignore[arg-type]
        except HttpError as exc:
            return exc.status
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        return 200

    assert asyncio.run(starved()) == 503
    assert request.response_headers.get("Retry-After") in ("2", "3", "4")
