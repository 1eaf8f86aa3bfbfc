"""Placeholders: how templates are scanned (as Caddy's replacer scans them), what each
placeholder gives for a real Request, and how values are formatted."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from rws.http.message import BufferedBody, Headers, Request
from rws.http.placeholders import (
    buffer_body,
    compile_template,
    go_duration,
    lookup,
    prefix_provider,
    prepare,
    render,
    replace_global,
    to_string,
)


def request(target: str = "/", *headers: tuple[str, str], host: str = "example.com", **options: Any) -> Request:
    return Request(options.pop("method", "GET"), target, Headers([("Host", host), *headers]), **options)


def value(key: str, req: Request | None = None) -> str:
    """What `{key}` renders to (ReplaceAll)."""
    return compile_template("{" + key + "}").render(req or sample())


def sample() -> Request:
    return request(
        "/a/b%20c/file.tar.gz?x=1&y=%20z&x=2",
        ("Cookie", 'Session=abc; theme="dark"'),
        ("Cookie", "other=1"),
        ("X-Multi", "one"),
        ("X-Multi", "two"),
        ("Transfer-Encoding", "chunked"),
        host="Sub.Example.COM:8443",
        scheme="https",
        version="HTTP/2.0",
        remote=("203.0.113.77", 51234),
        local=("192.0.2.1", 8443),
    )


# --- template scanning -------------------------------------------------------------------------

SCANNING = [
    # (text, ReplaceAll result, ReplaceKnown result)
    ("plain text", "plain text", "plain text"),
    ("{http.request.method}", "GET", "GET"),
    ("a{http.request.method}b", "aGETb", "aGETb"),
    ("{nope.nope}", "", "{nope.nope}"),
    ("[{nope.nope}]", "[]", "[{nope.nope}]"),
    ("\\{http.request.method\\}", "{http.request.method}", "{http.request.method}"),
    ("\\{x}", "{x}", "{x}"),
    ("{", "{", "{"),
    ("}", "}", "}"),
    ("{}", "", "{}"),
    ("{a{http.request.method}}", "}", "{aGET}"),
    ('{"json": {http.request.method}}', "}", '{"json": GET}'),
    ('{"a": 1}', "", '{"a": 1}'),
    ("{http.request.method", "{http.request.method", "{http.request.method"),
    ("{" * 102 + "x", "", ""),  # more than 100 unclosed braces: Caddy gives up
    ("{" * 50 + "x", "{" * 50 + "x", "{" * 50 + "x"),
    ("{a\\}b}", "", "{a}b}"),
]


@pytest.mark.parametrize(("text", "replace_all", "replace_known"), SCANNING)
def test_template_scanning(text: str, replace_all: str, replace_known: str) -> None:
    template = compile_template(text)
    assert template.render(request()) == replace_all
    assert template.render(request(), keep_unknown=True) == replace_known


def test_templates_are_compiled_once() -> None:
    assert compile_template("{http.request.host}") is compile_template("{http.request.host}")


def test_empty_stands_in_for_empty_and_unknown_values() -> None:
    req = request()
    assert compile_template("{http.vars.root}/x").render(req, empty=".") == "./x"
    assert compile_template("{nope}|{http.request.method}").render(req, empty="-") == "-|GET"


def test_transform_applies_to_placeholder_values_only() -> None:
    req = request()
    req.vars["v"] = "a*b"
    assert compile_template("*{http.vars.v}").render(req, transform=lambda t: t.replace("*", "\\*")) == "*a\\*b"


def test_large_json_body_with_many_braces_renders_in_one_pass() -> None:
    text = "[" + ",".join('{"id": %d, "m": "{http.request.method}"}' % i for i in range(3000)) + "]"
    out = compile_template(text).render(request(), keep_unknown=True)
    assert out.count('"m": "GET"') == 3000


def test_render_helper() -> None:
    assert render("{http.request.method} {x}", request(), keep_unknown=True) == "GET {x}"


# --- values as text ----------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "text"), [
    (None, ""), ("s", "s"), (True, "true"), (False, "false"), (42, "42"), (-7, "-7"),
    (1.5, "1.5"), (2.0, "2"), (0.1, "0.1"), (1e21, "1000000000000000000000"), (1.5e-7, "0.00000015"),
    (-0.0, "0"), (float("nan"), "NaN"), (float("inf"), "+Inf"), (float("-inf"), "-Inf"),
    (b"bytes", "bytes"), (["a", "b"], "[a b]"), ({"b": 1, "a": "x"}, "map[a:x b:1]"),
    (timedelta(seconds=1.5), "1.5s"), (timedelta(milliseconds=1.5), "1.5ms"),
])
def test_to_string(given: Any, text: str) -> None:
    assert to_string(given) == text


@pytest.mark.parametrize(("ns", "text"), [
    (0, "0s"), (1, "1ns"), (999, "999ns"), (1000, "1µs"), (1500, "1.5µs"), (1_500_000, "1.5ms"),
    (1_000_000_000, "1s"), (61_000_000_000, "1m1s"), (3_600_000_000_000, "1h0m0s"),
    (3_723_500_000_000, "1h2m3.5s"), (-1_500_000, "-1.5ms"), (90 * 3_600_000_000_000, "90h0m0s"),
])
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text


def test_time_values_format_like_go() -> None:
    moment = datetime(2024, 3, 5, 7, 8, 9, 120000, tzinfo=timezone.utc)
    assert to_string(moment) == "2024-03-05 07:08:09.12 +0000 UTC"


# --- request placeholders ------------------------------------------------------------------------

REQUEST_VALUES = [
    ("http.request.method", "GET"),
    ("http.request.scheme", "https"),
    ("http.request.proto", "HTTP/2.0"),
    ("http.request.proto_name", "HTTP/2"),
    ("http.request.host", "Sub.Example.COM"),
    ("http.request.hostport", "Sub.Example.COM:8443"),
    ("http.request.port", "8443"),
    ("http.request.local", "192.0.2.1:8443"),
    ("http.request.local.host", "192.0.2.1"),
    ("http.request.local.port", "8443"),
    ("http.request.remote", "203.0.113.77:51234"),
    ("http.request.remote.host", "203.0.113.77"),
    ("http.request.remote.port", "51234"),
    ("http.request.remote.host/24", "203.0.113.0/24"),
    ("http.request.remote.host/24,64", "203.0.113.0/24"),
    ("http.request.remote.host/x", ""),
    ("http.request.uri", "/a/b%20c/file.tar.gz?x=1&y=%20z&x=2"),
    ("http.request.uri_escaped", "%2Fa%2Fb%2520c%2Ffile.tar.gz%3Fx%3D1%26y%3D%2520z%26x%3D2"),
    ("http.request.uri.path", "/a/b c/file.tar.gz"),
    ("http.request.uri.path_escaped", "%2Fa%2Fb+c%2Ffile.tar.gz"),
    ("http.request.uri.path.dir", "/a/b c/"),
    ("http.request.uri.path.file", "file.tar.gz"),
    ("http.request.uri.path.file.base", "file.tar"),
    ("http.request.uri.path.file.ext", ".gz"),
    ("http.request.uri.path.0", "a"),
    ("http.request.uri.path.1", "b c"),
    ("http.request.uri.path.2", "file.tar.gz"),
    ("http.request.uri.path.3", ""),
    ("http.request.uri.query", "x=1&y=%20z&x=2"),
    ("http.request.uri.query_escaped", "x%3D1%26y%3D%2520z%26x%3D2"),
    ("http.request.uri.prefixed_query", "?x=1&y=%20z&x=2"),
    ("http.request.uri.query.x", "1,2"),
    ("http.request.uri.query.y", " z"),
    ("http.request.uri.query.missing", ""),
    ("http.request.header.X-Multi", "one,two"),
    ("http.request.header.x-multi", "one,two"),
    ("http.request.header.Missing", ""),
    ("http.request.header.Host", ""),  # Go's server keeps Host out of the header map
    ("http.request.header.Transfer-Encoding", ""),
    ("http.request.cookie.session", "abc"),
    ("http.request.cookie.theme", "dark"),
    ("http.request.cookie.other", "1"),
    ("http.request.host.labels.0", "com"),
    ("http.request.host.labels.1", "example"),
    ("http.request.host.labels.2", "sub"),
    ("http.request.host.labels.3", ""),
    ("http.request.orig_method", "GET"),
    ("http.request.orig_uri", "/a/b%20c/file.tar.gz?x=1&y=%20z&x=2"),
    ("http.request.orig_uri.path", "/a/b c/file.tar.gz"),
    ("http.request.orig_uri.path.dir", "/a/b c/"),
    ("http.request.orig_uri.path.file", "file.tar.gz"),
    ("http.request.orig_uri.path.1", "b c"),
    ("http.request.orig_uri.query", "x=1&y=%20z&x=2"),
    ("http.request.orig_uri.prefixed_query", "?x=1&y=%20z&x=2"),
]


@pytest.mark.parametrize(("key", "text"), REQUEST_VALUES)
def test_request_placeholder(key: str, text: str) -> None:
    assert value(key) == text


@pytest.mark.parametrize("key", [
    "http.request.cookie.missing",
    "http.request.host.labels.x",
    "http.request.host.labels.-1",
    "http.request.uri.path.x",
    "http.request.uri.path.-1",
    "http.request.tls.version",  # no TLS placeholders
    "http.regexp.1",  # only once a regexp matcher set it
    "http.matchers.file.relative",
    "http.error.status_code",
    "nope",
])
def test_unknown_placeholders_stay_with_replace_known(key: str) -> None:
    assert compile_template("{" + key + "}").render(sample(), keep_unknown=True) == "{" + key + "}"


def test_port_is_an_int_and_empty_without_one() -> None:
    assert lookup(sample(), "http.request.port") == (8443, True)
    assert lookup(request(host="example.com"), "http.request.port") == ("", True)


def test_ipv6_addresses_are_bracketed_with_their_port() -> None:
    req = request(remote=("2001:db8::1", 443), local=("::1", 80), host="[::1]:8080")
    assert value("http.request.remote", req) == "[2001:db8::1]:443"
    assert value("http.request.remote.host", req) == "2001:db8::1"
    assert value("http.request.remote.host/24,64", req) == "2001:db8::/64"
    assert value("http.request.local", req) == "[::1]:80"
    assert value("http.request.host", req) == "::1"


def test_remote_address_is_withheld_during_early_data() -> None:
    req = request(remote=("203.0.113.77", 1))
    req.tls = SimpleNamespace(handshake_complete=False)
    assert value("http.request.remote", req) == ""
    assert value("http.request.remote.host", req) == ""


def test_orig_values_survive_a_rewrite() -> None:
    original = request("/old/path.html?a=1", method="POST")
    rewritten = original.with_changes(method="GET", raw_path="/new/", path="/new/", query="", target="/new/")
    assert value("http.request.uri", rewritten) == "/new/"
    assert value("http.request.uri.prefixed_query", rewritten) == ""
    assert value("http.request.method", rewritten) == "GET"
    assert value("http.request.orig_method", rewritten) == "POST"
    assert value("http.request.orig_uri", rewritten) == "/old/path.html?a=1"
    assert value("http.request.orig_uri.path.file", rewritten) == "path.html"
    assert value("http.request.orig_uri.prefixed_query", rewritten) == "?a=1"


@pytest.mark.parametrize(("path", "file", "base", "ext", "directory"), [
    ("/", "", "/", "", "/"),  # Go: path.Base("/") is "/"
    ("/dir/", "", "dir", "", "/dir/"),
    ("/.htaccess", ".htaccess", "", ".htaccess", "/"),
    ("/noext", "noext", "noext", "", "/"),
    ("/a.b/c", "c", "c", "", "/a.b/"),
])
def test_path_file_parts(path: str, file: str, base: str, ext: str, directory: str) -> None:
    req = request(path)
    assert value("http.request.uri.path.file", req) == file
    assert value("http.request.uri.path.file.base", req) == base
    assert value("http.request.uri.path.file.ext", req) == ext
    assert value("http.request.uri.path.dir", req) == directory


def test_cookie_names_are_case_insensitive_and_bad_values_skipped() -> None:
    req = request("/", ("Cookie", 'a="x y"; A=ok; bad name=1; b=\\q; b=good'))
    assert value("http.request.cookie.a", req) == "x y"
    assert value("http.request.cookie.b", req) == "good"


def test_uuid_is_stable_within_a_request_and_differs_between_requests() -> None:
    first, second = sample(), sample()
    uuid_text = value("http.request.uuid", first)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", uuid_text)
    assert value("http.request.uuid", first) == uuid_text
    assert value("http.request.uuid", first.with_changes(method="POST")) == uuid_text  # copies share it
    assert value("http.request.uuid", second) != uuid_text


def test_duration_since_the_request_started() -> None:
    req = sample()
    req.start_time -= 1.5
    duration, found = lookup(req, "http.request.duration")
    assert found and isinstance(duration, timedelta) and duration >= timedelta(seconds=1.5)
    assert re.fullmatch(r"1\.5\d*s", value("http.request.duration", req))
    ms, _ = lookup(req, "http.request.duration_ms")
    assert isinstance(ms, float) and ms >= 1500


def test_values_set_on_the_request_come_first() -> None:
    req = sample()
    req.values.update({"http.regexp.name.1": "cap", "http.error.status_code": 404, "http.request.method": "X"})
    assert value("http.regexp.name.1", req) == "cap"
    assert value("http.error.status_code", req) == "404"
    assert value("http.request.method", req) == "X"


def test_vars() -> None:
    req = sample()
    req.vars.update({"root": "/srv", "n": 3, "client_ip": "198.51.100.1"})
    assert value("http.vars.root", req) == "/srv"
    assert value("http.vars.n", req) == "3"
    assert value("http.vars.client_ip", req) == "198.51.100.1"
    assert lookup(req, "http.vars.unset") == (None, True)


def test_response_headers_are_those_built_so_far() -> None:
    req = sample()
    req.response_headers.add("X-Out", "a")
    req.response_headers.add("X-Out", "b")
    assert value("http.response.header.x-out", req) == "a,b"
    final = Headers([("X-Out", "final")])
    assert value("http.response.header.X-Out", req.with_changes(response_headers=final)) == "final"


# --- the body ----------------------------------------------------------------------------------


def body_request(data: bytes) -> Request:
    return request("/", method="POST", body=BufferedBody(data))


def test_body_is_buffered_and_can_still_be_read() -> None:
    req = body_request(b"hello \xff")
    template = compile_template("[{http.request.body}] {http.request.body_base64}")
    assert template.needs_body

    async def run() -> bytes:
        await prepare(req, template)
        return await req.body.read()

    assert asyncio.run(run()) == b"hello \xff"
    assert template.render(req) == "[hello \ufffd] aGVsbG8g/w=="
    assert asyncio.run(req.body.read()) == b""  # the copy is an ordinary body, read once


def test_prepare_reads_nothing_for_templates_without_the_body() -> None:
    req = body_request(b"data")
    template = compile_template("{http.request.method}")
    assert not template.needs_body
    asyncio.run(prepare(req, template))
    assert asyncio.run(req.body.read()) == b"data"


def test_body_is_buffered_once_per_request() -> None:
    req = body_request(b"once")
    assert asyncio.run(buffer_body(req)) == b"once"
    copy = req.with_changes()
    assert asyncio.run(buffer_body(copy)) == b"once"
    assert value("http.request.body", copy) == "once"


def test_body_placeholder_before_prepare_is_empty() -> None:
    assert value("http.request.body", body_request(b"x")) == ""


# --- global placeholders ---------------------------------------------------------------------------


def test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RWS_TEST_VALUE", "v1")
    assert value("env.RWS_TEST_VALUE") == "v1"
    monkeypatch.setenv("RWS_TEST_VALUE", "v2")  # read at use time
    assert value("env.RWS_TEST_VALUE") == "v2"
    assert lookup(sample(), "env.RWS_TEST_UNSET_VALUE") == ("", True)


def test_system() -> None:
    import os
    import socket

    assert value("system.hostname") == socket.gethostname()
    assert value("system.slash") == "/"
    assert value("system.os") == "linux"
    assert value("system.arch") in ("amd64", "arm64", "386", "arm", "ppc64le", "s390x", "riscv64")
    assert value("system.wd") == os.getcwd()


@pytest.mark.parametrize(("key", "shape"), [
    ("time.now", r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? [+-]\d{4} \S+"),
    ("time.now.http", r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT"),
    ("time.now.common_log", r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}"),
    ("time.now.year", r"20\d\d"),
    ("time.now.unix", r"\d{10}"),
    ("time.now.unix_ms", r"\d{13}"),
])
def test_time(key: str, shape: str) -> None:
    assert re.fullmatch(shape, value(key))


def test_file_contents_without_one_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"s3cret\r\n\n")
    (tmp_path / "plain").write_bytes(b"plain\r\n")
    (tmp_path / "big").write_bytes(b"x" * (2 * 1024 * 1024))
    assert value(f"file.{tmp_path}/secret") == "s3cret\r\n"
    assert value(f"file.{tmp_path}/plain") == "plain"
    assert len(value(f"file.{tmp_path}/big")) == 1024 * 1024
    assert lookup(sample(), f"file.{tmp_path}/missing") == (None, True)


def test_replace_global_expands_only_global_placeholders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RWS_TEST_NET", "10.0.0.0/8")
    assert replace_global("{env.RWS_TEST_NET}|{http.request.method}|x") == "10.0.0.0/8||x"
    assert replace_global("static") == "static"


# --- providers ----------------------------------------------------------------------------------


def test_a_provider_registered_later_answers_keys_already_looked_up() -> None:
    req = sample()
    assert lookup(req, "rws_test.late.key") == (None, False)

    @prefix_provider("rws_test.late.")
    def _late(r: Request, rest: str) -> tuple[Any, bool]:
        return rest.upper(), True

    assert lookup(req, "rws_test.late.key") == ("KEY", True)


def test_the_longest_prefix_wins() -> None:
    # "http.request.uri.path." (segments) and "http.request.uri." share a start
    assert value("http.request.uri.path.0", request("/seg/x")) == "seg"
    assert value("http.request.remote.host/8", request(remote=("10.2.3.4", 1))) == "10.0.0.0/8"


# --- over real sockets -------------------------------------------------------------------------


def test_request_placeholders_over_a_real_connection(serve: Any) -> None:
    site = ':80 {\n\trespond "{remote_host} {scheme} {http.request.proto} {hostport} {http.request.local.port} ' \
           '{uri} {path.1} {query.q} {header.X-Multi} {cookie.s} {labels.0} [{nope}]"\n}\n'
    with serve(site) as server:
        port = server.port()
        response = httpx.get(server.url("/a/b%20c?q=1&q=2"), headers=[
            ("Host", f"sub.example.org:{port}"), ("X-Multi", "x"), ("X-Multi", "y"), ("Cookie", "S=v")])
    assert response.text == f"127.0.0.1 http HTTP/1.1 sub.example.org:{port} {port} /a/b%20c?q=1&q=2 b c 1,2 x,y v org " \
                            "[{nope}]"


def test_uuid_is_the_same_everywhere_in_one_request_over_sockets(serve: Any) -> None:
    site = ':80 {\n\theader X-Id {http.request.uuid}\n\trespond "{http.request.uuid}"\n}\n'
    with serve(site) as server:
        first = httpx.get(server.url("/"))
        second = httpx.get(server.url("/"))
    assert first.headers["X-Id"] == first.text
    assert first.text != second.text


def test_orig_placeholders_after_a_rewrite_over_sockets(serve: Any) -> None:
    site = ':80 {\n\trewrite * /new{path}?x=1\n\trespond "{orig_method} {orig_uri} {orig_path} {uri}"\n}\n'
    with serve(site) as server:
        response = httpx.get(server.url("/old?y=2"))
    assert response.text == "GET /old?y=2 /old /new/old?x=1"
