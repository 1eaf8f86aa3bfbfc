"""`request_body`: the request_body handler."""

from __future__ import annotations

import pytest

from rws.config.decode import decode
from rws.errors import ConfigError
from rws.handlers.request_body import RequestBodyConfig


@pytest.mark.parametrize("text", [
    ":80\nrequest_body {\n\tmax_size 10MB\n}\n",
    ":80\nrequest_body /upload {\n\tmax_size 1GiB\n}\n",
    ":80\nrequest_body {\n\tmax_size 512\n}\n",
    ":80\nrequest_body\n",
])
def test_adapts_like_caddy(same_as_caddy, text):
    same_as_caddy(text)


def test_set_replaces_the_body(site_handlers):
    [(handler, _)] = site_handlers(":80\nrequest_body {\n\tset \"new body\"\n}\n")
    assert handler == {"handler": "request_body", "set": "new body"}


@pytest.mark.parametrize("text, line, message", [
    (":80\nrequest_body 10MB\n", 2, "wrong argument count"),
    (":80\nrequest_body {\n\tmax_size abc\n}\n", 3, "bad size value 'abc'"),
    (":80\nrequest_body {\n\tmax_size\n}\n", 3, "wrong argument count or unexpected line ending after 'max_size'"),
    (":80\nrequest_body {\n\tmax_size 1 2\n}\n", 3, "wrong argument count"),
    (":80\nrequest_body {\n\tset a b\n}\n", 3, "wrong argument count"),
    (":80\nrequest_body {\n\tmax_sze 1\n}\n", 3, "unrecognized subdirective 'max_sze' (did you mean 'max_size'?)"),
])
def test_bad_input_names_the_line(adapt_error, text, line, message):
    assert message in adapt_error(text, line).message


@pytest.mark.parametrize("value, path", [
    ({"max_size": -1}, "h.max_size"),
    ({"max_size": "1MB"}, "h.max_size"),
    ({"maxsize": 1}, "h.maxsize"),
])
def test_config_rejects_bad_values(value, path):
    with pytest.raises(ConfigError) as info:
        decode(RequestBodyConfig, value, "h")
    assert info.value.path == path
