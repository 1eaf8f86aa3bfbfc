"""`respond`, `redir` and `abort`: the static_response handler."""

from __future__ import annotations

import pytest

from rws.config.decode import decode
from rws.errors import ConfigError
from rws.handlers.static_response import StaticResponseConfig, weak_string

SAME_AS_CADDY = [
    ":80\nrespond 200\n",
    ":80\nrespond 20\n",  # not three digits: a body
    ":80\nrespond 000\n",  # three digits but not positive: a body
    ":80\nrespond /x 404\n",
    ":80\nrespond \"hello\"\n",
    ":80\nrespond /x \"body\" 201\n",
    ":80\nrespond /x \"body\" {http.vars.code}\n",
    ":80\nrespond 404 {\n\tbody \"not here\"\n\tclose\n}\n",
    ":80\n@post method POST\nrespond @post \"posted\" 201\n",
    ":80\nabort\n",
    ":80\nabort /admin/*\n",
    ":80\nredir https://example.com\n",
    ":80\nredir /old /new\n",
    ":80\nredir https://example.com{uri} permanent\n",
    ":80\nredir /x /y temporary\n",
    ":80\nredir /x /y 308\n",
    ":80\nredir /x /login 401\n",
    ":80\nredir /x /y {http.vars.code}\n",
]


@pytest.mark.parametrize("text", SAME_AS_CADDY)
def test_adapts_like_caddy(same_as_caddy, text):
    same_as_caddy(text)


def test_one_three_digit_argument_is_the_status(site_handlers):
    [(handler, _)] = site_handlers(":80\nrespond 503\n")
    assert handler == {"handler": "static_response", "status_code": 503}


def test_the_block_body_may_follow_a_status_argument(site_handlers):
    [(handler, _)] = site_handlers(":80\nrespond 200 {\n\tbody ok\n}\n")
    assert handler == {"handler": "static_response", "status_code": 200, "body": "ok"}


def test_redir_html_writes_a_page_and_no_location(site_handlers):
    [(handler, _)] = site_handlers(":80\nredir /a /b html\n")
    assert handler["status_code"] == 200
    assert handler["headers"] == {"Content-Type": ["text/html; charset=utf-8"]}
    assert 'window.location.replace("/b")' in handler["body"]


def test_redir_html_escapes_the_target_as_go_does(site_handlers):
    [(handler, _)] = site_handlers(":80\nredir /a \"/b?x='<&>\\\"\" html\n")
    assert '<a href="/b?x=&#39;&lt;&amp;&gt;&#34;">' in handler["body"]


@pytest.mark.parametrize("text, line, message", [
    (":80\nrespond\n", 2, "wrong argument count or unexpected line ending after 'respond'"),
    (":80\nrespond a b c\n", 2, "wrong argument count or unexpected line ending after 'c'"),
    (":80\nrespond /x\n", 2, "wrong argument count or unexpected line ending after '/x'"),
    (":80\nrespond +99\n", 2, "bad status code '+99': expected a number from 100 to 999"),
    (":80\nrespond x abc\n", 2, "bad status code 'abc': expected a number or a placeholder"),
    (":80\nrespond x 1000\n", 2, "bad status code '1000': expected a number from 100 to 999"),
    (":80\nrespond 200 {\n\tbdy x\n}\n", 3, "unrecognized subdirective 'bdy' (did you mean 'body'?)"),
    (":80\nrespond x {\n\tbody y\n}\n", 3, "body already specified"),
    (":80\nrespond 200 {\n\tbody\n}\n", 3, "wrong argument count"),
    (":80\nrespond 200 {\n\tclose\n\tclose\n}\n", 4, "close already specified"),
    (":80\nrespond 200 {\n\tclose now\n}\n", 3, "wrong argument count"),
    (":80\nabort x\n", 2, "wrong argument count or unexpected line ending after 'x'"),
    (":80\nabort {\n\tx\n}\n", 2, "abort does not take a block"),
    (":80\nredir\n", 2, "wrong argument count or unexpected line ending after 'redir'"),
    (":80\nredir /new\n", 2, "wrong argument count or unexpected line ending after '/new'"),  # /new is a matcher
    (":80\nredir /x /y 301 extra\n", 2, "wrong argument count or unexpected line ending after 'extra'"),
    (":80\nredir /x /y moved\n", 2, "not a supported redir code type or not a valid integer: 'moved'"),
    (":80\nredir /x /y 200\n", 2, "redir code not in the 3xx range or 401: '200'"),
    (":80\nredir /x /y 404\n", 2, "redir code not in the 3xx range or 401: '404'"),
    (":80\nredir /x /y {\n\tz\n}\n", 2, "redir does not take a block"),
])
def test_bad_input_names_the_line(adapt_error, text, line, message):
    assert message in adapt_error(text, line).message


def test_weak_string_writes_integers_and_booleans_unquoted():
    assert weak_string("404") == 404
    assert weak_string("{http.vars.code}") == "{http.vars.code}"
    assert weak_string("true") is True


def test_config_decodes_caddy_json():
    config = decode(StaticResponseConfig, {"status_code": 301, "headers": {"Location": ["/x"]}, "body": "b", "close": True}, "h")
    assert config.status_code == "301" and config.headers == {"Location": ("/x",)}


@pytest.mark.parametrize("value, path", [
    ({"status_code": "abc"}, "h.status_code"),
    ({"status_code": 42}, "h.status_code"),
    ({"headers": {"X": "not-a-list"}}, "h.headers.X"),
    ({"bdy": "x"}, "h.bdy"),
])
def test_config_rejects_bad_values(value, path):
    with pytest.raises(ConfigError) as info:
        decode(StaticResponseConfig, value, "h")
    assert info.value.path == path
