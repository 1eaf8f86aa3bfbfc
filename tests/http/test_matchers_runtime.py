"""Request matchers at run time: built from decoded JSON the way the server builds them, then
asked about real Requests. The path, path_regexp, host, header and query tables cover the
matching rules of the reference, written for rws."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from rws import registry
from rws.config.decode import ModuleValue, decode
from rws.errors import ConfigError, HttpError
from rws.http.message import Headers, Request
from rws.http.routes import BuildContext


def matcher(name: str, value: Any) -> Any:
    """The runtime matcher for `{"<name>": value}` in a route's match set."""
    spec = registry.find(f"http.matchers.{name}")
    assert spec is not None and spec.runtime is not None
    return BuildContext().build(ModuleValue(spec.id, decode(spec.config, value, name)))


def request(target: str = "/", *headers: tuple[str, str], host: str | None = "example.com", **options: Any) -> Request:
    fields = ([("Host", host)] if host is not None else []) + list(headers)
    tls = options.pop("tls", None)
    req = Request(options.pop("method", "GET"), target, Headers(fields), **options)
    req.tls = tls
    return req


# --- path ------------------------------------------------------------------------------------

PATH_TABLE = [
    ([], "/", False),
    (["/"], "/", True),
    (["*"], "/", True),
    (["*"], "/docs/guide", True),
    (["**"], "/", True),
    (["**"], "/docs/guide", True),
    (["/docs/guide"], "/docs/guide", True),
    (["/docs/guide"], "/", False),
    (["/docs/guide/"], "/docs/guide/", True),
    (["/docs/guide/"], "/docs/guide", False),
    (["/docs/guide/", "/help"], "/help", True),
    (["/docs/guide/", "/help"], "/help/", False),
    (["*.cgi"], "/run.CGI", True),
    (["*.md"], "/docs/readme.md", True),
    (["/docs/*/intro/more"], "/docs/v2/more", False),
    (["/docs/*/intro"], "/docs/v2/intro", True),
    (["*middle*"], "/docs/middle/page.html", True),
    (["/docs"], "/DOCS", True),
    (["/docs"], "/docs/guide", False),
    (["/docs/page.html"], "/docs/PAGE.html", True),
    (["/docs*"], "/DOCSSSS", True),
    (["/docs"], "//docs", True),
    (["/docs*"], "//docs/guide", True),
    (["//docs"], "//docs", True),
    (["//docs"], "/docs", False),
    (["/docs//*"], "/docs/%2Fguide", True),
    (["/docs//*"], "/docs//guide", True),
    (["/docs/%2F*"], "/docs//guide", False),
    (["/docs/%2F*"], "/docs/%2Fguide", True),
    (["/docs//guide"], "/docs//guide", True),
    (["/docs/*//guide"], "/docs///guide", True),
    (["/docs/%*//guide"], "/docs//%2Fguide", True),
    (["/docs/%*//guide"], "/docs///guide", True),
    (["/docs*"], "/%2F/docs", True),
    (["/%25%40notes.md"], "/%25%40notes.md", True),
    (["/%25@notes.md"], "/%25%40notes.md", True),
    (["/%25@notes.md"], "/%25@notes.md", True),
    (["/albums/%*/%*"], "/albums/SIMON%2FGARFUNKEL/B.O.X", True),
    (["/albums/*/*"], "/albums/SIMON%2FGARFUNKEL/B.O.X", False),
    (["/albums/%*/%*"], "/albums/SIMON/GARFUNKEL/B.O.X", False),
    (["/albums/%*"], "/albums/SIMON%2FGARFUNKEL", True),
    (["/albums/%*"], "/albums/SIMON/GARFUNKEL", False),
    (["/docs/guide/intro"], "/docs%2fguide/intro", True),
    (["/docs%2fguide/intro"], "/docs/guide/intro", False),
    (["/docs%2fguide/intro"], "/docs%2Fguide/intro", True),
    (["/console%2fse*gs"], "/CONSOLE%2fSeXyZ987TINGS", True),
    (["/console%2fsettings"], "/CONSOLE%2fsettings", True),
    (["/console%2fsettings"], "/console%2fsettingsZ", False),
    (["/docs%2f"], "/docs%2fy", False),
    (["/docs%2fguide"], "/docs%2fguidebook", False),
]

MORE_PATH_CASES = [
    # prefix, suffix and glob forms from the reference
    (["/foo*"], "/foo", True),
    (["/foo*"], "/foobar", True),
    (["/foo/*"], "/foo", False),
    (["/foo/*"], "/foo/", True),
    (["/a/*/c"], "/a/b/x/c", False),
    (["/file?.txt"], "/file1.txt", True),
    (["/file?.txt"], "/file/.txt", False),
    (["/[a-c]at"], "/bat", True),
    (["/[^a-c]at"], "/rat", True),
    (["/[^a-c]at"], "/cat", False),
    (["/x[ab"], "/x[ab", False),  # a malformed glob never matches
    (["/a\\*b"], "/a*b", True),
    (["/a\\*b"], "/axb", False),
    # cleaning: no way around a path matcher with dot segments or encodings
    (["/admin*"], "/public/../admin/x", True),
    (["/admin*"], "/public/%2e%2e/admin", True),
    (["/admin*"], "/./admin", True),
    (["/admin*"], "/%61dmin", True),
    (["/admin*"], "/ADMIN", True),
    (["/admin"], "/admin/", False),
    (["/admin/"], "/admin//", True),
    (["/a/b"], "/a/./b", True),
    (["/secret.txt"], "/secret.txt%00.png", False),
    # several stars: Go's glob semantics, in linear time
    (["/*a*a*a*a*b"], "/" + "a" * 5000, False),
    (["*/*.js"], "/static/app.js", False),
    (["/*/*.js"], "/static/app.js", True),
]


@pytest.mark.parametrize(("patterns", "target", "expected"), PATH_TABLE + MORE_PATH_CASES)
def test_path_patterns(patterns: list[str], target: str, expected: bool) -> None:
    assert matcher("path", patterns).match(request(target)) is expected


def test_path_null_matches_nothing() -> None:
    assert matcher("path", None).match(request("/")) is False


def test_path_placeholders_are_expanded_per_request() -> None:
    m = matcher("path", ["/{http.request.host.labels.1}/*"])
    assert m.match(request("/example/x")) is True
    assert m.match(request("/other/x")) is False


def test_path_placeholder_values_compare_case_insensitively() -> None:
    m = matcher("path", ["/{http.vars.Section}*"])
    req = request("/docs/intro")
    req.vars["Section"] = "DOCS"
    assert m.match(req) is True


# --- path_regexp -----------------------------------------------------------------------------

PATH_REGEXP_TABLE = [
    ("/", "/", True),
    ("", "/", True),
    ("^/docs", "/docs/", True),
    ("^/docs", "/docs", True),
    ("^/docs", "//docs/", True),
    ("^/docs", "//docs", True),
    ("^/docs", "/%2F/docs/", True),
    ("^/guide", "/docs/guide", False),
    ("/guide", "/docs/", False),
    ("^/%25@notes.md", "/%25@notes.md", False),
    ("^/%@notes.md", "/%25@notes.md", True),
]


@pytest.mark.parametrize(("pattern", "target", "expected"), PATH_REGEXP_TABLE)
def test_path_regexp_patterns(pattern: str, target: str, expected: bool) -> None:
    assert matcher("path_regexp", {"pattern": pattern}).match(request(target)) is expected


def test_path_regexp_is_case_sensitive_and_runs_on_the_cleaned_path() -> None:
    m = matcher("path_regexp", {"pattern": "^/admin$"})
    assert m.match(request("/x/../admin")) is True
    assert m.match(request("/ADMIN")) is False


def test_path_regexp_sets_named_and_unnamed_captures() -> None:
    req = request("/re/42/rest/of")
    assert matcher("path_regexp", {"name": "myre", "pattern": "^/re/(?P<id>[0-9]+)/(.*)$"}).match(req)
    expected = {"0": "/re/42/rest/of", "1": "42", "2": "rest/of", "id": "42"}
    for suffix, value in expected.items():
        assert req.values[f"http.regexp.myre.{suffix}"] == value
        assert req.values[f"http.regexp.{suffix}"] == value


def test_path_regexp_without_name_sets_only_unnamed_captures() -> None:
    req = request("/foo/bar/baz")
    assert matcher("path_regexp", {"pattern": "^/foo/(.*)/baz$"}).match(req)
    assert req.values["http.regexp.1"] == "bar"
    assert not any(k.startswith("http.regexp.foo") for k in req.values)


def test_path_regexp_group_that_took_no_part_is_empty() -> None:
    req = request("/a")
    assert matcher("path_regexp", {"name": "n", "pattern": "^/a(b)?"}).match(req)
    assert req.values["http.regexp.n.1"] == ""


def test_path_regexp_accepts_go_named_group_syntax() -> None:
    req = request("/u/7")
    assert matcher("path_regexp", {"name": "n", "pattern": "^/u/(?<uid>\\d+)"}).match(req)
    assert req.values["http.regexp.n.uid"] == "7"


def test_failed_regexp_sets_nothing() -> None:
    req = request("/nope")
    assert not matcher("path_regexp", {"name": "n", "pattern": "^/yes/(.*)"}).match(req)
    assert req.values == {}


# --- host ------------------------------------------------------------------------------------

HOST_TABLE = [
    ([], "example.org", False),
    (["example.org"], "example.org", True),
    (["example.org"], "EXAMPLE.ORG", True),
    (["EXAMPLE.ORG"], "example.org", True),
    (["example.org"], "Example.Org", True),
    (["example.org"], "api.example.org", False),
    (["example.org"], "example.org:8443", True),
    (["api.example.org"], "www.example.org", False),
    (["api.example.org"], "api.example.org", True),
    (["bücher.example"], "xn--bcher-kva.example", True),
    (["*.example.org"], "api.example.org", True),
    (["*.example.org"], "API.EXAMPLE.ORG", True),
    (["*.example.org"], "example.org", False),
    (["*.example.org"], "api.v2.example.org", False),
    (["example.net", "*.example.org"], "api.example.org", True),
    (["*.example.org", "example.net"], "example.net", True),
    (["*.example.net", "*.*.example.org"], "api.v2.example.org", True),
    (["*.example.net", "cdn.*.example.org"], "cdn.eu.example.net", False),
    (["*.example.net", "cdn.*.example.org"], "cdn.eu.example.org", True),
    (["www.*.*"], "www.example.org", True),
    (["{env.RWS_TEST_NONEXISTENT}"], "intranet", False),
    (["{env.RWS_TEST_DOMAIN}"], "intranet", True),
    (["2001:db8::7"], "[2001:db8::7]:9000", True),
    (["*"], "example.org", False),
    (["*"], "intranet", True),
]


@pytest.mark.parametrize(("hosts", "host", "expected"), HOST_TABLE)
def test_host_patterns(hosts: list[str], host: str, expected: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RWS_TEST_DOMAIN", "intranet")
    assert matcher("host", hosts).match(request(host=host)) is expected


def test_host_matcher_with_many_hosts_finds_exact_and_wildcard_ones() -> None:
    hosts = [f"h{i}.example.com" for i in range(500)] + ["*.wild.example"]
    m = matcher("host", hosts)
    assert m.match(request(host="H250.example.com")) is True
    assert m.match(request(host="a.wild.example")) is True
    assert m.match(request(host="h500.example.com")) is False


def test_host_listed_twice_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="repeated at index 1"):
        matcher("host", ["Example.com", "example.COM"])


def test_request_without_host_matches_no_host() -> None:
    assert matcher("host", ["example.com"]).match(request(host=None)) is False


# --- method ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("methods", "method", "expected"), [
    (["GET"], "GET", True),
    (["get"], "GET", True),
    (["GET", "POST"], "POST", True),
    (["POST"], "GET", False),
    (["GET"], "get", False),  # request methods are case-sensitive; configured ones are upper-cased
])
def test_method(methods: list[str], method: str, expected: bool) -> None:
    assert matcher("method", methods).match(request(method=method)) is expected


def test_bad_method_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid HTTP method"):
        matcher("method", ["GE T"])


# --- header ----------------------------------------------------------------------------------

HEADER_TABLE: list[tuple[dict[str, Any], list[tuple[str, str]], str | None, bool]] = [
    ({"X-Mode": ["alpha", "beta"]}, [("X-Mode", "beta")], None, True),
    ({"X-Mode": ["alpha"]}, [("X-Mode", "alpha")], None, True),
    ({"X-Mode": ["alpha", "beta"]}, [("X-Mode", "gamma")], None, False),
    ({"X-Mode": ["alpha", "beta"]}, [("X-Other", "gamma")], None, False),
    ({"X-Mode": ["alpha", "beta"]}, [("X-Mode", "gamma"), ("X-Mode", "alpha")], None, True),
    ({"x-one": ["alpha"], "x-two": ["beta"]}, [("X-One", "alpha"), ("X-Two", "beta")], None, True),
    ({"X-One": ["alpha"], "X-Two": ["beta"]}, [("X-One", "alpha"), ("X-Two", "beta")], None, True),
    ({"x-one": ["alpha"], "x-two": ["beta"]}, [("X-One", "alpha"), ("X-Two", "gamma")], None, False),
    ({"x-one": ["*"]}, [("X-Two", "alpha")], None, False),
    ({"x-one": ["*"]}, [("X-One", "alpha")], None, True),
    ({"X-One": ["*bet"]}, [("X-One", "zzz"), ("X-One", "alphabet")], None, True),
    ({"X-One": ["alpha*"]}, [("X-One", "zzz"), ("X-One", "alphabet")], None, True),
    ({"X-One": ["alpha*"]}, [("X-One", "alpha")], None, True),
    ({"host": ["intranet"]}, [], "example.net", False),
    ({"host": ["intranet"]}, [], "intranet", True),
    ({"X-Absent": None}, [("X-Absent", "present")], None, False),
    ({"X-Absent": None}, [], None, True),
    ({"X-Var": ["{http.vars.a}*"]}, [("X-Var", "alphabet-soup")], None, True),
    ({"X-Var": ["{http.vars.a}"]}, [("X-Var", "zzz")], None, False),
    ({"X-Var": ["{http.vars.a}"]}, [("X-Var", "alphabet")], None, True),
]

MORE_HEADER_CASES: list[tuple[dict[str, Any], list[tuple[str, str]], str | None, bool]] = [
    ({"Field": ["*ob*"]}, [("Field", "foobar")], None, True),
    ({"Field": ["FOO"]}, [("Field", "foo")], None, False),  # values are case-sensitive
    ({"Field": []}, [("Field", "")], None, True),  # an empty list: present, any value
    ({"Field": []}, [], None, False),
    ({"Field": [""]}, [("Field", "")], None, True),
    ({"Host": ["example.com:8080"]}, [], "example.com:8080", True),  # Host includes the port
    ({"Host": ["example.com"]}, [], "example.com:8080", False),
    ({"Gone": None, "Here": ["1"]}, [("Here", "1")], None, True),
]


@pytest.mark.parametrize(("config", "fields", "host", "expected"), HEADER_TABLE + MORE_HEADER_CASES)
def test_header(config: dict[str, Any], fields: list[tuple[str, str]], host: str | None, expected: bool) -> None:
    req = request("/", *fields, host=host)
    req.vars["a"] = "alphabet"
    assert matcher("header", config).match(req) is expected


def test_header_transfer_encoding_of_a_chunked_request() -> None:
    req = request("/")
    req.chunked = True
    assert matcher("header", {"Transfer-Encoding": ["chunked"]}).match(req) is True
    assert matcher("header", {"Transfer-Encoding": ["chunked"]}).match(request("/")) is False


def test_header_regexp_matches_any_value_and_sets_captures() -> None:
    req = request("/", ("Cookie", "a=1"), ("Cookie", "session=abc123"))
    m = matcher("header_regexp", {"Cookie": {"name": "c", "pattern": "session=(?P<sid>\\w+)"}})
    assert m.match(req) is True
    assert req.values["http.regexp.c.sid"] == "abc123"
    assert req.values["http.regexp.c.0"] == "session=abc123"


@pytest.mark.parametrize(("config", "fields", "expected"), [
    ({"Field": {"pattern": "foo"}}, [("Field", "foo")], True),
    ({"Field": {"pattern": "$foo^"}}, [("Field", "foobar")], False),
    ({"Field": {"pattern": "^foo"}, "Other": {"pattern": "x"}}, [("Field", "foo")], False),
    ({"Field": {"pattern": ".*"}}, [], False),  # an absent field never matches
    ({"Host": {"pattern": "^example\\.com:80$"}}, [], True),
])
def test_header_regexp(config: dict[str, Any], fields: list[tuple[str, str]], expected: bool) -> None:
    req = request("/", *fields, host="example.com:80")
    assert matcher("header_regexp", config).match(req) is expected


# --- query -----------------------------------------------------------------------------------

QUERY_TABLE: list[tuple[dict[str, Any], str, bool]] = [
    ({"verbose": ["yes"]}, "/?verbose=yes", True),
    ({"verbose": ["yes"]}, "/", False),
    ({"verbose": ["*"]}, "/?quiet=anything", False),
    ({"verbose": ["*"]}, "/?verbose=anything", True),
    ({"verbose": [""]}, "/?flag", False),
    ({"verbose": [""]}, "/?verbose", True),
    ({}, "/?page=2", False),
    ({}, "/?", True),
    ({"": None}, "/?", False),
    ({"{http.vars.key}": ["en"]}, "/?lang=en", True),
    ({"level": ["{http.vars.level}"]}, "/?level=3", True),
    ({"verbose": ["yes"], "page": ["2"]}, "/?verbose=yes&page=2", True),
    ({"verbose": ["yes"], "page": ["2"]}, "/?verbose=yes", False),
    ({"verbose": ["yes"], "page": ["2"]}, "/?verbose=no&page=3", False),
    ({"verbose": ["yes"], "page": ["2"]}, "/?verbose=no&page=2", False),
    ({"verbose": ["no", "yes"]}, "/?verbose=no&verbose=yes", True),
    ({"verbose": ["yes"]}, "/?verbose=yes&verbose=no", True),
]

MORE_QUERY_CASES: list[tuple[dict[str, Any], str, bool]] = [
    # every key must match (latest Caddy); 2.6.2 matched this one
    ({"a": ["1"], "b": ["*"]}, "/?a=2&b=1", False),
    ({"q": ["a b"]}, "/?q=a+b", True),
    ({"q": ["a&b"]}, "/?q=a%26b", True),
    # a query that does not parse never matches
    ({"a": ["1"]}, "/?a=1&b=%zz", False),
    ({"a": ["1"]}, "/?a=1;b=2", False),
    ({"a": ["*"]}, "/?a=%", False),
    # an empty matcher matches when nothing parses into a value
    ({}, "/", True),
    ({}, "/?&", True),
    ({}, "/?a", False),
]


@pytest.mark.parametrize(("config", "target", "expected"), QUERY_TABLE + MORE_QUERY_CASES)
def test_query(config: dict[str, Any], target: str, expected: bool) -> None:
    req = request(target)
    req.vars.update({"level": "3", "key": "lang"})
    assert matcher("query", config).match(req) is expected


# --- remote_ip and client_ip -------------------------------------------------------------------


@pytest.mark.parametrize(("ranges", "peer", "expected"), [
    (["10.0.0.0/8"], "10.1.2.3", True),
    (["10.0.0.0/8"], "11.1.2.3", False),
    (["192.0.2.7"], "192.0.2.7", True),
    (["192.0.2.7"], "192.0.2.8", False),
    (["10.0.0.1/8"], "10.200.0.1", True),  # host bits in the range are ignored
    (["::1"], "::1", True),
    (["2001:db8::/32"], "2001:db8::42", True),
    (["10.0.0.0/8"], "::ffff:10.0.0.1", True),  # an IPv4-mapped peer is its IPv4 address
    (["::/0"], "10.0.0.1", False),
    (["fe80::/10%eth0"], "fe80::1%eth0", True),
    (["fe80::/10%eth0"], "fe80::1%eth1", False),
    (["fe80::/10"], "fe80::1%eth1", True),
    (["10.0.0.0/8"], "not-an-ip", False),
    (["10.0.0.0/8"], "", False),
])
def test_remote_ip(ranges: list[str], peer: str, expected: bool) -> None:
    assert matcher("remote_ip", {"ranges": ranges}).match(request(remote=(peer, 1234))) is expected


@pytest.mark.parametrize(("peer", "expected"), [
    ("192.168.1.1", True), ("172.16.0.1", True), ("10.0.0.1", True), ("127.0.0.1", True),
    ("fd00::1", True), ("::1", True), ("8.8.8.8", False), ("2001:db8::1", False),
])
def test_private_ranges(peer: str, expected: bool) -> None:
    from rws.http.matchers.ip import PRIVATE_RANGES

    assert matcher("remote_ip", {"ranges": list(PRIVATE_RANGES)}).match(request(remote=(peer, 1))) is expected


def test_remote_ip_ranges_take_global_placeholders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RWS_TEST_NET", "10.0.0.0/8")
    assert matcher("remote_ip", {"ranges": ["{env.RWS_TEST_NET}"]}).match(request(remote=("10.9.9.9", 1)))


def test_remote_ip_placeholder_that_is_not_an_ip_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RWS_TEST_NET", "nonsense")
    with pytest.raises(ConfigError, match="invalid IP address"):
        matcher("remote_ip", {"ranges": ["{env.RWS_TEST_NET}"]})


def test_remote_ip_of_an_early_data_request_is_too_early() -> None:
    req = request(remote=("10.0.0.1", 1), tls=SimpleNamespace(handshake_complete=False), scheme="https")
    with pytest.raises(HttpError) as caught:
        matcher("remote_ip", {"ranges": ["10.0.0.0/8"]}).match(req)
    assert caught.value.status == 425


def test_remote_ip_ignores_forwarding_headers() -> None:
    req = request("/", ("X-Forwarded-For", "10.0.0.1"), remote=("203.0.113.9", 1))
    assert matcher("remote_ip", {"ranges": ["10.0.0.0/8"]}).match(req) is False


def test_client_ip_uses_the_client_ip_the_server_worked_out() -> None:
    req = request(remote=("10.0.0.1", 1))
    req.vars["client_ip"] = "203.0.113.9"
    assert matcher("client_ip", {"ranges": ["203.0.113.0/24"]}).match(req) is True
    assert matcher("client_ip", {"ranges": ["10.0.0.0/8"]}).match(req) is False


def test_client_ip_falls_back_to_the_peer() -> None:
    assert matcher("client_ip", {"ranges": ["10.0.0.0/8"]}).match(request(remote=("10.0.0.1", 1))) is True


# --- protocol and tls ------------------------------------------------------------------------


@pytest.mark.parametrize(("proto", "version", "scheme", "expected"), [
    ("http", "HTTP/1.1", "http", True),
    ("http", "HTTP/1.1", "https", False),
    ("https", "HTTP/1.1", "https", True),
    ("https", "HTTP/2.0", "http", False),
    ("http/1.0", "HTTP/1.0", "http", True),
    ("http/1.0", "HTTP/1.1", "http", False),
    ("http/1.0+", "HTTP/1.1", "http", True),
    ("http/1.1", "HTTP/1.1", "http", True),
    ("http/1.1+", "HTTP/1.0", "http", False),
    ("http/1.1+", "HTTP/2.0", "https", True),
    ("http/2", "HTTP/2.0", "https", True),
    ("http/2", "HTTP/1.1", "https", False),
    ("http/2+", "HTTP/3.0", "https", True),
    ("http/2+", "HTTP/1.1", "https", False),
    ("http/3", "HTTP/3.0", "https", True),
    ("http/3+", "HTTP/2.0", "https", False),
])
def test_protocol(proto: str, version: str, scheme: str, expected: bool) -> None:
    assert matcher("protocol", proto).match(request(version=version, scheme=scheme)) is expected


@pytest.mark.parametrize(("content_type", "expected"), [
    ("application/grpc", True), ("application/grpc+proto", True), ("application/json", False), (None, False),
])
def test_protocol_grpc(content_type: str | None, expected: bool) -> None:
    fields = [("Content-Type", content_type)] if content_type else []
    assert matcher("protocol", "grpc").match(request("/", *fields)) is expected


@pytest.mark.parametrize(("config", "tls", "expected"), [
    ({}, None, False),
    ({}, SimpleNamespace(handshake_complete=True), True),
    ({}, SimpleNamespace(handshake_complete=False), True),
    ({"handshake_complete": False}, SimpleNamespace(handshake_complete=False), True),
    ({"handshake_complete": False}, SimpleNamespace(handshake_complete=True), False),
    ({"handshake_complete": True}, SimpleNamespace(handshake_complete=True), True),
    ({"handshake_complete": False}, None, False),
])
def test_tls(config: dict[str, Any], tls: Any, expected: bool) -> None:
    req = request(tls=tls, scheme="https" if tls else "http")
    assert matcher("tls", config).match(req) is expected


# --- not -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sets", "target", "expected"), [
    ([{"path": ["/a"]}], "/a", False),
    ([{"path": ["/a"]}], "/b", True),
    ([{"path": ["/a"]}, {"path": ["/b"]}], "/b", False),  # NOT (A OR B)
    ([{"path": ["/a"], "method": ["POST"]}], "/a", True),  # NOT (A AND B)
    ([{"not": [{"path": ["/a"]}]}], "/a", True),
    ([], "/a", True),
    ([{}], "/a", False),
])
def test_not(sets: list[dict[str, Any]], target: str, expected: bool) -> None:
    assert matcher("not", sets).match(request(target)) is expected


def test_not_passes_matcher_errors_on() -> None:
    m = matcher("not", [{"file": {"try_files": ["=403"]}}])
    with pytest.raises(HttpError):
        m.match(request("/"))


# --- expression ------------------------------------------------------------------------------

STATUS = "{http.error.status_code}"


@pytest.mark.parametrize(("expr", "status", "expected"), [
    (f"{STATUS} >= 400 && {STATUS} <= 499", 404, True),
    (f"{STATUS} >= 400 && {STATUS} <= 499", 500, False),
    (f"{STATUS} in [404, 410]", 410, True),
    (f"{STATUS} in [404, 410]", 403, False),
    (f"{STATUS} >= 500 && {STATUS} <= 599 || {STATUS} in [404]", 503, True),
    (f"{STATUS} >= 500 && {STATUS} <= 599 || {STATUS} in [404]", 404, True),
    (f"{STATUS} >= 500 && {STATUS} <= 599 || {STATUS} in [404]", 403, False),
    (f"{STATUS} in [404]", None, False),  # not in an error route
])
def test_status_expressions(expr: str, status: int | None, expected: bool) -> None:
    req = request()
    if status is not None:
        req.values["http.error.status_code"] = status
    assert matcher("expression", expr).match(req) is expected
    assert matcher("expression", {"expr": expr, "name": "m"}).match(req) is expected


@pytest.mark.parametrize("expr", ["path('/a')", f"{STATUS} > 400", "true", f"{STATUS} in [404] && method('GET')"])
def test_other_expressions_cannot_be_built(expr: str) -> None:
    with pytest.raises(ConfigError, match="expression .CEL. matcher is not supported"):
        matcher("expression", expr)


# --- vars and vars_regexp ----------------------------------------------------------------------


@pytest.mark.parametrize(("config", "variables", "expected"), [
    ({"foo": ["bar"]}, {"foo": "bar"}, True),
    ({"foo": ["bar"]}, {"foo": "baz"}, False),
    ({"foo": ["bar", "baz"]}, {"foo": "baz"}, True),
    ({"foo": ["x"], "other": ["y"]}, {"other": "y"}, True),  # OR across keys
    ({"foo": [""]}, {}, True),  # a missing variable is ""
    ({"n": ["5"]}, {"n": 5}, True),
    ({"n": ["1.5"]}, {"n": 1.5}, True),
    ({"n": ["2"]}, {"n": 2.0}, True),
    ({"b": ["true"]}, {"b": True}, True),
    ({"{http.request.uri.path}": ["/p"]}, {}, True),
    ({"{http.vars.foo}": ["bar"]}, {"foo": "bar"}, True),
    ({"foo": ["{http.request.method}"]}, {"foo": "GET"}, True),
    ({}, {}, True),
])
def test_vars(config: dict[str, Any], variables: dict[str, Any], expected: bool) -> None:
    req = request("/p")
    req.vars.update(variables)
    assert matcher("vars", config).match(req) is expected


def test_vars_regexp_matches_a_variable_and_sets_captures() -> None:
    req = request("/")
    req.vars["user"] = "alice-42"
    m = matcher("vars_regexp", {"user": {"name": "u", "pattern": "^(\\w+)-(?P<num>\\d+)$"}})
    assert m.match(req) is True
    assert req.values["http.regexp.u.1"] == "alice"
    assert req.values["http.regexp.u.num"] == "42"


@pytest.mark.parametrize(("config", "expected"), [
    ({"{http.request.uri}": {"pattern": "^/a\\?x=1$"}}, True),
    ({"{http.request.uri}": {"pattern": "^/b"}}, False),
    ({"missing": {"pattern": "^$"}}, True),
    ({"missing": {"pattern": "."}, "{http.request.method}": {"pattern": "GET"}}, True),
    ({}, False),
])
def test_vars_regexp(config: dict[str, Any], expected: bool) -> None:
    assert matcher("vars_regexp", config).match(request("/a?x=1")) is expected


# --- file ------------------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site root with files and directories, and a secret next to (outside) it."""
    root = tmp_path / "root"
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "index.html").write_text("index")
    (root / "a.txt").write_text("a")
    (root / "big.txt").write_text("b" * 100)
    (root / "small.txt").write_text("s")
    (root / "index.php").write_text("<?php")
    (root / "star*.txt").write_text("literal star")
    (tmp_path / "secret.txt").write_text("secret")
    return root


def file_request(target: str, root: Path | None = None) -> Request:
    req = request(target)
    if root is not None:
        req.vars["root"] = str(root)
    return req


def test_file_defaults_to_the_request_path_under_the_root_var(site: Path) -> None:
    req = file_request("/a.txt", site)
    assert matcher("file", {}).match(req) is True
    assert req.values["http.matchers.file.relative"] == "/a.txt"
    assert req.values["http.matchers.file.absolute"] == f"{site}/a.txt"
    assert req.values["http.matchers.file.type"] == "file"
    assert req.values["http.matchers.file.remainder"] == ""


@pytest.mark.parametrize(("try_files", "target", "relative", "kind"), [
    (["{http.request.uri.path}", "/index.php"], "/nope", "/index.php", "file"),
    (["{http.request.uri.path}", "{http.request.uri.path}/"], "/dir", "/dir/", "directory"),
    (["{http.request.uri.path}/index.html"], "/dir", "/dir/index.html", "file"),
    (["/nope", "/a.txt", "/small.txt"], "/", "/a.txt", "file"),
    (["/*.txt"], "/", "/a.txt", "file"),  # globs in the config expand, in name order
])
def test_file_try_files(site: Path, try_files: list[str], target: str, relative: str, kind: str) -> None:
    req = file_request(target)
    assert matcher("file", {"root": str(site), "try_files": try_files}).match(req) is True
    assert (req.values["http.matchers.file.relative"], req.values["http.matchers.file.type"]) == (relative, kind)


@pytest.mark.parametrize(("target", "expected"), [("/dir", False), ("/dir/", False), ("/nope", False),
                                                ("/a.txt/", True)])
def test_file_kind_must_fit_the_candidate(site: Path, target: str, expected: bool) -> None:
    # "{path}" is cleaned, so "/dir/" asks for a file named "dir" (a directory needs "{path}/")
    # and "/a.txt/" finds the file a.txt, as in Caddy
    assert matcher("file", {"root": str(site)}).match(file_request(target)) is expected


@pytest.mark.parametrize(("target", "expected"), [("/dir/", True), ("/dir", True), ("/a.txt", False)])
def test_file_directory_candidates_end_with_a_slash(site: Path, target: str, expected: bool) -> None:
    m = matcher("file", {"root": str(site), "try_files": ["{http.request.uri.path}/"]})
    assert m.match(file_request(target)) is expected


@pytest.mark.parametrize("target", [
    "/../secret.txt",
    "/dir/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2e%2e%2fsecret.txt",
    "/dir/%2E%2E/%2E%2E/secret.txt",
    "/..%2fsecret.txt",
    "/..\\secret.txt",
    "//../secret.txt",
    "/./../secret.txt",
])
def test_file_never_finds_files_outside_the_root(site: Path, target: str) -> None:
    req = file_request(target)
    found = matcher("file", {"root": str(site)}).match(req)
    assert found is False or req.values["http.matchers.file.absolute"].startswith(f"{site}/")


def test_file_candidates_from_placeholders_stay_inside_the_root(site: Path) -> None:
    req = file_request("/")
    req.vars["name"] = "../../secret.txt"
    assert matcher("file", {"root": str(site), "try_files": ["/dir/{http.vars.name}"]}).match(req) is False


def test_file_request_cannot_inject_globs(site: Path) -> None:
    m = matcher("file", {"root": str(site)})
    assert m.match(file_request("/*.txt")) is False
    req = file_request("/star*.txt")  # a literal "*" in a name is still found
    assert m.match(req) is True
    assert req.values["http.matchers.file.relative"] == "/star*.txt"


@pytest.mark.parametrize("target", ["/a.txt%00.png", "/" + "x" * 5000, "/%ff%fe"])
def test_file_odd_names_just_do_not_match(site: Path, target: str) -> None:
    assert matcher("file", {"root": str(site)}).match(file_request(target)) is False


def test_file_follows_symlinks_like_caddy_but_reports_paths_inside_the_root(site: Path) -> None:
    os.symlink(site.parent / "secret.txt", site / "link.txt")
    req = file_request("/link.txt")
    assert matcher("file", {"root": str(site)}).match(req) is True
    assert req.values["http.matchers.file.absolute"] == f"{site}/link.txt"


def test_file_dangling_symlink_is_not_a_file(site: Path) -> None:
    os.symlink(site / "missing", site / "dangling")
    assert matcher("file", {"root": str(site)}).match(file_request("/dangling")) is False


def test_file_error_candidate_raises_http_error(site: Path) -> None:
    m = matcher("file", {"root": str(site), "try_files": ["/nope", "=404"]})
    with pytest.raises(HttpError) as caught:
        m.match(file_request("/"))
    assert caught.value.status == 404


@pytest.mark.parametrize("candidate", ["=99", "=1000", "=abc", "="])
def test_file_not_a_status_is_a_file_name(site: Path, candidate: str) -> None:
    assert matcher("file", {"root": str(site), "try_files": [candidate]}).match(file_request("/")) is False


def test_file_error_candidate_only_counts_when_reached(site: Path) -> None:
    assert matcher("file", {"root": str(site), "try_files": ["/a.txt", "=404"]}).match(file_request("/")) is True


def test_first_exist_fallback_takes_the_last_candidate_unchecked(site: Path) -> None:
    req = file_request("/missing")
    m = matcher("file", {"root": str(site), "try_files": ["{http.request.uri.path}", "/dir"],
                         "try_policy": "first_exist_fallback"})
    assert m.match(req) is True
    assert req.values["http.matchers.file.relative"] == "/dir"
    assert req.values["http.matchers.file.type"] == "file"  # not checked, as in Caddy


@pytest.mark.parametrize(("policy", "relative"), [
    ("largest_size", "/big.txt"),
    ("smallest_size", "/small.txt"),
    ("most_recently_modified", "/a.txt"),
])
def test_file_size_and_time_policies(site: Path, policy: str, relative: str) -> None:
    os.utime(site / "a.txt", (2_000_000_000, 2_000_000_000))
    req = file_request("/")
    m = matcher("file", {"root": str(site), "try_files": ["/small.txt", "/big.txt", "/a.txt", "/nope"],
                         "try_policy": policy})
    assert m.match(req) is True
    assert req.values["http.matchers.file.relative"] == relative


def test_file_split_path(site: Path) -> None:
    req = file_request("/index.php/some/path")
    m = matcher("file", {"root": str(site), "try_files": ["{http.request.uri.path}"], "split_path": [".php"]})
    assert m.match(req) is True
    assert req.values["http.matchers.file.relative"] == "/index.php"
    assert req.values["http.matchers.file.remainder"] == "/some/path"


def test_file_split_path_needs_a_segment_end(site: Path) -> None:
    m = matcher("file", {"root": str(site), "split_path": [".php"]})
    assert m.match(file_request("/index.phpx/a")) is False


def test_file_without_root_var_uses_the_working_directory(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(site)
    req = file_request("/a.txt")
    assert matcher("file", {}).match(req) is True
    assert req.values["http.matchers.file.absolute"] == "a.txt"


def test_file_other_filesystems_do_not_match(site: Path) -> None:
    assert matcher("file", {"root": str(site), "fs": "embedded"}).match(file_request("/a.txt")) is False


def test_unknown_try_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown try policy"):
        matcher("file", {"try_policy": "best"})


# --- over real sockets -------------------------------------------------------------------------

CADDY = shutil.which("caddy")

# Matchers and placeholders whose behaviour Caddy 2.6.2 and the latest Caddy share.
DIFFERENTIAL_SITE = """\
{
\tadmin off
\tauto_https off
}
:PORT {
\t@exact path /exact
\t@prefix path /pre*
\t@suffix path *.php
\t@glob path /g/*/x
\t@escaped path /a%2Fb
\t@double path //dbl*
\t@re path_regexp myre ^/re/(\\d+)/(?P<name>\\w+)$
\t@host host *.example.com
\t@hdr header X-A b*
\t@hnull {
\t\tpath /hnull
\t\theader !X-Gone
\t}
\t@method method PUT
\t@q query mode=debug
\t@qempty {
\t\tpath /qe
\t\tquery ""
\t}
\t@notn {
\t\tpath /not*
\t\tnot path /not/skip*
\t}
\t@vars {
\t\tpath /vars
\t\tvars {http.request.uri.query} a=1
\t}
\t@varsre vars_regexp vr {http.request.header.User-Agent} ^ua-(\\w+)$
\t@hre header_regexp hr X-Token ^tok-(?P<id>\\d+)$
\t@proto {
\t\tpath /proto
\t\tprotocol http/1.1
\t}
\t@rip {
\t\tpath /rip
\t\tremote_ip 127.0.0.0/8
\t}
\troute {
\t\trespond @exact "exact"
\t\trespond @prefix "prefix {path}"
\t\trespond @suffix "suffix {file} {file.base} {file.ext}"
\t\trespond @glob "glob"
\t\trespond @escaped "escaped"
\t\trespond @double "double"
\t\trespond @re "re {re.myre.0} {re.myre.1} {re.myre.name}"
\t\trespond @host "host {labels.0} {host}"
\t\trespond @hdr "hdr {header.X-A}"
\t\trespond @hnull "hnull"
\t\trespond @method "method {method}"
\t\trespond @q "q {query.mode} {query}"
\t\trespond @qempty "qempty"
\t\trespond @notn "notn"
\t\trespond @vars "vars"
\t\trespond @varsre "varsre {re.vr.1}"
\t\trespond @hre "hre {re.hr.id}"
\t\trespond @proto "proto"
\t\trespond @rip "rip {remote_host}"
\t\trespond "none {method} {uri} {path} {dir} {file} {query} {path.0} {path.1} {cookie.s} {header.X-Multi} {header.Host} {hostport} {scheme} {http.request.proto} {nope.nope}" 404
\t}
}
"""

DIFFERENTIAL_REQUESTS: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/exact", {}), ("GET", "/EXACT", {}), ("GET", "/exact/", {}), ("GET", "//exact", {}),
    ("GET", "/pre", {}), ("GET", "/prefix/x", {}), ("GET", "/x/../pre/y", {}), ("GET", "/%70re", {}),
    ("GET", "/dir/index.PHP", {}), ("GET", "/g/a/x", {}), ("GET", "/g/a/b/x", {}),
    ("GET", "/a%2Fb", {}), ("GET", "/a%2fb", {}), ("GET", "/a/b", {}),
    ("GET", "//dbl/x", {}), ("GET", "/dbl/x", {}),
    ("GET", "/re/42/alice", {}), ("GET", "/re/x/alice", {}),
    ("GET", "/h", {"Host": "a.b.example.com"}), ("GET", "/h", {"Host": "www.example.com"}),
    ("GET", "/h", {"Host": "WWW.Example.com:99"}),
    ("GET", "/x", {"X-A": "bar"}), ("GET", "/x", {"X-A": "abc"}),
    ("GET", "/hnull", {}), ("GET", "/hnull", {"X-Gone": "1"}),
    ("PUT", "/m", {}),
    ("GET", "/q?mode=debug", {}), ("GET", "/q?mode=debugx", {}),
    ("GET", "/qe", {}), ("GET", "/qe?", {}), ("GET", "/qe?a=1", {}),
    ("GET", "/not/a", {}), ("GET", "/not/skip/a", {}),
    ("GET", "/vars?a=1", {}), ("GET", "/vars?a=2", {}),
    ("GET", "/u", {"User-Agent": "ua-bot"}), ("GET", "/t", {"X-Token": "tok-123"}),
    ("GET", "/proto", {}), ("GET", "/rip", {}),
    ("GET", "/some/dir/file.txt?k=v&k2=%20", {"Cookie": "s=val; other=2", "X-Multi": "1"}),
    ("GET", "/a%20b/", {}), ("GET", "/", {}),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers(base: str) -> list[tuple[str, str, int, str]]:
    out = []
    with httpx.Client() as client:
        for method, target, headers in DIFFERENTIAL_REQUESTS:
            sent = {"Host": "localhost", "User-Agent": "test", **headers}
            response = client.request(method, base + target, headers=sent)
            out.append((method, target, response.status_code, response.text))
    return out


@contextmanager
def _caddy(site: str, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    (tmp_path / "Caddyfile").write_text(site.replace("PORT", str(port)))
    proc = subprocess.Popen([CADDY or "caddy", "run", "--config", "Caddyfile", "--adapter", "caddyfile"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.skipif(CADDY is None, reason="caddy is not installed")
def test_matchers_and_placeholders_answer_like_caddy(serve: Any, tmp_path: Path) -> None:
    with _caddy(DIFFERENTIAL_SITE, tmp_path) as base:
        expected = _answers(base)
    with serve(DIFFERENTIAL_SITE.replace("PORT", "80")) as server:
        actual = _answers(server.url("").rstrip("/"))
    assert [a for a in actual if a not in expected] == []


LATEST_SITE = """\
:80 {
\t@q query mode=debug tag=*
\t@labels host *.example.com
\trespond @q "q {query.mode}"
\trespond @labels "labels {labels.2} {labels.1}"
\trespond "none" 404
}
"""


@pytest.mark.parametrize(("target", "host", "status", "body"), [
    ("/?tag=x&mode=other&mode=debug", "localhost", 200, "q other,debug"),  # any value of a key (latest)
    ("/?mode=debug", "localhost", 404, "none"),  # every key must be present (latest)
    ("/?mode=debug&tag=1;x", "localhost", 404, "none"),  # unparsable query
    ("/", "WWW.Example.COM", 200, "labels www example"),  # labels are lower-cased (latest)
])
def test_latest_caddy_behaviour_over_sockets(serve: Any, target: str, host: str, status: int, body: str) -> None:
    with serve(LATEST_SITE) as server:
        response = httpx.get(server.url(target), headers={"Host": host})
    assert (response.status_code, response.text) == (status, body)


def test_file_matcher_and_try_files_errors_over_sockets(serve: Any, site: Path) -> None:
    config = f""":80 {{
\troot * {site}
\t@found file {{path}} {{path}}/index.html
\t@forbidden file /nope =403
\troute {{
\t\trespond @found "found {{file_match.relative}} {{file_match.type}}"
\t\trespond @forbidden "unreachable"
\t}}
\thandle_errors 4xx {{
\t\trespond "error {{err.status_code}}"
\t}}
}}
"""
    with serve(config) as server:
        assert httpx.get(server.url("/a.txt")).text == "found /a.txt file"
        assert httpx.get(server.url("/dir")).text == "found /dir/index.html file"
        assert "secret" not in httpx.get(server.url("/%2e%2e/secret.txt")).text
        error = httpx.get(server.url("/zzz"))
        assert (error.status_code, error.text) == (403, "error 403")
