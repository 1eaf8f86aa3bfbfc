"""`header` and `request_header`: the headers handler, and response matchers."""

from __future__ import annotations

import pytest

from rws.config.decode import decode
from rws.errors import ConfigError
from rws.handlers.headers import HeadersConfig
from rws.http.message import canonical_header_key


@pytest.mark.parametrize("text", [
    ":80\nheader Foo bar\n",
    ":80\nheader foo-BAR baz\n",
    ":80\nheader Foo\n",
    ":80\nheader +Foo bar\nheader -Foo\nheader ?Foo bar\n",
    ":80\nheader /x {\n\tFoo bar\n\t+Bar baz\n\t-Qux\n\t?Def d\n\tdefer\n}\n",
    ":80\nheader {\n\tGrace: Hopper\n}\n",
    ":80\nheader Foo a b\n",
    ":80\nheader {\n\t*Foo a b\n}\n",
    ":80\nheader {header.X} v\n",
    ":80\nheader -Server*\n",
    ":80\nheader\n",
    ":80\nheader {\n\tdefer\n}\n",
    ":80\n@api path /api/*\nheader @api Cache-Control no-store\n",
    ":80\nrequest_header Foo bar\n",
    ":80\nrequest_header /x +foo bar\n",
    ":80\nrequest_header -Foo\n",
    ":80\nrequest_header Foo a b\n",
    ":80\nrequest_header Host: example.com\n",
])
def test_adapts_like_caddy(same_as_caddy, text):
    same_as_caddy(text)


def test_deferred_set_and_replace(site_handlers):
    handlers = site_handlers(":80\nheader >Server rws\nheader >Via (.*) \"$1 rws\"\n")
    assert [h for h, _ in handlers] == [
        {"handler": "headers", "response": {"set": {"Server": ["rws"]}, "deferred": True}},
        {"handler": "headers", "response": {"replace": {"Via": [{"search_regexp": "(.*)", "replace": "$1 rws"}]}, "deferred": True}},
    ]


def test_request_header_greater_than_is_a_plain_set(site_handlers):
    [(handler, _)] = site_handlers(":80\nrequest_header >foo bar\n")
    assert handler == {"handler": "headers", "request": {"set": {"Foo": ["bar"]}}}


def test_match_block_becomes_require(site_handlers):
    [(handler, _)] = site_handlers(
        ":80\nheader {\n\tX-A a\n\tmatch {\n\t\tstatus 2xx 304\n\t\theader content-type text/*\n\t\theader !X-Cache\n\t}\n}\n")
    assert handler["response"] == {
        "set": {"X-A": ["a"]},
        "require": {"status_code": [2, 304], "headers": {"Content-Type": ["text/*"], "X-Cache": None}},
    }


def test_match_on_one_line(site_handlers):
    [(handler, _)] = site_handlers(":80\nheader {\n\t+Link a\n\t+Link b\n\tmatch status 200\n}\n")
    assert handler["response"] == {"add": {"Link": ["a", "b"]}, "require": {"status_code": [200]}}


def test_default_fields_get_their_own_handler(site_handlers):
    handlers = site_handlers(":80\nheader {\n\tA a\n\t?B b\n\t?C c\n}\n")
    assert [h["response"] for h, _ in handlers] == [
        {"set": {"A": ["a"]}},
        {"set": {"B": ["b"], "C": ["c"]}, "require": {"headers": {"B": None, "C": None}}},
    ]


@pytest.mark.parametrize("text, line, message", [
    (":80\nheader Foo a b c\n", 2, "wrong argument count or unexpected line ending after 'c'"),
    (":80\nheader {\n\tFoo a b c\n}\n", 3, "wrong argument count"),
    (":80\nheader Foo a {\n\tBar b\n}\n", 3, "cannot specify headers in both arguments and block"),
    (":80\nheader {\n\tdefer now\n}\n", 3, "wrong argument count"),
    (":80\nheader {\n\tmatch {\n\t\tstatus\n\t}\n}\n", 4, "wrong argument count"),
    (":80\nheader {\n\tmatch {\n\t\tstatus ok\n\t}\n}\n", 4, "bad status value 'ok'"),
    (":80\nheader {\n\tmatch {\n\t\tstatuz 200\n\t}\n}\n", 4, "unrecognized response matcher 'statuz' (did you mean 'status'?)"),
    (":80\nheader {\n\tmatch {\n\t\theader X\n\t}\n}\n", 4, "malformed header matcher: expected both field and value"),
    (":80\nheader {\n\tmatch {\n\t\theader !X y\n\t}\n}\n", 4, "null matching headers cannot have a field value"),
    (":80\nheader {\n\tmatch {\n\t\theader !\n\t}\n}\n", 4, "must have field name following ! character"),
    (":80\nrequest_header\n", 2, "wrong argument count or unexpected line ending after 'request_header'"),
    (":80\nrequest_header Foo a b c\n", 2, "wrong argument count or unexpected line ending after 'c'"),
    (":80\nrequest_header ?Foo a\n", 2, "the default header modifier ('?') can only be used on response headers"),
    (":80\nrequest_header Foo a {\n\tx\n}\n", 2, "request_header does not take a block"),
])
def test_bad_input_names_the_line(adapt_error, text, line, message):
    assert message in adapt_error(text, line).message


@pytest.mark.parametrize("name, canonical", [
    ("content-type", "Content-Type"),
    ("X-FORWARDED-FOR", "X-Forwarded-For"),
    ("www-authenticate", "Www-Authenticate"),
    ("{http.vars.name}", "{http.vars.name}"),
    ("has space", "has space"),
    ("", ""),
])
def test_canonical_header_key_follows_go(name, canonical):
    assert canonical_header_key(name) == canonical


def test_config_decodes_request_and_response_ops():
    value = {"request": {"set": {"A": ["1"]}, "delete": ["B"]},
             "response": {"add": {"C": ["2"]}, "replace": {"D": [{"search_regexp": "x", "replace": "y"}]},
                          "require": {"status_code": [2], "headers": {"E": None}}, "deferred": True}}
    config = decode(HeadersConfig, value, "h")
    assert config.response.require.headers == {"E": None}


@pytest.mark.parametrize("value, path", [
    ({"response": {"replace": {"D": [{"search_regexp": "(", "replace": "y"}]}}}, "h.response.replace['D'][0].search_regexp"),
    ({"response": {"replace": {"D": [{"search": "a", "search_regexp": "b"}]}}}, "h.response.replace['D'][0]"),
    ({"request": {"require": {}}}, "h.request.require"),
    ({"response": {"deferred": "yes"}}, "h.response.deferred"),
])
def test_config_rejects_bad_values(value, path):
    with pytest.raises(ConfigError) as info:
        decode(HeadersConfig, value, "h")
    assert info.value.path == path


def test_a_regexp_with_a_placeholder_is_checked_at_request_time():
    decode(HeadersConfig, {"response": {"replace": {"D": [{"search_regexp": "({http.vars.x}", "replace": "y"}]}}}, "h")
