"""`rewrite` at run time: method, URI, prefix/suffix stripping, substrings, regexps, query."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from rws.http.message import Request
from rws.http.regexp import compile_regexp, go_template, replace_all
from rws.http.uri import clean_path, encode_query, escape_path, parse_query

from .conftest import Seen, build, request, run


def rewritten(config: dict[str, Any], target: str, **headers: str) -> Request:
    seen = Seen()
    run(build({"handler": "rewrite", **config}), request(target, **headers), seen)
    assert seen.request is not None
    return seen.request


# Each case: the rule, the request-target received, the request-target after the rewrite.
URI_CASES = [
    ({"uri": "/foo"}, "/bar", "/foo"),
    ({"uri": "foo"}, "/", "foo"),
    ({"uri": "{http.request.uri}"}, "/bar%3Fbaz?c=d", "/bar%3Fbaz?c=d"),
    ({"uri": "{http.request.uri.path}"}, "/bar%3Fbaz", "/bar%3Fbaz"),
    ({"uri": "/foo{http.request.uri.path}"}, "/bar", "/foo/bar"),
    ({"uri": "/index.php?p={http.request.uri.path}"}, "/foo/bar", "/index.php?p=%2Ffoo%2Fbar"),
    ({"uri": "?a=b&{http.request.uri.query}"}, "/", "/?a=b"),
    ({"uri": "/?c=d"}, "/?a=b", "/?c=d"),
    ({"uri": "?c=d"}, "/foo", "/foo?c=d"),
    ({"uri": "/?{http.request.uri.query}&c=d"}, "/", "/?c=d"),
    ({"uri": "/index.php?{http.request.uri.query}&c=d"}, "/?a=b", "/index.php?a=b&c=d"),
    ({"uri": "/index.php?c=d&{http.request.uri.query}"}, "/?a=b", "/index.php?c=d&a=b"),
    ({"uri": "/index.php?{http.request.uri.query}&p={http.request.uri.path}"}, "/foo/bar?a=b",
     "/index.php?a=b&p=%2Ffoo%2Fbar"),
    ({"uri": "{http.request.uri.path}?"}, "/foo/bar?a=b&c=d", "/foo/bar"),
    ({"uri": "?qs={http.request.uri.query}"}, "/foo?a=b&c=d", "/foo?qs=a%3Db%26c%3Dd"),
    ({"uri": "/foo?{http.request.uri.query}#frag"}, "/foo/bar?a=b", "/foo?a=b"),
    ({"uri": "/foo{http.request.uri}"}, "/bar?a=b", "/foo/bar?a=b"),
    ({"uri": "/foo{http.request.uri}?c=d"}, "/bar?a=b", "/foo/bar?c=d"),
    ({"uri": "/foo{http.request.uri}?{http.request.uri.query}&c=d"}, "/bar?a=b", "/foo/bar?a=b&c=d"),
    ({"uri": "{http.request.uri.path}bar?c=d"}, "/foo/?a=b", "/foo/bar?c=d"),
    ({"uri": "/i{http.request.uri}"}, "/%C2%B7%E2%88%B5.png", "/i/%C2%B7%E2%88%B5.png"),
    ({"uri": "/i{http.request.uri}"}, "/·∵.png?a=b", "/i/%C2%B7%E2%88%B5.png?a=b"),
    ({"uri": "/api/admin/panel"}, "/api/admin%2Fpanel", "/api/admin/panel"),
    ({"uri": "/a%2Fb"}, "/", "/a/b"),  # a rewritten path is decoded, then escaped canonically
    ({"uri": "/a%zz"}, "/", "/a%25zz"),  # a bad escape is kept as text
]

STRIP_CASES = [
    ({"strip_path_prefix": "/prefix"}, "/foo/bar", "/foo/bar"),
    ({"strip_path_prefix": "/prefix"}, "/prefix/foo/bar", "/foo/bar"),
    ({"strip_path_prefix": "prefix"}, "/prefix/foo/bar", "/foo/bar"),
    ({"strip_path_prefix": "/PREFIX"}, "/prefix/foo", "/foo"),
    ({"strip_path_prefix": "/prefix"}, "/prefix", "/"),
    ({"strip_path_prefix": "/prefix"}, "/prefix/foo%2Fbar", "/foo%2Fbar"),
    ({"strip_path_prefix": "/prefix"}, "/foo/prefix/bar", "/foo/prefix/bar"),
    ({"strip_path_prefix": "/aaaaaa"}, "/%61%61", "/%61%61"),
    ({"strip_path_prefix": "/prefix"}, "/%70refix/x", "/x"),
    ({"strip_path_prefix": "//prefix"}, "//prefix/foo/bar", "/foo/bar"),
    ({"strip_path_prefix": "//prefix"}, "/prefix/foo/bar", "/prefix/foo/bar"),
    ({"strip_path_prefix": "/a%2Fb/c"}, "/a%2Fb/c/d", "/d"),
    ({"strip_path_prefix": "/a%2Fb/c"}, "/a%2fb/c/d", "/d"),
    ({"strip_path_prefix": "/a/b/c"}, "/a%2Fb/c/d", "/d"),
    ({"strip_path_prefix": "/a%2Fb/c"}, "/a/b/c/d", "/a/b/c/d"),
    ({"strip_path_prefix": "/api"}, "/api/../secret", "/secret"),  # cleaned first, as Caddy does
    ({"strip_path_suffix": "/suffix"}, "/foo/bar", "/foo/bar"),
    ({"strip_path_suffix": "suffix"}, "/foo/bar/suffix", "/foo/bar/"),
    ({"strip_path_suffix": "suffix"}, "/foo%2Fbar/suffix", "/foo%2Fbar/"),
    ({"strip_path_suffix": "%2fsuffix"}, "/foo%2Fbar%2fsuffix", "/foo%2Fbar"),
    ({"strip_path_suffix": ".HTML"}, "/page.html", "/page"),
    ({"strip_path_suffix": "/suffix"}, "/foo/suffix/bar", "/foo/suffix/bar"),
]

REPLACE_CASES = [
    ({"uri_substring": [{"find": "findme", "replace": "replaced"}]}, "/foo/bar", "/foo/bar"),
    ({"uri_substring": [{"find": "findme", "replace": "replaced"}]}, "/foo/findme/bar", "/foo/replaced/bar"),
    ({"uri_substring": [{"find": "findme", "replace": "replaced"}]}, "/foo/findme%2Fbar", "/foo/replaced%2Fbar"),
    ({"uri_substring": [{"find": "%28", "replace": "("}]}, "/hello/%28%29", "/hello/(%29"),
    ({"uri_substring": [{"find": "%28", "replace": "("}, {"find": "%29", "replace": ")"}]}, "/hello/%28%29", "/hello/()"),
    ({"uri_substring": [{"find": "a", "replace": "b", "limit": 1}]}, "/aaa?x=a", "/baa?x=b"),
    ({"uri_substring": [{"find": "old", "replace": "new"}]}, "/old?q=old", "/new?q=new"),
    ({"path_regexp": [{"find": "/{2,}", "replace": "/"}]}, "/foo//bar///baz?a=b//c", "/foo/bar/baz?a=b//c"),
    ({"path_regexp": [{"find": r"^/(\w+)/(?P<id>\d+)$", "replace": "/$id/$1"}]}, "/user/42", "/42/user"),
    # placeholders expand before the template: `{1}` is an (unknown) placeholder, as in Caddy
    ({"path_regexp": [{"find": r"^/(\w+)$", "replace": "/${1}"}]}, "/user", "/$"),
    ({"path_regexp": [{"find": r"\.php$", "replace": "$$x"}]}, "/a.php", "/a$x"),
]


@pytest.mark.parametrize(("rule", "target", "expected"), URI_CASES + STRIP_CASES + REPLACE_CASES)
def test_rewrites_the_request_target(rule: dict[str, Any], target: str, expected: str) -> None:
    assert rewritten(rule, target).target == expected


def test_a_query_in_a_placeholder_value_is_data_not_placeholders() -> None:
    rule = {"uri": "/serve/{http.request.header.X-Fwd}?"}
    out = rewritten(rule, "/anything", X_Fwd="foo?{env.HOME}=leak")
    assert out.target == "/serve/foo?%7Benv.HOME%7D=leak"
    assert rewritten(rule, "/anything", X_Fwd="ok?path={file./etc/passwd}").query == "path=%7Bfile./etc/passwd%7D"


def test_a_query_in_a_placeholder_value_is_dropped_without_a_question_mark_in_the_rule() -> None:
    out = rewritten({"uri": "/serve/{http.request.header.X-Fwd}"}, "/x?keep=1", X_Fwd="foo?injected=1")
    assert out.target == "/serve/foo?keep=1"


def test_a_prefix_may_come_from_a_placeholder() -> None:
    assert rewritten({"strip_path_prefix": "/{http.request.header.X-Tenant}"}, "/acme/x", X_Tenant="acme").path == "/x"


def test_method_is_expanded_and_uppercased() -> None:
    assert rewritten({"method": "{http.request.header.X-Method}"}, "/", X_Method="put").method == "PUT"


def test_path_and_decoded_path_and_originals() -> None:
    out = rewritten({"uri": "/new%20place?x=1"}, "/old?y=2")
    assert (out.raw_path, out.path, out.query, out.uri) == ("/new%20place", "/new place", "x=1", "/new%20place?x=1")
    assert (out.orig_target, out.orig_raw_path, out.orig_query, out.orig_method) == ("/old?y=2", "/old", "y=2", "GET")


def test_the_received_request_is_not_changed() -> None:
    original = request("/a?b=c")
    seen = Seen()
    run(build({"handler": "rewrite", "uri": "/z", "method": "POST"}), original, seen)
    assert (original.method, original.target, original.path) == ("GET", "/a?b=c", "/a")
    assert seen.request is not None and seen.request.vars is original.vars


def test_later_steps_see_the_earlier_steps_changes() -> None:
    rule = {"uri": "/first/second", "strip_path_prefix": "/first",
            "uri_substring": [{"find": "second", "replace": "{http.request.uri.path}"}]}
    assert rewritten(rule, "/x").path == "//second"


# --- query operations --------------------------------------------------------------------


def query_after(ops: dict[str, Any], target: str) -> dict[str, list[str]]:
    return parse_query(rewritten({"query": ops}, target).query)


def test_query_rename_moves_values_to_the_new_key() -> None:
    assert query_after({"rename": [{"key": "ID", "val": "id"}]}, "/?page=t&ID=5&id=7") == {"id": ["5"], "page": ["t"]}
    assert query_after({"rename": [{"key": "ID", "val": "id"}]}, "/?page=t&id=5") == {"id": ["5"], "page": ["t"]}
    assert query_after({"rename": [{"key": "id", "val": "id"}]}, "/?id=5") == {"id": ["5"]}


def test_query_set_add_delete() -> None:
    ops = {"set": [{"key": "s", "val": "{http.request.uri.path}"}], "add": [{"key": "a", "val": "2"}], "delete": ["d"]}
    assert query_after(ops, "/p?s=old&a=1&d=x") == {"s": ["/p"], "a": ["1", "2"]}


def test_query_replace_scoped_to_a_key_or_all_keys() -> None:
    assert query_after({"replace": [{"key": "a", "search": "foo", "replace": "bar"}]}, "/?a=foo&b=foo") == {
        "a": ["bar"], "b": ["foo"]}
    assert query_after({"replace": [{"key": "*", "search": "foo", "replace": "bar"}]}, "/?a=foo&b=foo") == {
        "a": ["bar"], "b": ["bar"]}
    assert query_after({"replace": [{"key": "missing", "search": "foo", "replace": "bar"}]}, "/?a=foo") == {"a": ["foo"]}
    assert query_after({"replace": [{"key": "a", "search_regexp": "f(.)o", "replace": "<$1>"}]}, "/?a=foo") == {
        "a": ["<o>"]}


def test_query_operations_reencode_the_query_with_sorted_keys() -> None:
    out = rewritten({"query": {"add": [{"key": "z", "val": "a b&c"}]}}, "/?b=2&a=1&bad=%zz&semi=1;x=2")
    assert out.query == "a=1&b=2&z=a+b%26c"


# --- Go's building blocks ----------------------------------------------------------------


def test_escaping_like_go() -> None:
    assert escape_path("/a b/ü?#%;,=@$&+:") == "/a%20b/%C3%BC%3F%23%25;,=@$&+:"
    assert encode_query({"k y": ["a+b", "ü~"]}) == "k+y=a%2Bb&k+y=%C3%BC~"


@pytest.mark.parametrize(("path", "merge", "expected"), [
    ("/a/./b/../c/", True, "/a/c/"),
    ("//a///b", True, "/a/b"),
    ("//a///b", False, "//a///b"),
    ("/a//../b", False, "/a/b"),
    ("", True, "."),
    ("/../..", True, "/"),
])
def test_clean_path_like_caddy(path: str, merge: bool, expected: str) -> None:
    assert clean_path(path, merge) == expected


@pytest.mark.parametrize(("pattern", "text", "template", "expected"), [
    ("a(x*)b", "-ab-axxb-", "${1}W", "-W-xxW-"),
    ("a(x*)b", "-ab-axxb-", "$1W", "---"),  # `$1W` names a group "1W", which does not exist
    ("a(?P<mid>x*)b", "axb", "[$mid]", "[x]"),
    ("x*", "abxd", "-", "-a-b-d-"),  # no empty match right after a match
    ("(a)|b", "ab", "<$1>", "<a><>"),
    ("a", "a", "$", "$"),
    ("a", "a", "$$1", "$1"),
])
def test_go_replacement_templates(pattern: str, text: str, template: str, expected: str) -> None:
    assert replace_all(compile_regexp(pattern), text, go_template(template)) == expected


# --- over a socket -----------------------------------------------------------------------


def test_rewrite_and_uri_over_a_socket(serve) -> None:
    site = (":80\nhandle_path /api/* {\n\trespond \"{uri}|{http.request.orig_uri}\"\n}\n"
            "rewrite /old /new?from=old\nrespond \"{method} {uri}\"\n")
    with serve(site) as server:
        api = httpx.get(server.url("/api/v1/items?x=1"))
        old = httpx.get(server.url("/old"))
    assert api.text == "/v1/items?x=1|/api/v1/items?x=1"
    assert old.text == "GET /new?from=old"


def test_rewrites_like_caddy(same_as_caddy_run) -> None:
    site = """
	handle_path /strip/* {
		respond "{http.request.uri}"
	}
	handle /rw/* {
		uri replace /rw/ /x/
		uri path_regexp /x/(\\w+) /y/$1
		respond "{http.request.uri}|{http.request.orig_uri}"
	}
	handle /q {
		rewrite * /new?{query}&added=1
		respond "{http.request.uri}"
	}
	handle /suffix.html {
		uri strip_suffix .html
		respond "{http.request.uri}"
	}
	handle /method {
		method PUT
		respond "{method}"
	}
	"""
    same_as_caddy_run(site, [
        ("/strip/a%2Fb/c", {}), ("/strip/", {}), ("/rw/abc/def?q=1", {}), ("/q?a=1&b=2", {}), ("/q", {}),
        ("/suffix.html?z", {}), ("/method", {}),
    ])


def test_query_bytes_that_are_not_utf8_survive_reencoding() -> None:
    assert rewritten({"query": {"set": [{"key": "b", "val": "1"}]}}, "/?a=%E9").query == "a=%E9&b=1"


def test_a_non_ascii_prefix_strips_its_encoded_form() -> None:
    assert rewritten({"strip_path_prefix": "/ä"}, "/%C3%A4/x").target == "/x"
